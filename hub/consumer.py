"""The consumer runtime every agency view runs on.

Guarantees, and where they come from:

- A batch from Kafka is applied to the view in one Postgres transaction, and the offsets
  it consumed are written in that same transaction (`hub_consumer_offsets`). On partition
  assignment the consumer seeks to those stored offsets, so a crash, a redelivery or a
  rebalance can neither apply an event twice nor skip one. Kafka's own committed offsets
  are updated afterwards for operators' tools only; the hub never reads them back.
- The offset rows are locked (`FOR UPDATE`) at the start of each batch and records below
  the stored offset are dropped: a zombie instance that lost its partitions mid-batch
  cannot apply what the new owner already applied.
- A message that cannot be decoded, fails the schema or the envelope rules (source,
  subject, sequence), has an unknown type, has no key or a key that is not its subject,
  jumps too far above the version its view holds, or makes the handler raise a
  non-transient error goes to the group's dead-letter topic with the reason and its
  origin in headers. The dead letter is acknowledged by Kafka before the offset moves
  past it, so nothing is lost.
- Every record of the batch, with its outcome (applied, a peer's chain head recorded, or
  dead-lettered and why), is appended to the agency's evidence log in that same
  transaction (`hub.evidence`).
- Batches are pipelined: while one batch's transaction is in flight, the next is fetched and
  accepted (verified, decoded), never applied. Its transaction starts only once the one
  before has committed, and it drops the records of partitions no longer assigned (their
  owner, or this member after a new assignment, seeks to the stored offset). A crash or a
  cancellation drops the accepted batch with the transaction in flight: neither stored its
  offsets, so both are delivered again.
- Transient faults (Postgres or Kafka unreachable) are retried with backoff, never
  dead-lettered, never skipped. A batch still failing after the retry window
  (`HUB_RETRY_WINDOW_S`) with a fault of a healthy connection (a deadlock, the server out of
  memory, every time) is applied message by message: the message that keeps failing is
  dead-lettered as `retries_exhausted` and the group goes on. A connection fault is
  nobody's message: it is waited out however long it lasts.
- A stored offset outside the partition's log (below its start: retention deleted records
  the view never applied; above its end: the topic was recreated) stops that partition
  alone, with an error naming it, the offsets and the repair (`hub replay`): the rest of
  the group goes on, and nothing is skipped. The partition is checked again every
  `OUTSIDE_RECHECK_S` and resumes by itself once its stored offset is inside the log
  (the replay's switch moves it there).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from hub import metrics
from hub.db import Connection, lock_offsets, store_offsets, stored_offsets
from hub.delivery import BatchHandler, Delivery, Refusal, accept
from hub.errors import (
    ConfigurationFault,
    MessageRefused,
    RetriesExhausted,
    is_connection_fault,
    is_transient,
    retry_transient,
)
from hub.evidence import HEAD_TYPE, Entry, HeadRefused, append, record_heads
from hub.kafka import DeadLetter, Producer, dead_letter_record, quarantine_record
from hub.logging import get_logger
from hub.redaction import describe_error
from hub.signing import Verifier
from schemas import Codec

log = get_logger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """What an agency service hands the runtime: its group, topics, codec and handler."""

    group_id: str
    topics: tuple[str, ...]
    codec: Codec
    apply: BatchHandler
    dead_letter_topic: str
    verifier: Verifier


@dataclass
class ConsumerStats:
    """Counters for tests, benchmarks and status output."""

    batches: int = 0
    applied: int = 0
    skipped_below_stored: int = 0
    dead_lettered: int = 0
    last_commit_monotonic: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class OutsideLog:
    """A partition whose stored offset is not in its log: it cannot continue there, and
    must not continue anywhere else on its own (that would skip or re-apply records)."""

    topic: str
    partition: int
    stored: int
    log_start: int
    log_end: int

    @classmethod
    def check(cls, tp: TopicPartition, stored: int, start: int, end: int) -> OutsideLog | None:
        """The problem, if the stored offset is outside [log start, log end]."""
        if start <= stored <= end:
            return None
        return cls(tp.topic, tp.partition, stored, start, end)

    def message(self, group_id: str) -> str:
        """What happened and the repair, naming the group, partition and offsets only."""
        if self.stored < self.log_start:
            why = (f"below its log start {self.log_start}: records {self.stored}.."
                   f"{self.log_start - 1} were deleted (retention) before this view applied"
                   " them")
        else:
            why = (f"above its log end {self.log_end}: the topic was recreated or truncated"
                   " since this view applied records there")
        return (f"{group_id}: {self.topic}:{self.partition} is stopped: the stored offset"
                f" {self.stored} is {why}. Rebuild the view from what the topic holds with"
                f" `hub replay {group_id} --from earliest` (it moves the stored offset to the"
                " log start; add --accept-loss once you have checked what it reports lost)")


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue each partition from the offset stored in the view's database."""

    def __init__(self, runtime: ViewConsumer) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None  # Offsets live in the database; nothing to flush here.

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.runtime.seek_to_stored(list(assigned))


