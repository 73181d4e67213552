"""The router's ordering rule (hub/dispatch.py), without a database.

`Router.plan` is the rule as a pure function of the batch: consecutive projections merge in
bulk, a request's handlers see every earlier event of the batch applied, a projected
event's handlers do not interrupt the merge, and an event id is handled once. A few tests
run `Router.apply` itself on `FakeConnection`, which answers the four asyncpg calls the
router's path makes as the hub's tables would, to check the glue and the per-subject
outcome sequences.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from consumers.card.requests import registration_request, sweep_request
from hub.delivery import Delivery
from hub.dispatch import Emit, Handle, Merge, Received, Router, Step
from hub.projection import ViewTable
from producers.work_permit import domain
from schemas.card import ExpiryReminderSweepRequested
from schemas.envelope import CloudEvent
from schemas.permits import CancellationReason, PermitCancelled, PermitIssued
from schemas.social_insurance import SocialSecurityNumberIssued, SocialSecurityNumberIssuedData
from tests.factories import active_record, issued_event, permit_event

PERMITS = ViewTable("t_permits", ("permit_no", "sequence"))
CANCELLATIONS = ViewTable("t_cancellations", ("permit_no", "sequence"))


def row(event: Any) -> tuple[str, int]:
    return (event.subject, event.sequence)


async def no_outcome(event: Any, view: Any) -> Sequence[Emit]:
    return []


def router(*, two_tables: bool = False) -> Router[Any]:
    """Permit issues projected; cancellations projected and handled; sweeps handled only."""
    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.project([PermitIssued], PERMITS, row)
    r.project([PermitCancelled], CANCELLATIONS if two_tables else PERMITS, row)
    r.on(PermitCancelled, no_outcome)
    r.on(ExpiryReminderSweepRequested, no_outcome)
    return r


def issued(n: int) -> CloudEvent[Any]:
    return issued_event(f"1560000000000000{n:02d}", sequence=2)


def cancelled(n: int) -> CloudEvent[Any]:
    data = domain.cancel(active_record(f"1560000000000000{n:02d}"),
                         reason=CancellationReason.REVOKED, today=date(2025, 6, 1))
    return permit_event(data, sequence=3)


def sweep(n: int) -> CloudEvent[Any]:
    return sweep_request(date(2026, 1, n))


def ignored(n: int) -> CloudEvent[Any]:
    return registration_request(f"Person {n}", permit_no=f"1560000000000000{n:02d}")


def deliveries(*events: CloudEvent[Any]) -> list[Delivery]:
    return [Delivery("topic", 0, offset, 0, e) for offset, e in enumerate(events)]


def plan(events: Sequence[CloudEvent[Any]], first: set[Any] | None = None,
         r: Router[Any] | None = None) -> list[Step[Any]]:
    """The plan for these events, all seen for the first time unless `first` says otherwise."""
    first = {e.id for e in events} if first is None else first
    return list((r or router()).plan(deliveries(*events), first))


def shape(steps: Sequence[Step[Any]]) -> list[tuple[str, Any]]:
    """Merges as ('merge', rows of each table) and handles as ('handle', event id)."""
    return [("merge", [rows for _, rows in s.rows]) if isinstance(s, Merge)
            else ("handle", s.event.id) for s in steps]


# the rule, example by example --------------------------------------------------------------


def test_a_batch_of_projections_is_one_bulk_merge_in_arrival_order() -> None:
    """No handler in the batch: every row goes into a single merge at the end."""
    events = [issued(1), issued(2), issued(3)]
    assert shape(plan(events)) == [("merge", [tuple(row(e) for e in events)])]


def test_a_request_sees_every_earlier_event_applied_and_later_ones_wait() -> None:
    """P P R P → merge(P P), handle(R), merge(P)."""
    p1, p2, r, p3 = issued(1), issued(2), sweep(1), issued(3)
    assert shape(plan([p1, p2, r, p3])) == [
        ("merge", [(row(p1), row(p2))]),
        ("handle", r.id),
        ("merge", [(row(p3),)]),
    ]


def test_a_request_first_in_the_batch_needs_no_merge_before_it() -> None:
    """Nothing is pending before it, so no empty merge is planned."""
    r, p = sweep(1), issued(1)
    assert shape(plan([r, p])) == [("handle", r.id), ("merge", [(row(p),)])]


def test_a_projected_events_handler_does_not_interrupt_the_bulk_merge() -> None:
    """P C P (C projected and handled) → handle(C), then one merge of all three rows."""
    p1, c, p2 = issued(1), cancelled(2), issued(3)
    assert shape(plan([p1, c, p2])) == [
        ("handle", c.id),
        ("merge", [(row(p1), row(c), row(p2))]),
    ]


def test_rows_are_merged_per_table_in_the_order_the_tables_were_first_met() -> None:
    """Two view tables: one merge step, one row list per table."""
    c, p1, p2 = cancelled(1), issued(2), issued(3)
    steps = plan([c, p1, p2], r=router(two_tables=True))
    merge = steps[-1]
    assert isinstance(merge, Merge)
    assert [(t.name, rows) for t, rows in merge.rows] == [
        ("t_cancellations", (row(c),)), ("t_permits", (row(p1), row(p2)))]


def test_an_event_twice_in_one_batch_is_handled_once_and_projected_twice() -> None:
    """Handled at its first delivery; both rows go to the merge, whose sequence guard
    keeps one."""
    r, c = sweep(1), cancelled(2)
    assert shape(plan([r, c, r, c])) == [
        ("handle", r.id), ("handle", c.id), ("merge", [(row(c), row(c))])]


def test_an_event_handled_in_an_earlier_batch_is_only_projected() -> None:
    """An id not first seen now (a redelivery) reaches no handler; its row still merges."""
    c, r = cancelled(1), sweep(1)
    assert shape(plan([c, r], first=set())) == [("merge", [(row(c),)])]


def test_events_the_router_does_not_know_are_skipped() -> None:
    """No projection and no handler: nothing planned for them."""
    assert plan([ignored(1), ignored(2)]) == []


def test_the_plan_is_made_lazily_as_apply_reaches_each_step() -> None:
    """A row is made only when the plan is read that far, as in the loop it replaced."""
    made: list[str] = []

    def noted_row(event: Any) -> tuple[str, int]:
        made.append(event.subject)
        return row(event)

    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.project([PermitIssued], PERMITS, noted_row)
    r.on(ExpiryReminderSweepRequested, no_outcome)
    p1, s, p2 = issued(1), sweep(1), issued(2)
    steps = r.plan(deliveries(p1, s, p2), {s.id})
    assert isinstance(next(steps), Merge)
    assert made == [p1.subject]


# the rule, as properties of any batch -------------------------------------------------------

POOL = [issued(1), issued(2), issued(3), cancelled(4), cancelled(5), sweep(1), sweep(2),
        sweep(3), ignored(6)]
PROJECTED = {e.id for e in POOL if isinstance(e, PermitIssued | PermitCancelled)}
HANDLED = {e.id for e in POOL if isinstance(e, PermitCancelled | ExpiryReminderSweepRequested)}
REQUESTS = HANDLED - PROJECTED


@given(st.lists(st.sampled_from(POOL), max_size=25),
       st.sets(st.sampled_from(sorted(HANDLED, key=str))))
def test_any_batch_keeps_arrival_order_merges_in_bulk_and_handles_each_new_id_once(
    batch: list[CloudEvent[Any]], first: set[Any]
) -> None:
    """Every row merged once in order; each new id handled once, in order; a request's
    handle comes after exactly the rows of earlier deliveries; merges are maximal."""
    steps = plan(batch, first)
    rows = [row(e) for e in batch if e.id in PROJECTED]
    merged = [r for s in steps if isinstance(s, Merge) for _, table in s.rows for r in table]
    assert merged == rows
    new_ids = [e.id for e in batch if e.id in first]
    handled = [s.event.id for s in steps if isinstance(s, Handle)]
    assert handled == list(dict.fromkeys(new_ids))
    for i, step in enumerate(steps):
        if isinstance(step, Handle) and step.event.id in REQUESTS:
            at = next(k for k, e in enumerate(batch) if e.id == step.event.id)
            before = [r for s in steps[:i] if isinstance(s, Merge)
                      for _, table in s.rows for r in table]
            assert before == [row(e) for e in batch[:at] if e.id in PROJECTED]
        if isinstance(step, Merge):
            assert step.rows, "never an empty merge"
            following = steps[i + 1] if i + 1 < len(steps) else None
            assert following is None or (
                isinstance(following, Handle) and following.event.id in REQUESTS
            ), "a merge only happens before a request, or at the end"


# Router.apply on a fake connection ---------------------------------------------------------


class FakeConnection:
    """The asyncpg calls of the router's path, answered as the hub's tables would answer.

    Each method checks that its SQL names the table it stands in for, so a change of the
    router's statements fails here instead of being faked silently.
    """

    def __init__(self) -> None:
        self.handled: set[uuid.UUID] = set()
        self.sequences: dict[tuple[str, str], int] = {}
        self.merged: list[tuple[Any, ...]] = []
        self.outbox: list[dict[str, Any]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """INSERT INTO hub_handled_events … RETURNING event_id, or a view's held versions."""
        if "hub_handled_events" in sql:
            ids, _types = args
            new = [i for i in dict.fromkeys(ids) if i not in self.handled]
            self.handled.update(new)
            return [{"event_id": i} for i in new]
        assert sql.startswith("SELECT permit_no, sequence FROM t_")  # the jump limit's read
        held: dict[Any, int] = {}
        for key, sequence in self.merged:
            if key in args[0]:
                held[key] = max(sequence, held.get(key, sequence))
        return list(held.items())

    async def fetchval(self, sql: str, source: str, subject: str) -> int:
        """The next number of hub_subject_sequences for (source, subject)."""
        assert "hub_subject_sequences" in sql
        self.sequences[source, subject] = self.sequences.get((source, subject), 0) + 1
        return self.sequences[source, subject]

    async def execute(self, sql: str, *args: Any) -> None:
        """The staging table's DDL, the merge, TRUNCATE and NOTIFY: nothing to keep."""

    async def copy_records_to_table(self, table: str, *, records: Any, columns: Any) -> None:
        """COPY of the newest row per key into the staging table of a merge."""
        self.merged.extend(records)

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """INSERT INTO hub_outbox: kept as the outcome events' JSON."""
        assert "hub_outbox" in sql
        self.outbox.extend(json.loads(value) for _, _, value, _ in rows)


