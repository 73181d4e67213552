"""What public security reads of each event it consumes: its consumer-driven contract.

Checked against every committed version of the producers' schemas by
`tests/contract/test_consumer_expectations.py` (grammar: `schemas.expectations`).
"""

from __future__ import annotations

from schemas.expectations import ENVELOPE, Reads
from schemas.permits import PERMIT_EVENT_TYPES

_PS_PERMIT: Reads = {  # handlers.checked_permit, and rules.check_permit on the row
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string{letter_issued,cancelled,expired}",
    "data.permit.standard": "string{legacy}?",
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.holder.passport_no": "string",
    "data.permit.holder.passport_expiry": "string(date)",
    "data.permit.employer.province": "string",
    "data.permit.employer.city": "string",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
    "data.permit.cancelled_on": "string(date)?",
}


def reads() -> dict[str, Reads]:
    """Per event type (class name), the paths public security reads and their types."""
    reads: dict[str, Reads] = {t.__name__: ENVELOPE | _PS_PERMIT for t in PERMIT_EVENT_TYPES}
    # rules.check_permit refuses a lapsed letter's permit; only this type's record is lapsed
    reads["NotificationLetterLapsed"] |= {"data.permit.status": "string{lapsed}"}
    # on_permit_cancelled asserts cancelled_on, which the permit's validator guarantees for
    # a cancelled permit; JSON Schema cannot say so per status, hence `?`.
    reads["ResidencePermitApplied"] = ENVELOPE | {  # on_application, rules.decide, view.record
        "data.application_id": "string",
        "data.purpose": "string{first,extension}?",
        # the decoder picks the alternative by `kind` (a discriminator): absent, it fails
        "data.presented.kind": "string{permit_no,qr_token}",
        "data.presented.permit_no": "string?",
        "data.presented.token": "string?",
        "data.presented.scanned_at": "string(date-time)?",
        "data.entry_date": "string(date)?",
        "data.applied_on": "string(date)",
        "data.requested_until": "string(date)",
    }
    return reads
