"""What the Social Security Card service does with each event it consumes.

- Permit lifecycle → the card's copy of the permit (`card_permit`), and a
  PermitNotificationSent to the e-card holder on each change (`notify_permit_change`).
- ECardRegistrationRequested → ECardIssued with the permit's information and a QR token,
  or ECardRejected with a reason the person can act on (`register_ecard`); a request
  naming a permit or SSN not known yet is held until it arrives or the hold ends.
- SocialSecurityNumberIssued → PhysicalCardIssued, the SSN linked to the e-card
  (`issue_physical_card`).
- InsuranceRegistered → the registration's SSN linked to the permit's e-card, and the
  person's physical card carried over to the permit once, when the SSN is not yet the
  permit's (a change of employer: `link_registered_ssn`).
- ExpiryReminderSweepRequested → PermitNotificationSent to every e-card holder whose
  permit is due an expiry reminder (`send_expiry_reminders`): when the extension window
  opens (90 days before the end), when it is about to close (the card's
  `closing_reminder_days`), and, once it has closed (under 30 days), a notice that only a
  new application is left; each once per end date.

The card shows the permit's information (docs/domain.md §1): holder, nationality, category,
employer, position, validity and status. A legacy permit is shown as it is, and gets no
e-card (so no QR code and no notifications) until it is extended, changed or migrated.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from consumers.card import rules
from consumers.card.ports import CardViewPort
from consumers.card.records import CardPermit, ECard, Notice, PhysicalCard
from hub.dispatch import Emit, Hold, Received
from hub.logging import get_logger
from hub.redaction import NoPersonalData
from schemas.card import (
    ECardIssued,
    ECardIssuedData,
    ECardRegistrationRequested,
    ECardRejected,
    ECardRejectedData,
    ECardRejectionReason,
    ExpiryReminderSweepRequested,
    NotificationKind,
    PermitNotificationSent,
    PermitNotificationSentData,
    PhysicalCardIssued,
    PhysicalCardIssuedData,
    QrReference,
    VerificationResult,
)
from schemas.envelope import CloudEvent
from schemas.permits import EXTENSION_WINDOW, PermitEvent, PermitStatus
from schemas.social_insurance import InsuranceRegistered, SocialSecurityNumberIssued

if TYPE_CHECKING:
    from consumers.card.issuer import QrIssuer

log = get_logger(__name__)
R = ECardRejectionReason


class CardConflict(NoPersonalData, ValueError):
    """An event that would give a permit a second card or SSN: dead-lettered with this text."""


def card_permit(event: PermitEvent) -> CardPermit:
    """The card service's row for the permit this event carries."""
    p = event.data.permit
    return CardPermit(
        permit_no=p.permit_no,
        sequence=event.sequence,
        status=p.status.value,
        standard=p.standard.value,
        holder_name=p.holder.name,
        nationality=p.holder.nationality,
        category=p.category.value,
        employer_name=p.employer.name,
        position=p.position,
        valid_from=p.valid_from,
        valid_until=p.valid_until,
        last_event=event.type.rsplit(".", 1)[-1],
    )


# e-card registration --------------------------------------------------------------------