class ViewConsumer:
    """Runs one consumer-group member: fetch, decode, apply in one transaction, repeat."""

    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        kafka: Mapping[str, Any],
        pool: asyncpg.Pool,
        producer: Producer,
        max_records: int = 2000,
        timeout_ms: int = 100,
        client_id: str | None = None,
        retry_window_s: float = 60.0,
    ) -> None:
        self.spec = spec
        self.pool = pool
        self.producer = producer
        self.max_records = max_records
        self.timeout_ms = timeout_ms
        self.retry_window_s = retry_window_s
        """How long a batch is retried whole before it is applied message by message."""
        self.stats = ConsumerStats()
        self.assigned: set[TopicPartition] = set()
        self.kafka = kafka
        """The Kafka client options (`hub.kafka.client_options`): its principal's login."""
        self.client_id = client_id or spec.group_id
        self._consumer = self._new_kafka_consumer()
        self._stopping = asyncio.Event()
        self.done = asyncio.Event()
        """Set when `run` has returned or failed."""
        self._pending_mirror: dict[tuple[str, int], int] = {}
        self._mirror_task: asyncio.Task[None] | None = None
        self.outside: dict[TopicPartition, OutsideLog] = {}
        """Assigned partitions stopped because their stored offset is outside their log."""
        self._recheck_at = 0.0
        self.group_id = spec.group_id
        self._applied_to: dict[tuple[str, int], int] = {}
        """Per partition, the next offset its view will apply, as last placed or committed."""
        self._newest_event_time: float | None = None
        self._committed: _Committed | None = None
        self._idle_since = time.monotonic()
        self._landing: asyncio.Task[None] | None = None
        """The transaction of the batch in flight (`_land`), while the next is accepted."""
        metrics.watch_consumer(self)

    # lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()` is called or the task is cancelled."""
        try:
            await self._run()
        except (asyncio.CancelledError, ConfigurationFault):
            raise  # a configuration fault is the process's one line (hub.commands), no trace
        except Exception:
            log.exception("consumer failed", group=self.spec.group_id)
            raise
        finally:
            self.done.set()

    async def _run(self) -> None:
        await retry_transient(f"{self.spec.group_id}: start kafka consumer", self._start)
        log.info("consumer started", group=self.spec.group_id, topics=list(self.spec.topics))
        try:
            while not self._stopping.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self.timeout_ms, max_records=self.max_records
                )
                if batch:
                    # Accepting this batch overlaps the transaction of the one before.
                    taken = await self._accept(batch)
                    await self._drain()
                    self._landing = asyncio.create_task(self._land(taken))
                    self._idle_since = time.monotonic()
                    continue
                await self._drain()
                if self._stuck():
                    await self._restart_kafka_consumer()
                elif time.monotonic() - self._idle_since > self.IDLE_TICK_S:
                    await self._tick()
                if self.outside and time.monotonic() >= self._recheck_at:
                    await self._place(list(self.outside))
            await self._drain()  # stopping: the batch in hand lands
        finally:
            await self._abandon()
            if self._mirror_task is not None:
                self._mirror_task.cancel()
            await self._consumer.stop()
            log.info("consumer stopped", group=self.spec.group_id)

    async def _drain(self) -> None:
        """Wait for the batch in flight to commit (its failure is the loop's)."""
        landing, self._landing = self._landing, None
        if landing is not None:
            await landing

    async def _abandon(self) -> None:
        """Roll back the batch in flight, if the loop ends without draining it (a crash, a
        cancellation): its offsets were not stored, so it is delivered again."""
        landing, self._landing = self._landing, None
        if landing is None:
            return
        landing.cancel()
        await asyncio.wait([landing])
        if not landing.cancelled() and landing.exception() is not None:
            log.warning("batch in flight failed as the consumer stopped",
                        group=self.spec.group_id,
                        error_class=type(landing.exception()).__name__)

    def _new_kafka_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self.kafka,
            group_id=self.spec.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            # The broker answers a fetch as soon as any record is there (fetch_min_bytes 1),
            # so this bounds only an idle poll: 500 ms (Kafka's default) rather than 50
            # cuts the broker's CPU for idle consumers ~3x and adds no latency to a record.
            fetch_max_wait_ms=500,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=30_000,
        )

    async def _start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(list(self.spec.topics), listener=_SeekToStoredOffsets(self))
        self._unhealthy_since: float | None = None

    def _stuck(self) -> bool:
        """True when the member has been outside its group, or without partitions, too long.

        aiokafka can stay in that state for good after a broker restart (aio-libs/aiokafka
        #1154); its only sign is the coordinator's private `_rejoin_needed_fut`.
        """
        coordinator = getattr(self._consumer, "_coordinator", None)
        rejoin = getattr(coordinator, "_rejoin_needed_fut", None)
        generation = getattr(coordinator, "generation", 0)
        outside = (rejoin is not None and rejoin.done()) or generation < 0
        # A member can also sit in its group with nothing assigned after a rebalance that
        # raced a broker restart. That is legitimate only with more members than
        # partitions (a wasted instance), so it earns a longer grace before a restart.
        idle = not self._consumer.assignment()
        if not outside and not idle:
            self._unhealthy_since = None
            return False
        now = time.monotonic()
        if self._unhealthy_since is None:
            self._unhealthy_since = now
        limit = self.STUCK_AFTER_S if outside else self.IDLE_AFTER_S
        return now - self._unhealthy_since > limit

    IDLE_TICK_S = 5.0
    """After this long without a record, the agency's handlers get an empty batch: work
    that falls due with time (a held request's deadline, `hub.dispatch`) is done even
    when its topics are quiet."""

    async def _tick(self) -> None:
        self._idle_since = time.monotonic()

        async def apply() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await self.spec.apply(conn, [])

        await retry_transient(f"{self.group_id}: idle tick", apply,
                              on_retry=self.pool.expire_connections)

    STUCK_AFTER_S = 30.0
    IDLE_AFTER_S = 60.0
    OUTSIDE_RECHECK_S = 5.0

    def diagnostics(self) -> dict[str, Any]:
        """The Kafka client's group state, for operators and failing tests."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        rejoin = getattr(coordinator, "_rejoin_needed_fut", None)
        subscription = getattr(getattr(self._consumer, "_subscription", None), "subscription", None)
        assignment = getattr(subscription, "assignment", None)
        positions = {}
        for tp in self._consumer.assignment():
            state = assignment.state_value(tp) if assignment is not None else None
            positions[f"{tp.topic}:{tp.partition}"] = (
                state.position if state is not None and state.has_valid_position else None
            )
        return {
            "group": self.spec.group_id,
            "generation": getattr(coordinator, "generation", None),
            "coordinator": getattr(coordinator, "coordinator_id", None),
            "rejoin_pending": bool(rejoin is not None and rejoin.done()),
            "positions": positions,
            "stats": self.stats,
        }

    async def _restart_kafka_consumer(self) -> None:
        """Replace the Kafka client; safe at any time because offsets live in the database."""
        log.warning("kafka consumer outside its group or without partitions, recreating it"
                    " (more instances than partitions leave one idle)",
                    group=self.spec.group_id)
        await self._consumer.stop()
        self.assigned = set()
        self.outside = {}
        self._consumer = self._new_kafka_consumer()
        await retry_transient(f"{self.spec.group_id}: restart kafka consumer", self._start)

    def stop(self) -> None:
        """Ask the loop to finish after the batch in hand."""
        self._stopping.set()

    # assignment ------------------------------------------------------------------------

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Seek each newly assigned partition to its stored offset (its log start if none);
        stop one whose stored offset is outside its log (`OutsideLog`)."""
        self.assigned = set(self._consumer.assignment())
        self.outside = {tp: o for tp, o in self.outside.items() if tp in self.assigned}
        if not partitions:
            return
        await self._place(partitions)
        log.info(
            "partitions assigned",
            group=self.spec.group_id,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in partitions),
        )

    async def _place(self, partitions: list[TopicPartition]) -> None:
        """Seek to the stored offsets; pause the partitions whose offset is outside their
        log, resume those that were and no longer are."""
        stored = await retry_transient(
            f"{self.spec.group_id}: read stored offsets", lambda: self._read_offsets(partitions)
        )
        # Ask for the log bounds ourselves rather than seek_to_beginning: aiokafka's own
        # reset is not retried if the broker drops mid-request, which leaves the partition
        # without a position for good.
        starts = await retry_transient(
            f"{self.spec.group_id}: read log start offsets",
            lambda: self._consumer.beginning_offsets(partitions),
        )
        ends = await retry_transient(
            f"{self.spec.group_id}: read log end offsets",
            lambda: self._consumer.end_offsets(partitions),
        )
        self._recheck_at = time.monotonic() + self.OUTSIDE_RECHECK_S
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition), starts[tp])
            self._consumer.seek(tp, offset)
            self._applied_to[(tp.topic, tp.partition)] = offset
            outside = OutsideLog.check(tp, offset, starts[tp], ends[tp])
            if outside is not None:
                self._stop_partition(tp, outside)
            elif self.outside.pop(tp, None) is not None:
                self._consumer.resume(tp)
                log.info("partition resumed: its stored offset is inside its log",
                         group=self.spec.group_id, topic=tp.topic, partition=tp.partition,
                         offset=offset)

    def _stop_partition(self, tp: TopicPartition, outside: OutsideLog) -> None:
        # Fetching there would make Kafka reset the position (auto_offset_reset): records
        # skipped, or dropped below the stored offset. Paused, the partition waits.
        self._consumer.pause(tp)
        if self.outside.get(tp) != outside:
            log.error(outside.message(self.spec.group_id), group=self.spec.group_id,
                      topic=tp.topic, partition=tp.partition, stored=outside.stored,
                      log_start=outside.log_start, log_end=outside.log_end)
        self.outside[tp] = outside

    async def _read_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        async with self.pool.acquire() as conn:
            stored = await stored_offsets(conn, self.spec.group_id)
        return {(tp.topic, tp.partition): stored[(tp.topic, tp.partition)]
                for tp in partitions if (tp.topic, tp.partition) in stored}

    # batches ---------------------------------------------------------------------------

    def lag(self) -> dict[tuple[str, int], int]:
        """Per assigned partition, records in its log the view has not applied, as the last
        fetch saw the log's end (`hub.metrics`)."""
        out = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            applied = self._applied_to.get((tp.topic, tp.partition))
            if high is not None and applied is not None:
                out[(tp.topic, tp.partition)] = max(high - applied, 0)
        return out

    def newest_event_time(self) -> float | None:
        """The `time` of the newest event applied since start, seconds since the epoch."""
        return self._newest_event_time

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Apply one fetched batch exactly once, retrying transient faults until it lands."""
        await self._land(await self._accept(batch))

    ACCEPT_SLICE = 250
    """Records accepted between two yields to the event loop, so that the transaction in
    flight moves on (its next statement is sent) while the next batch is accepted."""

    async def _accept(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> _Taken:
        """Verify and decode a fetched batch, yielding to the transaction in flight."""
        started = time.perf_counter()
        deliveries: list[Delivery] = []
        dead: list[DeadLetter] = []
        for tp, records in batch.items():
            for i in range(0, len(records), self.ACCEPT_SLICE):
                taken, refused = self._decode({tp: records[i:i + self.ACCEPT_SLICE]})
                deliveries += taken
                dead += refused
                await asyncio.sleep(0)
        return _Taken(batch, deliveries, dead, started)

    async def _land(self, taken: _Taken) -> None:
        """Apply an accepted batch exactly once, retrying transient faults until it lands."""
        batch, deliveries, dead = self._assigned_only(taken)
        if not batch:
            return
        ends = {(tp.topic, tp.partition): records[-1].offset + 1 for tp, records in batch.items()}
        starts = {(tp.topic, tp.partition): records[0].offset for tp, records in batch.items()}
        try:
            ahead = await retry_transient(
                f"{self.spec.group_id}: apply batch",
                lambda: self._apply_batch(deliveries, dead, starts, ends),
                on_retry=self.pool.expire_connections,
                within=self.retry_window_s,
            )
        except RetriesExhausted as exc:
            log.warning(
                "batch still failing after the retry window, applying message by message",
                group=self.spec.group_id,
                size=len(deliveries),
                error_class=type(exc.__cause__).__name__,
            )
            ahead = await retry_transient(
                f"{self.spec.group_id}: apply batch message by message",
                lambda: self._apply_batch(deliveries, dead, starts, ends, exhausted=True),
                on_retry=self.pool.expire_connections,
            )
        for (topic, partition), stored in ahead.items():
            # Another member already applied past this batch: continue from there.
            tp = TopicPartition(topic, partition)
            if tp in self._consumer.assignment():
                self._consumer.seek(tp, stored)
        self.stats.batches += 1
        self.stats.last_commit_monotonic = time.monotonic()
        self._applied_to.update({k: ahead.get(k, v) for k, v in ends.items()})
        self._observe(taken.started, sum(len(r) for r in batch.values()))
        self._mirror_to_kafka(ends, ahead)

    def _assigned_only(
        self, taken: _Taken
    ) -> tuple[dict[TopicPartition, list[ConsumerRecord]], list[Delivery], list[DeadLetter]]:
        """The batch without the partitions revoked, or stopped (`OutsideLog`), since it
        was fetched.

        Dropping them skips nothing: a partition that is not ours is continued by its new
        owner from the stored offset, one assigned to us again was sought there
        (`seek_to_stored`), and a stopped one is sought there when it resumes (`_place`).
        """
        mine = self._consumer.assignment() - self.outside.keys()
        if all(tp in mine for tp in taken.batch):
            return taken.batch, taken.deliveries, taken.dead
        batch = {tp: r for tp, r in taken.batch.items() if tp in mine}
        keep = {(tp.topic, tp.partition) for tp in batch}
        log.info("records of revoked or stopped partitions dropped before their transaction",
                 group=self.spec.group_id,
                 partitions=sorted(f"{tp.topic}:{tp.partition}"
                                   for tp in taken.batch if tp not in mine))
        return (batch, [d for d in taken.deliveries if (d.topic, d.partition) in keep],
                [d for d in taken.dead if (d.topic, d.partition) in keep])

    def _observe(self, started: float, records: int) -> None:
        """Count what the committed batch did (`hub.metrics`)."""
        group, done = self.group_id, self._committed
        metrics.BATCH_SECONDS.labels(group).observe(time.perf_counter() - started)
        metrics.BATCH_RECORDS.labels(group).observe(records)
        if done is None:
            return
        for topic, n in done.applied.items():
            metrics.EVENTS_APPLIED.labels(group, topic).inc(n)
        for reason, n in done.dead.items():
            metrics.DEAD_LETTERED.labels(group, reason).inc(n)
        if done.dead.get("unauthenticated"):
            metrics.SIGNATURE_FAILURES.labels(group).inc(done.dead["unauthenticated"])
        if done.newest is not None and (self._newest_event_time or 0) < done.newest:
            self._newest_event_time = done.newest

    def _decode(
        self, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> tuple[list[Delivery], list[DeadLetter]]:
        deliveries: list[Delivery] = []
        dead: list[DeadLetter] = []
        for records in batch.values():
            for rec in records:
                accepted = accept(rec, self.spec.codec, self.spec.verifier)
                if isinstance(accepted, Refusal):
                    dead.append(DeadLetter.of(rec, accepted.reason, accepted.error))
                else:
                    deliveries.append(accepted)
        return deliveries, dead

    async def _apply_batch(
        self,
        deliveries: list[Delivery],
        dead: list[DeadLetter],
        starts: dict[tuple[str, int], int],
        ends: dict[tuple[str, int], int],
        *,
        exhausted: bool = False,
    ) -> dict[tuple[str, int], int]:
        self._committed = None
        async with self.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                ahead, done = await self._apply_in(conn, deliveries, dead, starts, ends,
                                                   exhausted=exhausted)
            except BaseException:
                await tx.rollback()
                raise
            committing = time.perf_counter()
            await tx.commit()
            metrics.COMMIT_SECONDS.labels(self.group_id).observe(
                time.perf_counter() - committing)
        self._committed = done
        self.stats.applied += sum(done.applied.values())
        self.stats.skipped_below_stored += done.skipped
        self.stats.dead_lettered += sum(done.dead.values())
        return ahead

    async def _apply_in(
        self,
        conn: Connection,
        deliveries: list[Delivery],
        dead: list[DeadLetter],
        starts: dict[tuple[str, int], int],
        ends: dict[tuple[str, int], int],
        *,
        exhausted: bool,
    ) -> tuple[dict[tuple[str, int], int], _Committed]:
        """The batch's work inside its transaction: what was ahead, and what it did."""
        stored = await lock_offsets(conn, self.spec.group_id, list(ends))
        ahead = {k: v for k, v in stored.items() if v >= ends[k]}
        floor = {k: stored.get(k, starts[k]) for k in ends}
        todo = [d for d in deliveries if d.offset >= floor[(d.topic, d.partition)]]
        dead = [d for d in dead if d.offset >= floor[(d.topic, d.partition)]]
        skipped = len(deliveries) - len(todo)
        heads = [d for d in todo if d.event.type == HEAD_TYPE]
        views = [d for d in todo if d.event.type != HEAD_TYPE]
        failed = await self._apply_isolating(conn, views, exhausted=exhausted)
        refused = await record_heads(conn, heads)
        dead = dead + failed + [
            DeadLetter.of_delivery(d, "unauthenticated", HeadRefused(
                f"a chain head signed by {d.signer} names another agency"))
            for d in refused]
        if dead:
            await self._send_dead_letters(dead)
        await append(conn, _evidence(views, heads, dead))
        advance = {k: v for k, v in ends.items() if k not in ahead}
        await store_offsets(conn, self.spec.group_id, advance)
        return ahead, _Committed.of(todo, failed, dead, skipped)

    async def _apply_isolating(
        self, conn: Connection, todo: list[Delivery], *, exhausted: bool = False
    ) -> list[DeadLetter]:
        """Apply the whole batch; if a message breaks it, apply one by one to find which.

        `exhausted`: the batch outlasted its retry window, so go one by one at once, and a
        message failing with a fault that may pass (not a connection fault) is its own.
        """
        if not todo:
            return []
        if not exhausted:
            try:
                async with conn.transaction():
                    await self.spec.apply(conn, todo)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.warning(
                    "batch failed, isolating the message at fault",
                    group=self.spec.group_id,
                    size=len(todo),
                    error_class=type(exc).__name__,
                )
            else:
                return []
        failed: list[DeadLetter] = []
        for delivery in todo:
            try:
                async with conn.transaction():
                    await self.spec.apply(conn, [delivery])
            except Exception as exc:
                if is_connection_fault(exc) or (is_transient(exc) and not exhausted):
                    raise
                with structlog.contextvars.bound_contextvars(**delivery.bind()):
                    log.error(  # noqa: TRY400 - the error is routed with its message, no trace
                        "handler failed, dead-lettering",
                        group=self.spec.group_id,
                        error_class=type(exc).__name__,
                        error=describe_error(exc),
                    )
                failed.append(DeadLetter.of_delivery(delivery, _reason(exc), exc))
        return failed

    async def _send_dead_letters(self, dead: list[DeadLetter]) -> None:
        now = datetime.now(UTC)
        futures = [await self._send_dead_letter(d, now) for d in dead]
        acks = await asyncio.gather(*futures, return_exceptions=True)
        for d, ack in zip(dead, acks, strict=True):
            if isinstance(ack, BaseException):
                if is_transient(ack):
                    raise ack
                # Refused by the broker (too large after all, a bad header): quarantine.
                await (await self._quarantine(d, now, ack))
        for d in dead:
            log.warning(
                "dead-lettered",
                group=self.spec.group_id,
                reason=d.reason,
                topic=d.topic,
                partition=d.partition,
                offset=d.offset,
                event_id=d.event_id,
                event_type=d.event_type,
                error_class=d.error_class,
                error=d.error_message[:300],
            )

    async def _send_dead_letter(self, d: DeadLetter, now: datetime) -> asyncio.Future[Any]:
        """Queue one dead letter; one that cannot be built or queued goes to quarantine, so a
        record never stops the stream."""
        try:
            rec = dead_letter_record(d, self.spec.dead_letter_topic, self.spec.group_id, now)
            return await self.producer.send(rec.topic, key=rec.key, value=rec.value,
                                            headers=rec.headers)
        except Exception as exc:
            if is_transient(exc):
                raise
            return await self._quarantine(d, now, exc)

    async def _quarantine(
        self, d: DeadLetter, now: datetime, exc: BaseException
    ) -> asyncio.Future[Any]:
        log.error("dead letter not sendable, quarantining it", group=self.spec.group_id,
                  topic=d.topic, partition=d.partition, offset=d.offset,
                  error_class=type(exc).__name__)
        rec = quarantine_record(d, self.spec.dead_letter_topic, self.spec.group_id, now, exc)
        return await self.producer.send(rec.topic, key=rec.key, value=rec.value,
                                        headers=rec.headers)

    def _mirror_to_kafka(
        self, ends: dict[tuple[str, int], int], ahead: dict[tuple[str, int], int]
    ) -> None:
        """Mirror the stored offsets into Kafka so `kafka-consumer-groups` shows true lag.

        Informational only, so it never blocks the batch loop: a commit can wait a long time
        for a coordinator during a broker restart. At most one is in flight; the next batch
        carries newer offsets anyway.
        """
        self._pending_mirror.update(
            {(t, p): ahead.get((t, p), o) for (t, p), o in ends.items()}
        )
        if self._mirror_task is None or self._mirror_task.done():
            self._mirror_task = asyncio.create_task(self._mirror_once())

    async def _mirror_once(self) -> None:
        mine = self._consumer.assignment()
        offsets = {
            TopicPartition(t, p): o
            for (t, p), o in self._pending_mirror.items()
            if TopicPartition(t, p) in mine
        }
        self._pending_mirror.clear()
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), timeout=10)
        except Exception as exc:  # the database holds the truth; Kafka's copy may lag
            log.debug("kafka offset mirror skipped", error_class=type(exc).__name__)


