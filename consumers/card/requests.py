"""Requests as the front doors build them: the e-SSC app back end and the daily scheduler.

The hub does not own these systems; the functions exist for the demo, tests and operators,
and show another front door what a valid request looks like.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from schemas.card import (
    ECardRegistrationRequested,
    ECardRegistrationRequestedData,
    ExpiryReminderSweepRequested,
    ExpiryReminderSweepRequestedData,
    RealPersonVerification,
    VerificationResult,
    sweep_subject,
)


def registration_request(
    name: str,
    *,
    permit_no: str | None = None,
    ssn: str | None = None,
    verified: bool = True,
    request_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> ECardRegistrationRequested:
    """An e-card registration by name and permit number (or SSN), after the face check."""
    at = at or datetime.now(UTC)
    data = ECardRegistrationRequestedData(
        request_id=request_id or uuid.uuid4(),
        name=name,
        permit_no=permit_no,
        ssn=ssn,
        verification=RealPersonVerification(
            result=VerificationResult.PASSED if verified else VerificationResult.FAILED,
            verified_at=at,
        ),
    )
    subject = permit_no or ssn
    assert subject is not None, "the data model requires permit_no or ssn"
    event = ECardRegistrationRequested.create(subject=subject, sequence=1, data=data, time=at)
    assert isinstance(event, ECardRegistrationRequested)
    return event


def sweep_request(as_of: date) -> ExpiryReminderSweepRequested:
    """The scheduler's expiry-reminder sweep for one day."""
    event = ExpiryReminderSweepRequested.create(
        subject=sweep_subject(as_of), sequence=1,
        data=ExpiryReminderSweepRequestedData(as_of=as_of),
    )
    assert isinstance(event, ExpiryReminderSweepRequested)
    return event
