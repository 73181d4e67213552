"""What every operator command shares: settings, one JSON style, one exit-code convention.

Exit codes: 0 fine, 1 the check found something (lag over a limit, drift, a refused QR
code, a failed redrive) or set-up is missing (a password file, `hub init` not run), 2 the
operator named something that does not exist (nothing was changed). Logging goes to
stderr at WARNING unless the host process configured it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import structlog
import typer

from hub.errors import BadTarget, NotReady
from hub.logging import configure_logging
from hub.settings import Settings

T = TypeVar("T")

Purpose = Annotated[str, typer.Option(
    "--purpose", show_default=False,
    help="why you look: a case or ticket reference (required; recorded with who you are in"
         " the database of each agency whose data is shown, before anything is shown)")]
Reveal = Annotated[bool, typer.Option(
    "--reveal", help="show names, document numbers, dates of birth, SSNs, family and tokens"
                     " in clear (the look is recorded as revealing them)")]
Operator = Annotated[str | None, typer.Option(
    "--operator", envvar="HUB_OPERATOR", show_default=False,
    help="your operator id, recorded beside your user name")]
"""The options of every command that shows personal data (`hub.looks`, `hub.reveal`)."""


def settings(*, service: bool = False) -> Settings:
    """Settings from the `HUB_*` environment, with logging (to stderr) configured once: at
    `HUB_LOG_LEVEL` for a long-running service, at WARNING for a one-shot command (routine
    info lines would bury its output)."""
    found = Settings()
    if service:
        configure_logging(found.log_format, found.log_level)
    elif not structlog.is_configured():
        configure_logging(found.log_format, "WARNING")
    return found


def run(
    work: Callable[[Settings], Coroutine[Any, Any, T]], *, service: bool = False
) -> T:
    """Run one command's async work; a named thing that does not exist exits 2, missing
    set-up (passwords, migrations) exits 1, each with one line."""
    try:
        return asyncio.run(work(settings(service=service)))
    except BadTarget as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except NotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def json_default(value: object) -> Any:
    """JSON for the values command output carries (dates, times, bytes)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def emit_json(payload: Any) -> None:
    """Print one JSON document for scripts."""
    typer.echo(json.dumps(payload, default=json_default, indent=2, sort_keys=True,
                          ensure_ascii=False))
