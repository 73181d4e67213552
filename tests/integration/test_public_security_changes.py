"""Public security follows the work permit's changes on the real broker and database: a
passport renewal reaches the residence permit (art. 33), a change of position does not."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hub.clock import SystemClock
from hub.settings import Settings
from schemas import Codec, topics
from schemas.permits import PermitIssuedData, PermitRecord, PermitStatus
from schemas.public_security import (
    RESIDENCE_EVENT_TYPES,
    PresentedPermitNo,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
)
from tests.factories import permit_event
from tests.integration.agency_requests import (
    agency_running,
    holder,
    issued_permit,
    rows,
    send,
    settled,
    synced,
    wait_for,
)
from tests.integration.hub_fixtures import publish

pytestmark = pytest.mark.integration

CODEC = Codec(RESIDENCE_EVENT_TYPES)
ENTRY = SystemClock().today() - timedelta(days=10)
"""Relative to today: a change counts on the authority's event time (now), and reaches only
a residence permit in force then."""
FIRST_ENTRY = date(2024, 3, 4)
AGAIN = date(2025, 9, 1)
"""A second validity period of the same permit number, after the first one expired."""
AGENCY = "public_security"


def applied(permit_no: str, application_id: str, **data: Any) -> ResidencePermitApplied:
    """A first application by permit number, ten days after entry, for a year."""
    fields: dict[str, Any] = {
        "application_id": application_id,
        "presented": PresentedPermitNo(permit_no=permit_no),
        "entry_date": ENTRY, "applied_on": ENTRY + timedelta(days=10),
        "requested_until": ENTRY + timedelta(days=365),
    }
    event = ResidencePermitApplied.create(
        subject=permit_no, sequence=1,
        data=ResidencePermitAppliedData.model_validate(fields | data))
    assert isinstance(event, ResidencePermitApplied)
    return event


async def test_a_passport_renewal_reaches_the_residence_permit(hub_settings: Settings) -> None:
    """PermitChanged (new passport) → ResidencePermitChangeRequired, the view holds the new
    passport, the residence permit notes the particulars; a new position publishes nothing."""
    async with agency_running(hub_settings, AGENCY) as auth:
        permit = await issued_permit(auth, holder(31), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS,
                   [applied(permit.permit_no, "C-first")])
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 1,
                       what="the residence permit")
        await auth.change(permit.permit_no, passport_no="E98765432")
        await auth.change(permit.permit_no, position="Chief Engineer")
        await synced(hub_settings, AGENCY, auth)
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 2, what="the change required")

    kinds = [e.type.rsplit(".", 1)[-1] for e in events]
    assert kinds == ["ResidencePermitIssued", "ResidencePermitChangeRequired"]
    issued, change = (e.data for e in events)
    assert change.residence_permit_no == issued.residence_permit_no
    assert change.changed == ("holder.passport_no",)
    assert (change.report_by - change.changed_on).days == 10
    assert b"E98765432" not in events[1].to_json()
    view = await rows(hub_settings, AGENCY, "SELECT passport_no FROM ps_permits"
                      " WHERE permit_no = $1", permit.permit_no)
    assert view == [{"passport_no": "E98765432"}]
    stored = await rows(hub_settings, AGENCY, "SELECT status, changed_particulars,"
                        " change_report_by FROM ps_residence_permits")
    assert stored == [{"status": "issued", "changed_particulars": ["holder.passport_no"],
                       "change_report_by": change.report_by}]


async def test_a_permit_number_active_again_takes_a_new_residence_application(
    hub_settings: Settings,
) -> None:
    """Issued, expired, then active again under the same number (its sequence continuing):
    a new first application is granted a new residence permit; the earlier one is expired."""
    async with agency_running(hub_settings, AGENCY) as auth:
        permit = await issued_permit(auth, holder(32), entry=FIRST_ENTRY, months=12)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied(
            permit.permit_no, "R-first", entry_date=FIRST_ENTRY,
            applied_on=FIRST_ENTRY + timedelta(days=10),
            requested_until=FIRST_ENTRY + timedelta(days=300))])
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 1,
                       what="the first residence permit")
        assert permit.valid_until is not None
        expired = await auth.expire(permit.permit_no,
                                    today=permit.valid_until + timedelta(days=1))
        stored = await auth.get(permit.permit_no)
        assert stored is not None
        again = expired.model_copy(update={
            "status": PermitStatus.ACTIVE, "issued_on": AGAIN, "valid_from": AGAIN,
            "valid_until": AGAIN + timedelta(days=364)})
        # The authority's new validity period under the same number, as its relay publishes.
        await publish(hub_settings, [permit_event(
            PermitIssuedData(permit=PermitRecord.model_validate(again.model_dump())),
            stored[1] + 1)])
        await settled(hub_settings, AGENCY)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied(
            permit.permit_no, "R-again", entry_date=AGAIN - timedelta(days=5),
            applied_on=AGAIN + timedelta(days=1), requested_until=AGAIN + timedelta(days=300))])
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 2, what="the new residence permit")

    kinds = [e.type.rsplit(".", 1)[-1] for e in events]
    assert kinds == ["ResidencePermitIssued", "ResidencePermitIssued"]
    first, second = (e.data for e in events)
    assert second.residence_permit_no != first.residence_permit_no
    assert second.valid_from == AGAIN + timedelta(days=1)
    stored_rps = await rows(hub_settings, AGENCY, "SELECT residence_permit_no, status FROM"
                            " ps_residence_permits ORDER BY residence_permit_no")
    assert stored_rps == [{"residence_permit_no": first.residence_permit_no, "status": "expired"},
                          {"residence_permit_no": second.residence_permit_no,
                           "status": "issued"}]
