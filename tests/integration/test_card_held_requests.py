"""Early e-card registrations held, on the card's real router and database (issue 11,
item 2): a request naming a permit or an SSN the card service does not know yet waits for
it instead of being refused; it is decided when the number's event is applied, or refused
as unknown, saying it waited, once the card's hold period has passed on the stream's clock.
The same request id with the same data gets the very same answer again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.card.issuer import QrIssuer
from consumers.card.requests import registration_request
from consumers.card.service import router
from consumers.card.settings import CardSettings
from consumers.card.views import CardView
from hub import bootstrap
from hub.delivery import Delivery
from hub.dispatch import Router
from hub.settings import Settings
from hub.signing import SigningKey
from schemas.envelope import CloudEvent
from schemas.permit_token import key_id
from schemas.permits import PermitIssued, PermitIssuedData
from schemas.social_insurance import SocialSecurityNumberIssued, SocialSecurityNumberIssuedData
from tests.factories import active_record, holder

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
HOLD = timedelta(hours=2)
NAME = "Early Bird"
_PRIVATE = Ed25519PrivateKey.generate()
ISSUER = QrIssuer.fixed(SigningKey("card-qr", key_id(_PRIVATE.public_key()), _PRIVATE),
                        clock=lambda: T0)


def _router(settings: Settings) -> Router[CardView]:
    return router(settings, ISSUER, CardSettings(hold_hours=HOLD // timedelta(hours=1)))


def _permit(permit_no: str) -> PermitIssued:
    record = active_record(permit_no, holder=holder(name=NAME), valid_from=date(2026, 5, 1),
                           issued_on=date(2026, 5, 1), valid_until=date(2027, 4, 30))
    event = PermitIssued.create(subject=permit_no, sequence=2,
                                data=PermitIssuedData(permit=record))
    assert isinstance(event, PermitIssued)
    return event


def _at(event: CloudEvent[Any], when: datetime, offset: int) -> Delivery:
    return Delivery("topic", 0, offset, int(when.timestamp() * 1000), event)


async def _outbox(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT value FROM hub_outbox ORDER BY id")
    return [json.loads(r["value"]) for r in rows]


@pytest.fixture
async def conn(hub_settings: Settings) -> Any:
    async with bootstrap.pool(hub_settings, "card", max_size=1) as p, p.acquire() as c:
        yield c


async def _apply(r: Router[CardView], conn: asyncpg.Connection, *ds: Delivery) -> None:
    async with conn.transaction():
        await r.apply(conn, list(ds))


async def test_a_registration_before_its_permit_waits_and_gets_the_card(
    hub_settings: Settings, conn: asyncpg.Connection,
) -> None:
    """Before: refused as unknown_permit at once. Now: held, the e-card issued when the
    permit arrives; a resubmission with the same id gets that very answer again."""
    r = _router(hub_settings)
    permit_no = "156000000000000081"
    request = registration_request(NAME, permit_no=permit_no, at=T0)
    await _apply(r, conn, _at(request, T0, 0))
    assert await _outbox(conn) == []
    assert await conn.fetchval("SELECT reason FROM hub_held_requests") == "unknown_permit"
    await _apply(r, conn, _at(_permit(permit_no), T0 + timedelta(minutes=5), 1))
    (answer,) = await _outbox(conn)
    assert answer["type"].endswith("ECardIssued")
    assert answer["data"]["request_id"] == str(request.data.request_id)
    resubmitted = request.model_copy(update={"id": uuid.uuid4()})
    await _apply(r, conn, _at(resubmitted, T0 + timedelta(minutes=9), 2))
    first, again = await _outbox(conn)
    assert again == first, "the same request id and data: the same answer"
    assert await conn.fetchval("SELECT count(*) FROM card_ecards") == 1


async def test_a_registration_whose_permit_never_comes_is_refused_at_the_deadline(
    hub_settings: Settings, conn: asyncpg.Connection,
) -> None:
    """Past the card's hold period on the stream's clock: unknown_permit, saying it waited."""
    r = _router(hub_settings)
    request = registration_request(NAME, permit_no="156000000000000082", at=T0)
    await _apply(r, conn, _at(request, T0, 0))
    await _apply(r, conn, _at(_permit("156000000000000083"), T0 + HOLD - timedelta(seconds=1), 1))
    assert await _outbox(conn) == []
    await _apply(r, conn, _at(_permit("156000000000000084"), T0 + HOLD, 2))
    (answer,) = await _outbox(conn)
    assert answer["type"].endswith("ECardRejected")
    assert answer["data"]["reason"] == "unknown_permit"
    assert "waited" in answer["data"]["message"]
    assert await conn.fetchval("SELECT count(*) FROM hub_held_requests") == 0


async def test_a_registration_by_an_ssn_not_known_yet_waits_for_the_ssn(
    hub_settings: Settings, conn: asyncpg.Connection,
) -> None:
    """Held on the SSN; SocialSecurityNumberIssued releases it: the e-card carries the SSN."""
    r = _router(hub_settings)
    permit_no, ssn = "156000000000000085", "SSN-EARLY-0001"
    await _apply(r, conn, _at(_permit(permit_no), T0, 0))
    request = registration_request(NAME, ssn=ssn, at=T0)
    await _apply(r, conn, _at(request, T0 + timedelta(minutes=1), 1))
    assert await _outbox(conn) == []
    issued = SocialSecurityNumberIssued.create(
        subject=permit_no, sequence=1,
        data=SocialSecurityNumberIssuedData(permit_no=permit_no, ssn=ssn, issued_on=T0.date()))
    await _apply(r, conn, _at(issued, T0 + timedelta(minutes=3), 2))
    types = [o["type"].rsplit(".", 1)[-1] for o in await _outbox(conn)]
    assert types == ["PhysicalCardIssued", "ECardIssued"]
    card = (await _outbox(conn))[1]["data"]
    assert card["ssn"] == ssn
    assert card["permit"]["permit_no"] == permit_no