def ssn_outcome(subject: str) -> Emit:
    return Emit(SocialSecurityNumberIssued, subject, SocialSecurityNumberIssuedData(
        permit_no=subject, ssn="F0000000000000001", issued_on=date(2026, 1, 1)))


async def test_outcomes_get_the_next_sequence_of_their_subject_across_batches() -> None:
    """Per subject 1, 2, 3…, counted apart for each subject and carried into the next batch."""
    a, b = "156000000000000001", "156000000000000002"

    async def two_for_a_one_for_b(event: Any, view: Any) -> Sequence[Emit]:
        return [ssn_outcome(a), ssn_outcome(b), ssn_outcome(a)]

    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.on(ExpiryReminderSweepRequested, two_for_a_one_for_b)
    conn = FakeConnection()
    await r.apply(cast(Any, conn), deliveries(sweep(1)))
    await r.apply(cast(Any, conn), deliveries(sweep(2)))
    assert [(e["subject"], e["sequence"]) for e in conn.outbox] == [
        (a, 1), (b, 1), (a, 2), (a, 3), (b, 2), (a, 4)]


async def test_apply_merges_earlier_rows_before_a_request_handler_runs() -> None:
    """The request's handler finds the earlier permit rows merged and the later one not."""
    p1, s, p2 = issued(1), sweep(1), issued(2)
    seen: list[list[tuple[Any, ...]]] = []

    async def look(event: Any, view: FakeConnection) -> Sequence[Emit]:
        seen.append(list(view.merged))
        return []

    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.project([PermitIssued], PERMITS, row)
    r.on(ExpiryReminderSweepRequested, look)
    conn = FakeConnection()
    await r.apply(cast(Any, conn), deliveries(p1, s, p2))
    assert seen == [[row(p1)]]
    assert conn.merged == [row(p1), row(p2)]


