"""Schema migrations: numbered SQL files per source, each applied once and recorded.

A source is one set of tables with its own steps: the hub's tables (every agency database)
or one agency's tables. Its steps live in `<package>/migrations/NNNN_snake_name.sql`, or
`.py` for the rare step that needs what SQL cannot have: a secret of the agency's, such as
the pepper social insurance re-keys its person keys with (its 0003). A Python step defines
`async def migrate(conn, settings)` and runs in its step's transaction like SQL; it is
checksummed the same way, so it must import only what will not change under it.

Guarantees, and why:

- Numbered: versions run 1, 2, 3… without gaps or duplicates, so every database of a
  source goes through the same steps in the same order, whatever state it started from.
- Recorded: `hub_schema_migrations` holds a row per applied step, so a step runs once and
  an operator can see what a database has (`status`).
- Checksummed: the row keeps the sha256 of the file's text. A published step edited later
  is refused rather than leaving databases that ran the old text silently different from
  new ones; so is a database holding a step the code does not know (code older than the
  database must not run against it). Sources not passed in are left alone.
- One transaction per step: a step's statements and its row commit together (Postgres DDL
  is transactional), so a failing step leaves nothing half done and is retried whole.
  Steps must therefore avoid statements that refuse a transaction block, such as
  `CREATE INDEX CONCURRENTLY`.
- Advisory lock: every transaction takes the same transaction-scoped advisory lock and
  reads the record again under it, so several processes running `hub init` at once apply
  each step exactly once. A transaction-scoped lock ends with its transaction, so it cannot
  leak on a pooled connection the way a session lock left unreleased would.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

import asyncpg

from hub.db import Connection
from hub.logging import get_logger
from hub.settings import Settings

log = get_logger(__name__)

# The key the idempotent DDL of earlier releases took, so a process of an earlier release
# starting beside this runner never interleaves with it.
LOCK = "SELECT pg_advisory_xact_lock(hashtext('permit-hub migrate'))"

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS hub_schema_migrations (
    source     text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, version)
);
"""
"""The one table the runner needs before any step can be recorded."""

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sql|py)$")

Recorded = dict[tuple[str, int], tuple[str, str]]
"""(source, version) -> (name, checksum) of the steps a database has applied."""


class MigrationError(Exception):
    """Migration files that cannot be loaded, or a database that does not match them."""


@dataclass(frozen=True)
class Migration:
    """One numbered step of a source: its text (SQL, or Python) and that text's sha256."""

    source: str
    version: int
    name: str
    sql: str
    checksum: str
    kind: Literal["sql", "py"] = "sql"

    @property
    def filename(self) -> str:
        """The file the step was loaded from, under its package's `migrations/`."""
        return f"{self.version:04d}_{self.name}.{self.kind}"

    def __str__(self) -> str:
        return f"{self.source} migration {self.version} (migrations/{self.filename})"


def load(source: str, package: str) -> list[Migration]:
    """The steps of `source` from `<package>/migrations/`, checked and in version order."""
    folder = resources.files(package).joinpath("migrations")
    if not folder.is_dir():
        raise MigrationError(f"{package} has no migrations/ folder"
                             " (is migrations/*.sql in its package data?)")
    steps = sorted((_read(source, package, entry) for entry in folder.iterdir()
                    if _is_candidate(entry)), key=lambda m: m.version)
    _check_numbering(source, package, steps)
    return steps


def _is_candidate(entry: Traversable) -> bool:
    # Editor dotfiles and __pycache__ are not steps; any other file must be named as one.
    return entry.is_file() and not entry.name.startswith(".")


def _read(source: str, package: str, entry: Traversable) -> Migration:
    match = FILE_NAME.match(entry.name)
    if match is None:
        raise MigrationError(f"{package}/migrations/{entry.name}: a migration file must be"
                             " named NNNN_snake_name.sql or .py (four digits, lower-case name)")
    sql = entry.read_text(encoding="utf-8")
    checksum = hashlib.sha256(sql.encode("utf-8")).hexdigest()
    kind: Literal["sql", "py"] = "py" if match[3] == "py" else "sql"
    return Migration(source, int(match[1]), match[2], sql, checksum, kind)


def _check_numbering(source: str, package: str, steps: Sequence[Migration]) -> None:
    if not steps:
        raise MigrationError(f"{package}/migrations/ holds no migration files"
                             " (is migrations/*.sql in its package data?)")
    for before, step in itertools.pairwise(steps):
        if before.version == step.version:
            raise MigrationError(f"{package}/migrations/: {before.filename} and {step.filename}"
                                 f" both claim {source} version {step.version}")
    for expected, step in enumerate(steps, 1):
        if step.version != expected:
            raise MigrationError(f"{package}/migrations/{step.filename}: expected {source}"
                                 f" version {expected} (versions start at 1, no gaps)")


