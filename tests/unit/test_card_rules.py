"""The card service's reminder rule as a pure function: which reminder a permit is due on a
day, and what its message tells the holder."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from consumers.card import rules
from consumers.card.records import CardPermit
from consumers.card.rules import Reminder

END = date(2026, 8, 31)
CLOSING = 45


def permit(status: str = "active", valid_until: date | None = END) -> CardPermit:
    return CardPermit("156000000000000001", 2, status, "integrated", "Anna Schmidt", "DE", "B",
                      "Acme", "Engineer", date(2025, 9, 1), valid_until, "PermitIssued")


@pytest.mark.parametrize(("left", "kind"), [
    (91, None), (90, Reminder.OPEN), (46, Reminder.OPEN), (45, Reminder.CLOSING),
    (30, Reminder.CLOSING), (29, Reminder.TOO_LATE), (0, Reminder.TOO_LATE), (-1, None),
])
def test_the_reminder_due_follows_the_extension_window(left: int, kind: Reminder | None) -> None:
    """Open from 90 days left, closing from 45 to the window's last day (30), too late
    under 30, nothing after the end; the last day to apply is always the end minus 30 days."""
    due = rules.reminder_due(permit(), END - timedelta(days=left), CLOSING)
    assert (due.kind if due else None) is kind
    if due is not None:
        assert (due.days_left, due.apply_by) == (left, END - timedelta(days=30))
        assert due.dedup_key(END) == f"{kind}:2026-08-31"


@pytest.mark.parametrize("status", ["cancelled", "expired", "letter_issued"])
def test_only_an_active_permit_is_reminded(status: str) -> None:
    """A cancelled, expired or not yet issued permit gets no expiry reminder."""
    assert rules.reminder_due(permit(status), END - timedelta(days=60), CLOSING) is None


def test_each_message_says_what_the_holder_can_still_do() -> None:
    """The window's reminders name the last day to apply; the too-late notice names none and
    points to a new application."""
    messages = {
        left: rules.reminder_message(permit(), due)
        for left in (90, 45, 29)
        if (due := rules.reminder_due(permit(), END - timedelta(days=left), CLOSING))
    }
    assert "until 2026-08-01" in messages[90]
    assert "by 2026-08-01" in messages[45]
    assert "2026-08-01" not in messages[29]
    assert "too late to extend" in messages[29]
    assert "new application" in messages[29]
    assert all("on 2026-08-31" in m for m in messages.values())
