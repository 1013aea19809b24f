"""The form's fields as the signature needs them (ISO 32000-1 §12.7): their fully
qualified names, where each signature field's widget shows, and what an empty signature
field carries that a signature into it cannot honour."""

from __future__ import annotations

from typing import Any

from pyhanko.sign import fields

from pdf_structure.geometry import page_objects

__all__ = ["HIDING_FLAGS", "empty_field_flags", "field_names", "signature_field_places"]

Box = tuple[float, float, float, float]

# annotation flags that keep a widget from view (ISO 32000-1 §12.5.3: Hidden, NoView)
HIDING_FLAGS = 2 | 32


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    try:
        return obj[key]  # pyHanko dereferences indirect objects on item access
    except (KeyError, TypeError):
        return None


def field_names(acroform: Any) -> list[str]:
    """The fully qualified names (ISO 32000-1 §12.7.3.2: partial names joined by dots)
    of every field under ``acroform`` (a pyHanko dictionary or None), parents included,
    whatever their type."""
    found: list[str] = []
    if hasattr(acroform, "get_object"):
        acroform = acroform.get_object()
    stack = [(kid, "", 0) for kid in (_get(acroform, "/Fields") or [])]
    while stack:
        ref, prefix, depth = stack.pop()
        node = ref.get_object() if hasattr(ref, "get_object") else ref
        partial = _get(node, "/T")
        name = prefix if partial is None else (f"{prefix}.{partial}" if prefix else str(partial))
        if partial is not None:
            found.append(name)
        if depth < 32:
            stack.extend((kid, name, depth + 1) for kid in (_get(node, "/Kids") or []))
    return found


def signature_field_places(handler: Any, pages_root: Any) -> dict[str, tuple[int, Box]]:
    """For each signature field of the document that ``handler`` (a pyHanko reader or
    writer's previous revision) reads: the 0-based index of the page whose /Annots
    shows its widget (the field itself, or its first kid) and the widget's /Rect in
    that page's user space (points)."""
    widgets: dict[tuple[int, int], str] = {}
    for name, _, ref in fields.enumerate_sig_fields(handler):
        if ref is None:
            continue
        widgets.setdefault((ref.idnum, ref.generation), name)
        for kid in _get(ref.get_object(), "/Kids") or []:
            widgets.setdefault((kid.idnum, kid.generation), name)
    places: dict[str, tuple[int, Box]] = {}
    if not widgets:
        return places  # no signature field: no page to walk (a 117-page book has none)
    for index, page in enumerate(page_objects(pages_root)):
        for annotation in _get(page, "/Annots") or []:
            if not hasattr(annotation, "idnum"):
                continue  # a direct dictionary: no field's /Kids can name it
            name = widgets.get((annotation.idnum, annotation.generation))
            rect = _get(annotation.get_object(), "/Rect") if name else None
            if name is not None and rect is not None and name not in places:
                x1, y1, x2, y2 = (float(v) for v in rect)
                places[name] = (index, (x1, y1, x2, y2))
    return places


def empty_field_flags(ref: Any) -> list[str]:
    """What an empty signature field (``ref``, its indirect reference) carries that a
    signature into it cannot honour: ``widgets`` (not exactly one widget: pyHanko signs
    a field with one), ``hidden`` (a widget's Hidden or NoView flag, or optional
    content some viewers turn off), ``lock`` (/Lock: a field lock the signature would
    apply), ``seed_value`` (/SV constraints)."""
    node = ref.get_object() if ref is not None else None
    if node is None:
        return []
    kids = [kid.get_object() for kid in _get(node, "/Kids") or []]
    found = []
    if kids and (len(kids) != 1 or _get(kids[0], "/T") is not None):
        found.append("widgets")
    for widget in kids or [node]:
        if int(_get(widget, "/F") or 0) & HIDING_FLAGS or _get(widget, "/OC") is not None:
            found.append("hidden")
            break
    if _get(node, "/Lock") is not None:
        found.append("lock")
    if _get(node, "/SV") is not None:
        found.append("seed_value")
    return found
