"""Reading a document whose objects share one object stream costs time linear in their
number: each object stream's header is parsed once (before: once per object read, so
5,000 pages in 82 KB took 97 s of server CPU at intake)."""

from __future__ import annotations

from pyhanko.pdf_utils import generic

from pdf_structure.geometry import page_objects
from pdf_structure.reader import open_reader
from tests.pdf_builders import pages_in_object_stream


def _numbers_read(monkeypatch, data: bytes) -> int:
    """How many numbers the parser reads to walk every page of ``data``."""
    counted = [0]
    original = generic.NumberObject.read_from_stream

    def counting(stream):  # noqa: ANN001, ANN202 - pyHanko's signature
        counted[0] += 1
        return original(stream)

    monkeypatch.setattr(generic.NumberObject, "read_from_stream", staticmethod(counting))
    pages = page_objects(open_reader(data).root["/Pages"])
    assert len(pages) == int(open_reader(data).root["/Pages"]["/Count"])
    return counted[0]


def test_objects_in_one_object_stream_are_read_in_linear_time(monkeypatch):
    small = _numbers_read(monkeypatch, pages_in_object_stream(500))
    large = _numbers_read(monkeypatch, pages_in_object_stream(5_000))
    # ten times the pages, about ten times the work (rescanning the header per object
    # read would make it a hundred times)
    assert large < 15 * small, (small, large)
