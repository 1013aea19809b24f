"""A signing request from submission to its signed document: intake of the PDF
(`intake`), where the signature goes (`placement`), the document system's use cases
(`submission`), workflows (`workflows`), the life cycle (`lifecycle`), who may read a
request (`access`), the document store, the preview of the signature (`preview`), the
views the APIs answer (`schemas`) and the one door to PDFium (`pdfium`)."""
