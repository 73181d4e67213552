"""Every event type of the hub's contract, in one place: exports, docs and checks use it."""

from __future__ import annotations

from typing import Any

from schemas.card import CARD_EVENT_TYPES
from schemas.envelope import CloudEvent
from schemas.evidence import EVIDENCE_EVENT_TYPES
from schemas.permits import PERMIT_EVENT_TYPES
from schemas.public_security import (
    PUBLIC_SECURITY_DECISION_TYPES,
    PUBLIC_SECURITY_REQUEST_TYPES,
    RESIDENCE_EVENT_TYPES,
)
from schemas.social_insurance import (
    INSURANCE_EVENT_TYPES,
    SOCIAL_INSURANCE_DECISION_TYPES,
    SOCIAL_INSURANCE_REQUEST_TYPES,
)

ALL_EVENT_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    *PERMIT_EVENT_TYPES,
    *CARD_EVENT_TYPES,
    *PUBLIC_SECURITY_REQUEST_TYPES,
    *RESIDENCE_EVENT_TYPES,
    *PUBLIC_SECURITY_DECISION_TYPES,
    *SOCIAL_INSURANCE_REQUEST_TYPES,
    *INSURANCE_EVENT_TYPES,
    *SOCIAL_INSURANCE_DECISION_TYPES,
    *EVIDENCE_EVENT_TYPES,
)
"""Each event family adds its types here."""
