"""What a PDF's structure says, read one way for everyone: the page tree and each page's
visible geometry (:mod:`pdf_structure.geometry`), and the form's fields
(:mod:`pdf_structure.fields`).

A leaf package: it imports only pyHanko's object model, and both the gateway (intake,
placement, previews) and the bridge (which builds the signature) use it, so they cannot
disagree on what a page is or where a field shows.
"""
