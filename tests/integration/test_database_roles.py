"""Least privilege in Postgres, on the session's real server: what an agency's runtime role
may and may not do, the embedded server's passwords, and `hub run` refusing to migrate."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from consumers.card.handlers import card_permit
from demo.synthetic import stream
from hub import bootstrap
from hub.migrate import apply
from hub.ops.lag import caught_up
from hub.registry import installed
from hub.roles import seal_migration_record
from hub.settings import SUPERUSER, Settings
from hub.stack.postgres import ensure_databases
from tests.integration.hub_fixtures import eventually, expected_rows, publish, view_rows
from tests.integration.stack_fixtures import RunningStack

pytestmark = pytest.mark.integration

DENIED = (asyncpg.InsufficientPrivilegeError,)
"""SQLSTATE 42501, what Postgres answers a role that lacks a privilege."""


@pytest.fixture
async def card_app(hub_settings: Settings) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to card's database as card's runtime role."""
    conn = await asyncpg.connect(hub_settings.dsn("card"))
    try:
        yield conn
    finally:
        await conn.close()


def _as(dsn: str, database: str) -> str:
    """The same user and password, on another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def test_each_role_connects_to_its_own_database_only(hub_settings: Settings) -> None:
    """Card's runtime and owner roles reach card's database and no other agency's."""
    for role in ("app", "owner"):
        dsn = hub_settings.dsn("card", role=role)
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT current_user") == hub_settings.role_name(
                "card", role)
        finally:
            await conn.close()
        for other in ("public_security", "social_insurance", "workpermit"):
            with pytest.raises(DENIED, match="permission denied for database"):
                await asyncpg.connect(_as(dsn, hub_settings.database_name(other)))


@pytest.mark.parametrize("statement", [
    "CREATE TABLE intruder (id int)",
    "CREATE VIEW intruder AS SELECT 1",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE SCHEMA intruder",
    "ALTER TABLE card_permits ADD COLUMN intruder text",
    "DROP TABLE card_permits",
    "TRUNCATE card_permits",
    "CREATE INDEX intruder ON card_permits (status)",
    "ALTER TABLE card_permits OWNER TO CURRENT_USER",
])
async def test_the_runtime_role_runs_no_ddl(
    card_app: asyncpg.Connection[Any], statement: str
) -> None:
    """Tables, schemas, indexes and grants are the owner's: the runtime role is refused."""
    with pytest.raises(DENIED):
        await card_app.execute(statement)


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "COPY card_permits FROM PROGRAM 'true'",
    "COPY card_permits FROM '/etc/passwd'",
    "SELECT pg_read_file('PG_VERSION')",
    "SELECT pg_ls_dir('.')",
    "CREATE ROLE intruder LOGIN",
    "ALTER ROLE CURRENT_USER CREATEROLE",
    "CREATE DATABASE intruder",
    "INSERT INTO hub_schema_migrations (source, version, name, checksum)"
    " VALUES ('hub', 999, 'forged', 'x')",
    "DELETE FROM hub_schema_migrations",
])
async def test_the_runtime_role_cannot_reach_the_server_or_forge_migrations(
    card_app: asyncpg.Connection[Any], statement: str
) -> None:
    """No server programs or files, no roles or databases, no rewriting which migrations
    the database has."""
    with pytest.raises(DENIED):
        await card_app.execute(statement)


async def test_the_runtime_role_does_the_consumers_dml(hub_settings: Settings) -> None:
    """The card consumer, connected as the runtime role, stages in temp tables, merges its
    view, writes its outbox, handled events and offsets: its view ends as the events say."""
    events = list(stream(300, seed=21))
    await publish(hub_settings, events)
    async with bootstrap.running_consumer(hub_settings, "card") as consumer:
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to catch up")
    assert consumer.stats.dead_lettered == 0
    assert await view_rows(hub_settings, "card") == expected_rows(events, card_permit)


async def test_tables_later_migrations_create_are_granted_to_the_runtime_role(
    hub_settings: Settings, card_app: asyncpg.Connection[Any]
) -> None:
    """A table (and its sequence) the owner creates later is the runtime role's to use,
    through default privileges, with no grant in the migration."""
    owner = await asyncpg.connect(hub_settings.dsn("card", role="owner"))
    try:
        await owner.execute("CREATE TABLE card_later (id bigserial PRIMARY KEY, note text)")
    finally:
        await owner.close()
    await card_app.execute("INSERT INTO card_later (note) VALUES ('a'), ('b')")
    await card_app.execute("UPDATE card_later SET note = 'c' WHERE id = 1")
    await card_app.execute("DELETE FROM card_later WHERE id = 2")
    assert await card_app.fetch("SELECT id, note FROM card_later") == [(1, "c")]
    with pytest.raises(DENIED):
        await card_app.execute("DROP TABLE card_later")


