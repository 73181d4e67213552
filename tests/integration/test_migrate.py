"""The migration runner on the session's real Postgres, each test on a database of its own:
a fresh database, a second run, an edited or unknown step, databases made by the code
before migrations, a failing step, and several processes migrating at once."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from consumers.social_insurance.service import person_keys
from hub.bootstrap import init_secrets
from hub.errors import NotReady
from hub.migrate import Migration, MigrationError, apply, drift, load, status
from hub.settings import Settings
from hub.stack.postgres import ensure_databases
from tests.integration.old_schema import (
    AUTHORITY_DDL,
    CARD_DDL,
    DISPATCH_DDL,
    OUTBOX_DDL,
    PS_DDL,
    REDRIVES_DDL,
    REPLAYS_DDL,
    RUNTIME_DDL,
    SI_DDL,
)

pytestmark = pytest.mark.integration

SOURCES = [
    load("hub", "hub"),
    load("workpermit", "producers.work_permit"),
    load("card", "consumers.card"),
    load("public_security", "consumers.public_security"),
    load("social_insurance", "consumers.social_insurance"),
]
"""Every source in one database: their tables do not clash, and it covers every file."""
ALL = [m for steps in SOURCES for m in steps]

OLD_CODE_DDL = (RUNTIME_DDL, OUTBOX_DDL, DISPATCH_DDL, REPLAYS_DDL, REDRIVES_DDL,
                AUTHORITY_DDL, CARD_DDL, PS_DDL, SI_DDL)
"""What the code before migrations ran at start (and, for the ops tables, lazily)."""

PRE_PROCEDURES_DDL = """
CREATE TABLE ps_permits (
    permit_no       text PRIMARY KEY,
    sequence        integer NOT NULL,
    status          text NOT NULL,
    holder_name     text NOT NULL,
    nationality     char(2) NOT NULL,
    passport_no     text NOT NULL,
    passport_expiry date NOT NULL,
    employer_city   text NOT NULL,
    valid_from      date,
    valid_until     date,
    cancelled_on    date,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE si_permits (
    permit_no            text PRIMARY KEY,
    sequence             integer NOT NULL,
    status               text NOT NULL,
    holder_name          text NOT NULL,
    nationality          char(2) NOT NULL,
    employer_credit_code text NOT NULL,
    employer_name        text NOT NULL,
    issued_on            date,
    valid_from           date,
    valid_until          date,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO ps_permits VALUES ('P1', 1, 'valid', 'Holder', 'FR', 'X1', '2030-01-01', 'Paris',
                               NULL, NULL, NULL);
INSERT INTO si_permits VALUES ('P1', 1, 'valid', 'Holder', 'FR', 'C1', 'Employer',
                               NULL, NULL, NULL);
"""
"""The two permit views as the spine skeleton (03f45e1) created them, with a row each."""

LATER_COLUMNS = {("ps_permits", "standard"), ("si_permits", "standard")}
LATER_TABLES = {"ps_accepted_tokens", "hub_evidence", "hub_evidence_peer_heads",
                "hub_looks", "hub_looks_id_seq", "hub_outbox_parked", "hub_erasures",
                "hub_erasures_pkey", "hub_retention_runs", "hub_retention_runs_id_seq",
                "hub_retention_runs_pkey", "hub_held_requests", "hub_held_requests_position_seq",
                "hub_request_answers", "ps_officer_decisions", "si_reviews", "si_reviews_pkey",
                "si_reviews_event_id_key", "si_reviews_decision_check",
                "si_reviews_outcome_check"}
"""Tables that steps after the baselines create: the code before migrations never had them."""
LATER_CHANGED = {("hub_replays", "hub_replays_status_check"), ("si_permits", "holder_key"),
                 ("si_permits", "passport_no"), ("si_permits", "date_of_birth"),
                 ("si_requests", "employer_credit_code"),
                 *(("ps_residence_permits", n) for n in (
                     "ps_residence_permits_permit_no_key", "ps_residence_permits_status_check",
                     "ps_residence_permits_in_force", "ps_residence_permits_by_permit",
                     "changed_particulars", "particulars_changed_on", "change_report_by",
                     "work_permit_cancelled_on", "cancelled_on")),
                 ("ps_applications", "ps_applications_outcome_check"),
                 ("ps_applications", "referral")}
"""(table, constraint, index or column) that steps after the baselines replace or add: hub
0007 the `refused` status; social insurance 0003 the holder's passport and birth date by a
key, 0004 the employer a request named; public security 0004 several residence permits per
work permit (one in force) and the change report, 0005 the referral and the officers'
cancellation."""


@pytest.fixture
async def dsn(stack_settings: Settings) -> str:
    """The URL of a new, empty database on the session's Postgres, as its administrator
    (the runner is tested here, not the roles `hub init` migrates with)."""
    settings = stack_settings.model_copy(
        update={"database_prefix": f"{stack_settings.database_prefix}mig{secrets.token_hex(3)}_"})
    name = settings.database_name("card")
    await ensure_databases(settings.server_url(), [name])
    return urlunsplit(urlsplit(settings.server_url())._replace(path=f"/{name}"))


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to the new database."""
    c = await asyncpg.connect(dsn)
    try:
        yield c
    finally:
        await c.close()


async def schema(c: asyncpg.Connection[Any]) -> dict[str, set[tuple[Any, ...]]]:
    """Columns, indexes, constraints and sequences of the public schema, comparable as sets."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, character_maximum_length,"
                   " is_nullable, column_default FROM information_schema.columns"
                   " WHERE table_schema = 'public'",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
                   " WHERE schemaname = 'public'",
        # NOT NULL is compared with the columns (Postgres 18 also lists it as a constraint).
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                       " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
                       " AND contype <> 'n'",
        "sequences": "SELECT sequence_name, start_value FROM information_schema.sequences"
                     " WHERE sequence_schema = 'public'",
    }
    return {what: {tuple(r) for r in await c.fetch(q)} for what, q in queries.items()}


async def recorded(c: asyncpg.Connection[Any]) -> list[tuple[Any, ...]]:
    """The rows of the migrations table, sorted."""
    # Not by applied_at: now() is when a transaction began, maybe before it waited for the lock.
    rows = await c.fetch("SELECT source, version, name, checksum FROM hub_schema_migrations"
                         " ORDER BY source, version")
    return [tuple(r) for r in rows]


def expected_record(steps: list[Migration]) -> list[tuple[Any, ...]]:
    return sorted((m.source, m.version, m.name, m.checksum) for m in steps)


def edited(m: Migration, sql: str) -> Migration:
    return dataclasses.replace(m, sql=sql, checksum=hashlib.sha256(sql.encode()).hexdigest())


async def fresh_schema(dsn: str, tag: str) -> dict[str, set[tuple[Any, ...]]]:
    """The schema a brand-new database gets from the migrations alone."""
    head, _, name = dsn.rpartition("/")
    other = f"{name}_{tag}"
    await ensure_databases(f"{head}/postgres", [other])
    c = await asyncpg.connect(f"{head}/{other}")
    try:
        await apply(c, SOURCES)
        return await schema(c)
    finally:
        await c.close()


async def test_a_fresh_database_gets_and_records_every_step(
    conn: asyncpg.Connection[Any],
) -> None:
    assert await status(conn, SOURCES) == [(m, None) for m in ALL]
    assert await conn.fetchval("SELECT to_regclass('hub_schema_migrations')") is None

    assert await apply(conn, SOURCES) == ALL

    assert await recorded(conn) == expected_record(ALL)
    assert all(at is not None for _, at in await status(conn, SOURCES))
    assert await drift(conn, SOURCES) == []
    tables = {r[0] for r in (await schema(conn))["columns"]}
    assert {"hub_outbox", "hub_redrives", "permits", "card_ecards", "ps_applications",
            "si_requests"} <= tables


async def test_a_second_apply_applies_nothing(conn: asyncpg.Connection[Any]) -> None:
    await apply(conn, SOURCES)
    before = await conn.fetch("SELECT * FROM hub_schema_migrations ORDER BY source, version")

    assert await apply(conn, SOURCES) == []
    assert await conn.fetch("SELECT * FROM hub_schema_migrations ORDER BY source, version") \
        == before


async def test_new_steps_are_applied_after_the_recorded_ones(
    conn: asyncpg.Connection[Any],
) -> None:
    await apply(conn, [SOURCES[0][:2]])
    assert await apply(conn, SOURCES) == ALL[2:]
    assert await recorded(conn) == expected_record(ALL)


async def test_an_edited_applied_step_is_refused(conn: asyncpg.Connection[Any]) -> None:
    await apply(conn, [SOURCES[0]])
    hub = list(SOURCES[0])
    hub[1] = edited(hub[1], hub[1].sql.replace("'[]'", "'[[]]'"))
    new_step = Migration("hub", len(hub) + 1, "later", "CREATE TABLE later ();", "f" * 64)

    with pytest.raises(MigrationError) as refused:
        await apply(conn, [[*hub, new_step]])

    message = str(refused.value)
    assert "hub migration 2 (migrations/0002_outbox.sql) was edited" in message
    assert await drift(conn, [hub]) == [message]
    assert await conn.fetchval("SELECT to_regclass('later')") is None  # nothing went ahead


async def test_a_database_newer_than_the_code_is_refused(conn: asyncpg.Connection[Any]) -> None:
    await apply(conn, SOURCES)
    older = [SOURCES[0][:3], *SOURCES[1:]]

    with pytest.raises(MigrationError, match=r"hub migration 4 \(migrations/0004_ops_records"
                                             r"\.sql\) is applied .* code is older"):
        await apply(conn, older)


async def test_sources_the_caller_did_not_pass_are_left_alone(
    conn: asyncpg.Connection[Any],
) -> None:
    await apply(conn, SOURCES)
    assert await apply(conn, [SOURCES[0]]) == []  # a hub-only tool beside agency steps


async def test_a_failing_step_leaves_nothing_behind(conn: asyncpg.Connection[Any]) -> None:
    good = Migration("demo", 1, "good", "CREATE TABLE demo_good ();", "a" * 64)
    bad = Migration("demo", 2, "bad", "CREATE TABLE demo_half (); SELECT 1/0;", "b" * 64)

    with pytest.raises(MigrationError, match=r"demo migration 2 \(migrations/0002_bad\.sql\)"
                                             r" failed and was rolled back: division by zero"):
        await apply(conn, [[good, bad]])

    assert await conn.fetchval("SELECT to_regclass('demo_good')") == "demo_good"
    assert await conn.fetchval("SELECT to_regclass('demo_half')") is None
    assert await recorded(conn) == expected_record([good])


async def test_a_database_of_the_old_code_adopts_the_baseline(
    conn: asyncpg.Connection[Any], dsn: str,
) -> None:
    for ddl in OLD_CODE_DDL:
        await conn.execute(ddl)
    await conn.execute("INSERT INTO hub_outbox (topic, value) VALUES ('t', 'v')")
    old = await schema(conn)

    assert await apply(conn, SOURCES) == ALL  # every step recorded, none failed

    adopted = await schema(conn)
    assert adopted == await fresh_schema(dsn, "fresh")
    # Nothing changed, but for the bookkeeping and the tables later steps add.
    assert ({k: v - _migrations_table(v) - _later_tables(v) - _later_changed(v)
             for k, v in adopted.items()}
            == {k: v - _later_changed(v) for k, v in old.items()})
    assert await conn.fetchval("SELECT count(*) FROM hub_outbox") == 1


def _migrations_table(items: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    return {i for i in items if i[0] in ("hub_schema_migrations", "hub_schema_migrations_pkey")}


def _later_changed(items: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    return {i for i in items if tuple(i[:2]) in LATER_CHANGED}


def _later_tables(items: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    return {i for i in items if i[0] in LATER_TABLES}


@pytest.mark.parametrize("started_by_old_code", [False, True])
async def test_a_database_from_before_the_procedures_gains_their_columns(
    conn: asyncpg.Connection[Any], dsn: str, started_by_old_code: bool,
) -> None:
    """The permit views made by the spine skeleton lack the columns the procedures added;
    the old code added them nullable at its next start, and so does step 0002."""
    await conn.execute(PRE_PROCEDURES_DDL)
    if started_by_old_code:
        for ddl in OLD_CODE_DDL:
            await conn.execute(ddl)

    await apply(conn, SOURCES)

    adopted, fresh = await schema(conn), await fresh_schema(dsn, "fresh")
    for what in ("indexes", "constraints", "sequences"):
        assert adopted[what] == fresh[what]
    # The same columns; NOT NULL only where the old rows allow it (their values are unknown).
    differ = adopted["columns"] ^ fresh["columns"]
    assert {(c[0], c[1]) for c in differ} == LATER_COLUMNS
    assert all(c[4] == "YES" for c in adopted["columns"] - fresh["columns"])
    assert _without_nullable(adopted["columns"]) == _without_nullable(fresh["columns"])
    row = await conn.fetchrow("SELECT standard, holder_key FROM si_permits")
    assert tuple(row or ()) == (None, None)  # no passport to key: its next event writes it


def _without_nullable(columns: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    return {c[:4] + c[5:] for c in columns}


async def test_concurrent_applies_apply_each_step_once(dsn: str) -> None:
    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply(c, SOURCES) for c in conns))
        applied = [m for r in results for m in r]
        assert sorted(applied, key=ALL.index) == ALL  # each step by exactly one of them
        assert await recorded(conns[0]) == expected_record(ALL)
    finally:
        for c in conns:
            await c.close()


SI_BEFORE_KEYS = """
-- Nullable, as in a database made before the registration procedure (step 0002).
ALTER TABLE si_permits ALTER passport_no DROP NOT NULL, ALTER date_of_birth DROP NOT NULL;
INSERT INTO si_permits (permit_no, sequence, status, standard, holder_name, nationality,
                        passport_no, date_of_birth, employer_credit_code, employer_name)
VALUES ('P1', 3, 'active', 'integrated', 'Anna', 'DE', 'C4J7KL921', '1988-03-14', 'E', 'Em'),
       ('P2', 1, 'active', 'legacy', 'Old', 'FR', NULL, NULL, 'E', 'Em'),
       ('P3', 1, 'active', 'integrated', 'Anna', 'DE', 'C4J7KL921', '1988-03-14', 'E', 'Em');
INSERT INTO si_accounts (ssn, status, opened_on, current_permit_no)
VALUES ('FA', 'active', '2025-01-01', 'P1'), ('FB', 'active', '2025-01-01', 'P2');
INSERT INTO si_person_keys (person_key, ssn)
VALUES ('permit:' || encode(sha256('P1'), 'hex'), 'FA'),
       ('passport:' || encode(sha256('DE|C4J7KL921|1988-03-14'), 'hex'), 'FA'),
       ('passport:' || encode(sha256('DE|OLDPASS01|1988-03-14'), 'hex'), 'FA'),
       ('permit:' || encode(sha256('P2'), 'hex'), 'FB');
INSERT INTO si_registrations (request_id, permit_no, ssn, requester, employer_credit_code,
                              insured, exempt, registered_on, deadline, late, status)
VALUES ('R1', 'P1', 'FA', 'employer', 'E', '{}', '{}', '2025-01-01', '2025-01-31', false,
        'active'),
       ('R2', 'P2', 'FB', 'employer', 'E', '{}', '{}', '2025-01-01', '2025-01-31', false,
        'active');
"""
"""Social insurance before step 0003: unsalted keys, passports in clear. P2 is a row from
before the registration procedure (no passport known); P3 is Anna's next permit, not yet
registered."""


async def _social_insurance_before_keys(conn: asyncpg.Connection[Any]) -> list[Migration]:
    hub, social = SOURCES[0], SOURCES[-1]
    assert social[0].source == "social_insurance"
    await apply(conn, [hub, social[:2]])
    await conn.execute(SI_BEFORE_KEYS)
    return social


async def test_step_3_re_keys_person_keys_under_the_pepper_and_drops_the_passport(
    conn: asyncpg.Connection[Any], tmp_path: Path,
) -> None:
    """The unsalted keys go; each registration's permit key and its holder's passport key,
    keyed, name its SSN again; si_permits keeps the holder's key and no passport or birth
    date. The key of a passport no row holds any more (a renewal's) cannot come back."""
    social = await _social_insurance_before_keys(conn)
    settings = Settings(home=tmp_path)
    init_secrets(settings)
    keys = person_keys(settings)

    await apply(conn, [SOURCES[0], social], settings=settings)

    anna = keys.passport("DE", "C4J7KL921", date(1988, 3, 14))
    held = {r["permit_no"]: r["holder_key"]
            for r in await conn.fetch("SELECT permit_no, holder_key FROM si_permits")}
    assert held == {"P1": anna, "P2": None, "P3": anna}
    stored = {r["person_key"]: r["ssn"]
              for r in await conn.fetch("SELECT person_key, ssn FROM si_person_keys")}
    assert stored == {keys.permit("P1"): "FA", anna: "FA", keys.permit("P2"): "FB"}
    columns = {r[0] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'si_permits'")}
    assert not columns & {"passport_no", "date_of_birth"}
    assert "holder_key" in columns


async def test_step_3_on_a_database_with_passports_needs_the_pepper(
    conn: asyncpg.Connection[Any],
) -> None:
    """Without the hub's settings the pepper cannot be found: the step is refused whole and
    the database keeps its old keys and columns until `hub init` runs it."""
    social = await _social_insurance_before_keys(conn)

    with pytest.raises(NotReady, match="run it with `hub init`"):
        await apply(conn, [SOURCES[0], social])

    assert await conn.fetchval("SELECT count(*) FROM si_person_keys") == 4
    assert await conn.fetchval("SELECT passport_no FROM si_permits WHERE permit_no = 'P1'") \
        == "C4J7KL921"
    assert await conn.fetchval("SELECT max(version) FROM hub_schema_migrations"
                               " WHERE source = 'social_insurance'") == 2
