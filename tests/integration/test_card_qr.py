"""The permit QR code end to end on real PNG files: the card service issues the token on
the real broker and database, the PNG is scanned by `hub qr verify`, which checks the
signature against the published key and the permit's status in the card view."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from pypdf import PdfReader
from typer.testing import CliRunner

from consumers.card import qr
from consumers.card.cli import commands
from hub.bootstrap import command_context
from hub.logging import configure_logging
from hub.settings import Settings
from schemas.card import ECardIssued
from schemas.permit_token import Claims, key_id, sign
from schemas.permits import CancellationReason
from tests.integration.test_card_service import (
    TODAY,
    CardHub,
    card_hub,
    for_request,
    in_view,
    outcomes,
    register,
)

pytestmark = pytest.mark.integration
__all__ = ["card_hub"]  # the fixture, shared with the service tests
WHY = ("--purpose", "T-2 card support")


def _env(settings: Settings) -> dict[str, str]:
    """The HUB_* variables that make a CLI process see this test's hub."""
    return {
        "HUB_KAFKA_BOOTSTRAP": settings.bootstrap,
        "HUB_DATABASE_URL": settings.server_url(),
        "HUB_DATABASE_PREFIX": settings.database_prefix,
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_HOME": str(settings.home),
        "HUB_KAFKA_CA_FILE": str(settings.kafka_ca()),
        "HUB_KAFKA_CREDENTIALS_DIR": str(settings.kafka_password_file("ops").parent),
        "HUB_LOG_FORMAT": "json",
    }