async def test_a_redelivered_request_is_not_handled_again() -> None:
    """The same event in a later batch: its id is recorded, so no second outcome."""
    s = sweep(1)
    calls: list[uuid.UUID] = []

    async def count(event: Any, view: Any) -> Sequence[Emit]:
        calls.append(event.id)
        return [ssn_outcome("156000000000000001")]

    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.on(ExpiryReminderSweepRequested, count)
    conn = FakeConnection()
    await r.apply(cast(Any, conn), deliveries(s, s))
    await r.apply(cast(Any, conn), deliveries(s))
    assert calls == [s.id]
    assert len(conn.outbox) == 1


def test_the_plan_carries_each_handled_events_record_time() -> None:
    """`plan` stays pure: the record's Kafka timestamp travels in the Handle step."""
    r = router()
    s = sweep(1)
    [step] = list(r.plan([Delivery("topic", 0, 0, 1767225600123, s)], {s.id}))
    assert isinstance(step, Handle)
    assert step.received == Received(datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC))


async def test_a_handler_that_asks_gets_the_record_time_and_plain_ones_do_not() -> None:
    """`on_received` handlers take (event, view, Received); `on` handlers keep (event, view)."""
    s = sweep(1)
    seen: list[Any] = []

    async def timed(event: Any, view: Any, received: Received) -> Sequence[Emit]:
        seen.append(received.at)
        return []

    async def plain(event: Any, view: Any) -> Sequence[Emit]:
        seen.append("plain")
        return []

    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.on_received(ExpiryReminderSweepRequested, timed)
    r.on(ExpiryReminderSweepRequested, plain)
    await r.apply(cast(Any, FakeConnection()), [Delivery("topic", 0, 0, 1767225600000, s)])
    assert seen == [datetime(2026, 1, 1, tzinfo=UTC), "plain"]


