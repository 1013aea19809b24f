"""The web tier as the attacker against the bridge's check of the prepared PDF, through
what viewers do (a fifth review's cases, each a hole until fixed): a malformed
cross-reference entry that makes poppler and pdfium rebuild onto a hidden object, new
default resources giving an existing field's /DA a forged font, actions on the new
widget, XMP retitling the document; and a legitimate pyHanko signature (an AcroForm
whose /Fields is an indirect array) that was refused. Each attack first shows what a
viewer displays or does that the signer did not approve."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from hsm_bridge.errors import ActivationInvalid
from tests.binding_harness import (
    FONT,
    FORGED,
    PAGE_KEYS,
    SIG_FIELD,
    SIGNATURE,
    TEXT,
    _page,
    _pdf,
    _rehash,
    _stream,
    check,
    original,
    pdfium_text,
    pdftotext,
    render_ink,
    update,
)


def _poppler(tool: str, pdf: bytes, *args: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            [tool, *args, str(path)], capture_output=True, check=False, timeout=30
        ).stdout.decode("latin-1")


# ---------------------------------------------------------------------------------
# F1 (critical): pyHanko (strict=False) silently skips a cross-reference entry whose
# type is neither "n" nor "f", and takes "+000000000" as offset 0. Poppler (and pdf.js)
# refuse the first, pdfium the second: each then rebuilds the cross-reference by
# scanning the file, where the last "4 0 obj" wins. The update carries such an
# object, which no cross-reference entry names, so the bridge never looks at it: a
# forged page content stream replaces the approved one in poppler and pdfium.


def _xref_rebuild_attack(entries: list[bytes]) -> tuple[bytes, bytes, bytes]:
    doc = original()
    pad_body = b"<< /Pad (" + b"x" * 200 + b") >>"
    pad_obj = b"13 0 obj\n" + pad_body + b"\nendobj\n"
    hidden = b"4 0 obj\n" + _stream(FORGED) + b"\nendobj\n"
    hidden = hidden.ljust(len(pad_obj) - 1) + b"\n"  # same length: offsets stay put
    objects = {**SIGNATURE, 13: pad_body}
    for number in range(14, 13 + len(entries)):
        objects[number] = b"null"
    prepared, _ = update(doc, objects)
    tail = prepared[len(doc) :].replace(pad_obj, hidden)
    for i, entry in enumerate(entries):
        header = b"\n%d 1\n" % (13 + i)
        at = tail.index(header) + len(header)
        tail = tail[:at] + entry + tail[at + 20 :]
    prepared, attributes = _rehash(doc + tail, len(doc))
    return doc, prepared, attributes


def test_a_malformed_xref_entry_cannot_make_viewers_rebuild_onto_a_hidden_object():
    doc, prepared, attributes = _xref_rebuild_attack(
        [b"0000000000 00000 x \n", b"+000000000 00000 n \n"]
    )
    assert "PAY 10 BILLION VND" not in pdftotext(doc)
    assert "PAY 10 BILLION VND" in pdftotext(prepared)  # poppler (Evince, Okular, ...)
    assert "PAY 10 BILLION VND" in pdfium_text(prepared)  # pdfium (Chrome, Edge, ...)
    assert "duoc phe duyet" not in pdfium_text(prepared)  # the approved text is gone
    assert render_ink(prepared) != render_ink(doc)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# F2 (high): the C3 fix lets /DR "gain entries, not redefine one". But a field without
# an appearance is drawn with the font its /DA names; when the approved document's DR
# lacks that name (or there is no DR at all), the update may add it: poppler redraws
# the amount field with the attacker's font (here: code "1" is the glyph "nine").

NO_ONE_FONT = (
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Type /Encoding"
    b" /BaseEncoding /WinAnsiEncoding /Differences [49 /nine] >> >>"
)


def _amount_form(dr: bytes) -> bytes:
    return _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [20 0 R] >>",
            4: _stream(TEXT),
            5: FONT,
            9: b"<< /Fields [20 0 R] /DA (/Helv 14 Tf 0 g) " + dr + b">>",
            20: b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (SoTien) /V (10 000 000 VND)"
            b" /F 4 /Ff 1 /Rect [72 600 402 630] /P 3 0 R >>",
        }
    )


@pytest.mark.parametrize(
    ("old_dr", "new_dr"),
    [
        (b"", b"/DR << /Font << /Helv 34 0 R >> >> "),
        (b"/DR << /Font << /F1 5 0 R >> >> ", b"/DR << /Font << /F1 5 0 R /Helv 34 0 R >> >> "),
    ],
    ids=["no-dr", "dr-without-the-da-font"],
)
def test_new_default_resources_cannot_supply_the_font_a_field_draws_with(old_dr, new_dr):
    doc = _amount_form(old_dr)
    assert "10 000 000 VND" in pdftotext(doc)
    prepared, attributes = update(
        doc,
        {
            3: _page(annots=b"[20 0 R 30 0 R]"),
            9: b"<< /Fields [20 0 R 30 0 R] /SigFlags 3 /DA (/Helv 14 Tf 0 g) " + new_dr + b">>",
            30: SIG_FIELD.replace(b"12 0 R", b"32 0 R"),
            32: b"SIGDICT",
            34: NO_ONE_FONT,
        },
    )
    shown = pdftotext(prepared)
    assert "10 000 000 VND" not in shown and "0 000 000 VND" in shown
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# F3 (high): the new widget is a new object and only its /Subtype, /FT, /Rect and the
# field's /V are looked at: its /AA (page open, page visible) and /A run JavaScript,
# open URIs or launch files in viewers that honour them (Acrobat runs /PO on opening).


def test_the_new_widget_cannot_carry_actions():
    doc = original()
    widget = SIG_FIELD.replace(
        b" >>",
        b" /AA << /PO << /S /JavaScript /JS (app.alert\\('PAY 10 BILLION VND'\\);) >>"
        b" /PV << /S /URI /URI (http://attacker.example/pay) >> >>"
        b" /A << /S /Launch /F (cmd.exe) >> >>",
    )
    prepared, attributes = update(doc, {**SIGNATURE, 10: widget})
    scripts = _poppler("pdfinfo", prepared, "-js")
    assert "Page Open" in scripts and "PAY 10 BILLION VND" in scripts
    assert "PAY 10 BILLION VND" not in _poppler("pdfinfo", doc, "-js")
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# F4 (low): the catalog's /Metadata may change, and what it points to when new is
# never read: a new XMP packet gives the document another title (pdf.js shows
# dc:title in the tab in preference to /Info /Title; Acrobat with /DisplayDocTitle).

XMP = b"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">PAY 10 BILLION VND</rdf:li></rdf:Alt></dc:title>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def test_a_new_xmp_packet_cannot_retitle_the_document():
    doc = original()
    prepared, attributes = update(
        doc,
        {
            **SIGNATURE,
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R /Metadata 13 0 R >>",
            13: _stream(XMP, b"/Type /Metadata /Subtype /XML "),
        },
    )
    assert "PAY 10 BILLION VND" in _poppler("pdfinfo", prepared, "-meta")
    assert "PAY 10 BILLION VND" not in _poppler("pdfinfo", doc, "-meta")
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# L1 (legitimate refused): an AcroForm whose /Fields is an indirect array and which
# pyHanko changes (/SigFlags) makes _check_acroform_change iterate an IndirectObject:
# TypeError, refused as "cannot be read".


def test_a_real_signature_into_an_acroform_with_indirect_fields_is_accepted():
    from gateway.pades import SignatureParameters
    from tests.test_binding import _capture, _check

    doc = _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R >>",
            4: _stream(TEXT),
            5: FONT,
            8: b"[]",
            9: b"<< /Fields 8 0 R >>",
        }
    )
    params = SignatureParameters(reason="Phe duyet")
    made = _capture(doc, params)
    assert _check(made, doc, json.loads(params.canonical_json())) == made.digest
