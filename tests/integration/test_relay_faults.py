"""The relay never blocks on one row, and faults are classified narrowly, on the real broker
and database: a row Kafka refuses is parked while the next rows go, an event too large is
refused before the authority commits, a message that keeps deadlocking is isolated after the
retry window, and a refused password stops `hub run` with one line."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from consumers.card.handlers import card_permit
from demo.synthetic import _employer, _holder, stream
from hub import bootstrap
from hub.ops.lag import caught_up
from hub.outbox import MAX_EVENT_BYTES, EventTooLarge
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas import topics
from schemas.permits import Category, FamilyMember
from tests.integration.hub_fixtures import (
    AUTHORITY,
    eventually,
    expected_rows,
    permit_topic,
    publish,
    read_topic,
    view_rows,
)
from tests.integration.test_ops_cli import invoke, settings_env

pytestmark = pytest.mark.integration

SMALL_REQUESTS = 64 * 1024
"""The relay's producer limit in the parking test: below the oversized row, above the rest."""


async def _insert_rows(settings: Settings, rows: list[tuple[bytes, bytes]]) -> list[int]:
    """Rows written straight into the authority's outbox (key, value), as a relay finds them."""
    async with bootstrap.pool(settings, AUTHORITY, max_size=1) as p:
        return [await p.fetchval(
            "INSERT INTO hub_outbox (topic, key, value, headers) VALUES ($1, $2, $3, '[]')"
            " RETURNING id", settings.topic(topics.PERMIT_EVENTS), key, value)
            for key, value in rows]


async def _permit_records(settings: Settings) -> list[tuple[bytes | None, bytes]]:
    """What the card receives of the outbox (a value that is no event goes unchanged)."""
    records = await read_topic(settings, permit_topic(settings, "card"))
    return [(r.key, r.value) for r in records]


async def test_a_row_kafka_refuses_is_parked_and_the_relay_goes_on(hub_settings: Settings) -> None:
    """An outbox row over the producer's limit is parked with its error, the later row of its
    subject is held, the next permit's event is published; `hub outbox parked` lists it, and
    `hub outbox retry` sends both, in order, once the limit is raised."""
    small = hub_settings.model_copy(update={"kafka_max_request_bytes": SMALL_REQUESTS})
    big_value = json.dumps({"pad": "x" * (SMALL_REQUESTS + 1000)}).encode()
    big_id, held_id = await _insert_rows(small, [(b"SUBJECT-A", big_value),
                                                 (b"SUBJECT-A", b'{"after": "big"}')])
    rng = random.Random(3)
    async with bootstrap.running_relay(small, AUTHORITY), authority(small) as auth:
        rec = await auth.apply(holder=_holder(rng), employer=_employer(rng), category=Category.B,
                               position="Welder", approved_months=12, today=date(2025, 3, 3))

        async def published() -> bool:
            return any(key == rec.permit_no.encode() for key, _ in await _permit_records(small))

        await eventually(published, what="the next permit's event past the parked row")
    assert [key for key, _ in await _permit_records(small)] == [rec.permit_no.encode()]

    listed = await invoke(hub_settings, "outbox", "parked", "--json")
    assert listed.exit_code == 0, listed.output
    [parked] = json.loads(listed.stdout)
    assert (parked["agency"], parked["id"], parked["key"]) == (AUTHORITY, big_id, "SUBJECT-A")
    assert (parked["error_class"], parked["held"]) == ("MessageSizeTooLargeError", 1)
    assert parked["size"] == len(big_value)
    async with bootstrap.pool(hub_settings, AUTHORITY, max_size=1) as p:
        assert await p.fetchval("SELECT array_agg(id) FROM hub_outbox") == [held_id]

    unknown = await invoke(hub_settings, "outbox", "retry", str(held_id + 100))
    assert unknown.exit_code == 2, unknown.output
    # The cause fixed: the relay runs with Kafka's default limit again.
    async with bootstrap.running_relay(hub_settings, AUTHORITY):
        retried = await invoke(hub_settings, "outbox", "retry", str(big_id))
        assert retried.exit_code == 0, retried.output

        async def both_sent() -> bool:
            return len(await _permit_records(hub_settings)) == 3

        await eventually(both_sent, what="the retried row and the row held behind it")
    subject_a = [value for key, value in await _permit_records(hub_settings)
                 if key == b"SUBJECT-A"]
    assert subject_a == [big_value, b'{"after": "big"}'], "the parked row went first"
    listed = await invoke(hub_settings, "outbox", "parked", "--json")
    assert json.loads(listed.stdout) == []


