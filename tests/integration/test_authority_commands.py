"""The authority's commands on its real database: each writes the permit's next version and
its event's outbox row in one transaction, without a NOTIFY inside it (the relay is woken
after the commit); commands racing on one permit each write the next sequence, in order,
and none is lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from hub.outbox import CHANNEL
from hub.settings import Settings
from producers.work_permit import Authority, store
from schemas import topics
from schemas.permits import Category
from tests.factories import employer, holder

pytestmark = pytest.mark.integration

TODAY = date(2026, 3, 2)


@pytest.fixture
async def logged_pool(hub_settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """The authority's pool, every statement it sends logged in order."""
    sent: list[str] = []

    async def log_queries(conn: asyncpg.Connection[Any]) -> None:
        conn.add_query_logger(lambda q: sent.append(q.query))

    pool = await asyncpg.create_pool(hub_settings.dsn("workpermit"), min_size=1, max_size=6,
                                     init=log_queries)
    assert pool is not None
    try:
        yield pool, sent
    finally:
        await pool.close()


async def _active(auth: Authority) -> str:
    rec = await auth.apply(holder=holder(), employer=employer(), category=Category.B,
                           position="Engineer", approved_months=12, today=TODAY)
    entry = TODAY + timedelta(days=9)
    await auth.issue(rec.permit_no, valid_from=entry, today=entry)
    return rec.permit_no


async def _outbox_sequences(pool: asyncpg.Pool, permit_no: str) -> list[int]:
    """The sequences of the permit's events in the outbox, in the order the relay sends."""
    rows = await pool.fetch("SELECT value FROM hub_outbox WHERE key = $1 ORDER BY id",
                            permit_no.encode())
    return [json.loads(r["value"])["sequence"] for r in rows]


async def test_a_command_writes_record_and_event_in_one_transaction_and_notifies_after_it(
    hub_settings: Settings, logged_pool: tuple[asyncpg.Pool, list[str]],
) -> None:
    """The permit row and its outbox row carry the same transaction id; the relay's NOTIFY
    is in no transaction that writes (it would hold Postgres' cluster-wide notify lock
    through that commit's fsync), and it is sent."""
    pool, sent = logged_pool
    auth = Authority(pool, topic=hub_settings.topic(topics.PERMIT_EVENTS))
    listener = await asyncpg.connect(hub_settings.dsn("workpermit"))
    woken = asyncio.Event()
    await listener.add_listener(CHANNEL, lambda *_: woken.set())
    try:
        permit_no = await _active(auth)
        await auth.change(permit_no, position="Architect")
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await listener.close()

    same = await pool.fetchval(
        "SELECT p.xmin = o.xmin FROM permits p, hub_outbox o"
        " WHERE p.permit_no = $1 AND o.key = $2 ORDER BY o.id DESC LIMIT 1",
        permit_no, permit_no.encode())
    assert same is True
    assert await _outbox_sequences(pool, permit_no) == [1, 2, 3]

    in_transaction = False
    for query in sent:
        verb = query.strip().rstrip(";").upper()
        if verb.startswith("BEGIN"):
            in_transaction = True
        elif verb in ("COMMIT", "ROLLBACK"):
            in_transaction = False
        elif "NOTIFY" in verb:
            assert not in_transaction, f"NOTIFY inside a transaction: {sent}"
            assert "INSERT" not in verb
            assert "UPDATE" not in verb
    assert any("NOTIFY" in q.upper() for q in sent)


async def test_commands_racing_on_one_permit_each_write_the_next_sequence(
    hub_settings: Settings, logged_pool: tuple[asyncpg.Pool, list[str]],
) -> None:
    """Twelve changes of one permit at once: every one is applied, each event carries the
    next sequence, the outbox holds them in sequence order, and the record is the last one."""
    pool, _ = logged_pool
    auth = Authority(pool, topic=hub_settings.topic(topics.PERMIT_EVENTS))
    permit_no = await _active(auth)
    positions = [f"Position {i}" for i in range(12)]
    await asyncio.gather(*(auth.change(permit_no, position=p) for p in positions))

    got = await auth.get(permit_no)
    assert got is not None
    record, sequence = got
    assert sequence == 14
    assert await _outbox_sequences(pool, permit_no) == list(range(1, 15))
    rows = await pool.fetch("SELECT value FROM hub_outbox WHERE key = $1 ORDER BY id",
                            permit_no.encode())
    changed = [json.loads(r["value"])["data"]["permit"]["position"] for r in rows[2:]]
    assert sorted(changed) == sorted(positions)
    assert record.position == changed[-1]


async def test_a_command_overtaken_every_time_takes_the_row_lock(
    hub_settings: Settings, logged_pool: tuple[asyncpg.Pool, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no optimistic try left, a command decides under `SELECT … FOR UPDATE`, as
    before, and writes in that transaction."""
    pool, sent = logged_pool
    monkeypatch.setattr(store, "OPTIMISTIC_TRIES", 0)
    auth = Authority(pool, topic=hub_settings.topic(topics.PERMIT_EVENTS))
    permit_no = await _active(auth)
    sent.clear()
    await asyncio.gather(*(auth.change(permit_no, position=f"P{i}") for i in range(4)))
    assert sum("FOR UPDATE" in q for q in sent) == 4
    assert await _outbox_sequences(pool, permit_no) == [1, 2, 3, 4, 5, 6]
