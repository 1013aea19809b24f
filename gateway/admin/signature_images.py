"""A signer's handwritten signature image, drawn in visible signatures
(docs/vn-signature-format.md: the leader's signature is the image of the person's
handwritten signature, blue, a PNG with a transparent background).

An administrator uploads it once (``signing-gateway users signature-image``); it is kept
with the user. A request with a visible signature names the image's SHA-256 in its
signature parameters at submission, so the signer approves that image, and the signing
step refuses another one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select

from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import User
from gateway.errors import ParameterInvalid, SignerUnknown

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "check_signature_image", "set_signature_image"]

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 2000 * 2000


def check_signature_image(data: bytes, what: str = "signature image") -> Image.Image:
    """The decoded image of ``data`` (PNG bytes, at most :data:`MAX_IMAGE_BYTES`, at
    most :data:`MAX_IMAGE_PIXELS` pixels) with a transparent background (an alpha
    channel or a transparent palette entry); ``what`` names it in the refusals (a
    signature image, a seal image). Raises ParameterInvalid."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ParameterInvalid(f"the {what} has {len(data)} bytes; at most {MAX_IMAGE_BYTES}")
    try:
        image = Image.open(io.BytesIO(data))
        if image.format != "PNG":
            raise ParameterInvalid(f"the {what} must be a PNG")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ParameterInvalid(f"the {what} is larger than 2000 x 2000 pixels")
        image.load()
    except Image.DecompressionBombError as exc:
        raise ParameterInvalid(f"the {what} claims too many pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ParameterInvalid(f"the {what} is not a readable PNG") from exc
    transparent = image.mode in ("RGBA", "LA") or "transparency" in image.info
    if not transparent:
        raise ParameterInvalid(f"the {what} needs a transparent background (alpha)")
    return image.convert("RGBA")


def set_signature_image(db: Database, username: str, data: bytes, *, now: dt.datetime) -> str:
    """Keep ``data`` (PNG, see :func:`check_signature_image`) as ``username``'s signature
    image, audited; return its SHA-256 (hex). Raises SignerUnknown, ParameterInvalid."""
    check_signature_image(data)
    digest = hashlib.sha256(data).hexdigest()
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise SignerUnknown(f"no user {username!r}")
        user.signature_image = data
        audit.record(
            session,
            actor="admin:cli",
            action="user.signature_image_set",
            now=now,
            detail={"user": username, "image_sha256": digest},
        )
    return digest