async def register_ecard(
    event: ECardRegistrationRequested, view: CardViewPort, received: Received | None = None,
    *, issuer: QrIssuer, closing_days: int,
) -> list[Emit] | Hold:
    """Issue the e-card with the permit's information and a QR token, or say why not.

    Checks in this order, so a failed face check reveals nothing about the permit:
    verification, the permit (by number or SSN), the name, the permit's status and
    standard, an existing e-card. 'Today' is the request's time, in China. A permit due
    an expiry reminder gets it with the card (`closing_days`: see `send_expiry_reminders`).

    A request naming a permit (or an SSN) the card service does not know yet is held
    (`Hold`, keyed by the number it names), not refused: the permit's event is on another
    topic and may still be on its way. The router decides it again when that number's
    event is applied, and past the card's `hold_hours` (`received.final`) it is refused as
    unknown. Without `received` (a direct call) the request is decided at once.
    """
    req = event.data
    if req.verification.result is VerificationResult.PASSED and (
            received is not None and not received.final):
        named = req.permit_no
        if named is None:
            assert req.ssn is not None  # the contract requires one of the two
            named = await view.permit_no_of_ssn(req.ssn)
            if named is None:
                return Hold(req.ssn, R.UNKNOWN_SSN.value)
        if await view.permit(named) is None:
            return Hold(named, R.UNKNOWN_PERMIT.value)
    if not await view.claim_request(req.request_id, event.id, event.subject):
        log.warning("e-card request already answered; no second outcome",
                    request_id=str(req.request_id), event_id=str(event.id))
        return []
    if req.verification.result is not VerificationResult.PASSED:
        return await _reject(event, view, R.VERIFICATION_FAILED, req.permit_no)
    permit_no = req.permit_no
    if permit_no is None:
        assert req.ssn is not None  # the contract requires one of the two
        permit_no = await view.permit_no_of_ssn(req.ssn)
    permit = await view.permit(permit_no) if permit_no is not None else None
    if permit is None:
        unknown = R.UNKNOWN_PERMIT if req.permit_no is not None else R.UNKNOWN_SSN
        return await _reject(event, view, unknown, permit_no, waited=received is not None)
    if not rules.names_match(req.name, permit.holder_name):
        return await _reject(event, view, R.NAME_MISMATCH, permit_no, permit)
    refusal = rules.permit_refusal(permit, rules.china_date(event.time))
    if refusal is not None:
        return await _reject(event, view, refusal, permit_no, permit)
    existing = await view.ecard(permit.permit_no)
    if existing is not None:
        return await _reject(event, view, R.ALREADY_REGISTERED, permit_no, permit,
                             existing.card_id)
    return await _issue(event, view, permit, issuer, closing_days)


async def _reject(
    event: ECardRegistrationRequested, view: CardViewPort, reason: ECardRejectionReason,
    permit_no: str | None, permit: CardPermit | None = None, card_id: str | None = None,
    *, waited: bool = False,
) -> list[Emit]:
    req = event.data
    await view.settle_request(req.request_id, "rejected", reason.value)
    # An unknown SSN names no permit: the rejection keeps the request's subject (the SSN).
    shown_no = permit_no if reason is not R.UNKNOWN_SSN else None
    data = ECardRejectedData(
        request_id=req.request_id, reason=reason, permit_no=shown_no,
        message=rules.rejection_message(reason, shown_no, permit, card_id, waited=waited),
    )
    log.info("e-card rejected", request_id=str(req.request_id), reason=reason.value)
    return [Emit(ECardRejected, shown_no or event.subject, data)]


async def _issue(
    event: ECardRegistrationRequested, view: CardViewPort, permit: CardPermit, issuer: QrIssuer,
    closing_days: int,
) -> list[Emit]:
    req = event.data
    card_id = rules.card_id_for(permit.permit_no, req.request_id)
    physical = await view.physical_card(permit.permit_no)
    ssn = physical.ssn if physical is not None else None
    card = ECard(permit.permit_no, card_id, req.request_id, ssn, event.time, permit.sequence)
    if not await view.add_ecard(card):
        # A request by SSN and one by permit number can race on two partitions: the
        # table's key decides, and the loser is told the card exists.
        winner = await view.ecard(permit.permit_no)
        return await _reject(event, view, R.ALREADY_REGISTERED, permit.permit_no, permit,
                             winner.card_id if winner else None)
    if ssn is not None:
        await view.link_ssn(permit.permit_no, ssn, card_id)
    token, claims = issuer.issue(permit.permit_no, card_id)
    await view.record_token(token, claims, "ecard_issued")
    await view.settle_request(req.request_id, "issued", None)
    assert claims.key_id is not None
    data = ECardIssuedData(
        request_id=req.request_id, card_id=card_id, permit=rules.permit_info(permit), ssn=ssn,
        qr=QrReference(token=token, key_id=claims.key_id, issued_at=claims.issued_at,
                       expires_at=claims.expires_at),
        issued_at=event.time,
    )
    log.info("e-card issued", request_id=str(req.request_id), card_id=card_id)
    emits = [Emit(ECardIssued, permit.permit_no, data)]
    return emits + await _remind_if_due(view, permit, card_id, rules.china_date(event.time),
                                        trigger="ECardRegistrationRequested",
                                        closing_days=closing_days)


