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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeAlias, TypeVar

from pydantic import BaseModel

from hub.db import Connection
from hub.delivery import BatchHandler, Delivery
from hub.outbox import OutgoingMessage, enqueue
from hub.projection import ViewTable
from schemas.envelope import CloudEvent

V = TypeVar("V")



@dataclass(frozen=True)
class Emit:
    """An outcome a handler decided: its event type, subject and payload."""

    event_type: type[CloudEvent[Any]]
    subject: str
    data: BaseModel


@dataclass(frozen=True)
class Received:
    """What the runtime knows of an event's record beyond the event: when Kafka took it."""

    at: datetime
    """The record's timestamp: the broker's clock, as hub topics use LogAppendTime."""

    @classmethod
    def of(cls, delivery: Delivery) -> Received:
        """The record time of a delivery."""
        return cls(datetime.fromtimestamp(delivery.timestamp_ms / 1000, UTC))


Handler = Callable[[Any, V], Awaitable[Sequence[Emit]]]
"""A plain decision function: the event and the agency's view in, outcomes out."""

ReceivedHandler = Callable[[Any, V, Received], Awaitable[Sequence[Emit]]]
"""A decision function that also needs when its record reached Kafka (`Router.on_received`)."""


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
        for step in self.plan(deliveries, first):
            if isinstance(step, Merge):
                for table, rows in step.rows:
                    await table.upsert_latest(conn, rows)
                continue
            if view is None:
                view = self.view_factory(conn)
            emits: list[Emit] = []
            for handler in step.handlers:
                emits.extend(await handler(step.event, view, step.received))
            await self._emit(conn, emits)

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

    async def _emit(self, conn: Connection, emits: Sequence[Emit]) -> None:
        if not emits:
            return
        topic = self.outcome_topic
        if topic is None:
            raise RuntimeError("a handler decided outcomes, but this agency publishes none")
        messages = []
        for e in emits:
            sequence = await conn.fetchval(
                "INSERT INTO hub_subject_sequences (source, subject, last) VALUES ($1, $2, 1)"
                " ON CONFLICT (source, subject) DO UPDATE"
                " SET last = hub_subject_sequences.last + 1 RETURNING last",
                e.event_type.SOURCE,
                e.subject,
            )
            event = e.event_type.create(subject=e.subject, sequence=sequence, data=e.data)
            messages.append(OutgoingMessage.of_event(topic, event))
        await enqueue(conn, messages)


def _merge(pending: dict[str, tuple[ViewTable, list[tuple[Any, ...]]]]) -> Merge:
    """The rows gathered so far as one bulk merge, and an empty gathering for the next."""
    step = Merge(tuple((table, tuple(rows)) for table, rows in pending.values()))
    pending.clear()
    return step


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