async def test_prefetch_sees_each_new_event_once_in_order_before_any_handler() -> None:
    """`prefetch` gets the batch's first-seen handled events (each once, arrival order)
    before the first handler runs; `finish` runs once after the last."""
    c1, s, c2, old = cancelled(1), sweep(1), cancelled(2), sweep(2)
    calls: list[Any] = []

    async def note(event: Any, view: Any) -> Sequence[Emit]:
        calls.append(("handle", event.id))
        return []

    async def reads(view: Any, events: Sequence[CloudEvent[Any]]) -> None:
        calls.append(("prefetch", [e.id for e in events]))

    async def writes(view: Any) -> None:
        calls.append(("finish",))

    r: Router[Any] = Router(outcome_topic="outcomes", view_factory=lambda conn: conn)
    r.project([PermitCancelled], PERMITS, row)
    r.on(PermitCancelled, note)
    r.on(ExpiryReminderSweepRequested, note)
    r.prefetch(reads)
    r.finish(writes)
    conn = FakeConnection()
    conn.handled.add(old.id)  # handled in an earlier batch
    await r.apply(cast(Any, conn), deliveries(c1, s, old, c1, c2, issued(3)))
    assert calls == [("prefetch", [c1.id, s.id, c2.id]), ("handle", c1.id), ("handle", s.id),
                     ("handle", c2.id), ("finish",)]


async def test_a_batch_with_nothing_new_to_handle_prefetches_nothing() -> None:
    """Only redeliveries and projections: no read ahead, no handler, nothing to finish."""
    c = cancelled(1)
    calls: list[str] = []

    async def reads(view: Any, events: Sequence[CloudEvent[Any]]) -> None:
        calls.append("prefetch")

    async def writes(view: Any) -> None:
        calls.append("finish")

    r = router()
    r.prefetch(reads)
    r.finish(writes)
    conn = FakeConnection()
    conn.handled.add(c.id)
    await r.apply(cast(Any, conn), deliveries(c, issued(2)))
    assert calls == []