def _mounted() -> typer.Typer:
    """The card's commands under one root, mounted as `hub` mounts them."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    for name, sub in commands(command_context()):
        app.add_typer(sub, name=name)
    return app


async def hub_cli(settings: Settings, *args: str) -> tuple[int, Any]:
    """Run `hub <args>` (the card sub-apps as mounted) in a thread; exit code and JSON out."""
    if not structlog.is_configured():
        # Configured inside the runner, logging would keep writing to its closed buffer.
        configure_logging("console", "INFO")
    result = await asyncio.to_thread(
        CliRunner().invoke, _mounted(), list(args), env=_env(settings), catch_exceptions=False
    )
    return result.exit_code, json.loads(result.stdout)


async def scan(hub: CardHub, token: str, path: Path, *extra: str) -> tuple[int, Any]:
    """Render the token as a PNG file, then verify that file as a counter would."""
    await asyncio.to_thread(path.write_bytes, qr.render_png(token))
    return await hub_cli(hub.settings, "qr", "verify", str(path), "--json", *extra)


def tampered(token: str, permit_no: str) -> str:
    """The token with another permit number in its payload, the signature left as it was."""
    body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["pn"] = permit_no
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + sig


async def test_issued_scanned_verified_and_every_refusal_with_its_reason(
    card_hub: CardHub, tmp_path: Path
) -> None:
    """A fresh e-card token is accepted; tampered, expired, foreign-key and cancelled-permit
    tokens are refused with their reason, each from a real PNG file."""
    hub = card_hub
    anna = await hub.permit("Anna Schmidt")
    kenji = await hub.permit("Kenji Sato")
    for permit_no in (anna, kenji):
        await in_view(hub, permit_no, "status", "active")
    requests = {await register(hub, "Anna Schmidt", permit_no=anna): anna,
                await register(hub, "Kenji Sato", permit_no=kenji): kenji}
    events = await outcomes(hub, lambda es: all(for_request(es, r) for r in requests),
                            "both e-cards")
    cards: dict[str, ECardIssued] = {}
    for rid, permit_no in requests.items():
        (issued,) = for_request(events, rid)
        assert isinstance(issued, ECardIssued)
        cards[permit_no] = issued
    token = cards[anna].data.qr.token

    code, verdict = await scan(hub, token, tmp_path / "anna.png")
    assert (code, verdict["accepted"], verdict["reason"]) == (0, True, "valid")
    assert verdict["claims"]["card_id"] == cards[anna].data.card_id
    assert verdict["permit_status"] == "active"

    code, verdict = await scan(hub, tampered(token, kenji), tmp_path / "tampered.png")
    assert (code, verdict["reason"]) == (1, "bad_signature")

    later = (cards[anna].data.qr.expires_at + timedelta(seconds=1)).isoformat()
    code, verdict = await scan(hub, token, tmp_path / "expired.png", "--at", later)
    assert (code, verdict["reason"]) == (1, "expired")

    claims = Claims(permit_no=anna, card_id=cards[anna].data.card_id,
                    issued_at=cards[anna].data.qr.issued_at,
                    expires_at=cards[anna].data.qr.expires_at)
    forger = Ed25519PrivateKey.generate()
    code, verdict = await scan(hub, sign(claims, forger, key_id(forger.public_key())),
                               tmp_path / "foreign-key.png")
    assert (code, verdict["reason"]) == (1, "unknown_key")
    code, verdict = await scan(hub, sign(claims, forger, cards[anna].data.qr.key_id),
                               tmp_path / "stolen-key-id.png")
    assert (code, verdict["reason"]) == (1, "bad_signature")

    await hub.auth.cancel(kenji, reason=CancellationReason.CONTRACT_ENDED, today=TODAY)
    await in_view(hub, kenji, "status", "cancelled")
    code, verdict = await scan(hub, cards[kenji].data.qr.token, tmp_path / "cancelled.png")
    assert (code, verdict["accepted"], verdict["reason"]) == (1, False, "permit_cancelled")
    assert verdict["permit_status"] == "cancelled"

    await asyncio.to_thread((tmp_path / "blank.png").write_bytes, b"\x89PNG not really")
    code, verdict = await hub_cli(hub.settings, "qr", "verify", str(tmp_path / "blank.png"),
                                  "--json")
    assert (code, verdict["reason"]) == (1, "unreadable")


async def test_the_permit_download_is_json_and_a_png_whose_qr_verifies(
    card_hub: CardHub, tmp_path: Path
) -> None:
    """`hub card permit N --png P --pdf F` answers the permit's information and writes a PNG
    whose QR code `hub qr verify` accepts and a PDF of the same page (one token for both); a
    permit without an e-card gets JSON but no QR. The holder's name is masked unless
    --reveal, which the PNG and the PDF need."""
    hub = card_hub
    anna = await hub.permit("Anna Schmidt")
    bare = await hub.permit("Kenji Sato")
    await in_view(hub, anna, "status", "active")
    await in_view(hub, bare, "status", "active")
    rid = await register(hub, "Anna Schmidt", permit_no=anna)
    events = await outcomes(hub, lambda es: for_request(es, rid), "the e-card")
    card_id = for_request(events, rid)[0].data.card_id

    png = tmp_path / "permit.png"
    code, document = await hub_cli(hub.settings, "card", "permit", anna, *WHY)
    assert (code, document["permit"]["holder_name"]) == (0, "A••• S••••••")
    unrevealed = await asyncio.to_thread(
        CliRunner().invoke, _mounted(), ["card", "permit", anna, *WHY, "--png", str(png)],
        env=_env(hub.settings))
    assert (unrevealed.exit_code, unrevealed.stdout) == (2, "")
    assert "--reveal" in unrevealed.output
    assert not png.exists()
    pdf = tmp_path / "permit.pdf"
    unrevealed = await asyncio.to_thread(
        CliRunner().invoke, _mounted(), ["card", "permit", anna, *WHY, "--pdf", str(pdf)],
        env=_env(hub.settings))
    assert (unrevealed.exit_code, pdf.exists()) == (2, False)
    code, document = await hub_cli(hub.settings, "card", "permit", anna, "--png", str(png),
                                   "--pdf", str(pdf), *WHY, "--reveal")
    assert code == 0
    assert document["permit"]["holder_name"] == "Anna Schmidt"
    assert document["ecard"]["card_id"] == card_id
    assert document["qr_available"] is True
    assert (document["png"], document["pdf"]) == (str(png), str(pdf))
    assert "generated_at" in document
    code, verdict = await hub_cli(hub.settings, "qr", "verify", str(png), "--json")
    assert (code, verdict["reason"], verdict["claims"]["card_id"]) == (0, "valid", card_id)
    (image,) = PdfReader(pdf).pages[0].images
    assert image.image is not None
    assert image.image.size == Image.open(png).size
    assert await hub.sql("SELECT array_agg(purpose ORDER BY id) FROM card_qr_tokens") == [
        "ecard_issued", "download"]

    code, document = await hub_cli(hub.settings, "card", "permit", bare, *WHY)
    assert (code, document["ecard"], document["qr_unavailable_reason"]) == (0, None, "no_ecard")
    code, refused = await hub_cli(hub.settings, "card", "permit", bare, "--png", str(png),
                                  *WHY, "--reveal")
    assert (code, refused["refused"]["reason"]) == (1, "no_ecard")
    code, refused = await hub_cli(hub.settings, "card", "permit", "156999999999999999", *WHY)
    assert (code, refused["refused"]["reason"]) == (1, "unknown_permit")
