"""What the card service reads of each event it consumes: its consumer-driven contract.

Checked against every committed version of the producers' schemas by
`tests/contract/test_consumer_expectations.py` (grammar: `schemas.expectations`).
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.expectations import ENVELOPE, Reads
from schemas.permits import PERMIT_EVENT_TYPES

_CARD_PERMIT: Reads = {  # handlers.card_permit, and rules on the row it makes
    "sequence": "integer",
    "data.permit.permit_no": "string",
    "data.permit.status": "string{active,cancelled,expired}",
    "data.permit.standard": "string{legacy}?",  # absent: the model's default, integrated
    "data.permit.holder.name": "string",
    "data.permit.holder.nationality": "string",
    "data.permit.category": "string",
    "data.permit.employer.name": "string",
    "data.permit.position": "string",
    "data.permit.valid_from": "string(date)?",
    "data.permit.valid_until": "string(date)?",
}
# handlers.notify_permit_change: 'today' in China. Absent, the envelope model takes the
# decoding time: a tolerable approximation (CloudEvents makes `time` optional).
_CARD_NOTICE: Reads = {"time": "string(date-time)?"}
_CARD_STATUS_MESSAGE: Mapping[str, Reads] = {  # rules.status_message, per event type
    "PermitChanged": {"data.changes[].field": "string"},
    "PermitCancelled": {"data.permit.cancelled_on": "string(date)?"},
    # The one type whose record is lapsed: rules.permit_refusal and qr refuse it.
    "NotificationLetterLapsed": {"data.letter_valid_until": "string(date)",
                                 "data.permit.status": "string{lapsed}"},
}
_CARD_NOTIFIED = ("PermitIssued", "PermitExtended", "PermitChanged", "PermitCancelled",
                  "PermitExpired", "PermitMigrated", "NotificationLetterLapsed",
                  "NotificationLetterIssued")  # service.NOTIFIED_PERMIT_EVENTS


def reads() -> dict[str, Reads]:
    """Per event type (class name), the paths the card service reads and their types."""
    reads: dict[str, Reads] = {}
    for t in PERMIT_EVENT_TYPES:
        name = t.__name__
        notified = (_CARD_NOTICE | _CARD_STATUS_MESSAGE.get(name, {})
                    if name in _CARD_NOTIFIED else {})
        reads[name] = {**ENVELOPE, **_CARD_PERMIT, **notified}
    reads["ECardRegistrationRequested"] = ENVELOPE | {  # handlers.register_ecard
        "time": "string(date-time)?",
        "data.request_id": "string(uuid)",
        "data.name": "string",
        "data.permit_no": "string?",
        "data.ssn": "string?",
        "data.verification.result": "string{passed}",
    }
    reads["SocialSecurityNumberIssued"] = ENVELOPE | {  # handlers.issue_physical_card
        "data.permit_no": "string",
        "data.ssn": "string",
        "data.issued_on": "string(date)",
    }
    reads["InsuranceRegistered"] = ENVELOPE | {  # handlers.link_registered_ssn
        "data.permit_no": "string",
        "data.ssn": "string",
        "data.registered_on": "string(date)",
    }
    reads["ExpiryReminderSweepRequested"] = ENVELOPE | {  # handlers.send_expiry_reminders
        "data.as_of": "string(date)",
    }
    return reads
