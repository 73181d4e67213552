"""Routing a batch of deliveries to an agency's plain handlers, inside the batch transaction.

Two kinds of work, in the order the events arrived:

- **projections** turn an event into a view row; consecutive ones are merged in bulk
  (`ViewTable.upsert_latest`), the fast path of a rebuild;
- **handlers** are plain async functions `(event, view) -> [Emit, ...]` that decide an
  outcome against the agency's own view. A request's handler sees every earlier event of
  the batch applied to the view; a handler of a projected event (event-carried state)
  reads the record the event carries, while the bulk merge of the batch goes on. Their
  outcomes are written to the agency's outbox in the same transaction, each with the
  next `sequence` of its subject, so an outcome is published if and only if the decision
  is committed.

Each event reaches a handler at most once: its id is recorded in `hub_handled_events` in
the same transaction, so a redelivered or republished request yields no second outcome.

A handler that must check a time its request claims against when the request reached Kafka
is registered with `on_received` and gets a third argument, `Received`; it stays a plain
function a test calls with the time it chooses.

**Early requests are held, not refused.** A request can name a permit (or a document issued
on it) that has not reached the agency yet: the authority's event and the front door's
request travel on different topics. Its handler then returns `Hold(key, reason)` instead of
outcomes, and the router keeps the request (`hub_held_requests`) until an event that
releases `key` has been applied (`releases`; every projected event releases its subject),
or until the hold period of its type (`hold_for`) has passed since it reached Kafka. Then
the same handler decides it; past the deadline `Received.final` is true and it must decide
(refuse, saying why). Time here is the stream's: the newest record timestamp of the batch
being applied; when the agency's topics are quiet, the consumer applies an empty batch
now and then (`hub.consumer.ViewConsumer.IDLE_TICK_S`), and the clock's time stands in.

**One request id, one answer.** A request type registered with `on_request` names its
request id; the outbox records of the first answer to an id are kept
(`hub_request_answers`), and a resubmission with the same id and the same data gets those
very records again (same event ids: it is the same decision), without the handler being
asked twice. A submission with the same id and other data goes to the handler, whose rules
refuse it as a duplicate; one whose id is held waits behind it and is answered the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeAlias, TypeVar

from pydantic import BaseModel

from hub import tracing
from hub.db import Connection
from hub.delivery import BatchHandler, Delivery
from hub.outbox import OutgoingMessage, enqueue
from hub.projection import ViewTable
from schemas.envelope import CONTENT_TYPE, CloudEvent

V = TypeVar("V")



@dataclass(frozen=True)
class Emit:
    """An outcome a handler decided: its event type, subject and payload."""

    event_type: type[CloudEvent[Any]]
    subject: str
    data: BaseModel


@dataclass(frozen=True)
class Hold:
    """A request that cannot be decided yet: keep it until an event releasing `key` (the
    permit number, or the number of a document issued on it) is applied, or its hold period ends."""

    key: str
    reason: str
    """Why it waits, as a code (e.g. `permit_unknown`): recorded, never personal."""


@dataclass(frozen=True)
class Received:
    """What the runtime knows of an event's record beyond the event: when Kafka took it,
    and, for a held request, since when it waits and whether it must be decided now."""

    at: datetime
    """The record's timestamp: the broker's clock, as hub topics use LogAppendTime."""
    held_since: datetime | None = None
    """When the request was first held (None: it is seen for the first time)."""
    final: bool = False
    """The hold period has passed: the handler must decide (a `Hold` now is an error)."""

    @classmethod
    def of(cls, delivery: Delivery) -> Received:
        """The record time of a delivery."""
        return cls(datetime.fromtimestamp(delivery.timestamp_ms / 1000, UTC))


Handler = Callable[[Any, V], Awaitable[Sequence[Emit]]]
"""A plain decision function: the event and the agency's view in, outcomes out."""

ReceivedHandler = Callable[[Any, V, Received], Awaitable[Sequence[Emit] | Hold]]
"""A decision function that also needs when its record reached Kafka (`Router.on_received`),
and may hold a request it cannot decide yet (`Hold`)."""

Keys = Callable[[Any], Iterable[str]]
"""The keys an applied event releases (`Router.releases`)."""

Prefetch = Callable[[V, Sequence[CloudEvent[Any]]], Awaitable[None]]
"""Reads a batch's handlers will make, done at once for the batch (`Router.prefetch`)."""

Finish = Callable[[V], Awaitable[None]]
"""Writes the view deferred to the end of the batch (`Router.finish`)."""


