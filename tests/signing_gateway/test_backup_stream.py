"""The backup file's encryption on its own: a round trip over several chunks, and every
way of cutting, reordering, repeating or altering chunks is refused."""

from __future__ import annotations

import io
import os

import pytest

from signing_gateway.backup import BackupDamaged, WrongPassphrase
from signing_gateway.backup.stream import TAG_BYTES, DecryptingReader, EncryptingWriter

CHUNK = 4096
PASSPHRASE = b"mot cum tu du dai"


def encrypt(plain: bytes, passphrase: bytes = PASSPHRASE) -> tuple[bytes, int]:
    """The encrypted file and where its first chunk starts."""
    out = io.BytesIO()
    writer = EncryptingWriter(out, passphrase, chunk_bytes=CHUNK)
    start = out.tell()
    for offset in range(0, len(plain), 1000):  # written in pieces that straddle chunks
        writer.write(plain[offset : offset + 1000])
    writer.finish()
    return out.getvalue(), start


def decrypt(data: bytes, passphrase: bytes = PASSPHRASE) -> bytes:
    reader = DecryptingReader(io.BytesIO(data), passphrase)
    parts = []
    while part := reader.read(777):
        parts.append(part)
    reader.drain()
    return b"".join(parts)


def chunks(data: bytes, start: int) -> tuple[bytes, list[bytes]]:
    sealed = CHUNK + TAG_BYTES
    body = data[start:]
    return data[:start], [body[i : i + sealed] for i in range(0, len(body), sealed)]


@pytest.fixture(scope="module")
def sample() -> tuple[bytes, bytes, int]:
    plain = os.urandom(3 * CHUNK + 123)
    data, start = encrypt(plain)
    return plain, data, start


def test_round_trip_over_several_chunks(sample):
    plain, data, _ = sample
    assert decrypt(data) == plain
    assert plain[:64] not in data


@pytest.mark.parametrize("size", [0, CHUNK, 2 * CHUNK])
def test_round_trip_at_chunk_boundaries(size):
    plain = os.urandom(size)
    assert decrypt(encrypt(plain)[0]) == plain


def test_a_wrong_passphrase_is_told_apart(sample):
    _, data, _ = sample
    with pytest.raises(WrongPassphrase):
        decrypt(data, b"another passphrase")


def test_an_altered_header_is_refused(sample):
    _, data, _ = sample
    altered = data.replace(b'"chunk_bytes": 4096', b'"chunk_bytes": 8192')
    assert altered != data
    with pytest.raises(WrongPassphrase):
        decrypt(altered)


def test_not_a_backup_file():
    with pytest.raises(BackupDamaged):
        decrypt(b"%PDF-1.7 certainly not a backup")


def _variants(head: bytes, parts: list[bytes]) -> dict[str, bytes]:
    flipped = bytearray(parts[1])
    flipped[10] ^= 0x80
    return {
        "last chunk removed": head + b"".join(parts[:-1]),
        "cut inside a chunk": head + b"".join(parts)[:-50],
        "only the header": head,
        "two chunks swapped": head + parts[1] + parts[0] + b"".join(parts[2:]),
        "a chunk repeated": head + parts[0] + b"".join(parts),
        "a chunk altered": head + parts[0] + bytes(flipped) + b"".join(parts[2:]),
        "something appended": head + b"".join(parts) + parts[-1],
        "the tag cut": head + b"".join(parts[:-1]) + parts[-1][: TAG_BYTES - 1],
    }


@pytest.mark.parametrize(
    "how",
    [
        "last chunk removed",
        "cut inside a chunk",
        "only the header",
        "two chunks swapped",
        "a chunk repeated",
        "a chunk altered",
        "something appended",
        "the tag cut",
    ],
)
def test_a_damaged_stream_is_refused(sample, how):
    _, data, start = sample
    head, parts = chunks(data, start)
    assert len(parts) == 4
    with pytest.raises(BackupDamaged):
        decrypt(_variants(head, parts)[how])
