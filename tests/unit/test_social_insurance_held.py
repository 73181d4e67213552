"""Early registration requests are held, not refused (issue 11, item 2), as handler calls.

A request naming a permit, letter or e-card social insurance does not know yet returns
`Hold(reference, reason)`; called again once what it names has arrived, it is decided; called
with `received.final` (its hold period passed) it is refused as unknown, saying it waited.
The router's part (storing, releasing, the deadline, one answer per request id) is tested on
a real database in tests/integration/test_social_insurance_held.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from consumers.social_insurance import handlers
from consumers.social_insurance.settings import SocialInsuranceSettings
from hub.dispatch import Hold, Received
from schemas.social_insurance import InsuranceRejection
from tests.unit.test_social_insurance_handlers import (
    CARD_ID,
    PERMIT,
    Agency,
    card_issued,
    person,
    registered,
    rejected,
    requested,
)

R = InsuranceRejection
AT = datetime(2025, 3, 23, 1, tzinfo=UTC)
FIRST = Received(AT)
AGAIN = Received(AT, held_since=AT + timedelta(seconds=1))
FINAL = Received(AT, held_since=AT + timedelta(seconds=1), final=True)


async def test_a_request_before_its_permit_is_held_by_the_permit_number() -> None:
    """Nothing is recorded while it waits; once the permit is there it is registered."""
    agency = Agency()
    request = requested()
    held = await handlers.on_registration_requested(request, agency.view, agency.policy, FIRST)
    assert held == Hold(PERMIT, "permit_unknown")
    assert agency.view.requests == []
    agency.authority.issued(person())
    decided = await handlers.on_registration_requested(request, agency.view, agency.policy,
                                                       AGAIN)
    assert not isinstance(decided, Hold)
    assert registered(decided).request_id == "R-1"


@pytest.mark.parametrize(("reference", "reason"), [
    ({"kind": "letter_no", "letter_no": f"NL{PERMIT}"}, "letter_unknown"),
    ({"kind": "ecard", "card_id": CARD_ID}, "ecard_unknown"),
], ids=["letter", "ecard"])
async def test_a_request_by_an_unknown_letter_or_ecard_is_held_by_that_reference(
    reference: dict[str, str], reason: str
) -> None:
    agency = Agency()
    given = next(v for k, v in reference.items() if k != "kind")
    held = await handlers.on_registration_requested(
        requested(reference=reference), agency.view, agency.policy, FIRST)
    assert held == Hold(given, reason)


async def test_a_request_held_for_an_ecard_is_registered_once_the_card_is_known() -> None:
    agency = Agency()
    permit = agency.authority.issued(person())
    request = requested(reference={"kind": "ecard", "card_id": CARD_ID})
    assert isinstance(await handlers.on_registration_requested(
        request, agency.view, agency.policy, FIRST), Hold)
    await agency.on(card_issued(permit))
    decided = await handlers.on_registration_requested(request, agency.view, agency.policy,
                                                       AGAIN)
    assert not isinstance(decided, Hold)
    assert registered(decided).permit_no == PERMIT


async def test_past_its_hold_period_the_request_is_refused_saying_it_waited() -> None:
    agency = Agency()
    decided = await handlers.on_registration_requested(requested(), agency.view,
                                                       agency.policy, FINAL)
    assert not isinstance(decided, Hold)
    data = rejected(decided)
    assert data.reason is R.PERMIT_UNKNOWN
    assert "waited 72 h" in data.message
    assert [(r.outcome, r.reason) for r in agency.view.requests] == [
        ("rejected", "permit_unknown")]


async def test_a_known_permit_is_decided_at_once_never_held() -> None:
    """A permit at the letter stage is known: refused by the rules, not held."""
    agency = Agency()
    agency.authority.letter(person())
    decided = await handlers.on_registration_requested(requested(), agency.view,
                                                       agency.policy, FIRST)
    assert not isinstance(decided, Hold)
    assert rejected(decided).reason is R.PERMIT_NOT_ACTIVE


async def test_a_decided_request_id_is_a_duplicate_even_if_its_reference_is_unknown() -> None:
    """The duplicate rule comes first: a used id naming something unknown is not held."""
    agency = Agency()
    agency.authority.issued(person())
    registered(await agency.request(requested()))
    other = requested(reference={"kind": "permit_no", "permit_no": "156000000000000099"})
    decided = await handlers.on_registration_requested(other, agency.view, agency.policy,
                                                       FIRST)
    assert not isinstance(decided, Hold)
    assert rejected(decided, "156000000000000099").reason is R.DUPLICATE_REQUEST


def test_the_hold_period_is_a_setting_of_72_hours_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert SocialInsuranceSettings().hold_hours == 72
    monkeypatch.setenv("HUB_SOCIAL_INSURANCE_HOLD_HOURS", "24")
    assert SocialInsuranceSettings().hold_hours == 24
    monkeypatch.setenv("HUB_SOCIAL_INSURANCE_HOLD_HOURS", "0")
    with pytest.raises(ValidationError, match="hold_hours"):
        SocialInsuranceSettings()
