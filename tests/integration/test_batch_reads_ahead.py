"""Public security and social insurance read ahead per batch (one statement for what the
batch's permit events look at) and write letters and e-cards once per batch; on the real
database, a batch decides exactly as event by event would.

Each batch here is applied as the consumer applies it (`Router.apply`, in one transaction),
with what a request decides early in the batch changing what a permit event later in the same
batch finds: a read-ahead the view did not update or forget would decide otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from consumers.public_security.service import router as ps_router
from consumers.social_insurance.service import router as si_router
from hub import bootstrap
from hub.delivery import Delivery
from hub.settings import Settings
from producers.work_permit import domain
from schemas.envelope import CloudEvent
from schemas.permits import CancellationReason, Category, PermitEvent, PermitPayload
from schemas.public_security import (
    PresentedPermitNo,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
)
from schemas.social_insurance import (
    InsuranceRegistrationRequested,
    InsuranceRegistrationRequestedData,
)
from tests.factories import employer, holder, permit_event

pytestmark = pytest.mark.integration

ENTRY = date(2025, 3, 3)
PERMIT = "156000000000000071"
QUIET = "156000000000000072"
"""A permit with no residence permit or registration: its events decide nothing."""


class Authority:
    """Each decision as its permit's next event, as the authority's relay publishes it."""

    def __init__(self) -> None:
        self.sequences: dict[str, int] = {}

    def event(self, data: PermitPayload) -> PermitEvent:
        no = data.permit.permit_no
        self.sequences[no] = self.sequences.get(no, 0) + 1
        return permit_event(data, self.sequences[no])

    def lifecycle(self, permit_no: str, employer_: Any = None) -> list[PermitEvent]:
        """Letter, issue (24 months from ENTRY), extension of the work permit, cancellation."""
        letter = self.event(domain.notification_letter(
            permit_no=permit_no, letter_no=f"NL{permit_no}",
            holder=holder(nationality="US", passport_no=f"P{permit_no[-8:]}"),
            employer=employer_ or employer(), category=Category.B, position="Engineer",
            approved_months=24, today=ENTRY - timedelta(days=21)))
        issued = self.event(domain.issue(letter.data.permit, valid_from=ENTRY, today=ENTRY))
        record = issued.data.permit
        assert record.valid_until is not None
        extended = self.event(domain.extend(
            record, new_valid_until=record.valid_until + timedelta(days=365),
            today=record.valid_until - timedelta(days=60)))
        cancelled = self.event(domain.cancel(
            extended.data.permit, reason=CancellationReason.CONTRACT_ENDED,
            today=record.valid_until - timedelta(days=30)))
        return [letter, issued, extended, cancelled]


def batch(*events: CloudEvent[Any]) -> list[Delivery]:
    at = int(datetime(2025, 3, 20, tzinfo=UTC).timestamp() * 1000)
    return [Delivery("topic", 0, offset, at, e) for offset, e in enumerate(events)]


async def apply(settings: Settings, agency: str, router: Any,
                deliveries: Sequence[Delivery]) -> list[str]:
    """Apply a batch in one transaction; the types of the outcomes it put in the outbox."""
    async with bootstrap.pool(settings, agency, max_size=1) as pool, pool.acquire() as conn:
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM hub_outbox")
        async with conn.transaction():
            await router.apply(conn, deliveries)
        values = await conn.fetch("SELECT value FROM hub_outbox WHERE id > $1 ORDER BY id",
                                  before)
    return [json.loads(v["value"])["type"].rsplit(".", 1)[-1] for v in values]


async def test_public_security_sees_a_residence_permit_issued_earlier_in_the_batch(
    hub_settings: Settings,
) -> None:
    """Application, work-permit extension and cancellation in one batch: the extension and
    the cancellation find the residence permit the application was just granted."""
    authority = Authority()
    letter, issued, extended, cancelled = authority.lifecycle(PERMIT)
    quiet = authority.lifecycle(QUIET)
    application = ResidencePermitApplied.create(
        subject=PERMIT, sequence=1, data=ResidencePermitAppliedData(
            application_id="B-1", presented=PresentedPermitNo(permit_no=PERMIT),
            entry_date=ENTRY, applied_on=ENTRY + timedelta(days=10),
            requested_until=date(2026, 3, 12)))
    router = ps_router(hub_settings)
    outcomes = await apply(hub_settings, "public_security", router, batch(
        letter, issued, *quiet, application, extended, cancelled))
    assert outcomes == ["ResidencePermitIssued", "ResidencePermitExtensionAvailable",
                        "ResidencePermitCancellationRequired"]
    # The same batch again: every event handled already, nothing decided twice.
    assert await apply(hub_settings, "public_security", router, batch(
        letter, issued, *quiet, application, extended, cancelled)) == []


async def test_social_insurance_sees_letters_and_registrations_of_earlier_in_the_batch(
    hub_settings: Settings,
) -> None:
    """A request naming a letter of the same batch finds it (not held), and the permit's
    cancellation later in the batch suspends the registration it made; every letter of the
    batch is stored."""
    authority = Authority()
    letter, issued, extended, cancelled = authority.lifecycle(PERMIT)
    quiet = authority.lifecycle(QUIET)
    request = InsuranceRegistrationRequested.create(
        subject=f"NL{PERMIT}", sequence=1, data=InsuranceRegistrationRequestedData.model_validate({
            "request_id": "B-1", "requester": "employer",
            "reference": {"kind": "letter_no", "letter_no": f"NL{PERMIT}"},
            "employer_credit_code": letter.data.permit.employer.credit_code,
            "requested_on": ENTRY + timedelta(days=20)}))
    router = si_router(hub_settings)
    outcomes = await apply(hub_settings, "social_insurance", router, batch(
        letter, issued, *quiet, request, extended, cancelled))
    assert outcomes == ["InsuranceRegistered", "SocialSecurityNumberIssued",
                        "InsuranceSuspended"]
    async with bootstrap.pool(hub_settings, "social_insurance", max_size=1) as pool:
        letters = await pool.fetch("SELECT letter_no, permit_no FROM si_letters"
                                   " ORDER BY letter_no")
        held = await pool.fetchval("SELECT count(*) FROM hub_held_requests")
    assert [tuple(r) for r in letters] == [(f"NL{PERMIT}", PERMIT), (f"NL{QUIET}", QUIET)]
    assert held == 0
    assert await apply(hub_settings, "social_insurance", router, batch(
        letter, issued, *quiet, request, extended, cancelled)) == []
