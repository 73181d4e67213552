"""Early applications held at public security on the real broker and database: an
application naming a work permit public security does not know yet waits for it
(`hub_held_requests`), is decided when the permit's event arrives, and a resubmission of
the same application gets the same answer."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hub.settings import Settings
from schemas import Codec, topics
from schemas.permits import Category, PermitRecord, PermitStandard, PermitStatus
from schemas.public_security import (
    RESIDENCE_EVENT_TYPES,
    PresentedPermitNo,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
)
from tests.integration.agency_requests import (
    HANSA,
    agency_running,
    holder,
    rows,
    send,
    settled,
    wait_for,
)

pytestmark = pytest.mark.integration

CODEC = Codec(RESIDENCE_EVENT_TYPES)
AGENCY = "public_security"
PERMIT_NO = "110000201900000077"
ENTRY = date(2025, 3, 3)


def applied(application_id: str, **data: Any) -> ResidencePermitApplied:
    fields: dict[str, Any] = {
        "application_id": application_id,
        "presented": PresentedPermitNo(permit_no=PERMIT_NO),
        "entry_date": ENTRY, "applied_on": ENTRY + timedelta(days=10),
        "requested_until": date(2026, 3, 12),
    }
    event = ResidencePermitApplied.create(
        subject=PERMIT_NO, sequence=1,
        data=ResidencePermitAppliedData.model_validate(fields | data))
    assert isinstance(event, ResidencePermitApplied)
    return event


async def test_an_early_application_waits_for_its_permit_and_is_answered_once(
    hub_settings: Settings,
) -> None:
    """Held while the permit is unknown (nothing published, nothing decided); a resubmission
    waits behind it; the permit's event releases both: one decision, the same answer twice."""
    async with agency_running(hub_settings, AGENCY) as auth:
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied("H-early")])
        await settled(hub_settings, AGENCY)
        held = await rows(hub_settings, AGENCY, "SELECT request_id, hold_key, reason FROM"
                          " hub_held_requests")
        assert held == [{"request_id": "H-early", "hold_key": PERMIT_NO,
                         "reason": "permit_unknown"}]
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied("H-early")])
        await settled(hub_settings, AGENCY)
        assert await rows(hub_settings, AGENCY, "SELECT 1 FROM ps_applications") == []
        await auth.register_legacy(PermitRecord(
            permit_no=PERMIT_NO, status=PermitStatus.ACTIVE, standard=PermitStandard.LEGACY,
            holder=holder(77, "CA"), category=Category.B, employer=HANSA, position="Teacher",
            approved_months=36, issued_on=date(2024, 3, 1), valid_from=date(2024, 3, 1),
            valid_until=date(2027, 2, 28)))
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 2, what="the held application's answer")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 2, what="nothing more")

    assert [e.type.rsplit(".", 1)[-1] for e in events] == ["ResidencePermitIssued"] * 2
    assert events[0].data == events[1].data
    assert events[0].data.application_id == "H-early"
    stored = await rows(hub_settings, AGENCY, "SELECT application_id, outcome FROM"
                        " ps_applications")
    assert stored == [{"application_id": "H-early", "outcome": "issued"}]
    assert await rows(hub_settings, AGENCY, "SELECT 1 FROM hub_held_requests") == []


async def test_an_application_whose_permit_never_comes_is_refused_at_the_deadline(
    hub_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past HUB_PUBLIC_SECURITY_HOLD_HOURS on the stream's clock (here 7.2 s): refused as
    permit_unknown, saying since when it waited; the hold is gone."""
    monkeypatch.setenv("HUB_PUBLIC_SECURITY_HOLD_HOURS", "0.002")
    async with agency_running(hub_settings, AGENCY):
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied("H-never")])
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 1, what="the refusal at the deadline")
        await settled(hub_settings, AGENCY)

    [refused] = events
    assert refused.type.endswith("ResidencePermitRejected")
    assert refused.data.reason == "permit_unknown"
    assert "while the application waited (since" in refused.data.message
    assert await rows(hub_settings, AGENCY, "SELECT 1 FROM hub_held_requests") == []
