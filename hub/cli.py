"""`hub`: the operators' entry point (stack, topics, services, views, demo)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Coroutine
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from consumers.card.cli import card_app, qr_app
from hub.logging import configure_logging
from hub.ops.cli import dlq_app, lag, reconcile
from hub.ops.replay import replay
from hub.settings import Settings
from hub.stack.cli import stack_app
from schemas.cli import schemas_app

app = typer.Typer(
    help="Permit Hub: the work-permit lifecycle between agencies, over Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_app, name="stack", help="Start, stop and inspect the local Kafka and Postgres.")
topics_app = typer.Typer(help="The hub's Kafka topics.", no_args_is_help=True)
views_app = typer.Typer(help="What each agency holds.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(views_app, name="views")
app.add_typer(dlq_app, name="dlq", help="Dead letters per consumer group: list, show, redrive.")
app.add_typer(qr_app, name="qr", help="Verify a permit QR code from a PNG image.")
app.add_typer(card_app, name="card", help="Work-permit services through the e-card.")
app.add_typer(schemas_app, name="schemas", help="The contract: compatibility of event schemas.")
app.command("lag")(lag)
app.command("reconcile")(reconcile)
app.command("replay")(replay)


class Component(StrEnum):
    """A long-running hub process."""

    authority = "authority"
    relay = "relay"
    card = "card"
    public_security = "public_security"
    social_insurance = "social_insurance"


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _run(coro: Coroutine[Any, Any, int | None] | Coroutine[Any, Any, None]) -> None:
    code = asyncio.run(coro)
    raise typer.Exit(code or 0)


@app.command()
def init() -> None:
    """Create the hub's topics and each agency's database and tables (idempotent)."""
    from hub.bootstrap import init_all

    async def go() -> None:
        await init_all(_settings())

    _run(go())


@topics_app.command("create")
def topics_create() -> None:
    """Create the topics that do not exist yet, with the configured partitions and replication."""
    from hub.kafka import ensure_topics

    async def go() -> int:
        created = await ensure_topics(_settings())
        typer.echo(json.dumps({"created": created}))
        return 0

    _run(go())


@topics_app.command("list")
def topics_list() -> None:
    """The topics this hub uses, with their names under the configured prefix."""
    from hub.kafka import hub_topics

    for name in hub_topics(Settings()):
        typer.echo(name)


@app.command()
def run(component: Component) -> None:
    """Run one hub process until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    from hub import bootstrap

    async def go() -> None:
        settings = _settings()
        await bootstrap.init_all(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if component in (Component.authority, Component.relay):
            async with bootstrap.running_relay(settings) as relay:
                await _until(stop, relay.done)
        else:
            # An agency's process also relays its own outbox: its outcomes reach Kafka.
            async with (
                bootstrap.running_consumer(settings, component.value) as consumer,
                bootstrap.running_relay(settings, component.value) as relay,  # type: ignore[arg-type]
            ):
                await _until(stop, consumer.done, relay.done)

    _run(go())


async def _until(*events: asyncio.Event) -> None:
    """Return when any of the events is set (a signal, or the component ending by itself)."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@views_app.command("show")
def views_show(
    permit_no: str,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """What the authority and each agency hold for one permit."""
    from hub.views import collect

    async def go() -> int:
        held = await collect(_settings(), permit_no)
        if as_json:
            typer.echo(json.dumps(held, default=_json_default, indent=2, sort_keys=True))
        else:
            for agency, row in held.items():
                typer.echo(f"[{agency}]")
                if row is None:
                    typer.echo("  (not held)")
                    continue
                for k, v in row.items():
                    typer.echo(f"  {k:<22} {v}")
        return 0 if any(v is not None for v in held.values()) else 1

    _run(go())


def _json_default(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


@app.command()
def demo(
    keep_running: Annotated[
        bool, typer.Option(help="leave the local stack running after the story")
    ] = True,
) -> None:
    """Start the local stack and play the seed story; exit non-zero if any view disagrees."""
    import logging
    import os

    from hub.demo import play

    settings = Settings()
    # The story's table is the output; keep the services' routine lines out of its way.
    level = os.environ.get("HUB_LOG_LEVEL", "WARNING")
    configure_logging(settings.log_format, level)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    _run(play(settings, keep_running=keep_running))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
