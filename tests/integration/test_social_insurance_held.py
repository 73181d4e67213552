"""Early registration requests held on the real broker and database (issue 11, item 2): a
request that reaches social insurance before the permit, or before the e-card it names, waits
and is decided when they arrive; the same request submitted again while it waits gets the
same answer; nothing is refused as unknown. (A new permit's request released by its letter
is decided at the letter stage: `permit_not_active`, as the rules say.)"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from hub.settings import Settings
from schemas import topics
from tests.integration.agency_requests import (
    agency_running,
    by_request,
    holder,
    issued_permit,
    rows,
    send,
    settled,
    synced,
    wait_for,
)
from tests.integration.test_social_insurance_registrations import (
    AGENCY,
    CODEC,
    ENTRY,
    SI_CARD_EVENTS,
    by_no,
    card_issued,
    kinds,
    legacy_record,
    requested,
)

pytestmark = pytest.mark.integration
CARD = "ESSC00000000000000E1"
LEGACY = "110000201900000081"


async def test_requests_before_the_permit_or_the_ecard_wait_and_are_decided(
    hub_settings: Settings,
) -> None:
    async with agency_running(hub_settings, AGENCY) as auth:
        # A pre-integration permit about to be registered under its number: one event makes
        # it known and active (a new permit's letter would be decided at the letter stage).
        early = requested(by_no(LEGACY), "H-early")
        by_card = requested({"kind": "ecard", "card_id": CARD}, "H-card")
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [early, by_card])
        await settled(hub_settings, AGENCY)
        held = await rows(hub_settings, AGENCY, "SELECT hold_key, reason FROM hub_held_requests"
                          " ORDER BY hold_key")
        assert held == [{"hold_key": LEGACY, "reason": "permit_unknown"},
                        {"hold_key": CARD, "reason": "ecard_unknown"}]
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            early.model_copy(update={"id": uuid.uuid4()})])
        first = await auth.register_legacy(legacy_record(LEGACY, 71))
        second = await issued_permit(auth, holder(72), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, SI_CARD_EVENTS, [card_issued(second, CARD)])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 6,
                       what="the held requests decided")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 6, what="no more outcomes")

    assert Counter(kinds(events)) == {"InsuranceRegistered": 3, "SocialSecurityNumberIssued": 3}
    decided = by_request(events, "request_id")
    assert [e.subject for e in decided["H-early"]] == [first.permit_no] * 2
    assert decided["H-early"][0].data.late, "from its 2024 issue"
    assert decided["H-early"][0].id == decided["H-early"][1].id, (
        "the resubmission gets the very same answer")
    assert [e.subject for e in decided["H-card"]] == [second.permit_no]
    assert await rows(hub_settings, AGENCY, "SELECT 1 FROM hub_held_requests") == []
