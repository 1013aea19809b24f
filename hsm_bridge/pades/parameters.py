"""What a signer approves besides the document: the signature parameters, and the hash
that binds an approval to them.

The bridge builds the signature from exactly these values (:mod:`hsm_bridge.pades.builder`);
the gateway computes them at submission and shows them to the signer; the approval
statement carries :func:`parameters_sha256` of their canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

__all__ = [
    "Box",
    "EmptyField",
    "PadesLevel",
    "SignatureParameters",
    "parameters_sha256",
]

Box = tuple[float, float, float, float]


def parameters_sha256(parameters: Mapping[str, object]) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of signature parameters (sorted keys,
    no spaces, UTF-8, non-ASCII kept): what an approval statement binds them by."""
    text = json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class PadesLevel:
    """PAdES baseline levels we produce (ETSI EN 319 142-1 §6)."""

    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"
    ALL = (B_B, B_T, B_LT, B_LTA)
    TIMESTAMPED = (B_T, B_LT, B_LTA)
    WITH_VALIDATION_DATA = (B_LT, B_LTA)

    @staticmethod
    def rank(level: str) -> int:
        """0 for B-B up to 3 for B-LTA; -1 for none of them."""
        return PadesLevel.ALL.index(level) if level in PadesLevel.ALL else -1


@dataclass(frozen=True, slots=True)
class EmptyField:
    """An empty signature field that the signature's update creates besides its own, for
    a later signer (the organisation's seal after the leader's signature): its name, its
    page (1-based) and its box as the page is displayed (points, as
    :attr:`SignatureParameters.box`)."""

    name: str
    page: int
    box: Box

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))


# members left out of the canonical JSON while they hold their default, so that adding
# one never changes the hash of parameters that do not use it
_OMITTED_WHEN_DEFAULT = {
    "stamp_text": None,
    "empty_fields": (),
    "next_field_name": None,
    "seal": False,
    "text_with_image": False,
}


@dataclass(frozen=True, slots=True)
class SignatureParameters:
    """What the signer approves besides the document: PDF signature dictionary entries,
    the level and the visible box. ``page`` is 1-based; ``box`` is (x1, y1, x2, y2) in
    PDF points on the page as the reader sees it: from the bottom-left corner of the
    visible page (CropBox, after /Rotate), x right, y up
    (:mod:`pdf_structure.geometry`); both or neither. ``image_sha256``: the image drawn
    in the visible signature (hex SHA-256 of the PNG: the signer's handwritten signature
    or the organisation's seal), or None for the text appearance. ``seal``: the image is
    a seal, drawn at its real size (the box is its diameter) with no text over it.
    ``text_with_image``: the signer, position and time are written over the image.
    ``stamp_text``: the text of a visible signature without image (an attachment's
    number and symbol, or a copy's type and organisation), drawn with the signing time
    under it. ``empty_fields``: the fields the update creates empty for the next
    signers of a workflow (ISO 32000-1 §12.7.4.5), so that their signatures only fill
    them. ``next_field_name``: the (empty) field the workflow's next step signs into,
    one of those or one the document has. Members at their default are left out of the
    canonical JSON (:data:`_OMITTED_WHEN_DEFAULT`)."""

    reason: str | None = None
    location: str | None = None
    contact_info: str | None = None
    field_name: str | None = None
    pades_level: str = PadesLevel.B_B
    page: int | None = None
    box: Box | None = None
    image_sha256: str | None = None
    stamp_text: str | None = None
    empty_fields: tuple[EmptyField, ...] = ()
    next_field_name: str | None = None
    seal: bool = False
    text_with_image: bool = False

    def __post_init__(self) -> None:
        # one spelling of each number: a box given as integers hashes as the floats it
        # becomes once read back from the canonical JSON
        if self.box is not None:
            object.__setattr__(self, "box", tuple(float(v) for v in self.box))

    @property
    def visible(self) -> bool:
        """Whether the signature shows on a page: a box, or an existing field."""
        return self.box is not None or self.field_name is not None

    def as_json_object(self) -> dict[str, object]:
        """The canonical JSON object (members at their default omitted)."""
        data = asdict(self)
        for key, default in _OMITTED_WHEN_DEFAULT.items():
            if data[key] == default:
                del data[key]
        if data.get("box") is not None:
            data["box"] = list(data["box"])
        for empty in data.get("empty_fields", ()):
            empty["box"] = list(empty["box"])
        if "empty_fields" in data:
            data["empty_fields"] = list(data["empty_fields"])
        return data

    def canonical_json(self) -> str:
        """Sorted-key compact JSON; its SHA-256 binds an approval to these parameters."""
        return json.dumps(
            self.as_json_object(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    def sha256(self) -> str:
        """:func:`parameters_sha256` of these parameters (lowercase hex)."""
        return parameters_sha256(self.as_json_object())

    @classmethod
    def from_json(cls, text: str) -> SignatureParameters:
        """Inverse of :meth:`canonical_json`; ValueError for anything else."""
        return cls.from_object(json.loads(text))

    @classmethod
    def from_object(cls, data: Mapping[str, object]) -> SignatureParameters:
        """Parameters from a JSON object (as :meth:`as_json_object` writes it), every
        member checked for its type. Raises ValueError for unknown members, values of
        the wrong type or shape, and a PAdES level we do not produce."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown signature parameters: {', '.join(sorted(unknown))}")
        level = _text(data, "pades_level") or PadesLevel.B_B
        if level not in PadesLevel.ALL:
            raise ValueError(f"unknown PAdES level {level!r}")
        return cls(
            reason=_text(data, "reason"),
            location=_text(data, "location"),
            contact_info=_text(data, "contact_info"),
            field_name=_text(data, "field_name"),
            pades_level=level,
            page=_page(data.get("page")),
            box=None if data.get("box") is None else _box(data["box"]),
            image_sha256=_text(data, "image_sha256"),
            stamp_text=_text(data, "stamp_text"),
            empty_fields=tuple(_empty_field(f) for f in _items(data.get("empty_fields"))),
            next_field_name=_text(data, "next_field_name"),
            seal=_flag(data, "seal"),
            text_with_image=_flag(data, "text_with_image"),
        )


def _text(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"signature parameter {name} must be text")
    return value


def _flag(data: Mapping[str, object], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"signature parameter {name} must be true or false")
    return value


def _page(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("signature parameter page must be a page number from 1")
    return value


def _items(value: object) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError("signature parameter empty_fields must be a list")
    return list(value)


def _empty_field(value: object) -> EmptyField:
    if not isinstance(value, Mapping) or set(value) != {"name", "page", "box"}:
        raise ValueError("an empty field is {name, page, box}")
    name, page = value["name"], _page(value["page"])
    if not isinstance(name, str) or page is None:
        raise ValueError("an empty field's name must be text and its page a number")
    return EmptyField(name, page, _box(value["box"]))


def _box(value: object) -> Box:
    """Four finite numbers (points)."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ValueError("a box is four numbers")
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError("a box is four finite numbers")
        numbers.append(float(v))
    return (numbers[0], numbers[1], numbers[2], numbers[3])