GC_GEN0_THRESHOLD = 50_000
"""Allocations between two young collections in a process running the hub (CPython's
default is 700)."""


def tune_gc() -> None:
    """Set a long-running hub process's garbage collector for batches: once started, move
    everything alive (modules, models, schemas) out of the collector's sight (`gc.freeze`),
    and collect the young generation every 50,000 allocations instead of 700.

    A batch keeps thousands of decoded events alive until its transaction commits, so with
    the defaults young collections keep promoting them and trigger full collections that
    walk every object the process holds. Reference counting still frees each batch; cycles
    are still collected, less often. Measured in BENCHMARKS.md (consumer CPU per event)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


@dataclass(frozen=True)
class _Taken:
    """A fetched batch, accepted: what its transaction will apply and dead-letter."""

    batch: dict[TopicPartition, list[ConsumerRecord]]
    deliveries: list[Delivery]
    dead: list[DeadLetter]
    started: float
    """When its acceptance began (`time.perf_counter`), for the batch duration metric."""


@dataclass(frozen=True)
class _Committed:
    """What one committed batch did, counted once it committed (`hub.metrics`)."""

    applied: dict[str, int]
    """Per topic read, the events applied."""
    dead: dict[str, int]
    """Per reason, the records dead-lettered."""
    newest: float | None
    """The newest applied event's `time`, seconds since the epoch."""
    skipped: int
    """Records below the stored offset (another member applied them): not applied again."""

    @classmethod
    def of(cls, todo: list[Delivery], failed: list[DeadLetter],
           dead: list[DeadLetter], skipped: int) -> _Committed:
        lost = {(d.topic, d.partition, d.offset) for d in failed}
        applied: dict[str, int] = {}
        newest: float | None = None
        for d in todo:
            if (d.topic, d.partition, d.offset) in lost:
                continue
            applied[d.topic] = applied.get(d.topic, 0) + 1
            at = d.event.time.timestamp()
            newest = at if newest is None or at > newest else newest
        reasons: dict[str, int] = {}
        for letter in dead:
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        return cls(applied, reasons, newest, skipped)


def _reason(exc: BaseException) -> str:
    """The dead-letter reason of a message its handler could not apply."""
    if isinstance(exc, MessageRefused):
        return exc.reason
    # Only reached once the batch outlasted its retry window (see _apply_isolating).
    return "retries_exhausted" if is_transient(exc) else "handler_error"


def _evidence(
    views: list[Delivery], heads: list[Delivery], dead: list[DeadLetter]
) -> list[Entry]:
    """What one batch adds to the evidence log, in Kafka's order."""
    refused = {(d.topic, d.partition, d.offset) for d in dead}
    entries = [Entry.of_dead_letter(d) for d in dead]
    entries += [Entry.of_delivery(d, "applied") for d in views
                if (d.topic, d.partition, d.offset) not in refused]
    entries += [Entry.of_delivery(d, "recorded") for d in heads
                if (d.topic, d.partition, d.offset) not in refused]
    return sorted(entries, key=lambda e: (e.topic, e.partition, e.offset))
