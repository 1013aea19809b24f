"""PKCS#11 in PKCS#11's own words: modules loaded once per process (`module`), tokens found
by serial with a pool of sessions, a concurrency limit and a timeout each (`tokens`), raw
signatures of a digest (`signing`), the inventory of tokens and keys (`inventory`), key
generation (`provisioning`), stored PINs (`pins`), SoftHSM2 helpers (`softhsm`) and the
per-token metrics (`metrics`)."""
