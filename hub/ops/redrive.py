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
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from hub.db import open_pool
from hub.errors import BadTarget, retry_transient
from hub.kafka import DLQ_PREFIX, REDRIVE_COUNT, RecordHeaders, client_options
from hub.kafka_credentials import OPS
from hub.ops.dlq import DeadLetterMessage, dlq_topic_of, read_one, scan
from hub.redaction import describe_error
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
    since: datetime | None = None,
    limit: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    redriven_by: str | None = None,
) -> list[Redrive]:
    """Redrive the named dead letters (all when `refs` is None, streamed from the topic:
    `since` and `limit` page it) of a group to their origins, recorded as `redriven_by`
    (the OS user by default; the console names its operator)."""
    agency, topic = dlq_topic_of(settings, group, quarantine=quarantine)
    group_id, origins = agency.group_id(settings), {settings.topic(t) for t in agency.reads}
    if refs is not None:
        named = [await _named(settings, topic, r) for r in dict.fromkeys(refs)]
        for m in named:
            if not _from(m, origins):
                raise BadTarget(f"{topic}:{m.ref} names origin "
                                f"{m.header('dlq.origin.topic')!r}, not a topic of {group_id};"
                                " nothing was redriven")
    chosen = _iterate(named) if refs is not None else scan(settings, topic, since=since,
                                                           limit=limit)
    async with open_pool(settings.dsn(agency.name), max_size=1) as pool:
        sent = await _already_sent(pool, group_id, topic)
        producer = None if dry_run else AIOKafkaProducer(
            **client_options(settings, OPS), acks="all", enable_idempotence=True,
            client_id="hub-ops-redrive")
        if producer is not None:
            await retry_transient("start redrive producer", producer.start)
        try:
            out: list[Redrive] = []
            async for m in chosen:
                if reason is not None and m.header("dlq.reason") != reason:
                    continue
                out.append(await _one(pool, producer, group_id, topic, m, origins,
                                      skip=(m.partition, m.offset) in sent and not again,
                                      by=redriven_by or getpass.getuser()))
                if on_progress is not None:
                    on_progress(len(out))
            return out
        finally:
            if producer is not None:
                await producer.stop()


async def _named(settings: Settings, topic: str, ref: str) -> DeadLetterMessage:
    try:
        return await read_one(settings, topic, ref)
    except BadTarget as exc:
        raise BadTarget(f"{exc}; nothing was redriven") from None


async def _iterate(messages: list[DeadLetterMessage]) -> AsyncIterator[DeadLetterMessage]:
    for m in messages:
        yield m


def _from(m: DeadLetterMessage, origins: set[str]) -> bool:
    return m.origin is not None and m.origin[0] in origins


async def _one(
    pool: asyncpg.Pool, producer: AIOKafkaProducer | None, group: str, topic: str,
    m: DeadLetterMessage, origins: set[str], *, skip: bool, by: str,
) -> Redrive:
    """One dead letter's redrive, or why it is not sent (a dry run has no producer)."""
    if not _from(m, origins):
        return _refused(m, f"origin {m.header('dlq.origin.topic')!r} is not a topic of {group}")
    if m.truncated:
        return _refused(m, "its value was truncated; the whole record is in the evidence log")
    if skip:
        return _plan(m, "skipped")
    if producer is None:
        return _plan(m, "planned")
    return await _send_one(pool, producer, group, topic, m, by)


def _refused(m: DeadLetterMessage, why: str) -> Redrive:
    origin = "{}:{}:{}".format(*m.origin) if m.origin else "-"
    return Redrive(m.ref, m.header("dlq.reason"), m.event_type(), origin,
                   m.redrive_count, "failed", error=why)


def redriven_headers(m: DeadLetterMessage) -> RecordHeaders:
    """The original headers, without the failure's `dlq.*` ones, and the count one higher."""
    kept = [(k, v) for k, v in m.headers if not k.startswith(DLQ_PREFIX)]
    return [*kept, (REDRIVE_COUNT, str(m.redrive_count + 1).encode())]


def _plan(m: DeadLetterMessage, result: str) -> Redrive:
    assert m.origin is not None
    return Redrive(m.ref, m.header("dlq.reason"), m.event_type(), "{}:{}:{}".format(*m.origin),
                   m.redrive_count + 1, result)


async def _already_sent(pool: asyncpg.Pool, group: str, topic: str) -> set[tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT DISTINCT dlq_partition, dlq_offset FROM hub_redrives"
        " WHERE group_id = $1 AND dlq_topic = $2 AND result = 'sent'", group, topic)
    return {(r["dlq_partition"], r["dlq_offset"]) for r in rows}


async def _send_one(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, group: str, topic: str,
    m: DeadLetterMessage, by: str,
) -> Redrive:
    plan = _plan(m, "pending")
    assert m.origin is not None
    origin_topic, origin_partition, origin_offset = m.origin
    row_id = await pool.fetchval(
        "INSERT INTO hub_redrives (redriven_by, group_id, dlq_topic, dlq_partition, dlq_offset,"
        " reason, event_type, origin_topic, origin_partition, origin_offset, redrive_count,"
        " result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending') RETURNING id",
        by, group, topic, m.partition, m.offset, plan.reason, plan.event_type,
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
            " WHERE id = $1", row_id, f"{type(exc).__name__}: {describe_error(exc)}"[:2000])
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
