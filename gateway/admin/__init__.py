"""What the installation's administrator does (the CLI now, an admin API later): creating
an installation (`installation`), users and credentials (`enrolment`), organisations and
their seals (`organisations`), signers' signature images (`signature_images`)."""
