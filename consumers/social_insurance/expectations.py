"""What the social insurance agency reads of each event it consumes: its consumer-driven contract.

Checked against every committed version of the producers' schemas by
`tests/contract/test_consumer_expectations.py` (grammar: `schemas.expectations`).
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.expectations import ENVELOPE, Reads
from schemas.permits import PERMIT_EVENT_TYPES

_SI_PERMIT: Reads = {  # handlers.insured_permit, and rules.check_permit on the row
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string{letter_issued,cancelled,expired}",
    "data.permit.standard": "string{legacy}?",
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.holder.passport_no": "string",
    "data.permit.holder.date_of_birth": "string(date)",
    "data.permit.employer.credit_code": "string",
    "data.permit.employer.name": "string",
    "data.permit.issued_on": "string(date)?",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
}
_SI_HANDLERS: Mapping[str, Reads] = {
    "NotificationLetterIssued": {"data.letter_no": "string"},  # on_letter_issued
    # on_permit_cancelled / on_permit_expired assert the date (see public security's note)
    "PermitCancelled": {"data.permit.cancelled_on": "string(date)?", "data.reason": "string"},
    "PermitChanged": {"data.changes[].field": "string{holder.passport_no}"},  # on_permit_changed
    # rules.check_permit refuses a lapsed letter's permit; only this type's record is lapsed
    "NotificationLetterLapsed": {"data.permit.status": "string{lapsed}"},
}


def reads() -> dict[str, Reads]:
    """Per event type (class name), the paths social insurance reads and their types."""
    reads: dict[str, Reads] = {
        t.__name__: {**ENVELOPE, **_SI_PERMIT, **_SI_HANDLERS.get(t.__name__, {})}
        for t in PERMIT_EVENT_TYPES
    }
    reads["InsuranceRegistrationRequested"] = ENVELOPE | {  # on_registration_requested, rules
        "data.request_id": "string",
        "data.requester": "string",
        "data.reference.kind": "string{permit_no,letter_no,ecard}",  # a discriminator, too
        "data.reference.permit_no": "string?",
        "data.reference.letter_no": "string?",
        "data.reference.card_id": "string?",
        "data.employer_credit_code": "string",
        "data.requested_on": "string(date)",
        "data.certificate_of_coverage": "boolean?",
    }
    reads["InsuranceReviewDecided"] = ENVELOPE | {  # on_review_decided
        "data.request_id": "string",
        "data.permit_no": "string",
        "data.decision": "string{approve,refuse}",
        "data.exempt[]": "string?",
        "data.officer_id": "string",
        "data.decided_at": "string(date-time)",
        "data.reason": "string",
    }
    reads["ECardIssued"] = ENVELOPE | {  # on_ecard_issued
        "data.card_id": "string",
        "data.permit.permit_no": "string",
    }
    return reads
