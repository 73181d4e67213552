"""The permit QR code as PNG files, the issuer's key files, and the verifier's judgement."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from consumers.card import qr
from consumers.card.documents import render_permit_png
from consumers.card.issuer import QrIssuer, signing_key
from schemas.permit_token import load_public_keys, published_keys_path

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PERMIT = "156000000000000001"


@pytest.fixture
def issuer(tmp_path: Path) -> QrIssuer:
    return QrIssuer(signing_key(tmp_path), clock=lambda: NOW)


def test_a_token_survives_a_png_file_round_trip(issuer: QrIssuer, tmp_path: Path) -> None:
    """Rendered with qrcode, written to disk, read back with zxing-cpp: the same text."""
    token, _ = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    path = tmp_path / "qr.png"
    path.write_bytes(qr.render_png(token))
    assert path.read_bytes().startswith(b"\x89PNG")
    assert qr.decode_png(path) == token


def test_a_scaled_down_photo_like_copy_still_reads(issuer: QrIssuer) -> None:
    """A resized, greyscale copy (as a camera would deliver) decodes to the same token."""
    token, _ = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    img = Image.open(io.BytesIO(qr.render_png(token, box_size=8))).convert("L")
    img = img.resize((img.width * 3 // 4, img.height * 3 // 4))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert qr.decode_png(buf.getvalue()) == token


@pytest.mark.parametrize("content", [b"not an image", b""], ids=["garbage", "empty"])
def test_what_is_not_an_image_is_unreadable(content: bytes) -> None:
    """Bytes Pillow cannot open are refused with a reason, not a crash."""
    with pytest.raises(qr.QrUnreadable, match="not a readable image"):
        qr.decode_png(content)


def test_an_image_without_a_qr_code_is_unreadable() -> None:
    """A blank PNG has no code to read."""
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(buf, format="PNG")
    with pytest.raises(qr.QrUnreadable, match="no QR code"):
        qr.decode_png(buf.getvalue())


def test_the_permit_download_png_carries_a_readable_qr(issuer: QrIssuer) -> None:
    """The card-like rendering of the permit holds the token's QR code, readable on its own."""
    token, claims = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    document = {"permit": {
        "permit_no": PERMIT, "holder_name": "Anna Schmidt", "nationality": "DE",
        "category": "B", "employer_name": "Hansa", "position": "Engineer",
        "valid_from": "2025-06-01", "valid_until": "2026-05-31", "status": "active",
        "standard": "integrated",
    }}
    assert qr.decode_png(render_permit_png(document, token, claims)) == token


def test_the_signing_key_is_made_once_private_and_published(tmp_path: Path) -> None:
    """First use makes a 0600 private key and publishes its public half; later uses load it."""
    first = signing_key(tmp_path)
    second = signing_key(tmp_path)
    assert first.kid == second.kid
    private = next((tmp_path / "keys").glob("*signing.pem"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    published = published_keys_path(tmp_path)
    assert list(load_public_keys(published)) == [first.kid]
    assert (published.parent / f"card-ssc-{first.kid}.pub.pem").exists()
    assert "PRIVATE" not in published.read_text()


def test_a_rotated_key_is_added_to_the_published_set_not_replacing_it(tmp_path: Path) -> None:
    """After a key change, tokens of the old key stay verifiable until they expire."""
    old = signing_key(tmp_path)
    (tmp_path / "keys" / "card-ssc-signing.pem").unlink()
    new = signing_key(tmp_path)
    assert new.kid != old.kid
    keys = json.loads(published_keys_path(tmp_path).read_text())["keys"]
    assert [k["kid"] for k in keys] == [old.kid, new.kid]


ROW: dict[str, Any] = {"status": "active", "valid_until": date(2026, 5, 31)}


@pytest.mark.parametrize(("row", "reason"), [
    (ROW, "valid"),
    (ROW | {"status": "letter_issued", "valid_until": None}, "valid"),
    (None, "unknown_permit"),
    (ROW | {"status": "cancelled"}, "permit_cancelled"),
    (ROW | {"status": "expired"}, "permit_expired"),
    (ROW | {"valid_until": date(2026, 3, 1)}, "permit_expired"),
], ids=["active", "letter", "unknown", "cancelled", "expired", "past-end-not-yet-expired"])
async def test_a_genuine_token_is_then_judged_by_the_verifiers_view(
    issuer: QrIssuer, row: dict[str, Any] | None, reason: str
) -> None:
    """The signature is not enough: the permit's status in the verifier's view decides."""
    token, _ = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    keys = {issuer.key.kid: issuer.key.private_key.public_key()}
    looked_up: list[str] = []

    async def lookup(permit_no: str) -> dict[str, Any] | None:
        looked_up.append(permit_no)
        return row

    verdict = await qr.judge(token, keys, NOW + timedelta(minutes=1), lookup)
    assert (verdict.accepted, verdict.reason) == (reason == "valid", reason)
    assert looked_up == [PERMIT]
    assert verdict.as_json()["claims"]["permit_no"] == PERMIT


async def test_a_refused_token_never_reaches_the_view(issuer: QrIssuer) -> None:
    """An expired token is refused on its own; the view is not consulted."""
    token, _ = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    keys = {issuer.key.kid: issuer.key.private_key.public_key()}

    async def lookup(permit_no: str) -> dict[str, Any] | None:
        raise AssertionError("the view must not be consulted")

    verdict = await qr.judge(token, keys, NOW + timedelta(hours=1), lookup)
    assert (verdict.accepted, verdict.reason) == (False, "expired")
