"""A person across permits, on the real broker and database (issue 11, item 4): a new
application by a former holder keeps the permit number and re-activates the e-card; after a
change of employer under a new number, the SSN that social insurance reuses (announced only
in InsuranceRegistered) follows the person to the new e-card, once."""

from __future__ import annotations

import pytest

from schemas import topics
from schemas.card import ECardIssued, PermitNotificationSent, PhysicalCardIssued
from schemas.permits import CancellationReason, Category
from schemas.social_insurance import InsuranceRegistered, InsuranceRegisteredData
from tests.factories import employer, holder
from tests.integration.test_card_service import (
    TODAY,
    CardHub,
    card_hub,
    for_request,
    in_view,
    outcomes,
    register,
    ssn_issued,
    submit,
)

__all__ = ["card_hub"]

pytestmark = pytest.mark.integration


def insurance_registered(permit_no: str, ssn: str) -> InsuranceRegistered:
    event = InsuranceRegistered.create(
        subject=permit_no, sequence=2, data=InsuranceRegisteredData(
            request_id=f"EMP-{permit_no}", permit_no=permit_no, ssn=ssn, requester="employer",
            employer_credit_code=employer().credit_code, insured=("medical",), exempt=(),
            agreement=None, registered_on=TODAY, deadline=TODAY, late=False))
    assert isinstance(event, InsuranceRegistered)
    return event


async def test_a_former_holder_applies_again_under_the_same_number(card_hub: CardHub) -> None:
    """Cancelled for a new employer, then a new application naming the earlier permit: the
    same number, the sequence continuing; the card view shows the new period, the holder is
    told, and the e-card is the same one (a new registration is already_registered)."""
    hub = card_hub
    permit_no = await hub.permit("Anna Schmidt", started_days_ago=100)
    await in_view(hub, permit_no, "status", "active")
    first = await register(hub, "Anna Schmidt", permit_no=permit_no)
    await hub.auth.cancel(permit_no, reason=CancellationReason.NEW_EMPLOYER, today=TODAY)
    letter = await hub.auth.apply(
        holder=holder(name="Anna Schmidt", passport_no="RENEWED01"), employer=employer(),
        category=Category.A, position="Director", approved_months=24, today=TODAY,
        previous_permit_no=permit_no)
    assert letter.permit_no == permit_no
    new = await hub.auth.issue(permit_no, valid_from=TODAY, today=TODAY)
    held = await hub.auth.get(permit_no)
    assert held is not None
    assert held[1] == 5  # letter, issue, cancellation, the new letter, the new issue
    await in_view(hub, permit_no, "valid_until", new.valid_until)
    assert await hub.card_view(permit_no, "position") == "Director"
    again = await register(hub, "Anna Schmidt", permit_no=permit_no)
    events = await outcomes(hub, lambda es: for_request(es, again), "the second registration")
    (issued,) = for_request(events, first)
    assert isinstance(issued, ECardIssued)
    (refused,) = for_request(events, again)
    assert refused.data.reason.value == "already_registered"
    assert issued.data.card_id in refused.data.message
    triggers = [e.data.trigger for e in events if isinstance(e, PermitNotificationSent)
                and e.data.kind.value == "status_changed"]
    assert triggers == ["PermitCancelled", "NotificationLetterIssued", "PermitIssued"]
    assert await hub.sql("SELECT count(*) FROM card_ecards") == 1
    assert hub.consumer.stats.dead_lettered == 0


async def test_the_reused_ssn_follows_the_person_to_the_new_ecard_once(card_hub: CardHub) -> None:
    """Old permit with its SSN and physical card; a new permit under a new number and its
    e-card; InsuranceRegistered with the same SSN, twice: one PhysicalCardIssued for the new
    permit (same card number), the new e-card carries the SSN, registration by SSN finds the
    new permit."""
    hub = card_hub
    old = await hub.permit("Kenji Sato", started_days_ago=200)
    await in_view(hub, old, "status", "active")
    await register(hub, "Kenji Sato", permit_no=old)
    await submit(hub.settings, [ssn_issued(old, "SSN-KENJI-01")], topic=topics.INSURANCE_EVENTS)
    await outcomes(hub, lambda es: any(isinstance(e, PhysicalCardIssued) for e in es),
                   "the first physical card")
    await hub.auth.cancel(old, reason=CancellationReason.NEW_EMPLOYER, today=TODAY)
    new = await hub.permit("Kenji Sato", started_days_ago=1)
    await in_view(hub, new, "status", "active")
    new_card = await register(hub, "Kenji Sato", permit_no=new)
    await outcomes(hub, lambda es: for_request(es, new_card), "the new e-card")
    await submit(hub.settings, [insurance_registered(new, "SSN-KENJI-01"),
                                insurance_registered(new, "SSN-KENJI-01")],
                 topic=topics.INSURANCE_EVENTS)
    await outcomes(hub, lambda es: any(isinstance(e, PhysicalCardIssued)
                                       and e.data.permit_no == new for e in es),
                   "the physical card carried over")  # the topics are not ordered together
    by_ssn = await register(hub, "Kenji Sato", ssn="SSN-KENJI-01")
    events = await outcomes(hub, lambda es: for_request(es, by_ssn), "registration by SSN")
    cards = [e.data for e in events if isinstance(e, PhysicalCardIssued)]
    assert sorted(c.permit_no for c in cards) == [old, new]  # once each
    by_permit = {c.permit_no: c for c in cards}
    assert by_permit[old].card_no == by_permit[new].card_no
    (issued,) = [e for e in for_request(events, new_card) if isinstance(e, ECardIssued)]
    assert by_permit[new].ecard_id == issued.data.card_id
    assert await hub.sql("SELECT ssn FROM card_ecards WHERE permit_no = $1", new) == \
        "SSN-KENJI-01"
    (answer,) = for_request(events, by_ssn)
    assert answer.data.reason.value == "already_registered"
    assert answer.data.permit_no == new
    assert hub.consumer.stats.dead_lettered == 0
