"""Early requests held, and one answer per request id (hub/dispatch.py `Hold`,
`Router.hold_for`, `Router.releases`, `Router.on_request`), on a real agency database.

A request naming a permit the view does not hold yet waits; the permit's event releases it
and the same handler decides it; past the hold period (on the stream's clock: the batch's
newest record time) it is decided as final. A resubmission with the same request id and the
same data gets the very records of the first answer, held or not; one with other data goes
to the handler.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.card.requests import registration_request
from hub import bootstrap
from hub.delivery import Delivery
from hub.dispatch import Emit, Hold, HoldRefused, Received, Router
from hub.projection import ViewTable
from hub.settings import Settings
from schemas.card import ECardRegistrationRequested
from schemas.envelope import CloudEvent
from schemas.permits import PermitIssued
from schemas.social_insurance import (
    InsuranceRegistrationRejected,
    InsuranceRegistrationRejectedData,
    InsuranceRejection,
)
from tests.factories import issued_event

pytestmark = pytest.mark.integration

PERMITS = ViewTable("t_held_permits", ("permit_no", "sequence"))
PERMIT = "156000000000000071"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
HOLD = timedelta(hours=1)


def _answer(event: Any, reason: InsuranceRejection) -> Emit:
    """Any outcome will do: the rejection type carries the request id and a reason."""
    return Emit(InsuranceRegistrationRejected, event.data.permit_no or "none",
                InsuranceRegistrationRejectedData(
                    request_id=str(event.data.request_id), reference=event.data.permit_no,
                    permit_no=event.data.permit_no, reason=reason, message=reason.value))


def _router(decided: list[tuple[str, bool]]) -> Router[asyncpg.Connection]:
    r: Router[asyncpg.Connection] = Router(outcome_topic="outcomes",
                                           view_factory=lambda conn: conn)
    r.project([PermitIssued], PERMITS, lambda e: (e.subject, e.sequence))

    async def decide(event: Any, conn: asyncpg.Connection, received: Received
                     ) -> Sequence[Emit] | Hold:
        known = await conn.fetchval("SELECT 1 FROM t_held_permits WHERE permit_no = $1",
                                    event.data.permit_no)
        if known is None and not received.final:
            return Hold(event.data.permit_no, "permit_unknown")
        decided.append((str(event.data.request_id), received.final))
        reason = InsuranceRejection.PERMIT_UNKNOWN if known is None else \
            InsuranceRejection.ALREADY_REGISTERED
        return [_answer(event, reason)]

    r.on_request(ECardRegistrationRequested, decide,
                 request_id=lambda e: str(e.data.request_id))
    r.hold_for(ECardRegistrationRequested, HOLD)
    return r


def _at(event: CloudEvent[Any], when: datetime, offset: int) -> Delivery:
    return Delivery("topic", 0, offset, int(when.timestamp() * 1000), event)


async def _outbox(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT value FROM hub_outbox ORDER BY id")
    return [json.loads(r["value"]) for r in rows]


@pytest.fixture
async def conn(hub_settings: Settings) -> Any:
    """The card's database as its runtime role (the hub's tables as the runtime sees them),
    with a bare view table the test's router projects into."""
    async with bootstrap.pool(hub_settings, "card", max_size=1, role="owner") as owner:
        await owner.execute("CREATE TABLE t_held_permits (permit_no text PRIMARY KEY,"
                            " sequence integer NOT NULL, applied_at timestamptz)")
    async with bootstrap.pool(hub_settings, "card", max_size=1) as p, p.acquire() as c:
        yield c


async def _apply(r: Router[Any], conn: asyncpg.Connection, *ds: Delivery) -> None:
    async with conn.transaction():
        await r.apply(conn, list(ds))


