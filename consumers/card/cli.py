"""`hub qr …` and `hub card …`: the permit QR verifier and the e-card services, for operators.

Two typer sub-apps, mounted by `hub/cli.py`:

- `qr_app`: `hub qr verify IMAGE.png [--view card] [--keys JWKS] [--json]` decodes the QR
  code, checks the token against the issuer's published keys, then the permit's status in
  the verifier's own view; exit 0 when accepted, 1 when refused (with the reason).
- `card_app`: `hub card permit PERMIT_NO [--png PATH] [--json]` (query, and download with a
  fresh QR code), `hub card sweep [--today DATE]` (publish the daily reminder sweep),
  `hub card keys` (where the published keys are).

Also runnable as `python -m consumers.card.cli qr verify …` before it is mounted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer

from consumers.card import _rules, documents, qr
from consumers.card.issuer import QrIssuer
from consumers.card.requests import sweep_request
from consumers.card.views import CardView
from hub import bootstrap
from hub.logging import configure_logging
from hub.permit_token import load_public_keys, published_keys_path
from hub.projection import fetch_one
from hub.settings import Settings

qr_app = typer.Typer(help="The permit QR code on the e-SSC.", no_args_is_help=True)
card_app = typer.Typer(help="The Social Security Card service's e-card services.",
                       no_args_is_help=True)


@qr_app.callback()
def _qr() -> None:
    """The permit QR code on the e-SSC (a group even with one command: `hub qr verify`)."""


@card_app.callback()
def _card() -> None:
    """The Social Security Card service's e-card services."""


class VerifierView(StrEnum):
    """Whose view of the permits the verifier checks the status in."""

    card = "card"
    public_security = "public_security"
    social_insurance = "social_insurance"


def _settings() -> Settings:
    settings = Settings()
    if not structlog.is_configured():  # the host process (or a test) may have done it
        configure_logging(settings.log_format, "WARNING")
    return settings


def _print(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


# qr verify ------------------------------------------------------------------------------


async def verify_image(
    settings: Settings, image: Path, *, view: str = "card", keys: Path | None = None,
    now: datetime | None = None,
) -> qr.Verdict:
    """Decode the QR code in `image` and judge it with the issuer's keys and `view`'s permits."""
    now = now or datetime.now(UTC)
    try:
        token = await asyncio.to_thread(qr.decode_png, image)
    except qr.QrUnreadable as exc:
        return qr.Verdict(False, "unreadable", str(exc))
    keys_path = keys or published_keys_path(settings.home)
    try:
        public_keys = await asyncio.to_thread(load_public_keys, keys_path)
    except FileNotFoundError:
        return qr.Verdict(False, "no_keys", f"no published keys at {keys_path}")
    table = bootstrap.CONSUMER_AGENCIES[view].PERMITS
    async with bootstrap.pool(settings, view, max_size=1) as p:  # type: ignore[arg-type]

        async def lookup(permit_no: str) -> dict[str, Any] | None:
            return await fetch_one(p, table, permit_no)

        return await qr.judge(token, public_keys, now, lookup)


@qr_app.command("verify")
def verify_command(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="PNG with the QR")],
    view: Annotated[VerifierView, typer.Option(help="whose permit view")] = VerifierView.card,
    keys: Annotated[Path | None, typer.Option(help="issuer's JWK set file")] = None,
    at: Annotated[datetime | None, typer.Option(help="judge as of (UTC if naive)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Verify a permit QR code image: signature, validity, then the permit's status."""
    now = None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))
    verdict = asyncio.run(verify_image(_settings(), image, view=view.value, keys=keys, now=now))
    if as_json:
        _print(verdict.as_json())
    else:
        word = "ACCEPTED" if verdict.accepted else "REFUSED"
        typer.echo(f"{word}: {verdict.reason} - {verdict.detail}")
        if verdict.claims is not None:
            c = verdict.claims
            typer.echo(f"  permit {c.permit_no}  card {c.card_id}  key {c.key_id}  "
                       f"valid {c.issued_at:%Y-%m-%d %H:%M:%S} to {c.expires_at:%H:%M:%S} UTC")
    raise typer.Exit(0 if verdict.accepted else 1)


# card permit ----------------------------------------------------------------------------


async def permit_download(
    settings: Settings, permit_no: str, *, png: Path | None = None, now: datetime | None = None,
    issuer: QrIssuer | None = None,
) -> dict[str, Any]:
    """The permit's information as JSON data; with `png`, also the PNG with a fresh QR code.

    Raises `documents.ServiceRefused` with the reason when the service cannot do it.
    """
    now = now or datetime.now(UTC)
    today = _rules.china_date(now)
    async with bootstrap.pool(settings, "card", max_size=1) as p, p.acquire() as conn:
        view = CardView(conn)
        document = await documents.query_permit(view, permit_no, today)
        if png is None:
            return document
        async with conn.transaction():
            token, claims = await documents.issue_qr(
                view, permit_no, issuer or QrIssuer.at_home(settings.home), today)
    rendering = documents.render_permit_png(document, token, claims)
    await asyncio.to_thread(png.write_bytes, rendering)
    return {**document, "png": str(png), "qr": {
        "card_id": claims.card_id, "key_id": claims.key_id,
        "issued_at": claims.issued_at.isoformat(), "expires_at": claims.expires_at.isoformat(),
    }}


@card_app.command("permit")
def permit_command(
    permit_no: str,
    png: Annotated[Path | None, typer.Option(help="also write it with a QR code as PNG")] = None,
) -> None:
    """Query the permit as the e-card service shows it (JSON); `--png` downloads it with a QR."""
    try:
        document = asyncio.run(permit_download(_settings(), permit_no, png=png))
    except documents.ServiceRefused as exc:
        _print({"refused": exc.as_json()})
        raise typer.Exit(1) from None
    _print(document)


# card sweep / keys ----------------------------------------------------------------------


@card_app.command("sweep")
def sweep_command(
    today: Annotated[datetime | None, typer.Option(help="the day to sweep; default today in China")]
    = None,
) -> None:
    """Publish the daily expiry-reminder sweep (what a scheduler runs once a day)."""
    from consumers.card.service import submit

    as_of = today.date() if today else _rules.china_date(datetime.now(UTC))
    asyncio.run(submit(_settings(), [sweep_request(as_of)]))
    _print({"published": "ExpiryReminderSweepRequested", "as_of": as_of.isoformat()})


@card_app.command("keys")
def keys_command() -> None:
    """Where the card service publishes its public keys (made on first use)."""
    settings = _settings()
    issuer = QrIssuer.at_home(settings.home)
    _print({"jwks": str(published_keys_path(settings.home)), "key_id": issuer.key.kid})


def standalone() -> typer.Typer:
    """Both sub-apps under one root, as `hub/cli.py` mounts them (for `python -m` and tests)."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    app.add_typer(qr_app, name="qr")
    app.add_typer(card_app, name="card")
    return app


if __name__ == "__main__":
    standalone()()