async def test_migrating_again_keeps_the_record_read_only(hub_settings: Settings) -> None:
    """`hub init` run twice changes nothing the runtime role may do."""
    await bootstrap.init_databases(hub_settings)
    conn = await asyncpg.connect(hub_settings.dsn("card", role="owner"))
    try:
        await seal_migration_record(conn, hub_settings.role_name("card", "app"))
    finally:
        await conn.close()
    app = await asyncpg.connect(hub_settings.dsn("card"))
    try:
        assert await app.fetchval("SELECT count(*) FROM hub_schema_migrations") > 0
        with pytest.raises(DENIED):
            await app.execute("UPDATE hub_schema_migrations SET checksum = 'x'")
    finally:
        await app.close()


async def test_a_database_an_earlier_release_made_is_adopted(stack_settings: Settings) -> None:
    """Tables the administrator created before roles existed are handed to the owner and
    granted to the runtime role by `hub init`; `hub run`'s check then passes."""
    settings = stack_settings.model_copy(
        update={"database_prefix": f"{stack_settings.database_prefix}old{os.getpid()}_"})
    card = installed().get("card")
    name = settings.database_name("card")
    await ensure_databases(settings.server_url(), [name])
    admin = await asyncpg.connect(_as(settings.server_url(), name))
    try:
        await apply(admin, bootstrap.migrations(card))
    finally:
        await admin.close()

    await bootstrap.init_databases(settings)

    owner, app = settings.role_name("card", "owner"), settings.role_name("card", "app")
    conn = await asyncpg.connect(settings.dsn("card", role="owner"))
    try:
        assert await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'S') AND pg_get_userbyid(relowner) <> $1", owner) == []
        assert await conn.fetchval(
            "SELECT bool_and(has_table_privilege($1, oid, 'SELECT, INSERT, UPDATE, DELETE'))"
            " FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            " AND relname <> 'hub_schema_migrations'", app)
        assert await conn.fetchval(
            "SELECT bool_and(has_sequence_privilege($1, oid, 'USAGE, SELECT, UPDATE'))"
            " FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'S'", app)
    finally:
        await conn.close()
    await bootstrap.check_schema(settings, card)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))


async def test_the_embedded_server_wants_a_password(
    running_stack: RunningStack, hub_settings: Settings
) -> None:
    """No connection without the right password, over TCP or the Unix socket: the server
    was initialised with scram-sha-256, and no trust rule is left in pg_hba.conf."""
    for url in (hub_settings.server_url(), hub_settings.dsn("card")):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(_without_password(url), password="")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(_without_password(url), password="not-the-password")
    socket_dir = running_stack.postgres.data_dir
    if (socket_dir / f".s.PGSQL.{running_stack.postgres.port}").exists():
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host=str(socket_dir), port=running_stack.postgres.port,
                                  user=SUPERUSER, database="postgres", password="")
    hba = (socket_dir / "pg_hba.conf").read_text().splitlines()
    methods = {line.split()[-1] for line in hba if line.strip() and not line.startswith("#")}
    assert methods == {"scram-sha-256"}


def test_password_files_are_private(hub_settings: Settings) -> None:
    """The superuser's and every role's password file is 0600 in a 0700 directory."""
    directory = hub_settings.secrets_dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = {p.name for p in directory.iterdir()}
    assert {SUPERUSER, hub_settings.role_name("card", "app"),
            hub_settings.role_name("card", "owner")} <= names
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def _hub(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_KAFKA_BOOTSTRAP": settings.bootstrap,
        "HUB_DATABASE_URL": settings.server_url(),
        "HUB_DATABASE_PREFIX": settings.database_prefix,
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_HOME": str(settings.home),
    }
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _secrets(settings: Settings) -> list[str]:
    return [p.read_text().strip() for p in settings.secrets_dir.iterdir()]


async def test_hub_run_refuses_a_database_hub_init_has_not_migrated(
    hub_settings: Settings,
) -> None:
    """`hub run` migrates nothing: a step missing from the database (here, card's last one
    forgotten) exits 1 with one line saying to run `hub init`, and no password."""
    owner = await asyncpg.connect(hub_settings.dsn("card", role="owner"))
    try:
        await owner.execute("DELETE FROM hub_schema_migrations WHERE source = 'card'"
                            " AND version = (SELECT max(version) FROM hub_schema_migrations"
                            " WHERE source = 'card')")
    finally:
        await owner.close()

    done = _hub(hub_settings, "run", "card")

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "run `hub init`" in lines[0]
    assert "card migration" in lines[0]
    assert not any(s in done.stdout + done.stderr for s in _secrets(hub_settings))


async def test_hub_run_without_hub_init_says_so(hub_settings: Settings) -> None:
    """An agency prefix `hub init` never saw: no role password yet, one line, exit 1."""
    fresh = hub_settings.model_copy(
        update={"database_prefix": f"{hub_settings.database_prefix}none_"})

    done = _hub(fresh, "run", "card")

    assert done.returncode == 1, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "run `hub init`" in done.stderr
