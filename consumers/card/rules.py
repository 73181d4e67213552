"""The card service's rules and wording, as pure functions: no database, no clock, no Kafka."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import NamedTuple

from consumers.card.records import CardPermit
from schemas.card import CardPermitInfo, ECardRejectionReason
from schemas.permits import (
    EXTENSION_WINDOW,
    Category,
    NotificationLetterIssued,
    NotificationLetterLapsed,
    PermitCancelled,
    PermitChanged,
    PermitEvent,
    PermitExpired,
    PermitExtended,
    PermitIssued,
    PermitMigrated,
    PermitStandard,
    PermitStatus,
)

CHINA_TIME = timezone(timedelta(hours=8), "CST")
"""The card service's calendar: a permit's 'today' is the day in China."""

_IDS = uuid.UUID("0b6f3d4e-6a55-4c1e-9d7e-2f0c61a1c0de")
"""Namespace of the card ids derived below (uuid5), so a replay derives the same ids."""

R = ECardRejectionReason


def china_date(instant: datetime) -> date:
    """The calendar day in China at this instant."""
    return instant.astimezone(CHINA_TIME).date()


def name_key(name: str) -> str:
    """A name compared as a passport's machine-readable zone would: no case, accents or marks."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = "".join(c if c.isalnum() else " " for c in letters.casefold()).split()
    return " ".join(words)


def names_match(given: str, on_permit: str) -> bool:
    """True when the name given is the permit holder's name as in the passport."""
    return bool(name_key(given)) and name_key(given) == name_key(on_permit)


def card_id_for(permit_no: str, request_id: uuid.UUID) -> str:
    """The e-card id for the request that created it (stable on replay)."""
    return "ESSC" + uuid.uuid5(_IDS, f"ecard:{permit_no}:{request_id}").hex[:16].upper()


def physical_card_no(ssn: str) -> str:
    """The physical card's number for an SSN (stable on replay)."""
    return "SSC" + uuid.uuid5(_IDS, f"physical:{ssn}").hex[:16].upper()


def permit_info(p: CardPermit) -> CardPermitInfo:
    """What the e-card shows of the permit."""
    return CardPermitInfo(
        permit_no=p.permit_no, status=PermitStatus(p.status), standard=PermitStandard(p.standard),
        holder_name=p.holder_name, nationality=p.nationality, category=Category(p.category),
        employer_name=p.employer_name, position=p.position,
        valid_from=p.valid_from, valid_until=p.valid_until,
    )


def permit_refusal(p: CardPermit, today: date) -> ECardRejectionReason | None:
    """Why this permit cannot have e-card features today, or None if it can.

    A notification-letter permit can: the letter's QR code is what registers the e-SSC.
    A legacy permit cannot until it is extended, changed or migrated ("No Change, No
    Replacement"): it stays honoured as the physical permit it is. A permit whose letter
    lapsed never started: refused as expired (the message says the letter lapsed).
    """
    if p.status == PermitStatus.CANCELLED:
        return R.PERMIT_CANCELLED
    if p.status == PermitStatus.LAPSED:
        return R.PERMIT_EXPIRED
    if p.status == PermitStatus.EXPIRED or (p.valid_until is not None and p.valid_until < today):
        return R.PERMIT_EXPIRED
    if p.standard == PermitStandard.LEGACY:
        return R.LEGACY_NOT_MIGRATED
    return None


class Reminder(StrEnum):
    """Which expiry reminder; the value is its dedup key's prefix (one per validity period)."""

    OPEN = "expiry-open"
    """The extension window has opened (90 days before the end)."""
    CLOSING = "expiry-closing"
    """The window closes soon (the card's `closing_reminder_days`, 45 by default)."""
    TOO_LATE = "expiry-late"
    """The window has closed: no extension, only a new application."""


class DueReminder(NamedTuple):
    """The reminder a permit is due on a day, with what its message needs."""

    kind: Reminder
    days_left: int
    apply_by: date
    """The last day an extension can be applied for (30 days before the end)."""

    def dedup_key(self, valid_until: date) -> str:
        """One notice per kind and end date: an extension's new end is reminded anew."""
        return f"{self.kind.value}:{valid_until}"


def reminder_due(p: CardPermit, today: date, closing_days: int) -> DueReminder | None:
    """The reminder an active permit is due today, if any.

    Inside the extension window: the closing reminder from `closing_days` left to the
    window's last day (so a sweep that missed the day still sends it), else the opening
    one. After the window: the too-late notice, which offers no extension. Each is sent
    once per end date (the dedup key), so which one a day is due is all this decides.
    """
    if p.status != PermitStatus.ACTIVE or p.valid_until is None:
        return None
    left = (p.valid_until - today).days
    closes, opens = (bound.days for bound in EXTENSION_WINDOW)
    if left < 0 or left > opens:
        return None
    kind = (Reminder.TOO_LATE if left < closes
            else Reminder.CLOSING if left <= closing_days else Reminder.OPEN)
    return DueReminder(kind, left, p.valid_until - EXTENSION_WINDOW[0])