async def apply(
    conn: Connection, sources: Sequence[Sequence[Migration]], *, settings: Settings | None = None
) -> list[Migration]:
    """Apply every step not yet recorded, source by source in order; return those applied.

    `settings` are handed to Python steps (to find an agency's secrets); a step that needs
    them fails without them.
    """
    wanted = _flatten(sources)
    async with conn.transaction():
        await conn.execute(LOCK)
        await conn.execute(TABLE_DDL)
    applied: list[Migration] = []
    while (step := await _apply_next(conn, wanted, settings)) is not None:
        applied.append(step)
    return applied


async def _apply_next(
    conn: Connection, wanted: Sequence[Migration], settings: Settings | None
) -> Migration | None:
    # The record is read again under the lock: another process may have applied steps
    # since our last transaction, or the database may be newer than this code.
    async with conn.transaction():
        await conn.execute(LOCK)
        recorded = await _recorded(conn)
        if problems := _problems(wanted, recorded):
            raise MigrationError("\n".join(problems))
        step = next((m for m in wanted if (m.source, m.version) not in recorded), None)
        if step is None:
            return None
        await _run(conn, step, settings)
    log.info("migration applied", source=step.source, version=step.version, step=step.name)
    return step


async def _run(conn: Connection, step: Migration, settings: Settings | None) -> None:
    try:
        if step.kind == "py":
            await _run_python(conn, step, settings)
        else:
            await conn.execute(step.sql)
    except asyncpg.PostgresError as e:
        raise MigrationError(f"{step} failed and was rolled back: {e}") from e
    await conn.execute(
        "INSERT INTO hub_schema_migrations (source, version, name, checksum)"
        " VALUES ($1, $2, $3, $4)", step.source, step.version, step.name, step.checksum)


async def _run_python(conn: Connection, step: Migration, settings: Settings | None) -> None:
    # Run from its checksummed text, not imported: `migrations/` is no package, and the
    # text that ran is the text recorded.
    namespace: dict[str, object] = {"__name__": f"migration_{step.source}_{step.version:04d}"}
    exec(compile(step.sql, f"migrations/{step.filename}", "exec"), namespace)
    migrate = namespace.get("migrate")
    if not callable(migrate):
        raise MigrationError(f"{step} defines no `async def migrate(conn, settings)`")
    await migrate(conn, settings)


async def status(
    conn: Connection, sources: Sequence[Sequence[Migration]]
) -> list[tuple[Migration, datetime | None]]:
    """Each step of the sources with when it was applied here, or None if pending."""
    wanted = _flatten(sources)
    at = {key: when for key, (_, _, when) in (await _rows(conn)).items()}
    return [(m, at.get((m.source, m.version))) for m in wanted]


async def drift(conn: Connection, sources: Sequence[Sequence[Migration]]) -> list[str]:
    """Why `apply` would refuse this database (edited or unknown steps); empty if it would not."""
    return _problems(_flatten(sources), await _recorded(conn))


def _flatten(sources: Sequence[Sequence[Migration]]) -> list[Migration]:
    # Hand-built lists get the numbering check `load` gives files: a prefix of a source's
    # steps is fine (older code), a hole or a mix of sources is a caller's mistake.
    seen: set[str] = set()
    for steps in sources:
        names = {m.source for m in steps}
        if len(names) > 1 or names & seen:
            raise MigrationError(f"each source must be passed once, alone: {sorted(names)}")
        if [m.version for m in steps] != list(range(1, len(steps) + 1)):
            raise MigrationError(f"{sorted(names)} steps must be versions 1..n in order")
        seen |= names
    return [m for steps in sources for m in steps]


async def _recorded(conn: Connection) -> Recorded:
    return {key: (name, checksum) for key, (name, checksum, _) in (await _rows(conn)).items()}


async def _rows(conn: Connection) -> dict[tuple[str, int], tuple[str, str, datetime]]:
    # Reading must not create the table: status and drift are for a read-only ops view.
    if await conn.fetchval("SELECT to_regclass('hub_schema_migrations')") is None:
        return {}
    rows = await conn.fetch(
        "SELECT source, version, name, checksum, applied_at FROM hub_schema_migrations")
    return {(r["source"], r["version"]): (r["name"], r["checksum"], r["applied_at"])
            for r in rows}


def _problems(wanted: Sequence[Migration], recorded: Recorded) -> list[str]:
    known = {(m.source, m.version) for m in wanted}
    sources = {m.source for m in wanted}
    problems = [
        f"{m} was edited after this database applied it (applied checksum {done[1][:12]},"
        f" file checksum {m.checksum[:12]}): publish a change as a new numbered migration"
        for m in wanted if (done := recorded.get((m.source, m.version))) and done[1] != m.checksum
    ]
    problems += [
        f"{source} migration {version} (migrations/{version:04d}_{name}.sql) is applied in"
        " this database but unknown to this code: the code is older than the database"
        for (source, version), (name, _) in sorted(recorded.items())
        if source in sources and (source, version) not in known
    ]
    return problems
