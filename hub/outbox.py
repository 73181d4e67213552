"""The transactional outbox and its relay to Kafka.

A service writes its state change and the event about it in one Postgres transaction
(`enqueue`); the relay publishes outbox rows with the idempotent producer, signed, and
deletes them only after Kafka acknowledged them, logging each as sent in the agency's
evidence log (`hub.evidence`) in the transaction that deletes it. If the relay or Kafka
dies mid-way the rows are still there and are sent again; consumers drop the duplicate by
its `sequence`.

One relay is active per database at a time (a session advisory lock); others wait as hot
standbys. NOTIFY wakes the active relay as soon as a transaction commits: sent in the
writer's transaction by `enqueue`, or after the commit by `RelayWaker` (module docstring of
`_WAKE` for why); without one the relay looks again `BUSY_POLL_S` after a look that found
rows, and every `IDLE_POLL_S` otherwise.

The relay never blocks on one row. A row Kafka refuses for the record itself (larger than
the producer's `max_request_size`, found before the batch is signed; or refused by the
broker as too large or invalid) is parked in `hub_outbox_parked` with its error, and the
relay goes on with the next rows (`hub outbox parked` lists them, `hub outbox retry` puts
them back). Parking keeps each subject's order: the later rows of a parked row's subject
(same topic and key) stay in the outbox, unsent, until it is retried under its own id, so a
consumer never sees a permit's event n+1 before event n. Sending them past it would lose
event n for good (stale by its sequence when it came back) and, more than 10 events on,
run into the consumers' sequence jump limit. Other subjects are not held. Faults that are
not the row's (Kafka unreachable, a refused password or right) are not parked: the whole
batch is retried, or the relay stops naming what to fix.

A row whose topic is a channel published per audience (`hub.agency.Channel.per_audience`,
the permit lifecycle) is sent once per reading agency, to that agency's topic and cut down
to what it reads (`fanout`, `hub.agency.Fanout`: each row parsed once); the row is deleted
when every copy is acknowledged, and each copy is one record of the batch's signed tree and
one row of the evidence log. A copy Kafka refuses parks the whole row; copies already acknowledged
are sent again with it (consumers drop them by `sequence`).

`enqueue` refuses, before the caller commits, an event larger than `MAX_EVENT_BYTES`, so a
valid event is parked only when a limit is set below what the hub assumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import errors as kafka_errors

from hub import metrics, tracing
from hub.db import Connection
from hub.errors import Backoff, MessageRefused, raise_unless_transient
from hub.evidence import append, sent_entry
from hub.evidence_chain import TREE_HEADER
from hub.kafka import Headers, Producer
from hub.logging import get_logger
from hub.redaction import describe_error
from hub.signing import SIGNATURE_HEADER, SigningKey
from schemas import CONTENT_TYPE, CloudEvent

log = get_logger(__name__)

CHANNEL = "hub_outbox"

MAX_EVENT_BYTES = 256 * 1024
"""The largest encoded event `enqueue` accepts: a quarter of Kafka's record limit (1 MiB), so
the headers added later (the batch signature and Merkle path, a dead letter's `dlq.*`)
never take a valid event over it. The v1 schemas bound strings but not collections (a
family of 5,000 encodes to 1.18 MB), and a bound added to a published version is a
narrowing that FULL_TRANSITIVE refuses: this limit is what keeps events sendable."""

SIGNATURE_ALLOWANCE = 1024
"""Bytes kept for the headers the relay adds to a row (`jws` ~150, `jws-tree` ~45 per level
of the batch's Merkle tree) when it checks, before signing, that the row fits a request."""

_REFUSED_RECORD: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,  # the producer's limit, or the broker's
    kafka_errors.RecordListTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidTimestampError,
)
"""Kafka's refusals of one record for what it is: retrying cannot help, other rows can go."""


Fanout = Callable[[bytes], list[tuple[str, bytes]]]
"""The records one outbox value becomes, (topic, value), for a topic published per
audience (`hub.agency.Fanout`)."""


class EventTooLarge(MessageRefused):
    """An event too large for the outbox (`MAX_EVENT_BYTES`): refused before its transaction
    commits; in a consumer, the message whose outcome it is is dead-lettered."""

    reason = "outcome_too_large"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish once the transaction that wrote it commits."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers

    @classmethod
    def of_event(cls, topic: str, event: CloudEvent[Any]) -> OutgoingMessage:
        """A structured-mode CloudEvent keyed by its subject."""
        headers = [("content-type", CONTENT_TYPE.encode())]
        return cls(topic, event.subject.encode(), event.to_json(), headers)


async def enqueue(conn: Connection, messages: Sequence[OutgoingMessage]) -> None:
    """Write messages to the outbox inside the caller's transaction, and wake the relay;
    `EventTooLarge` (the caller's transaction then rolls back) for one over MAX_EVENT_BYTES."""
    if not messages:
        return
    await conn.executemany(
        "INSERT INTO hub_outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4::jsonb)",
        [outbox_row(m) for m in messages],
    )
    await conn.execute(f"NOTIFY {CHANNEL}")


OutboxRow = tuple[str, bytes | None, bytes, str]
"""An outbox row's topic, key, value and headers (JSON), in `OUTBOX_COLUMNS`' order."""

OUTBOX_COLUMNS = "hub_outbox (topic, key, value, headers)"
"""The columns an `OutboxRow` fills, for a statement that writes its own state change and the
outbox row at once (`INSERT INTO {OUTBOX_COLUMNS} SELECT $5, $6, $7, $8::jsonb FROM changed`,
the work-permit authority's commands): one statement is one transaction, so the row and the
change commit together as `enqueue`'s do. Such a writer wakes the relay after its commit
(`RelayWaker`)."""


def outbox_row(m: OutgoingMessage) -> OutboxRow:
    """The outbox row of one message; `EventTooLarge` for one over MAX_EVENT_BYTES (raised
    before anything is written, so the caller's change is not made either)."""
    if len(m.value) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"an event for {m.topic} encodes to {len(m.value):,} bytes,"
                            f" over the outbox's limit of {MAX_EVENT_BYTES:,}")
    return (m.topic, m.key, m.value, _headers_json(m.headers))


