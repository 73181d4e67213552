"""Test data: valid permits and events, varied by a random generator where asked."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import cast

from producers.work_permit.store import EVENT_OF
from schemas.permits import (
    Category,
    Employer,
    Holder,
    PermitEvent,
    PermitIssued,
    PermitIssuedData,
    PermitPayload,
    PermitRecord,
    PermitStatus,
)

COUNTRIES = ("DE", "JP", "ES", "CA", "US", "GB", "FR", "KR", "NG", "BR", "IN", "AU", "IT")


def holder(rng: random.Random | None = None, **overrides: object) -> Holder:
    """A valid holder."""
    rng = rng or random.Random(1)
    fields: dict[str, object] = {
        "name": f"Person {rng.randrange(10**6)}",
        "sex": rng.choice("FMX"),
        "date_of_birth": date(1970, 1, 1) + timedelta(days=rng.randrange(12000)),
        "nationality": rng.choice(COUNTRIES),
        "passport_no": f"P{rng.randrange(10**8):08d}",
        "passport_expiry": date(2034, 1, 1) + timedelta(days=rng.randrange(1000)),
    }
    return Holder.model_validate(fields | overrides)


def employer(rng: random.Random | None = None) -> Employer:
    """A valid employer."""
    rng = rng or random.Random(1)
    return Employer(name=f"Employer {rng.randrange(1000)}",
                    credit_code=f"9111{rng.randrange(10**13):013d}X",
                    province="Beijing", city="Beijing")


def active_record(permit_no: str = "156000000000000001", **overrides: object) -> PermitRecord:
    """A valid active permit."""
    fields: dict[str, object] = {
        "permit_no": permit_no,
        "status": PermitStatus.ACTIVE,
        "holder": holder(),
        "category": Category.B,
        "employer": employer(),
        "position": "Engineer",
        "approved_months": 12,
        "issued_on": date(2025, 1, 1),
        "valid_from": date(2025, 1, 1),
        "valid_until": date(2025, 12, 31),
    }
    return PermitRecord.model_validate(fields | overrides)


def issued_event(permit_no: str = "156000000000000001", sequence: int = 2) -> PermitIssued:
    """A PermitIssued event for an active permit."""
    record = active_record(permit_no)
    event = PermitIssued.create(subject=permit_no, sequence=sequence,
                                data=PermitIssuedData(permit=record))
    assert isinstance(event, PermitIssued)
    return event


def permit_event(data: PermitPayload, sequence: int, at: datetime | None = None) -> PermitEvent:
    """The authority's event carrying this decision, as its store would publish it."""
    extra = {} if at is None else {"time": at}
    event = EVENT_OF[type(data)].create(
        subject=data.permit.permit_no, sequence=sequence, data=data, **extra)
    return cast("PermitEvent", event)  # EVENT_OF maps each permit payload to its event type