async def test_an_event_too_large_is_refused_before_the_authority_commits(
    hub_settings: Settings,
) -> None:
    """A permit with 5,000 family members encodes above MAX_EVENT_BYTES: the command fails
    with EventTooLarge and neither the permit nor its event is written."""
    rng = random.Random(4)
    family = tuple(FamilyMember(name=f"Member {i:04d} " + "y" * 180, relationship="child")
                   for i in range(5000))
    async with authority(hub_settings) as auth:
        with pytest.raises(EventTooLarge, match=f"limit of {MAX_EVENT_BYTES:,}"):
            await auth.apply(holder=_holder(rng), employer=_employer(rng), category=Category.B,
                             position="Welder", approved_months=12, family=family,
                             today=date(2025, 3, 3))
    async with bootstrap.pool(hub_settings, AUTHORITY, max_size=1) as p:
        assert await p.fetchval("SELECT count(*) FROM permits") == 0
        assert await p.fetchval("SELECT count(*) FROM hub_outbox") == 0


async def test_a_message_that_keeps_deadlocking_is_isolated_after_the_retry_window(
    hub_settings: Settings,
) -> None:
    """A permit whose every write deadlocks (a trigger standing in for it) holds its batch
    only for the retry window: then its events are dead-lettered as `retries_exhausted` and
    every other permit is applied."""
    events = list(stream(40, seed=21))
    culprit = events[0].subject
    table = installed().view("card").table.name
    async with bootstrap.pool(hub_settings, "card", max_size=1, role="owner") as p:
        await p.execute(f"""
            CREATE FUNCTION deadlock_one() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.permit_no = '{culprit}' THEN
                RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01';
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER deadlock_one BEFORE INSERT OR UPDATE ON {table}
              FOR EACH ROW EXECUTE FUNCTION deadlock_one();""")
    await publish(hub_settings, events)
    windowed = hub_settings.model_copy(update={"retry_window_s": 2.0})
    async with bootstrap.running_consumer(windowed, "card") as consumer:
        await eventually(lambda: caught_up(windowed, "card"), what="card past the culprit")
    dead = await read_topic(hub_settings, topics.dead_letter_topic(hub_settings.topic("card")))
    assert {r.key for r in dead} == {culprit.encode()}
    assert {dict(r.headers)["dlq.reason"] for r in dead} == {b"retries_exhausted"}
    assert consumer.stats.dead_lettered == len(dead)
    survivors = [e for e in events if e.subject != culprit]
    assert await view_rows(hub_settings, "card") == expected_rows(survivors, card_permit)


def _run_agency(env: dict[str, str], agency: str, limit: float) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "hub", "run", agency], env=env,
                          capture_output=True, text=True, timeout=limit, check=False)
    return done.returncode, done.stderr, time.monotonic() - started


async def test_a_wrong_kafka_password_stops_hub_run_with_one_line(
    hub_settings: Settings, tmp_path: Path
) -> None:
    """`hub run card` with a password file Kafka refuses exits 1 within seconds, with one
    line naming the principal and the file, never the password."""
    wrong = tmp_path / "card.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    env = {**os.environ, **settings_env(hub_settings),
           "HUB_KAFKA_PASSWORD_FILES": json.dumps({"card": str(wrong)})}
    code, stderr, took = await asyncio.to_thread(_run_agency, env, "card", 60)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr
    assert took < 30
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: Kafka refused principal 'card'")
    assert str(wrong) in lines[0]
    assert "not-the-password" not in stderr


async def test_a_wrong_database_password_stops_hub_run_with_one_line(
    hub_settings: Settings, tmp_path: Path
) -> None:
    """`hub run card` whose runtime role's password file Postgres refuses exits 1 with one
    line naming the role, never the password."""
    secrets = tmp_path / "postgres"
    secrets.mkdir(mode=0o700)
    role = hub_settings.role_name("card", "app")
    (secrets / role).write_text("not-the-password\n")
    (secrets / role).chmod(0o600)
    env = {**os.environ, **settings_env(hub_settings), "HUB_DATABASE_SECRETS_DIR": str(secrets)}
    code, stderr, took = await asyncio.to_thread(_run_agency, env, "card", 60)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr
    assert took < 30
    assert len(lines) == 1, stderr
    assert role in lines[0]
    assert "Postgres refused" in lines[0]
    assert "not-the-password" not in stderr
