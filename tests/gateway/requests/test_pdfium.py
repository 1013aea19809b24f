"""PDFium is entered by one thread at a time: a page preview and automatic placement's
text extraction running together crashed the process (``trap int3 in libpdfium.so``)
within a few requests."""

import subprocess
import sys
import textwrap

from tests.pdf_builders import signer_block_pdf

_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from gateway.requests.placement import text_lines
    from gateway.requests.rendering import render_page_png

    document = open(sys.argv[1], "rb").read()
    errors = []

    def extract():
        try:
            for _ in range(150):
                text_lines(document, 0)
        except BaseException as exc:
            errors.append(exc)

    def render():
        try:
            for _ in range(150):
                render_page_png(document, 1, 300, max_width=2000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (extract, render, extract, render)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("errors", len(errors))
    sys.exit(1 if errors else 0)
    """
)


def test_preview_and_placement_at_once_do_not_crash(tmp_path):
    document = tmp_path / "block.pdf"
    document.write_bytes(signer_block_pdf("GIÁM ĐỐC", "Nguyễn Văn An"))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(document)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "errors 0" in done.stdout
