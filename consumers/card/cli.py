"""`hub qr …` and `hub card …`: the permit QR verifier and the e-card services, for operators.

Two typer sub-apps, mounted by `hub/cli.py`:

- `qr`: `hub qr verify IMAGE.png [--view AGENCY] [--keys JWKS] [--json]` decodes the QR
  code, checks the token against the issuer's published keys (`card-qr` in the key
  registry: a revoked key's token is refused), then the permit's status in
  the verifier's own view (any agency with a permit view, reached through the
  `CommandContext` the hub gives); exit 0 when accepted, 1 when refused (with the reason).
- `card_app`: `hub card permit PERMIT_NO --purpose WHY [--reveal] [--png PATH] [--pdf PATH]`
  (query, and download the page with a fresh QR code as PNG and/or PDF; the operator's
  look is recorded, `hub.looks`),
  `hub card sweep [--today DATE]` (publish the daily reminder sweep), `hub card keys` (the
  QR signer's published keys and its active key id; `hub keys` rotates and revokes them).

The hub mounts them through the agency's declaration (`commands`).
"""


import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from consumers.card import documents, qr, rules
from consumers.card.issuer import QrIssuer
from consumers.card.requests import sweep_request
from consumers.card.views import CardView
from hub.agency import CommandContext
from hub.commands import Operator, Purpose, Reveal, emit_json
from hub.commands import settings as _settings
from hub.db import Connection, open_pool
from hub.errors import BadTarget, NotReady
from hub.kafka import publish
from hub.kafka_credentials import front_door
from hub.looks import Look, Seen, record
from hub.reveal import redact, shown_fields
from hub.settings import Settings
from hub.signing import KeyStore
from schemas import topics
from schemas.permit_token import QR_KEY_PURPOSE, QR_SIGNER, load_key_set, published_keys_file

AGENCY = "card"
FRONT_DOOR = front_door(AGENCY)
"""Who the card service's front doors (the e-SSC app back end, the scheduler) publish
requests as: their Kafka client and their signing key."""


# qr verify ------------------------------------------------------------------------------


async def verify_image(
    context: CommandContext, settings: Settings, image: Path, *, view: str = AGENCY,
    keys: Path | None = None, now: datetime | None = None,
) -> qr.Verdict:
    """Decode the QR code in `image` and judge it with the issuer's keys and `view`'s permits."""
    now = now or datetime.now(UTC)
    try:
        token = await asyncio.to_thread(qr.decode_png, image)
    except qr.QrUnreadable as exc:
        return qr.Verdict(False, "unreadable", str(exc))
    keys_path = keys or published_keys_file(settings.keys_registry)
    try:
        public_keys = await asyncio.to_thread(load_key_set, keys_path)
    except FileNotFoundError:
        return qr.Verdict(False, "no_keys", f"no published keys at {keys_path}")
    except ValueError as exc:
        return qr.Verdict(False, "no_keys", str(exc))
    async with context.permit_lookup(settings, view) as lookup:
        return await qr.judge(token, public_keys, now, lookup)


def qr_app(context: CommandContext) -> typer.Typer:
    """`hub qr verify`, judging against any agency's permit view the context offers."""
    app = typer.Typer(help="The permit QR code on the e-SSC.", no_args_is_help=True)

    @app.callback()
    def _qr() -> None:
        """The permit QR code on the e-SSC (a group even with one command: `hub qr verify`)."""

    def views() -> list[str]:
        return list(context.agencies)

    @app.command("verify")
    def verify_command(
        image: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                              help="PNG with the QR")],
        view: Annotated[str, typer.Option(help="whose permit view: an agency keeping one",
                                          autocompletion=views)] = AGENCY,
        keys: Annotated[Path | None, typer.Option(help="issuer's JWK set file")] = None,
        at: Annotated[datetime | None, typer.Option(help="judge as of (UTC if naive)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Verify a permit QR code image: signature, validity, then the permit's status."""
        if view not in context.agencies:
            typer.echo(f"error: no permit view {view!r}; known: {', '.join(context.agencies)}",
                       err=True)
            raise typer.Exit(2)
        now = None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))
        verdict = asyncio.run(
            verify_image(context, _settings(), image, view=view, keys=keys, now=now))
        if as_json:
            emit_json(verdict.as_json())
        else:
            _print_verdict(verdict)
        raise typer.Exit(0 if verdict.accepted else 1)

    return app


def _print_verdict(verdict: qr.Verdict) -> None:
    word = "ACCEPTED" if verdict.accepted else "REFUSED"
    typer.echo(f"{word}: {verdict.reason} - {verdict.detail}")
    if verdict.claims is not None:
        c = verdict.claims
        typer.echo(f"  permit {c.permit_no}  card {c.card_id}  key {c.key_id}  "
                   f"valid {c.issued_at:%Y-%m-%d %H:%M:%S} to {c.expires_at:%H:%M:%S} UTC")


# card permit ----------------------------------------------------------------------------


