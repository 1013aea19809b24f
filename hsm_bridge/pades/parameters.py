"""What a signer approves besides the document: the signature parameters, and the hash
that binds an approval to them.

The bridge builds the signature from exactly these values (:mod:`hsm_bridge.pades.builder`);
the gateway computes them at submission and shows them to the signer; the approval
statement carries :func:`parameters_sha256` of their canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
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
    ALL = (B_B, B_T)


@dataclass(frozen=True, slots=True)
class EmptyField:
    """An empty signature field that the signature's update creates besides its own, for
    a later signer (the organisation's seal after the leader's signature): its name, its
    page (1-based) and its box as the page is displayed (points, as
    :attr:`SignatureParameters.box`)."""

    name: str
    page: int
    box: Box


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
        """Parameters from a JSON object (as :meth:`as_json_object` writes it). Raises
        ValueError for unknown members or values of the wrong shape."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown signature parameters: {', '.join(sorted(unknown))}")
        values = dict(data)
        try:
            if values.get("box") is not None:
                values["box"] = _box(values["box"])
            values["empty_fields"] = tuple(
                EmptyField(str(f["name"]), int(f["page"]), _box(f["box"]))
                for f in values.get("empty_fields") or ()  # type: ignore[attr-defined]
            )
        except (KeyError, TypeError) as exc:
            raise ValueError("malformed signature parameters") from exc
        return cls(**values)  # type: ignore[arg-type]


def _box(value: object) -> Box:
    x1, y1, x2, y2 = (float(v) for v in value)  # type: ignore[attr-defined]
    return (x1, y1, x2, y2)
