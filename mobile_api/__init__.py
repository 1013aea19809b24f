"""What phones and tablets talk to: sessions, the signer's pending list, document and
page previews, approval and rejection, TOTP enrolment, device registration and push.

Never touches PKCS#11 or private keys; it calls :mod:`gateway` only.
"""