# physical card --------------------------------------------------------------------------


async def issue_physical_card(event: SocialSecurityNumberIssued, view: CardViewPort) -> list[Emit]:
    """Issue the physical card for the new SSN and link the SSN to the e-card, if any.

    The card is issued even when the permit has not reached this view yet (the topics are
    not ordered with each other) or is legacy: the SSN is social insurance's decision; the
    e-card link is then made when the e-card is issued. A second SSN for the permit, or an
    SSN already on another permit's card, is a conflict: dead-lettered, never a second card.
    """
    d = event.data
    if d.permit_no != event.subject:
        raise CardConflict(f"subject {event.subject!r} is not the permit number {d.permit_no!r}")
    return await _physical_card(view, d.permit_no, d.ssn, d.issued_on, event, follow=False)


async def link_registered_ssn(event: InsuranceRegistered, view: CardViewPort) -> list[Emit]:
    """The SSN of a registration follows the person to this permit's e-card.

    Social insurance reuses a person's SSN when they register again under a new permit
    (after a change of employer) and then issues no SocialSecurityNumberIssued: the
    registration's `ssn` is the only news. The person's physical card (one per SSN) is
    carried over to the new permit and linked to its e-card, and PhysicalCardIssued is
    published once for the new permit, with the card's number and first issue date. A
    registration whose SSN the card already holds for this permit changes nothing (the
    first registration, which SocialSecurityNumberIssued follows, or a duplicate); an SSN
    the card never heard of gets its physical card here, as on SocialSecurityNumberIssued.
    """
    d = event.data
    if d.permit_no != event.subject:
        raise CardConflict(f"subject {event.subject!r} is not the permit number {d.permit_no!r}")
    return await _physical_card(view, d.permit_no, d.ssn, d.registered_on, event, follow=True)


async def _physical_card(
    view: CardViewPort, permit_no: str, ssn: str, issued_on: date, event: CloudEvent[Any],
    *, follow: bool,
) -> list[Emit]:
    """The permit's physical card for this SSN, issued (or, with `follow`, carried over
    from the person's earlier permit) once, and linked to the permit's e-card."""
    held = await view.physical_card(permit_no)
    ecard = await view.ecard(permit_no)
    if held is not None and held.ssn == ssn:
        if ecard is not None and ecard.ssn != ssn:
            await view.link_ssn(permit_no, ssn, ecard.card_id)
        log.info("physical card already issued for this SSN; nothing to do",
                 card_no=held.card_no, event_id=str(event.id))
        return []
    if held is not None:
        raise CardConflict(f"permit {permit_no} already has a physical card for another SSN")
    other = await view.permit_no_of_ssn(ssn)
    ecard_id = ecard.card_id if ecard else None
    if other is not None and not follow:
        raise CardConflict(f"the SSN is already on the physical card of permit {other}")
    if other is not None:
        card = await view.move_physical_card(ssn, permit_no, ecard_id)
        log.info("physical card follows its holder to a new permit", card_no=card.card_no,
                 event_id=str(event.id))
    else:
        card = PhysicalCard(permit_no, ssn, rules.physical_card_no(ssn), issued_on, ecard_id)
        await view.add_physical_card(card)
    if ecard is not None:
        await view.link_ssn(permit_no, ssn, ecard.card_id)
    data = PhysicalCardIssuedData(permit_no=permit_no, ssn=ssn, card_no=card.card_no,
                                  issued_on=card.issued_on, ecard_id=card.ecard_id)
    return [Emit(PhysicalCardIssued, permit_no, data)]


