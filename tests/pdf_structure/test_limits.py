"""Resource limits on documents, measured without keeping what is measured: a
decompression bomb is refused at intake without being inflated, and the process that
checks it stays small."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gateway.errors import DocumentTooComplex
from gateway.requests.intake import inspect_pdf
from pdf_structure.limits import DocumentLimits, LimitExceeded, check_limits
from pdf_structure.reader import open_reader
from tests.pdf_builders import content_bomb, pages_in_object_stream

GiB = 1 << 30


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """The review's bomb: one 1 GiB content stream (about 1 MB on disk), listed eight
    times on one page."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.pdf"
    path.write_bytes(content_bomb(GiB, listed=8))
    return path


def test_the_bomb_is_refused_at_intake_in_a_process_that_stays_small(bomb):
    """Intake runs in a child process here so that its peak memory can be read alone."""
    script = textwrap.dedent(
        """
        import json, resource, sys
        from gateway.errors import GatewayError
        from gateway.requests.intake import inspect_pdf
        data = open(sys.argv[1], "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            inspect_pdf(data, max_bytes=50 << 20)
            code = "accepted"
        except GatewayError as exc:
            code = exc.code
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"code": code, "grew_kib": after - before}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == "document_too_complex"
    assert result["grew_kib"] < 200 * 1024, result  # far from the 1 GiB it would inflate to


def test_limits_name_what_was_exceeded():
    small = DocumentLimits(max_stream_bytes=1 << 20, max_page_bytes=3 << 20)
    one = content_bomb(2 << 20)
    with pytest.raises(LimitExceeded) as stream:
        check_limits(open_reader(one).root["/Pages"], small)
    assert stream.value.limit == "stream" and "page 1" in str(stream.value)
    listed = content_bomb(900 << 10, listed=4)  # each within the stream limit, 3.6 MB in all
    with pytest.raises(LimitExceeded) as page:
        check_limits(open_reader(listed).root["/Pages"], small)
    assert page.value.limit == "page" and "page 1 draws from 3.7 MB" in str(page.value)
    assert check_limits(open_reader(content_bomb(900 << 10)).root["/Pages"], small) == 1


def test_too_many_pages_are_refused_with_the_limit_named():
    document = pages_in_object_stream(120)
    with pytest.raises(DocumentTooComplex) as refused:
        inspect_pdf(document, max_bytes=50 << 20, limits=DocumentLimits(max_pages=100))
    assert "120 pages; the limit is 100" in refused.value.detail
    assert inspect_pdf(document, max_bytes=50 << 20).page_count == 120
