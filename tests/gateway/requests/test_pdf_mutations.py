"""A bounded mutation fuzzer over the corpus: each real-world document, damaged in seeded
ways (bytes flipped, spans cut, repeated or overwritten, numbers made huge, the file cut
short), goes through what the gateway does with a submission before anyone approves it:
intake, automatic placement's text extraction and the page previews, in document
workers (gateway/requests/sandbox.py). Every outcome is an answer or a 4xx refusal; no
worker is lost to a crash, to the memory limit or to the time limit (a lost worker means
a limit intake should have applied), and nothing hangs.

Seeded and short in CI; ``FUZZ_MUTANTS=2000 FUZZ_SEED=7 make test`` runs longer."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from gateway.errors import GatewayError
from gateway.requests.sandbox import DocumentSandbox, SandboxLimits
from pdf_structure.limits import DocumentLimits

MUTANTS = int(os.environ.get("FUZZ_MUTANTS", "60"))
SEED = int(os.environ.get("FUZZ_SEED", "20261206"))
NUMBER = re.compile(rb"(?<![0-9.])[0-9]{1,6}(?![0-9.])")


def mutate(document: bytes, rng: random.Random) -> bytes:
    """One seeded damage of ``document``."""
    data = bytearray(document)
    kind = rng.randrange(6)
    at = rng.randrange(len(data))
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # cut a span out
        del data[at : at + rng.randint(1, 4096)]
    elif kind == 2:  # repeat a span
        span = bytes(data[at : at + rng.randint(1, 4096)])
        data[at:at] = span * rng.randint(2, 8)
    elif kind == 3:  # overwrite a span with noise
        length = rng.randint(1, 512)
        data[at : at + length] = rng.randbytes(length)
    elif kind == 4:  # make numbers huge or zero (counts, lengths, offsets, sizes)
        numbers = list(NUMBER.finditer(document))
        for match in rng.sample(numbers, min(len(numbers), rng.randint(1, 12))):
            replacement = rng.choice([b"0", b"-1", b"999999999", b"2147483648"])
            data[match.start() : match.end()] = replacement.ljust(match.end() - match.start())
    else:  # cut the file short (keeping an %%EOF so that intake looks further)
        data = data[: max(1, at)] + b"\n%%EOF\n"
    return bytes(data)


@pytest.fixture(scope="module")
def sandbox():
    pool = DocumentSandbox(SandboxLimits(workers=1, seconds=30))
    yield pool
    pool.close()


def _exercise(sandbox: DocumentSandbox, document: bytes) -> str:
    """What the gateway does with a submission before approval; the outcome."""
    try:
        report = sandbox.inspect(document, 50 << 20, DocumentLimits())
        sandbox.page_lines(document, report.page_count - 1)
        sandbox.render_page(document, 1, 400, 2000)
        sandbox.render_page(document, report.page_count, 400, 2000)
    except GatewayError as refused:
        assert 400 <= refused.status < 500, (refused.code, refused.detail)
        return refused.code
    return "accepted"


def test_damaged_documents_get_answers_never_crashes(sandbox, corpus: Path):
    rng = random.Random(SEED)
    sources = [
        p.read_bytes()
        for p in sorted((corpus / "pdf").glob("*.pdf"))
        if p.stat().st_size < 2_000_000
    ]
    outcomes: dict[str, int] = {}
    for number in range(MUTANTS):
        mutant = mutate(rng.choice(sources), rng)
        outcome = _exercise(sandbox, mutant)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert not sandbox.losses, (number, dict(sandbox.losses), outcomes)
    assert sum(outcomes.values()) == MUTANTS
    assert len(outcomes) > 1, outcomes  # the fuzzer reached more than one answer