# notifications --------------------------------------------------------------------------


async def notify_permit_change(
    event: PermitEvent, view: CardViewPort, *, closing_days: int
) -> list[Emit]:
    """Tell the e-card holder about each change of the permit (once per permit event).

    Only permits with an e-card are notified: the e-card is the channel. Only events after
    the one the card was issued on, or last notified, are news; an older one sends nothing.
    An expiry reminder the permit is due (its new end's, after an extension) comes with it.
    """
    p = event.data.permit
    ecard = await view.ecard(p.permit_no)
    if ecard is None or not await view.mark_notified(p.permit_no, event.sequence):
        return []
    today = rules.china_date(event.time)
    trigger = event.type.rsplit(".", 1)[-1]
    message = rules.status_message(event)
    notice = Notice(p.permit_no, f"status:{event.sequence}", ecard.card_id,
                    NotificationKind.STATUS_CHANGED.value, trigger, today, message)
    emits = []
    if await view.record_notice(notice):
        emits.append(Emit(PermitNotificationSent, p.permit_no, PermitNotificationSentData(
            permit_no=p.permit_no, card_id=ecard.card_id, kind=NotificationKind.STATUS_CHANGED,
            trigger=trigger, status=p.status, valid_until=p.valid_until, message=message,
            notified_on=today,
        )))
    return emits + await _remind_if_due(view, card_permit(event), ecard.card_id, today,
                                        trigger=trigger, closing_days=closing_days)


async def send_expiry_reminders(
    event: ExpiryReminderSweepRequested, view: CardViewPort, *, closing_days: int
) -> list[Emit]:
    """Remind every e-card holder whose active permit is due a reminder on the sweep's day.

    While the extension window is open (30-90 days left, the authority's own bounds) the
    holder is reminded when it opens and again from `closing_days` left, each time with the
    last day to apply: a reminder planned for 30 days or fewer would leave at most that day.
    Under 30 days the holder is told once that only a new application is left. Each kind is
    sent once per permit and end date, and is due every day of its span, so a sweep that
    runs late still sends it; an extension gives the new end its own reminders.
    """
    today = event.data.as_of
    due = await view.carded_permits_ending(today, today + EXTENSION_WINDOW[1])
    emits: list[Emit] = []
    for permit, ecard in due:
        emits += await _remind_if_due(view, permit, ecard.card_id, today,
                                      trigger="ExpiryReminderSweepRequested",
                                      closing_days=closing_days)
    log.info("expiry reminder sweep", as_of=today.isoformat(), due=len(due), sent=len(emits))
    return emits


async def _remind_if_due(
    view: CardViewPort, permit: CardPermit, card_id: str, today: date, *, trigger: str,
    closing_days: int,
) -> list[Emit]:
    due = rules.reminder_due(permit, today, closing_days)
    if due is None:
        return []
    assert permit.valid_until is not None  # reminder_due answers only for an end date
    message = rules.reminder_message(permit, due)
    notice = Notice(permit.permit_no, due.dedup_key(permit.valid_until), card_id,
                    NotificationKind.EXPIRY_REMINDER.value, trigger, today, message)
    if not await view.record_notice(notice):
        return []
    return [Emit(PermitNotificationSent, permit.permit_no, PermitNotificationSentData(
        permit_no=permit.permit_no, card_id=card_id, kind=NotificationKind.EXPIRY_REMINDER,
        trigger=trigger, status=PermitStatus(permit.status), valid_until=permit.valid_until,
        days_left=due.days_left, message=message, notified_on=today,
    ))]
