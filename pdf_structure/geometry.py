"""Where a box on a page, as the reader sees it, lies in the page's own coordinates.

A signature box is given the way a person or a document system sees the page: in PDF
points, origin at the bottom-left corner of the visible page (the CropBox, after the
page's /Rotate), x to the right, y up. The widget's /Rect is in the page's default user
space (ISO 32000-1 §8.3.2.3), which a /Rotate of 90, 180 or 270 degrees turns
clockwise on display (§7.7.3.3) and whose origin need not be the CropBox's corner.
Both the gateway (which places the widget) and the bridge (which checks it against the
approved box) use these functions, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "PageGeometry",
    "from_user_space",
    "page_geometries",
    "page_geometry",
    "page_objects",
    "pages_with_resources",
    "to_user_space",
]

Box = tuple[float, float, float, float]
# deeper than any real page tree (a few levels); a deeper walk is a cycle
_MAX_DEPTH = 10_000
# what a page inherits from its ancestors (ISO 32000-1 §7.7.3.4)
_INHERITED = ("/MediaBox", "/CropBox", "/Rotate", "/Resources")


@dataclass(frozen=True, slots=True)
class PageGeometry:
    """A page's visible area in default user space (``crop``: x1, y1, x2, y2, points)
    and its display rotation (``rotate``: 0, 90, 180 or 270, clockwise)."""

    crop: Box
    rotate: int

    @property
    def displayed_size(self) -> tuple[float, float]:
        """Width and height of the page as displayed, in points."""
        x1, y1, x2, y2 = self.crop
        width, height = x2 - x1, y2 - y1
        return (height, width) if self.rotate in (90, 270) else (width, height)


def _normalised(box: Any) -> Box:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _geometry(inherited: dict[str, Any]) -> PageGeometry:
    media = _normalised(inherited.get("/MediaBox", (0, 0, 612, 792)))
    crop = _normalised(inherited.get("/CropBox", media))
    crop = (
        max(crop[0], media[0]),
        max(crop[1], media[1]),
        min(crop[2], media[2]),
        min(crop[3], media[3]),
    )
    rotate = int(inherited.get("/Rotate", 0)) % 360
    return PageGeometry(crop, rotate - rotate % 90)


def page_geometries(pages_root: Any) -> list[PageGeometry]:
    """The geometry of every page under the /Pages node ``pages_root``, in order, in
    one walk of the page tree."""
    return [_geometry(inherited) for _, inherited in _walk(pages_root)]


def page_objects(pages_root: Any) -> list[Any]:
    """The page dictionaries under the /Pages node ``pages_root``, in order (the same
    walk as :func:`page_geometries`)."""
    return [page for page, _ in _walk(pages_root)]


def pages_with_resources(pages_root: Any) -> list[tuple[Any, Any]]:
    """Each page dictionary with its resource dictionary (its own or the nearest
    ancestor's; None when there is none), in order."""
    return [(page, inherited.get("/Resources")) for page, inherited in _walk(pages_root)]


def _walk(pages_root: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(page, inherited /MediaBox /CropBox /Rotate /Resources) in order. ValueError when the tree
    meets a node twice (a cycle, which would otherwise never end, or a page listed
    twice)."""
    found: list[tuple[Any, dict[str, Any]]] = []
    stack: list[tuple[Any, dict[str, Any]]] = [(pages_root.get_object(), {})]
    seen: set[tuple[int, int]] = set()
    while stack:
        node, inherited = stack.pop()
        here = dict(inherited)
        for key in _INHERITED:
            if key in node:
                here[key] = node[key]
        if node.get("/Type") != "/Page" and "/Kids" in node:
            kids = list(node["/Kids"])
            for kid in kids:
                node_key = (kid.idnum, kid.generation) if hasattr(kid, "idnum") else (-1, id(kid))
                if node_key in seen:
                    raise ValueError("the page tree meets a node twice")
                seen.add(node_key)
            stack.extend((kid.get_object(), here) for kid in reversed(kids))
        else:  # a page (a stray /Kids on a page is ignored, as readers do)
            found.append((node, here))
    return found


def page_geometry(pages_root: Any, index: int) -> PageGeometry:
    """The geometry of page ``index`` (0-based) under the /Pages node ``pages_root`` (a
    pyHanko dictionary), with /MediaBox, /CropBox and /Rotate inherited from the page
    tree (ISO 32000-1 §7.7.3.4); the CropBox is clipped to the MediaBox. IndexError
    when there is no such page."""
    inherited: dict[str, Any] = {}
    node = pages_root.get_object()
    remaining = index
    for _ in range(_MAX_DEPTH):
        for key in ("/MediaBox", "/CropBox", "/Rotate"):
            if key in node:
                inherited[key] = node[key]
        if node.get("/Type") == "/Page" or "/Kids" not in node:
            break
        for kid in node["/Kids"]:
            child = kid.get_object()
            leaf = child.get("/Type") == "/Page" or "/Kids" not in child
            count = 1 if leaf else int(child.get("/Count", 1))
            if remaining < count:
                node = child
                break
            remaining -= count
        else:
            raise IndexError(f"no page {index}")
    else:
        raise IndexError(f"no page {index}: the page tree does not end")
    return _geometry(inherited)


def to_user_space(box: Box, geometry: PageGeometry) -> Box:
    """The /Rect (x1, y1, x2, y2, default user space) of ``box``, given as the page is
    displayed (points from the visible page's bottom-left corner)."""
    u1, v1, u2, v2 = _normalised(box)
    cx1, cy1, cx2, cy2 = geometry.crop

    def point(u: float, v: float) -> tuple[float, float]:
        if geometry.rotate == 90:
            return cx2 - v, cy1 + u
        if geometry.rotate == 180:
            return cx2 - u, cy2 - v
        if geometry.rotate == 270:
            return cx1 + v, cy2 - u
        return cx1 + u, cy1 + v

    (ax, ay), (bx, by) = point(u1, v1), point(u2, v2)
    return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def from_user_space(rect: Box, geometry: PageGeometry) -> Box:
    """The box as the page is displayed (points from the visible page's bottom-left
    corner) of ``rect`` (x1, y1, x2, y2 in default user space): the inverse of
    :func:`to_user_space`."""
    x1, y1, x2, y2 = _normalised(rect)
    cx1, cy1, cx2, cy2 = geometry.crop

    def point(x: float, y: float) -> tuple[float, float]:
        if geometry.rotate == 90:
            return y - cy1, cx2 - x
        if geometry.rotate == 180:
            return cx2 - x, cy2 - y
        if geometry.rotate == 270:
            return cy2 - y, x - cx1
        return x - cx1, y - cy1

    (au, av), (bu, bv) = point(x1, y1), point(x2, y2)
    return (min(au, bu), min(av, bv), max(au, bu), max(av, bv))
