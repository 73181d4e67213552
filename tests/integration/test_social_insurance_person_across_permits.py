"""A person across permits at social insurance, on the real broker and database (issue 11,
item 4): the SSN follows the person to the new employer's permit, an old e-card finds the
current permit, a permit number active again is registered for its new period, and no
permit is registered past its end."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest

from hub.settings import Settings
from producers.work_permit import Authority
from schemas import topics
from schemas.permits import CancellationReason, Category, Employer, PermitRecord
from tests.integration.agency_requests import (
    HANSA,
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
    card_known,
    kinds,
    outcome,
    requested,
)

pytestmark = pytest.mark.integration

ACME = Employer(name="Acme Robotics (Beijing) Co., Ltd.", credit_code="91110105MA01ABCD3X",
                province="Beijing", city="Beijing")
OLD_CARD = "ESSC00000000000000D1"
NEW_ENTRY = date(2025, 10, 20)


async def applied_again(auth: Authority, permit_no: str, *, today: date) -> PermitRecord:
    """A former holder's new application, naming the earlier permit: the person keeps the
    number for life, its sequence continues with a new letter; issued on entry."""
    record, _ = await auth.get(permit_no) or (None, 0)
    assert record is not None
    await auth.apply(holder=record.holder, employer=record.employer, category=Category.B,
                     position="Engineer", approved_months=12, today=today,
                     previous_permit_no=permit_no)
    return await auth.issue(permit_no, valid_from=NEW_ENTRY, today=NEW_ENTRY)


async def test_the_ssn_and_the_requests_follow_the_person_across_permits(
    hub_settings: Settings,
) -> None:
    """Change of employer: the new registration carries the same SSN (no second SSN event)
    and the old e-card finds the new permit; a number active again is registered for the new
    period; a request after a permit's end is refused."""
    mover, returner = holder(51, "GB"), holder(53, "US")
    async with agency_running(hub_settings, AGENCY) as auth:
        first = await issued_permit(auth, mover, entry=ENTRY)
        kept = await issued_permit(auth, returner, entry=ENTRY)
        short = await issued_permit(auth, holder(52), entry=date(2025, 1, 6), months=1)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, SI_CARD_EVENTS, [card_issued(first, OLD_CARD)])
        await card_known(hub_settings, OLD_CARD)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(first.permit_no), "P-first"),
            requested(by_no(kept.permit_no), "P-kept")])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 4,
                       what="two first registrations")

        await auth.cancel(first.permit_no, reason=CancellationReason.NEW_EMPLOYER,
                          today=date(2025, 9, 30))
        second = await issued_permit(auth, mover, entry=NEW_ENTRY, employer=ACME)
        await auth.cancel(kept.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                          today=date(2025, 6, 30))
        again = await applied_again(auth, kept.permit_no, today=date(2025, 9, 29))
        await synced(hub_settings, AGENCY, auth)
        assert short.valid_until is not None
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested({"kind": "ecard", "card_id": OLD_CARD}, "P-acme",
                      employer_credit_code=ACME.credit_code,
                      requested_on=NEW_ENTRY + timedelta(days=5)),
            requested(by_no(kept.permit_no), "P-kept-again",
                      requested_on=NEW_ENTRY + timedelta(days=3)),
            requested(by_no(short.permit_no), "P-short-late",
                      requested_on=short.valid_until + timedelta(days=1))])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 9,
                       what="suspensions and the second period's decisions")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 9, what="no more outcomes")

    assert len(events) == 9, kinds(events)
    assert Counter(kinds(events)) == {
        "InsuranceRegistered": 4, "SocialSecurityNumberIssued": 2, "InsuranceSuspended": 2,
        "InsuranceRegistrationRejected": 1}
    decided = by_request(events, "request_id")
    mover_ssn = decided["P-first"][0].data.ssn
    acme = decided["P-acme"]
    assert kinds(acme) == ["InsuranceRegistered"], "the SSN rides on the registration"
    assert (acme[0].subject, acme[0].data.ssn) == (second.permit_no, mover_ssn)
    again_events = decided["P-kept-again"]
    assert kinds(again_events) == ["InsuranceRegistered"]
    assert again_events[0].subject == kept.permit_no
    assert again_events[0].data.ssn == decided["P-kept"][0].data.ssn
    assert again.valid_from is not None
    assert again_events[0].data.deadline == again.valid_from + timedelta(days=30)
    assert outcome(decided["P-short-late"]) == ("InsuranceRegistrationRejected",
                                                "permit_expired")

    accounts = {r["ssn"]: r for r in await rows(
        hub_settings, AGENCY, "SELECT ssn, status, current_permit_no FROM si_accounts")}
    assert accounts[mover_ssn]["current_permit_no"] == second.permit_no
    assert accounts[mover_ssn]["status"] == "active"
    history = await rows(hub_settings, AGENCY, "SELECT request_id, status FROM si_registrations"
                         " WHERE permit_no = $1 ORDER BY registered_on", kept.permit_no)
    assert history == [{"request_id": "P-kept", "status": "suspended"},
                       {"request_id": "P-kept-again", "status": "active"}]
    assert HANSA.credit_code != ACME.credit_code
