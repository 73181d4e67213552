"""The ops command line as an operator meets it: help on every command, and `invoke`, the
helper the other ops tests use to run a command against a test's own topics and databases."""

from __future__ import annotations

import asyncio

import pytest
import structlog
import typer
from typer.testing import CliRunner, Result

from hub.logging import configure_logging
from hub.ops.cli import dlq_app, lag, reconcile
from hub.ops.evidence import evidence_app
from hub.ops.looks import audit
from hub.ops.outbox import outbox_app
from hub.ops.replay import replay
from hub.settings import Settings

pytestmark = pytest.mark.integration


def ops_app() -> typer.Typer:
    """The ops commands mounted as `hub.cli` mounts them."""
    app = typer.Typer()
    app.command("lag")(lag)
    app.command("reconcile")(reconcile)
    app.command("replay")(replay)
    app.command("audit")(audit)
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(outbox_app, name="outbox")
    return app


def settings_env(settings: Settings) -> dict[str, str]:
    """The `HUB_*` environment that makes a command see these settings."""
    return {
        "HUB_KAFKA_BOOTSTRAP": settings.bootstrap,
        "HUB_DATABASE_URL": settings.server_url(),
        "HUB_HOME": str(settings.home),
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_DATABASE_PREFIX": settings.database_prefix,
        "HUB_KAFKA_CA_FILE": str(settings.kafka_ca()),
        "HUB_KAFKA_CREDENTIALS_DIR": str(settings.kafka_password_file("ops").parent),
        "USER": "ops-tester",
    }


async def invoke(settings: Settings, *args: str, app: typer.Typer | None = None) -> Result:
    """Run one ops command (of `app`, the ops commands unless given) in a worker thread (it
    starts its own event loop)."""
    if not structlog.is_configured():
        # Configured here, logging keeps the session's stderr; configured inside the
        # runner it would write to the runner's buffer, closed after the command.
        configure_logging("console", "INFO")
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, app or ops_app(), list(args), env=settings_env(settings),
        catch_exceptions=False
    )


@pytest.mark.parametrize(
    "args",
    [["lag"], ["reconcile"], ["replay"], ["dlq", "list"], ["dlq", "show"], ["dlq", "redrive"],
     ["outbox", "parked"], ["audit"]],
)
def test_every_ops_command_has_help(args: list[str]) -> None:
    """`--help` describes each command and its options without touching Kafka or Postgres."""
    result = CliRunner().invoke(ops_app(), [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "--json" in result.stdout