_WAKE = f"SELECT set_config('synchronous_commit', 'off', true), pg_notify('{CHANNEL}', '')"
"""A NOTIFY in a transaction of its own that does not wait for its commit to reach the disk:
a wake-up lost to a crash costs the relay's poll interval at most (it polls every second and
relays everything on start), while a NOTIFY inside a writer's transaction holds Postgres'
cluster-wide notify lock through that transaction's fsync, so every writer that notifies
commits one after the other and group commit cannot help them."""


class RelayWaker:
    """Wakes a database's outbox relay after commits, outside them (`_WAKE`), in the
    background: a command never waits for it (the NOTIFY may wait for Postgres' notify lock,
    held by other databases' writers through their fsync).

    `wake()` after each commit that wrote outbox rows. One NOTIFY is in flight at a time, on
    a connection of the writer's pool; the commits made while it is in flight are covered by
    one more after it, so the relay's look after the last wake-up finds every commit that
    asked for one, and under load it gets a wake-up per round trip, not per commit. A
    wake-up comes late when the pool is busy: a relay that found rows looks again after
    `OutboxRelay.BUSY_POLL_S` anyway. A failed NOTIFY is logged at debug and not retried:
    the relay polls."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def wake(self) -> None:
        """Wake the relay soon: its next look finds the commits made before this call."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._again = False
        self._task = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while True:
            try:
                await self.pool.execute(_WAKE)
            except Exception as exc:  # the relay polls; a closing pool ends here too
                log.debug("relay wake-up not sent", error_class=type(exc).__name__)
                return
            if not self._again:
                return
            self._again = False

    async def flush(self) -> None:
        """Wait for the wake-up in flight, if any (before closing the pool)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _headers_json(headers: Headers) -> str:
    return json.dumps([[k, v.decode("utf-8", "backslashreplace")] for k, v in headers])


def _stored_headers(row: asyncpg.Record) -> Headers:
    return [(k, v.encode()) for k, v in json.loads(row["headers"])]


class OutboxRelay:
    """Publishes one database's outbox to Kafka, in order, at least once."""

    LOCK_KEY = 0x6875626F  # "hubo": one active relay per database

    def __init__(
        self, dsn: str, producer: Producer, signer: Callable[[], SigningKey], *,
        batch_size: int = 1000,
        fanout: Mapping[str, Fanout] | None = None,
        name: str = "outbox",
    ) -> None:
        self.dsn = dsn
        self.name = name
        """Whose outbox it relays (the agency), as its metrics are labelled."""
        self.live = metrics.LiveRelay(name)
        metrics.watch_relay(self.live)
        self._looked_at = 0.0
        self.fanout = dict(fanout or {})
        """Per outbox topic published per audience: where its rows go (`hub.agency.Fanout`)."""
        self.producer = producer
        self.signer = signer
        """The agency's active key, asked for once per batch: every batch is signed as it
        leaves (one JWS over its Merkle root, hub.signing), and a rotation takes effect at
        the next batch."""
        self.batch_size = batch_size
        self.published = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.active = asyncio.Event()
        self.done = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand and return from `run`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped, reconnecting after transient faults."""
        try:
            await self._run()
        finally:
            self.done.set()

    async def _run(self) -> None:
        backoff = Backoff(cap=5.0)
        while not self._stopping.is_set():
            try:
                await self._run_connected()
                backoff.reset()
            except Exception as exc:
                raise_unless_transient(exc)  # a refused password stops the relay, one line
                self.active.clear()
                log.warning(
                    "outbox relay lost a connection, retrying",
                    error_class=type(exc).__name__,
                    error=describe_error(exc)[:300],
                )
                await backoff.wait()

    async def _run_connected(self) -> None:
        conn: Connection = await asyncpg.connect(self.dsn)
        try:
            await self._become_active(conn)
            if self._stopping.is_set():
                return
            await conn.add_listener(CHANNEL, self._on_notify)
            self.active.set()
            log.info("outbox relay active")
            while not self._stopping.is_set():
                sent = await self._relay_once(conn)
                await self._look(conn)
                if sent == 0:
                    await self._sleep_until_woken(self.IDLE_POLL_S)
                elif sent < self.batch_size:
                    await self._sleep_until_woken(self.BUSY_POLL_S)
        finally:
            self.active.clear()
            await conn.close(timeout=5)

    async def _become_active(self, conn: Connection) -> None:
        announced = False
        while not self._stopping.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.LOCK_KEY):
                return
            if not announced:
                log.info("another outbox relay is active; standing by")
                announced = True
            await asyncio.sleep(0.5)

    IDLE_POLL_S = 1.0
    """How long the relay waits for a NOTIFY after a look that found nothing."""

    BUSY_POLL_S = 0.01
    """How long it waits after a look that found rows (and fewer than a batch): while commits
    keep coming it looks again soon even if a wake-up is late or lost (`RelayWaker`)."""

    LOOK_EVERY_S = 2.0
    """How often the relay counts its outbox for `hub.metrics` (a scrape never queries)."""

    async def _look(self, conn: Connection) -> None:
        """Count the rows waiting and parked, and the oldest waiting row's time."""
        if time.monotonic() - self._looked_at < self.LOOK_EVERY_S:
            return
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM hub_outbox) AS backlog,"
            " (SELECT extract(epoch FROM min(created_at)) FROM hub_outbox) AS oldest,"
            " (SELECT count(*) FROM hub_outbox_parked) AS parked")
        assert row is not None
        oldest = row["oldest"]
        self.live.look = metrics.OutboxLook(row["backlog"], None if oldest is None
                                            else float(oldest), row["parked"])
        self._looked_at = time.monotonic()

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _sleep_until_woken(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _relay_once(self, conn: Connection) -> int:
        self._wake.clear()
        rows = await conn.fetch(_NEXT_ROWS, self.batch_size)
        if not rows:
            return 0
        copies = {row["id"]: self._copies(row) for row in rows}
        too_large = [(row, exc) for row in rows
                     if (exc := self._too_large(copies[row["id"]])) is not None]
        if too_large:
            # Before the batch is signed, so a parked row is in no signed batch.
            async with conn.transaction():
                await _park(conn, too_large)
        sendable = _unblocked(rows, {row["id"] for row, _ in too_large})
        if sendable:
            await self._send_batch(conn, [c for row in sendable for c in copies[row["id"]]])
        return len(rows)

    def _copies(self, row: asyncpg.Record) -> list[_Copy]:
        """The records one outbox row becomes: itself, or one per audience of its topic."""
        headers = _stored_headers(row)
        fan_out = self.fanout.get(row["topic"])
        if fan_out is None:
            return [_Copy(row, row["topic"], row["value"], headers)]
        return [_Copy(row, topic, value, headers) for topic, value in fan_out(row["value"])]

    def _too_large(self, copies: list[_Copy]) -> kafka_errors.MessageSizeTooLargeError | None:
        """The producer's refusal of a row's records, found before the batch is signed; None
        if each fits a request with the signature headers it will get."""
        for c in copies:
            size = SIGNATURE_ALLOWANCE + self.producer.record_size(
                c.row["key"], c.value, c.headers)
            if size > self.producer.max_request_size:
                return kafka_errors.MessageSizeTooLargeError(
                    f"{size:,} bytes with its headers, over the producer's max_request_size of"
                    f" {self.producer.max_request_size:,}")
        return None

    async def _send_batch(self, conn: Connection, copies: list[_Copy]) -> None:
        # One span per batch, linked to the work behind its events (at most 128 links,
        # OpenTelemetry's default limit): the hop from a commit to Kafka, in each trace.
        links = [link for link in (tracing.link(_trace_of(c.value))
                                   for c in copies[:128]) if link is not None]
        with tracing.span(f"publish {self.name}", kind=tracing.SpanKind.PRODUCER, links=links,
                          attributes={"messaging.batch.message_count": len(copies)}):
            await self._send_batch_in(conn, copies)

    async def _send_batch_in(self, conn: Connection, copies: list[_Copy]) -> None:
        key = self.signer()
        # One signature for the batch, over the Merkle root of its values (hub.signing).
        jws, places = key.sign_batch([c.value for c in copies])
        sent_headers = [[*c.headers, (SIGNATURE_HEADER, jws), (TREE_HEADER, place)]
                        for c, place in zip(copies, places, strict=True)]
        outcomes = await self._send(copies, sent_headers)
        refused: dict[int, tuple[asyncpg.Record, BaseException]] = {}
        for c, o in zip(copies, outcomes, strict=True):
            if isinstance(o, BaseException):
                if not isinstance(o, _REFUSED_RECORD):
                    raise o  # not the row's fault: the batch is sent again, or the relay stops
                refused.setdefault(c.row["id"], (c.row, o))
        sent = [(c, headers, ack) for c, headers, ack in zip(copies, sent_headers, outcomes,
                                                             strict=True)
                if not isinstance(ack, BaseException)]
        done = list(dict.fromkeys(c.row["id"] for c, _, _ in sent if c.row["id"] not in refused))
        # Only what Kafka acknowledged is deleted (and logged as sent, where it landed); a
        # crash before the commit re-sends, and the evidence log then holds the second copy.
        # A row the broker refused after the batch was signed is parked in the same commit
        # (with it, any copy of it already acknowledged goes again when it is retried); its
        # leaf stays in that batch's tree, a hash of a record nobody received.
        async with conn.transaction():
            await append(conn, [
                sent_entry(ack.topic, ack.partition, ack.offset, c.value, headers,
                           key.signer, key.kid, **_identity(c.value))
                for c, headers, ack in sent])
            await conn.execute("DELETE FROM hub_outbox WHERE id = ANY($1::bigint[])", done)
            await _park(conn, list(refused.values()))
        self.published += len(sent)
        per_topic: dict[str, int] = {}
        for c, _, _ in sent:
            per_topic[c.topic] = per_topic.get(c.topic, 0) + 1
        for topic, n in per_topic.items():
            metrics.PUBLISHED.labels(self.name, topic).inc(n)

    async def _send(self, copies: list[_Copy], headers: list[Headers]) -> list[Any]:
        """Each record's acknowledgement, or the error Kafka refused it with."""
        futures: list[asyncio.Future[Any]] = []
        for c, row_headers in zip(copies, headers, strict=True):
            try:
                futures.append(await self.producer.send(
                    c.topic, key=c.row["key"], value=c.value, headers=row_headers))
            except _REFUSED_RECORD as exc:  # refused by the producer before it was sent
                refusal: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                refusal.set_exception(exc)
                futures.append(refusal)
        return await asyncio.gather(*futures, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Copy:
    """One record an outbox row is sent as: to its topic, or to one audience's."""

    row: asyncpg.Record
    topic: str
    value: bytes
    headers: Headers


_NEXT_ROWS = """
SELECT id, topic, key, value, headers FROM hub_outbox o
 WHERE NOT EXISTS (SELECT 1 FROM hub_outbox_parked p WHERE p.topic = o.topic AND p.key = o.key)
 ORDER BY id LIMIT $1
"""
"""The next rows to relay, leaving those whose subject has a row parked (module docstring)."""


def _unblocked(rows: list[asyncpg.Record], parked: set[int]) -> list[asyncpg.Record]:
    """The rows of a batch that may go now: neither parked nor behind a parked row of their
    subject (those stay in the outbox, held by `_NEXT_ROWS` until the parked row is back)."""
    blocked: set[tuple[str, bytes]] = set()
    free = []
    for row in rows:
        subject = (row["topic"], row["key"])
        if row["id"] in parked:
            blocked.add(subject)
        elif subject not in blocked or row["key"] is None:
            free.append(row)
    return free


async def _park(conn: Connection, refused: Sequence[tuple[asyncpg.Record, BaseException]]) -> None:
    """Move refused rows from the outbox to `hub_outbox_parked`, with their error."""
    if not refused:
        return
    await conn.executemany(
        "WITH moved AS (DELETE FROM hub_outbox WHERE id = $1 RETURNING *)"
        " INSERT INTO hub_outbox_parked"
        " (id, topic, key, value, headers, created_at, error_class, error)"
        " SELECT id, topic, key, value, headers, created_at, $2, $3 FROM moved",
        [(row["id"], type(exc).__name__, describe_error(exc)[:1000]) for row, exc in refused],
    )
    for row, exc in refused:
        # The row's id, topic and size: its key and content may be personal.
        log.error("outbox row parked: Kafka refused it, the relay goes on without it"
                  " (`hub outbox parked`)", outbox_id=row["id"], topic=row["topic"],
                  size=len(row["value"]), error_class=type(exc).__name__,
                  error=describe_error(exc)[:300])


@dataclass(frozen=True, slots=True)
class ParkedRow:
    """An outbox row the relay could not send, as `hub outbox parked` shows it."""

    id: int
    topic: str
    key: bytes | None
    size: int
    created_at: datetime
    parked_at: datetime
    error_class: str
    error: str
    held: int
    """Later rows of the same subject waiting in the outbox behind it."""


async def parked(conn: Connection) -> list[ParkedRow]:
    """Every parked row of this database, oldest first."""
    rows = await conn.fetch(
        "SELECT p.id, p.topic, p.key, length(p.value) AS size, p.created_at, p.parked_at,"
        " p.error_class, p.error, (SELECT count(*) FROM hub_outbox o"
        "  WHERE o.topic = p.topic AND o.key = p.key) AS held"
        " FROM hub_outbox_parked p ORDER BY p.id")
    return [ParkedRow(**dict(r)) for r in rows]


async def unpark(conn: Connection, ids: Sequence[int] | None) -> list[int]:
    """Put parked rows (all when `ids` is None) back into the outbox under their own ids, so
    each goes before the rows of its subject held behind it; wake the relay. The ids moved."""
    async with conn.transaction():
        moved = await conn.fetch(
            "WITH moved AS (DELETE FROM hub_outbox_parked"
            "  WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[]) RETURNING *)"
            " INSERT INTO hub_outbox (id, topic, key, value, headers, created_at)"
            " SELECT id, topic, key, value, headers, created_at FROM moved RETURNING id",
            None if ids is None else list(ids))
        await conn.execute(f"NOTIFY {CHANNEL}")
    return sorted(r["id"] for r in moved)


def _trace_of(value: bytes) -> tracing.TraceContext | None:
    """The trace context an outbox value carries (None: none, or no JSON event)."""
    if not tracing.recording() or b'"traceparent"' not in value:
        return None
    try:
        event = json.loads(value)
    except ValueError:
        return None
    parent = event.get("traceparent") if isinstance(event, dict) else None
    return tracing.TraceContext(parent, event.get("tracestate")) if isinstance(
        parent, str) else None


def _identity(value: bytes) -> dict[str, str | None]:
    """The CloudEvent id, type and subject of an outbox value, for the evidence log."""
    try:
        event = json.loads(value)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        event = {}
    return {k: (str(event[f]) if event.get(f) is not None else None)
            for k, f in (("event_id", "id"), ("event_type", "type"), ("subject", "subject"))}
