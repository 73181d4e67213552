"""The rows the card service keeps in its own database, as plain named tuples."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import NamedTuple


class CardPermit(NamedTuple):
    """A permit as the card service keeps it."""

    permit_no: str
    sequence: int
    status: str
    standard: str
    holder_name: str
    nationality: str
    category: str
    employer_name: str
    position: str
    valid_from: date | None
    valid_until: date | None
    last_event: str


class ECard(NamedTuple):
    """An electronic social security card, one per permit.

    `notified_sequence` is the permit event the holder last heard of (the card's issue
    counts): only later permit events are news to them.
    """

    permit_no: str
    card_id: str
    request_id: uuid.UUID
    ssn: str | None
    issued_at: datetime
    notified_sequence: int


class PhysicalCard(NamedTuple):
    """A physical social security card, issued when the SSN is assigned."""

    permit_no: str
    ssn: str
    card_no: str
    issued_on: date
    ecard_id: str | None


class Notice(NamedTuple):
    """A notification to an e-card holder, as recorded before it is published."""

    permit_no: str
    dedup_key: str
    card_id: str
    kind: str
    trigger: str
    notified_on: date
    message: str
