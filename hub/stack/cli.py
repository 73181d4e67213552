"""`hub stack up|down|status`: run the local Kafka node and Postgres server."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, NoReturn

import typer

from hub.registry import installed
from hub.settings import Settings
from hub.stack.local import STACK_ERRORS, LocalStack
from hub.stack.ports import PortInUse

__all__ = ["stack_app"]

stack_app = typer.Typer(
    help="Start, stop and inspect the local Kafka broker and Postgres server.",
    no_args_is_help=True,
)
_NAMES = {"kafka": "Kafka", "postgres": "Postgres"}
# A taken port is a set-up conflict (another program or checkout), told apart from failures.
PORT_IN_USE_EXIT = 2


Brokers = Annotated[int | None, typer.Option(
    "--brokers", min=1, max=9,
    help="how many KRaft nodes the stack runs (default HUB_KAFKA_BROKERS, else 1); every "
    "hub command must then be given HUB_KAFKA_BROKERS too, to reach them all")]


def _stack(brokers: int | None = None) -> LocalStack:
    """The local stack, with a database on the shared server for each installed agency."""
    settings = Settings()
    if brokers is not None:
        settings = settings.model_copy(update={"kafka_brokers": brokers})
    names = [n for n in installed().names() if not settings.has_own_server(n)]
    return LocalStack(settings, [settings.database_name(n) for n in names])


@stack_app.command()
def up(brokers: Brokers = None) -> None:
    """Start the local Kafka and Postgres (what already runs is left alone) and wait for them."""
    stack = _stack(brokers)
    before = stack.status()
    started = time.monotonic()
    try:
        stack.up()
    except PortInUse as error:
        _fail(str(error), code=PORT_IN_USE_EXIT)
    except STACK_ERRORS as error:
        _fail(str(error))
    after = stack.status()
    for part in ("kafka", "postgres"):
        typer.echo(_up_message(part, before[part], after[part]))
    typer.echo(f"Agency databases: {', '.join(after['postgres']['databases'])}")
    typer.echo(f"Ready in {time.monotonic() - started:.1f} s.")
    hint = _replication_hint(stack.settings)
    if hint:
        typer.echo(hint)


def _replication_hint(settings: Settings) -> str | None:
    """What the other commands need to be told about a cluster, unless they are."""
    brokers = settings.kafka_brokers
    if brokers == 1 or settings.replication_factor > 1:
        return None
    return (f"Topics get one replica unless told otherwise: give `hub init` and every hub "
            f"process HUB_KAFKA_BROKERS={brokers} HUB_REPLICATION_FACTOR={min(brokers, 3)} "
            f"HUB_MIN_INSYNC_REPLICAS={min(brokers, 3) - 1}.")


def _up_message(part: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    name = _NAMES[part]
    if not after["managed"]:
        return f"{name}: external, {_address(after)} (not started here)"
    verb = "already running" if before["running"] else "started"
    return f"{name}: {verb}, {_address(after)} (pid {after['pid']})"


@stack_app.command()
def down(brokers: Brokers = None) -> None:
    """Stop the local Kafka and Postgres started by `hub stack up`."""
    stack = _stack(brokers)
    before = stack.status()
    try:
        stack.down()
    except STACK_ERRORS as error:
        _fail(str(error))
    for part in ("kafka", "postgres"):
        typer.echo(_down_message(part, before[part]))


def _down_message(part: str, before: dict[str, Any]) -> str:
    name = _NAMES[part]
    if not before["managed"]:
        return f"{name}: external, left alone"
    if before["running"]:
        return f"{name}: stopped (was pid {before['pid']})"
    return f"{name}: was not running"


@stack_app.command()
def status(
    brokers: Brokers = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Show whether the local Kafka and Postgres run, with their pids and addresses."""
    report = _stack(brokers).status()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    pids = {part: str(report[part].get("pid") or "-") for part in ("kafka", "postgres")}
    # A cluster lists every node's pid.
    width = max(9, *(len(pid) + 2 for pid in pids.values()))
    typer.echo(f"{'part':<10}{'state':<17}{'pid':<{width}}address")
    for part, pid in pids.items():
        typer.echo(f"{part:<10}{_state(report[part]):<17}{pid:<{width}}{_address(report[part])}")
    typer.echo(f"home: {report['home']}")


def _state(entry: dict[str, Any]) -> str:
    if not entry["managed"]:
        return "external"
    return "running" if entry["running"] else "stopped"


def _address(entry: dict[str, Any]) -> str:
    return str(entry.get("bootstrap") or entry.get("url"))


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)