async def permit_download(
    settings: Settings, permit_no: str, *, png: Path | None = None, pdf: Path | None = None,
    now: datetime | None = None, issuer: QrIssuer | None = None, look: Look | None = None,
) -> dict[str, Any]:
    """The permit's information as JSON data; with `png` and/or `pdf`, also the page with a
    fresh QR code in those files (one token, one rendering, generated as of `now`).

    With `look` (an operator's, `hub card permit`; the holder's own download through the
    e-SSC app has none), the look is recorded in the card service's database before a
    file is written or the data returned. Raises `documents.ServiceRefused` with the reason
    when the service cannot do it (nothing of the holder shown, no look recorded).
    """
    now = now or datetime.now(UTC)
    today = rules.china_date(now)
    files = {name: path for name, path in (("png", png), ("pdf", pdf)) if path is not None}
    async with open_pool(settings.dsn(AGENCY), max_size=1) as p, p.acquire() as conn:
        view = CardView(conn)
        document = await documents.query_permit(view, permit_no, today)
        if not files:
            await _record(conn, look, permit_no, shown_fields(document))
            return document
        async with conn.transaction():
            token, claims = await documents.issue_qr(
                view, permit_no, issuer or QrIssuer.configured(settings), today)
            await _record(conn, look, permit_no, [*shown_fields(document), *files])
    page = await asyncio.to_thread(documents.render_permit, document, token, claims, now)
    for name, path in files.items():
        rendering = page.png() if name == "png" else page.pdf()
        await asyncio.to_thread(path.write_bytes, rendering)
    return {**document, **{name: str(path) for name, path in files.items()},
            "generated_at": now.isoformat(), "qr": {
                "card_id": claims.card_id, "key_id": claims.key_id,
                "issued_at": claims.issued_at.isoformat(),
                "expires_at": claims.expires_at.isoformat(),
            }}


async def _record(conn: Connection, look: Look | None, permit_no: str, fields: list[str]) -> None:
    if look is not None:
        await record(conn, look, [Seen(permit_no, permit_no, fields)])


def card_app() -> typer.Typer:
    """`hub card permit | sweep | keys`: the e-card services, for operators."""
    app = typer.Typer(help="The Social Security Card service's e-card services.",
                      no_args_is_help=True)
    app.command("permit")(permit_command)
    app.command("sweep")(sweep_command)
    app.command("keys")(keys_command)
    return app


def permit_command(
    permit_no: str,
    purpose: Purpose,
    reveal: Reveal = False,
    operator: Operator = None,
    png: Annotated[Path | None, typer.Option(
        help="also write the page with a QR code as PNG (needs --reveal: it shows the holder)")]
    = None,
    pdf: Annotated[Path | None, typer.Option(
        help="also write the same page as PDF (needs --reveal: it shows the holder)")]
    = None,
) -> None:
    """Query the permit as the e-card service shows it (JSON, the holder's name masked unless
    --reveal); `--png` / `--pdf` download the page with a QR. The look is recorded first."""
    given = [flag for flag, path in (("--png", png), ("--pdf", pdf)) if path is not None]
    if given and not reveal:
        verb = "write" if len(given) > 1 else "writes"
        typer.echo(f"error: {' and '.join(given)} {verb} the holder's name in clear: give"
                   " --reveal too; nothing was written", err=True)
        raise typer.Exit(2)
    try:
        look = Look("card permit", purpose, reveal, operator)
        document = asyncio.run(
            permit_download(_settings(), permit_no, png=png, pdf=pdf, look=look))
    except (BadTarget, NotReady) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, BadTarget) else 1) from None
    except documents.ServiceRefused as exc:
        emit_json({"refused": exc.as_json()})
        raise typer.Exit(1) from None
    emit_json(redact(document, reveal=reveal))


def sweep_command(
    today: Annotated[datetime | None, typer.Option(help="the day to sweep; default today in China")]
    = None,
) -> None:
    """Publish the daily expiry-reminder sweep (what a scheduler runs once a day)."""
    as_of = today.date() if today else rules.china_date(datetime.now(UTC))
    settings = _settings()
    signer = KeyStore.configured(settings).signing_key(FRONT_DOOR)
    asyncio.run(publish(settings, topics.CARD_REQUESTS, [sweep_request(as_of)], signer=signer))
    emit_json({"published": "ExpiryReminderSweepRequested", "as_of": as_of.isoformat()})


def keys_command() -> None:
    """Where the QR signer's public keys are published, and its active key id."""
    settings = _settings()
    key = KeyStore.configured(settings).active(QR_SIGNER, QR_KEY_PURPOSE)()
    emit_json({"signer": QR_SIGNER, "jwks": str(published_keys_file(settings.keys_registry)),
               "key_id": key.kid})


def commands(context: CommandContext) -> Sequence[tuple[str, typer.Typer]]:
    """The card service's operator commands, as the hub mounts them: `hub qr`, `hub card`."""
    return [("qr", qr_app(context)), ("card", card_app())]
