"""Topic names of the hub: one module, so every side spells them the same way."""

from __future__ import annotations

PERMIT_EVENTS = "workpermit.permit-events.v1"
CARD_REQUESTS = "card.requests.v1"
CARD_EVENTS = "card.card-events.v1"
PUBLIC_SECURITY_REQUESTS = "publicsecurity.requests.v1"
RESIDENCE_EVENTS = "publicsecurity.residence-events.v1"
SOCIAL_INSURANCE_REQUESTS = "socialinsurance.requests.v1"
INSURANCE_EVENTS = "socialinsurance.insurance-events.v1"
PUBLIC_SECURITY_DECISIONS = "publicsecurity.decisions.v1"
SOCIAL_INSURANCE_DECISIONS = "socialinsurance.decisions.v1"

ALL_TOPICS: tuple[str, ...] = (
    PERMIT_EVENTS,
    CARD_REQUESTS,
    CARD_EVENTS,
    PUBLIC_SECURITY_REQUESTS,
    RESIDENCE_EVENTS,
    PUBLIC_SECURITY_DECISIONS,
    SOCIAL_INSURANCE_REQUESTS,
    INSURANCE_EVENTS,
    SOCIAL_INSURANCE_DECISIONS,
)


def audience_topic(topic: str, agency: str) -> str:
    """The topic on which one agency receives a channel published per audience
    (`schemas.audiences`): the agency's name before the version, `workpermit.permit-events.v1`
    → `workpermit.permit-events.public-security.v1` for `public_security`."""
    stem, dot, version = topic.rpartition(".")
    if not dot or not version.startswith("v"):
        raise ValueError(f"topic {topic!r} does not end in a version")
    return f"{stem}.{agency.replace('_', '-')}.{version}"


def dead_letter_topic(group_id: str) -> str:
    """The dead-letter topic of one consumer group."""
    return f"{group_id}.dlq"
