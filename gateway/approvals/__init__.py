"""The signer's decisions: the use cases (`decisions`), the statements and nonces a
device answers with (`statements`), the TOTP relay (`totp`) and the signer's devices, a
view of the bridge's (`devices`)."""
