"""The demo: its installation (`installation`: PKI, tokens, users, organisation), its PKI
(`pki`), images (`images`), a sample PDF (`sample_pdf`), and the driver that plays the
document system and the tablets over HTTP (`driver`)."""
