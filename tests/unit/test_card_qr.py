"""The permit QR code as PNG files, the QR signer's keys in the key registry (rotation,
revocation, purposes kept apart, the old key file adopted), and the verifier's judgement."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from PIL import Image
from typer.testing import CliRunner

from consumers.card import qr
from consumers.card.documents import render_permit
from consumers.card.issuer import QrIssuer
from hub.bootstrap import init_keys
from hub.logging import configure_logging
from hub.ops.keys import keys_app
from hub.settings import Settings
from hub.signing import SIGNATURE_HEADER, KeyStore, KeyUnavailable, Unauthenticated, Verifier
from schemas.permit_token import (
    QR_KEY_PURPOSE,
    QR_SIGNER,
    Claims,
    key_id,
    load_key_set,
    published_keys_file,
    sign,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PERMIT = "156000000000000001"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def issuer(store: KeyStore) -> QrIssuer:
    return QrIssuer(store.active(QR_SIGNER, QR_KEY_PURPOSE), clock=lambda: NOW)


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
    assert qr.decode_png(render_permit(document, token, claims, NOW).png()) == token


def test_the_qr_key_is_a_registry_key_of_its_own_signer_and_purpose(
    store: KeyStore, issuer: QrIssuer
) -> None:
    """First use makes a 0600 private key under private/card-qr and publishes its public half
    in the key registry as card-qr's, with the purpose permit-qr."""
    _, first = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    _, second = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    assert first.key_id == second.key_id
    private = store.private / QR_SIGNER / f"{first.key_id}.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    published = published_keys_file(store.registry)
    document = json.loads(published.read_text())
    assert (document["signer"], document["purpose"]) == (QR_SIGNER, QR_KEY_PURPOSE)
    assert list(load_key_set(published).keys) == [first.key_id]
    assert "PRIVATE" not in published.read_text()


def test_a_rotation_is_followed_at_once_and_old_tokens_stay_valid(
    store: KeyStore, issuer: QrIssuer
) -> None:
    """`hub keys rotate card-qr`: the running issuer signs with the new key from its next
    token; the retired key still verifies what it signed."""
    old_token, old = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    store.rotate(QR_SIGNER, QR_KEY_PURPOSE)
    new_token, new = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    assert new.key_id != old.key_id
    keys = load_key_set(published_keys_file(store.registry))
    assert set(keys.keys) == {old.key_id, new.key_id}
    assert {k.kid: k.status for k in store.published(QR_SIGNER)} == {
        old.key_id: "retired", new.key_id: "active"}
    for token in (old_token, new_token):
        assert qr.check_token(token, keys, NOW).accepted


def test_a_revoked_key_s_tokens_are_refused_by_name(store: KeyStore, issuer: QrIssuer) -> None:
    """`hub keys revoke KID`: its tokens are refused as revoked_key, not as unknown."""
    token, claims = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    assert claims.key_id is not None
    assert store.revoke(claims.key_id, by="test") == QR_SIGNER
    verdict = qr.check_token(token, load_key_set(published_keys_file(store.registry)), NOW)
    assert (verdict.accepted, verdict.reason) == (False, "revoked_key")
    assert claims.key_id in verdict.detail
    _, after = issuer.issue(PERMIT, "ESSC0123456789ABCDEF")  # a new key, made on next use
    assert after.key_id != claims.key_id


def test_a_qr_key_never_verifies_a_record_nor_an_event_key_a_token(
    store: KeyStore, issuer: QrIssuer
) -> None:
    """The purposes never cross: a record signed with the QR key is unauthenticated, an
    event signer's JWK set is no QR key set, and neither signer takes the other's purpose."""
    issuer.issue(PERMIT, "ESSC0123456789ABCDEF")
    qr_key = store.signing_key(QR_SIGNER, QR_KEY_PURPOSE)
    record = b'{"type":"cn.gov.card.ECardIssued"}'
    check = Verifier(store, {QR_SIGNER: frozenset({"cn.gov.card.ECardIssued"})})
    with pytest.raises(Unauthenticated, match="signs permit-qr, not records"):
        check.signer_of([(SIGNATURE_HEADER, qr_key.sign(record))], record)

    card = store.signing_key("card")
    forged = sign(Claims(PERMIT, "ESSC0123456789ABCDEF", NOW, NOW + timedelta(minutes=10)),
                  card.private_key, card.kid)
    with pytest.raises(ValueError, match="sign events, not permit QR tokens"):
        load_key_set(store.registry / "card.jwks.json")
    refused = qr.check_token(forged, load_key_set(published_keys_file(store.registry)), NOW)
    assert refused.reason == "unknown_key"
    with pytest.raises(ValueError, match="sign permit-qr, not events"):
        store.signing_key(QR_SIGNER)
    with pytest.raises(ValueError, match="sign events, not permit-qr"):
        store.rotate("card", QR_KEY_PURPOSE)