class HoldRefused(RuntimeError):
    """A handler held a request it was told to decide (`Received.final`), or one of several
    handlers of a type held it: a programming error, never a decision."""


@dataclass(frozen=True)
class Merge:
    """Merge these rows into their view tables in bulk, one `upsert_latest` per table."""

    rows: tuple[tuple[ViewTable, tuple[tuple[Any, ...], ...]], ...]


@dataclass(frozen=True)
class Handle(Generic[V]):
    """Call these handlers on an event seen for the first time, and emit their outcomes."""

    event: CloudEvent[Any]
    handlers: tuple[ReceivedHandler[V], ...]
    received: Received


Step: TypeAlias = "Merge | Handle[V]"
"""One step of a batch's plan (`Router.plan`)."""


@dataclass
class Router(Generic[V]):
    """An agency's routing table from event types to projections and handlers."""

    outcome_topic: str | None
    """Where the handlers' outcomes go (None: an agency that only keeps a view)."""
    view_factory: Callable[[Connection], V]
    projections: dict[str, tuple[ViewTable, Callable[[Any], tuple[Any, ...] | None]]] = field(
        default_factory=dict
    )
    handlers: dict[str, list[ReceivedHandler[V]]] = field(default_factory=dict)
    hold_periods: dict[str, tuple[type[CloudEvent[Any]], timedelta]] = field(
        default_factory=dict)
    releasers: dict[str, Keys] = field(default_factory=dict)
    request_ids: dict[str, Callable[[Any], str]] = field(default_factory=dict)
    prefetchers: list[Prefetch[V]] = field(default_factory=list)
    finishers: list[Finish[V]] = field(default_factory=list)

    def project(
        self,
        event_types: Sequence[type[CloudEvent[Any]]],
        table: ViewTable,
        row: Callable[[Any], tuple[Any, ...] | None],
    ) -> None:
        """Keep `table` up to date from these event types with the row function `row`."""
        for t in event_types:
            self.projections[t.EVENT_TYPE] = (table, row)

    def on(self, event_type: type[CloudEvent[Any]], handler: Handler[V]) -> None:
        """Call `handler` for each event of this type (after any projection of it)."""

        async def call(event: Any, view: V, received: Received) -> Sequence[Emit]:
            return await handler(event, view)

        self.on_received(event_type, call)

    def on_received(self, event_type: type[CloudEvent[Any]], handler: ReceivedHandler[V]) -> None:
        """Like `on`, for a handler that also takes when the event's record reached Kafka."""
        self.handlers.setdefault(event_type.EVENT_TYPE, []).append(handler)

    def on_request(
        self, event_type: type[CloudEvent[Any]], handler: ReceivedHandler[V], *,
        request_id: Callable[[Any], str],
    ) -> None:
        """Like `on_received`, for a request named by an id: one id, one answer (a
        resubmission with the same data gets the first answer's records again)."""
        self.on_received(event_type, handler)
        self.request_ids[event_type.EVENT_TYPE] = request_id

    def hold_for(self, event_type: type[CloudEvent[Any]], period: timedelta) -> None:
        """Let requests of this type wait up to `period` (from when they reached Kafka) for
        what they name; without it a handler's `Hold` is an error."""
        if period <= timedelta(0):
            raise ValueError(f"a hold period must be positive, not {period}")
        self.hold_periods[event_type.EVENT_TYPE] = (event_type, period)

    def releases(self, event_type: type[CloudEvent[Any]], keys: Keys) -> None:
        """Once an event of this type is applied, held requests waiting for any of `keys(event)`
        are decided again (besides its subject, when the type is projected)."""
        self.releasers[event_type.EVENT_TYPE] = keys

    def prefetch(self, reads: Prefetch[V]) -> None:
        """Before a batch's handlers run, give `reads` the view and the events about to be
        handled (first seen, in arrival order), so that it can read in one statement what
        they would read one by one. The view must keep such reads true for the rest of the
        batch (its own writes update or forget them), so handlers decide exactly as without."""
        self.prefetchers.append(reads)

    def finish(self, writes: Finish[V]) -> None:
        """After a batch's handlers (and released requests) ran, let the view write what it
        deferred (in bulk), still in the batch's transaction."""
        self.finishers.append(writes)

    def batch_handler(self) -> BatchHandler:
        """The runtime's view of this router: apply a batch in the caller's transaction."""

        async def apply(conn: Connection, deliveries: Sequence[Delivery]) -> None:
            await self.apply(conn, deliveries)

        return apply

    async def apply(self, conn: Connection, deliveries: Sequence[Delivery]) -> None:
        """Apply projections in bulk and handlers one by one, keeping the arrival order."""
        first = await _first_times(conn, [d.event for d in deliveries
                                          if d.event.type in self.handlers])
        view: V | None = None
        if self.prefetchers and first:
            handled = _handled_once(deliveries, first)
            view = self.view_factory(conn)
            for reads in self.prefetchers:
                await reads(view, handled)
        for step in self.plan(deliveries, first):
            if isinstance(step, Merge):
                for table, rows in step.rows:
                    await table.upsert_latest(conn, rows)
                continue
            if view is None:
                view = self.view_factory(conn)
            await self._decide(conn, view, step.event, step.handlers, step.received)
        if self.hold_periods:
            if view is None:
                view = self.view_factory(conn)
            await self._release(conn, view, deliveries)
        if view is not None:
            for writes in self.finishers:
                await writes(view)

    async def _decide(
        self, conn: Connection, view: V, event: CloudEvent[Any],
        handlers: Sequence[ReceivedHandler[V]], received: Received,
    ) -> None:
        """`_decide_in` as a span of the event's trace: its outcomes carry that trace."""
        with tracing.span(f"handle {event.type}", parent=tracing.of_event(event),
                          kind=tracing.SpanKind.CONSUMER,
                          attributes={"cloudevents.event_id": str(event.id),
                                      "cloudevents.event_type": event.type,
                                      "hub.held": received.held_since is not None}):
            await self._decide_in(conn, view, event, handlers, received)

    async def _decide_in(
        self, conn: Connection, view: V, event: CloudEvent[Any],
        handlers: Sequence[ReceivedHandler[V]], received: Received,
    ) -> None:
        """Run an event's handlers and emit their outcomes, or hold it; for a request named
        by an id, answer a resubmission with the first answer."""
        request_id = self.request_ids.get(event.type)
        rid = request_id(event) if request_id is not None else None
        answered = False
        digest = b""
        if rid is not None:
            digest = hashlib.sha256(event.data.model_dump_json().encode()).digest()
            answer = await conn.fetchrow(
                "SELECT digest, topics, keys, \"values\" FROM hub_request_answers"
                " WHERE event_type = $1 AND request_id = $2", event.type, rid)
            if answer is not None and answer["digest"] == digest:
                await enqueue(conn, [
                    OutgoingMessage(t, k, v, [("content-type", CONTENT_TYPE.encode())])
                    for t, k, v in zip(answer["topics"], answer["keys"], answer["values"],
                                       strict=True)])
                return
            answered = answer is not None
            if not answered and not received.final:
                ahead = await conn.fetchrow(
                    "SELECT hold_key, hold_until FROM hub_held_requests"
                    " WHERE event_type = $1 AND request_id = $2 ORDER BY position LIMIT 1",
                    event.type, rid)
                if ahead is not None:
                    await self._hold(conn, event, rid, Hold(ahead["hold_key"], "request_held"),
                                     received, until=ahead["hold_until"])
                    return
        results = [await handler(event, view, received) for handler in handlers]
        holds = [r for r in results if isinstance(r, Hold)]
        if holds:
            if received.final or len(handlers) > 1 or event.type not in self.hold_periods:
                raise HoldRefused(f"a handler of {event.type} held the request where it must"
                                  " decide it (past its deadline, one of several handlers, or"
                                  " no hold period declared)")
            await self._hold(conn, event, rid, holds[0], received)
            return
        messages = await self._emit(
            conn, [e for r in results if not isinstance(r, Hold) for e in r])
        if rid is not None and not answered:
            await conn.execute(
                "INSERT INTO hub_request_answers (event_type, request_id, digest, topics, keys,"
                " \"values\") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                event.type, rid, digest, [m.topic for m in messages],
                [m.key for m in messages], [m.value for m in messages])

    async def _hold(
        self, conn: Connection, event: CloudEvent[Any], rid: str | None, hold: Hold,
        received: Received, *, until: datetime | None = None,
    ) -> None:
        _, period = self.hold_periods[event.type]
        await conn.execute(
            "INSERT INTO hub_held_requests (event_id, event_type, request_id, hold_key, reason,"
            " event, received_at, held_at, hold_until)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, clock_timestamp()), $9)",
            event.id, event.type, rid, hold.key, hold.reason, event.to_json(), received.at,
            received.held_since, until or received.at + period)

    async def _release(self, conn: Connection, view: V, deliveries: Sequence[Delivery]) -> None:
        """Decide the held requests this batch released, and those whose deadline the
        batch's newest record time (the clock's, for an empty batch) has passed, in the
        order they were held."""
        keys: set[str] = set()
        for d in deliveries:
            if d.event.type in self.projections:
                keys.add(d.event.subject)
            release = self.releasers.get(d.event.type)
            if release is not None:
                keys.update(release(d.event))
        newest = max((d.timestamp_ms for d in deliveries), default=None)
        now = (datetime.now(UTC) if newest is None
               else datetime.fromtimestamp(newest / 1000, UTC))
        rows = await conn.fetch(
            "DELETE FROM hub_held_requests WHERE hold_key = ANY($1::text[]) OR hold_until <= $2"
            " RETURNING position, event_type, event, received_at, held_at, hold_until",
            sorted(keys), now)
        for row in sorted(rows, key=lambda r: r["position"]):
            event_type, _ = self.hold_periods[row["event_type"]]
            event = event_type.model_validate_json(row["event"])
            received = Received(row["received_at"], held_since=row["held_at"],
                                final=row["hold_until"] <= now)
            await self._decide(conn, view, event, self.handlers[event.type], received)

    def plan(self, deliveries: Sequence[Delivery], first: Set[Any]) -> Iterator[Step[V]]:
        """The batch as steps in arrival order (lazily, so rows are made as apply reaches them).

        `first` holds the ids of the events never handled before; an id met twice in the
        batch is handled at its first delivery only.
        """
        unseen = set(first)
        pending: dict[str, tuple[ViewTable, list[tuple[Any, ...]]]] = {}
        for d in deliveries:
            projection = self.projections.get(d.event.type)
            if projection is not None:
                table, row_of = projection
                row = row_of(d.event)
                if row is not None:
                    pending.setdefault(table.name, (table, []))[1].append(row)
            handlers = self.handlers.get(d.event.type)
            if not handlers or d.event.id not in unseen:
                continue
            unseen.discard(d.event.id)  # the same event twice in one batch: handled once
            if projection is None and pending:
                # A request is decided against the view: every earlier event of the batch
                # must be in it. A projected event carries its own full record, so its
                # handlers read that, and the bulk merge goes on undisturbed.
                yield _merge(pending)
            yield Handle(d.event, tuple(handlers), Received.of(d))
        if pending:
            yield _merge(pending)

    async def _emit(self, conn: Connection, emits: Sequence[Emit]) -> list[OutgoingMessage]:
        if not emits:
            return []
        topic = self.outcome_topic
        if topic is None:
            raise RuntimeError("a handler decided outcomes, but this agency publishes none")
        trace = tracing.current()
        carried = trace.as_event_fields() if trace is not None else {}
        messages = []
        for e in emits:
            sequence = await conn.fetchval(
                "INSERT INTO hub_subject_sequences (source, subject, last) VALUES ($1, $2, 1)"
                " ON CONFLICT (source, subject) DO UPDATE"
                " SET last = hub_subject_sequences.last + 1 RETURNING last",
                e.event_type.SOURCE,
                e.subject,
            )
            event = e.event_type.create(subject=e.subject, sequence=sequence, data=e.data,
                                        **carried)
            messages.append(OutgoingMessage.of_event(topic, event))
        await enqueue(conn, messages)
        return messages


def _merge(pending: dict[str, tuple[ViewTable, list[tuple[Any, ...]]]]) -> Merge:
    """The rows gathered so far as one bulk merge, and an empty gathering for the next."""
    step = Merge(tuple((table, tuple(rows)) for table, rows in pending.values()))
    pending.clear()
    return step


def _handled_once(
    deliveries: Sequence[Delivery], first: Set[Any]
) -> list[CloudEvent[Any]]:
    """The events of the batch its handlers will see, each once, in arrival order."""
    unseen = set(first)
    events = []
    for d in deliveries:
        if d.event.id in unseen:
            unseen.discard(d.event.id)
            events.append(d.event)
    return events


async def _first_times(conn: Connection, events: Sequence[CloudEvent[Any]]) -> set[Any]:
    """Record these events as handled, in one statement; return the ids seen for the first time."""
    if not events:
        return set()
    rows = await conn.fetch(
        "INSERT INTO hub_handled_events (event_id, event_type)"
        " SELECT * FROM unnest($1::uuid[], $2::text[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        [e.id for e in events],
        [e.type for e in events],
    )
    return {r["event_id"] for r in rows}
