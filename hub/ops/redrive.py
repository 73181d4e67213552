"""`hub dlq redrive`: send dead letters back to the topic they failed on, after a fix.

Each message goes back with its original key, value and headers, to its origin partition,
with `dlq.redrive.count` one higher; the consumer runtime quarantines a message whose count
passes hub.kafka.REDRIVE_LIMIT instead of dead-lettering it again (the loop guard).

Every redrive is recorded in `hub_redrives` in the agency's database: a `pending` row is
written before the send and becomes `sent` or `failed` after it, so an interrupted redrive
leaves a visible trace. Sending twice is harmless to the view: its sequence guard drops
the duplicate.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import asdict, dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from hub.db import open_pool
from hub.errors import BadTarget, retry_transient
from hub.kafka import DLQ_PREFIX, REDRIVE_COUNT, Headers, client_options
from hub.kafka_credentials import OPS
from hub.ops.dlq import DeadLetterMessage, dlq_topic_of, parse_ref, read_all
from hub.settings import Settings


@dataclass(frozen=True)
class Redrive:
    """One dead letter's redrive: planned (dry run), sent, failed or skipped."""

    ref: str
    reason: str | None
    event_type: str | None
    origin: str
    redrive_count: int
    """The count the message carries after this redrive."""
    result: str
    """planned | sent | failed | skipped (already sent; use again=True)."""
    target_offset: int | None = None
    error: str | None = None


async def redrive(
    settings: Settings,
    group: str,
    refs: list[str] | None = None,
    *,
    reason: str | None = None,
    again: bool = False,
    dry_run: bool = False,
    quarantine: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Redrive]:
    """Redrive the named dead letters (all when `refs` is None) of a group to their origins."""
    agency, topic = dlq_topic_of(settings, group, quarantine=quarantine)
    group_id, origins = agency.group_id(settings), [settings.topic(t) for t in agency.reads]
    wanted = [parse_ref(r) for r in refs] if refs is not None else None
    messages = await read_all(settings, topic)
    chosen = _choose(messages, wanted, topic, reason)
    for m in chosen:
        if m.origin is None or m.origin[0] not in origins:
            raise BadTarget(f"{topic}:{m.ref} names origin {m.header('dlq.origin.topic')!r}, "
                            f"not a topic of {group_id}; nothing was redriven")
    async with open_pool(settings.dsn(agency.name), max_size=1) as pool:
        sent = await _already_sent(pool, group_id, topic, dry_run=dry_run)
        if dry_run:
            return [_plan(m, "skipped" if (m.partition, m.offset) in sent and not again
                          else "planned") for m in chosen]
        producer = AIOKafkaProducer(**client_options(settings, OPS), acks="all",
                                    enable_idempotence=True, client_id="hub-ops-redrive")
        await retry_transient("start redrive producer", producer.start)
        try:
            out = []
            for done, m in enumerate(chosen, start=1):
                if (m.partition, m.offset) in sent and not again:
                    out.append(_plan(m, "skipped"))
                else:
                    out.append(await _send_one(pool, producer, group_id, topic, m))
                if on_progress is not None:
                    on_progress(done, len(chosen))
            return out
        finally:
            await producer.stop()


def _choose(
    messages: list[DeadLetterMessage], wanted: list[tuple[int, int]] | None, topic: str,
    reason: str | None,
) -> list[DeadLetterMessage]:
    if wanted is not None:
        by_ref = {(m.partition, m.offset): m for m in messages}
        missing = [f"{p}:{o}" for p, o in wanted if (p, o) not in by_ref]
        if missing:
            raise BadTarget(f"{topic} holds no message at {', '.join(missing)}; "
                            "nothing was redriven")
        messages = [by_ref[w] for w in dict.fromkeys(wanted)]
    return [m for m in messages if reason is None or m.header("dlq.reason") == reason]


def redriven_headers(m: DeadLetterMessage) -> Headers:
    """The original headers, without the failure's `dlq.*` ones, and the count one higher."""
    kept = [(k, v) for k, v in m.headers if not k.startswith(DLQ_PREFIX)]
    return [*kept, (REDRIVE_COUNT, str(m.redrive_count + 1).encode())]


def _plan(m: DeadLetterMessage, result: str) -> Redrive:
    assert m.origin is not None
    return Redrive(m.ref, m.header("dlq.reason"), m.event_type(), "{}:{}:{}".format(*m.origin),
                   m.redrive_count + 1, result)


async def _already_sent(
    pool: asyncpg.Pool, group: str, topic: str, *, dry_run: bool
) -> set[tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT DISTINCT dlq_partition, dlq_offset FROM hub_redrives"
        " WHERE group_id = $1 AND dlq_topic = $2 AND result = 'sent'", group, topic)
    return {(r["dlq_partition"], r["dlq_offset"]) for r in rows}


async def _send_one(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, group: str, topic: str, m: DeadLetterMessage
) -> Redrive:
    plan = _plan(m, "pending")
    assert m.origin is not None
    origin_topic, origin_partition, origin_offset = m.origin
    row_id = await pool.fetchval(
        "INSERT INTO hub_redrives (redriven_by, group_id, dlq_topic, dlq_partition, dlq_offset,"
        " reason, event_type, origin_topic, origin_partition, origin_offset, redrive_count,"
        " result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending') RETURNING id",
        getpass.getuser(), group, topic, m.partition, m.offset, plan.reason, plan.event_type,
        origin_topic, origin_partition, origin_offset, plan.redrive_count,
    )
    try:
        # The origin partition, not the key's hash: a foreign producer may hash keys
        # differently, and the permit's other events are on the partition it chose.
        meta = await producer.send_and_wait(origin_topic, value=m.value, key=m.key,
                                            partition=origin_partition,
                                            headers=redriven_headers(m))
    except Exception as exc:
        await pool.execute(
            "UPDATE hub_redrives SET result = 'failed', error = $2, finished_at = clock_timestamp()"
            " WHERE id = $1", row_id, f"{type(exc).__name__}: {exc}"[:2000])
        return Redrive(**{**asdict(plan), "result": "failed", "error": type(exc).__name__})
    await pool.execute(
        "UPDATE hub_redrives SET result = 'sent', target_offset = $2,"
        " finished_at = clock_timestamp() WHERE id = $1", row_id, meta.offset)
    return Redrive(**{**asdict(plan), "result": "sent", "target_offset": meta.offset})


async def redrive_log(settings: Settings, group: str) -> list[dict[str, object]]:
    """The recorded redrives of a group, oldest first (empty if none was ever made)."""
    agency, _ = dlq_topic_of(settings, group)
    async with open_pool(settings.dsn(agency.name), max_size=1) as pool:
        rows = await pool.fetch("SELECT * FROM hub_redrives WHERE group_id = $1 ORDER BY id",
                                agency.group_id(settings))
    return [dict(r) for r in rows]