def test_hub_init_adopts_the_key_file_of_earlier_releases(tmp_path: Path) -> None:
    """A card service that signed with HUB_HOME/keys/card-ssc-signing.pem keeps that key: it
    becomes card-qr's first, active key, so tokens it signed stay valid."""
    legacy = Ed25519PrivateKey.generate()
    path = tmp_path / "keys" / "card-ssc-signing.pem"
    path.parent.mkdir()
    path.write_bytes(legacy.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    settings = Settings(home=tmp_path)
    init_keys(settings)
    store = KeyStore.configured(settings)
    (adopted,) = store.published(QR_SIGNER)
    assert (adopted.kid, adopted.status, adopted.purpose) == (
        key_id(legacy.public_key()), "active", QR_KEY_PURPOSE)
    assert QrIssuer.configured(settings).key().kid == adopted.kid
    init_keys(settings)  # again: nothing changes
    assert [k.kid for k in store.published(QR_SIGNER)] == [adopted.kid]


def test_hub_keys_lists_rotates_and_revokes_the_qr_key(tmp_path: Path) -> None:
    """`hub keys list` shows card-qr with its purpose; `rotate card-qr` retires the old key;
    `revoke KID` names its signer."""
    env = {"HUB_HOME": str(tmp_path), "HUB_LOG_FORMAT": "json"}
    if not structlog.is_configured():
        # Configured inside the runner, logging would keep writing to its closed buffer.
        configure_logging("console", "INFO")
    init_keys(Settings(home=tmp_path))
    runner = CliRunner()
    listed = json.loads(runner.invoke(keys_app, ["list", "--json"], env=env).stdout)
    (first,) = [r for r in listed if r["signer"] == QR_SIGNER]
    assert (first["purpose"], first["status"]) == (QR_KEY_PURPOSE, "active")
    assert {r["purpose"] for r in listed if r["signer"] != QR_SIGNER} == {"events"}
    rotated = json.loads(runner.invoke(keys_app, ["rotate", QR_SIGNER], env=env).stdout)
    assert rotated["signer"] == QR_SIGNER
    assert rotated["active"] != first["kid"]
    revoked = json.loads(runner.invoke(keys_app, ["revoke", first["kid"]], env=env).stdout)
    assert revoked == {"revoked": first["kid"], "signer": QR_SIGNER}
    listed = json.loads(runner.invoke(keys_app, ["list", "--json"], env=env).stdout)
    assert [(r["kid"], r["status"]) for r in listed if r["signer"] == QR_SIGNER] == [
        (first["kid"], "revoked"), (rotated["active"], "active")]


def test_a_registry_this_process_cannot_write_asks_for_hub_init(tmp_path: Path) -> None:
    """A service whose registry is mounted read-only never makes a key: it names `hub init`."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    store = KeyStore(tmp_path, registry=blocked / "registry", private=tmp_path / "private")
    with pytest.raises(KeyUnavailable, match="run `hub init`"):
        QrIssuer.from_store(store).issue(PERMIT, "ESSC0123456789ABCDEF")


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
    keys = {issuer.key().kid: issuer.key().private_key.public_key()}
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
    keys = {issuer.key().kid: issuer.key().private_key.public_key()}

    async def lookup(permit_no: str) -> dict[str, Any] | None:
        raise AssertionError("the view must not be consulted")

    verdict = await qr.judge(token, keys, NOW + timedelta(hours=1), lookup)
    assert (verdict.accepted, verdict.reason) == (False, "expired")