async def test_a_request_before_its_permit_waits_and_is_decided_when_the_permit_arrives(
    conn: asyncpg.Connection,
) -> None:
    decided: list[tuple[str, bool]] = []
    r = _router(decided)
    request = registration_request("Held Person", permit_no=PERMIT, at=T0)
    await _apply(r, conn, _at(request, T0, 0))
    assert decided == []
    assert await _outbox(conn) == []
    assert await conn.fetchval("SELECT reason FROM hub_held_requests") == "permit_unknown"

    # The same request again while it waits: held behind it, no second decision.
    again = registration_request("Held Person", permit_no=PERMIT, at=T0,
                                 request_id=request.data.request_id)
    again = again.model_copy(update={"data": request.data})
    await _apply(r, conn, _at(again, T0 + timedelta(minutes=1), 1))
    assert await conn.fetchval("SELECT count(*) FROM hub_held_requests") == 2

    await _apply(r, conn, _at(issued_event(PERMIT), T0 + timedelta(minutes=5), 2))
    assert decided == [(str(request.data.request_id), False)]
    out = await _outbox(conn)
    assert [o["data"]["reason"] for o in out] == ["already_registered"] * 2
    assert out[0] == out[1], "the resubmission gets the very same answer"
    assert await conn.fetchval("SELECT count(*) FROM hub_held_requests") == 0

    # Submitted once more after the answer: the same records again, the handler not asked.
    later = again.model_copy(update={"id": uuid.uuid4()})
    await _apply(r, conn, _at(later, T0 + timedelta(minutes=9), 3))
    assert len(decided) == 1
    assert (await _outbox(conn))[2] == out[0]


async def test_a_held_request_is_decided_as_final_once_its_period_has_passed(
    conn: asyncpg.Connection,
) -> None:
    decided: list[tuple[str, bool]] = []
    r = _router(decided)
    request = registration_request("Late Person", permit_no=PERMIT, at=T0)
    await _apply(r, conn, _at(request, T0, 0))
    other = registration_request("Other", permit_no="156000000000000072", at=T0)
    # Time moves on the stream: a later record under the deadline releases nothing...
    await _apply(r, conn, _at(other, T0 + HOLD - timedelta(seconds=1), 1))
    assert decided == []
    # ...one past it makes the first request final: it is refused as unknown.
    await _apply(r, conn, _at(issued_event("156000000000000073"), T0 + HOLD, 2))
    assert decided == [(str(request.data.request_id), True)]
    assert [o["data"]["reason"] for o in await _outbox(conn)] == ["permit_unknown"]
    held = await conn.fetch("SELECT hold_key FROM hub_held_requests")
    assert [h["hold_key"] for h in held] == ["156000000000000072"]


async def test_a_different_request_under_a_used_id_goes_to_the_handler(
    conn: asyncpg.Connection,
) -> None:
    decided: list[tuple[str, bool]] = []
    r = _router(decided)
    await _apply(r, conn, _at(issued_event(PERMIT), T0, 0))
    first = registration_request("Same Id", permit_no=PERMIT, at=T0)
    await _apply(r, conn, _at(first, T0, 1))
    changed = registration_request("Same Id", permit_no="156000000000000074", at=T0,
                                   request_id=first.data.request_id)
    await _apply(r, conn, _at(changed, T0 + HOLD * 3, 2))
    assert [d for d, _ in decided] == [str(first.data.request_id)]  # the 2nd is held
    assert await conn.fetchval("SELECT hold_key FROM hub_held_requests") == \
        "156000000000000074"


async def test_a_hold_where_a_decision_is_due_is_refused(conn: asyncpg.Connection) -> None:
    r = _router([])

    async def stubborn(event: Any, view: Any, received: Received) -> Sequence[Emit] | Hold:
        return Hold("k", "permit_unknown")

    r.handlers[ECardRegistrationRequested.EVENT_TYPE] = [stubborn]
    request = registration_request("Stubborn", permit_no=PERMIT, at=T0)
    await _apply(r, conn, _at(request, T0, 0))
    with pytest.raises(HoldRefused):
        await _apply(r, conn, _at(issued_event("156000000000000075"), T0 + HOLD, 1))
