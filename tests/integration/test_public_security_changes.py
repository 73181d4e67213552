"""Public security follows the work permit's changes on the real broker and database: a
passport renewal reaches the residence permit (art. 33), a change of position does not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hub.clock import SystemClock
from hub.settings import Settings
from schemas import Codec, topics
from schemas.public_security import (
    RESIDENCE_EVENT_TYPES,
    PresentedPermitNo,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
)
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

pytestmark = pytest.mark.integration

CODEC = Codec(RESIDENCE_EVENT_TYPES)
ENTRY = SystemClock().today() - timedelta(days=10)
"""Relative to today: a change counts on the authority's event time (now), and reaches only
a residence permit in force then."""
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