def rejection_message(
    reason: ECardRejectionReason, permit_no: str | None, permit: CardPermit | None = None,
    card_id: str | None = None, *, waited: bool = False,
) -> str:
    """What the person is told, and what they can do about it (`waited`: the request was
    held for the permit or SSN to arrive, which did not)."""
    no = permit_no or "named"
    until = permit.valid_until if permit is not None else None
    if waited and reason is R.UNKNOWN_PERMIT:
        return (f"No work permit {no} reached the card service while your request waited for "
                "it. Check the 18 digits on your Notification Letter or permit, and ask your "
                "employer whether the permit was approved; then register again.")
    if waited and reason is R.UNKNOWN_SSN:
        return ("The social security number given did not reach the card service while your "
                "request waited for it. Register with your work permit number instead, or "
                "check the number with the social insurance agency.")
    messages = {
        R.VERIFICATION_FAILED: "The real-person (face) verification did not pass. Retry it in "
        "the e-SSC app in good light without glasses or a mask, or register at a social "
        "security card service counter with your passport.",
        R.UNKNOWN_PERMIT: f"No work permit {no} is known to the card service. Check the 18 "
        "digits on your Notification Letter or permit; a permit issued today can take a few "
        "minutes to arrive, so try again later.",
        R.UNKNOWN_SSN: "The social security number given is not known to the card service. "
        "Register with your work permit number instead, or check the number with the social "
        "insurance agency.",
        R.NAME_MISMATCH: f"The name does not match the holder of work permit {no}. Enter your "
        "name exactly as printed in your passport, surname and given names.",
        R.PERMIT_CANCELLED: f"Work permit {no} has been cancelled, so no e-card can be issued "
        "for it. If you have a new employer, they apply for a new work permit.",
        R.PERMIT_EXPIRED: (
            f"The notification letter of work permit {no} lapsed before the permit was issued, "
            "so no e-card can be issued for it. Ask your employer to apply again; you keep "
            "the same permit number."
            if permit is not None and permit.status == PermitStatus.LAPSED else
            f"Work permit {no} expired{f' on {until}' if until else ''}, so no e-card can be "
            "issued for it. Ask your employer to apply for a new work permit."),
        R.LEGACY_NOT_MIGRATED: f"Work permit {no} is a physical permit from before the "
        "integration. It stays valid as it is (No Change, No Replacement). The e-card with "
        "the permit QR code becomes available after the permit is extended or changed, or "
        "when your employer chooses 'Reissue Electronic Work Permit'.",
        R.ALREADY_REGISTERED: f"Work permit {no} already has an electronic social security "
        f"card ({card_id or 'issued earlier'}). Sign in to the e-SSC app with it; if you lost "
        "access, contact the card service.",
    }
    return messages[reason]


def status_message(event: PermitEvent) -> str:
    """The notice an e-card holder gets about a change of the permit."""
    p = event.data.permit
    no = p.permit_no
    if isinstance(event, PermitIssued):
        return f"Your work permit {no} is now active, valid from {p.valid_from} to {p.valid_until}."
    if isinstance(event, PermitExtended):
        return f"Your work permit {no} was extended until {p.valid_until}."
    if isinstance(event, PermitChanged):
        fields = ", ".join(c.field.removeprefix("holder.").replace("_", " ")
                           for c in event.data.changes)
        return f"Your work permit {no} was changed ({fields}). Your e-card shows the new details."
    if isinstance(event, PermitCancelled):
        return (f"Your work permit {no} was cancelled on {p.cancelled_on}. The permit QR code "
                "on your e-card is no longer valid.")
    if isinstance(event, PermitExpired):
        return (f"Your work permit {no} expired on {p.valid_until}. The permit QR code on your "
                "e-card is no longer valid.")
    if isinstance(event, NotificationLetterIssued):
        return (f"A new application under your work permit number {no} was approved and its "
                "Notification Letter issued: your e-card and its permit QR code are valid again "
                "for the new period, which starts when the permit is issued after entry.")
    if isinstance(event, NotificationLetterLapsed):
        return (f"The notification letter of your work permit {no} lapsed: it was valid until "
                f"{event.data.letter_valid_until} and the permit was not issued. The permit QR "
                "code on your e-card is no longer valid; your employer can apply again.")
    if isinstance(event, PermitMigrated):
        return f"Your work permit {no} moved onto the integrated electronic standard."
    return f"Your work permit {no} is now {p.status.value}."


def reminder_message(p: CardPermit, due: DueReminder) -> str:
    """The expiry reminder: until which day the extension can be applied for, or, once that
    day has passed, that only a new application is left."""
    left = due.days_left
    when = "today" if left == 0 else f"in {left} day{'s' if left != 1 else ''}"
    ends = f"ends {when}, on {p.valid_until}"
    closes = EXTENSION_WINDOW[0].days
    if due.kind is Reminder.TOO_LATE:
        return (f"Your work permit {p.permit_no} {ends}. It is too late to extend it: an "
                f"extension must be applied for at least {closes} days before the end. Ask "
                "your employer about a new application.")
    if due.kind is Reminder.OPEN:
        return (f"Your work permit {p.permit_no} {ends}. Its extension can now be applied for, "
                f"until {due.apply_by}; after that day it is refused. Ask your employer to "
                "apply in time.")
    return (f"Your work permit {p.permit_no} {ends}. The extension must be applied for by "
            f"{due.apply_by} ({closes} days before the end); after that day it is refused. "
            "Ask your employer to apply now.")
