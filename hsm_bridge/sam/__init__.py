"""The signature activation module (EN 419 241-1): the bridge's own records of signers,
devices and TOTP secrets (`signers`), the statements a device signs (`statement`), the
checks of a signer's factor that issue SADs (`authorization`), the SADs themselves
(`activation`), TOTP (`otp`) and PINs sealed to the bridge (`pin_envelope`)."""
