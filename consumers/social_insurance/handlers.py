"""What the social insurance agency does with the permit lifecycle, e-cards and its requests.

- Every permit event keeps its view of the permit (`insured_permit`); a notification
  letter and an e-card are remembered so that requests may name the permit by them.
- `InsuranceRegistrationRequested` → `InsuranceRegistered` (+ `SocialSecurityNumberIssued`
  the first time the person is seen), `InsuranceRegistrationReferred` (manual review) or
  `InsuranceRegistrationRejected` (rules in `rules.py`, docs/domain.md §2 social insurance).
- `InsuranceReviewDecided` (a reviewer, through the agency's desk) decides a referred
  request: `InsuranceRegistered` naming the reviewer, or `InsuranceRegistrationRejected`.
- `PermitCancelled` / `PermitExpired` → `InsuranceSuspended`: the account is kept.
- `PermitChanged` with a new passport → the person's new passport key names the same SSN.

The view keeps the holder's person key, never the passport number (docs/privacy.md §6), so
the row of a permit depends on the agency's pepper: `permit_row` binds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from consumers.social_insurance import identity, rules
from consumers.social_insurance.agreements import Agreements
from consumers.social_insurance.ports import SocialInsuranceViewPort
from consumers.social_insurance.records import InsuredPermit, Referral
from hub.dispatch import Emit, Hold, Received
from hub.errors import MessageRefused
from hub.logging import get_logger
from hub.redaction import NoPersonalData
from schemas.card import ECardIssued
from schemas.permits import (
    CancellationReason,
    NotificationLetterIssued,
    PermitCancelled,
    PermitChanged,
    PermitEvent,
    PermitExpired,
)
from schemas.social_insurance import (
    ByECard,
    ByLetterNo,
    ByPermitNo,
    InsuranceRegistered,
    InsuranceRegisteredData,
    InsuranceRegistrationReferred,
    InsuranceRegistrationReferredData,
    InsuranceRegistrationRejected,
    InsuranceRegistrationRejectedData,
    InsuranceRegistrationRequested,
    InsuranceRegistrationRequestedData,
    InsuranceRejection,
    InsuranceReviewDecided,
    InsuranceSuspended,
    InsuranceSuspendedData,
    ReviewDecision,
    SocialSecurityNumberIssued,
    SocialSecurityNumberIssuedData,
    SuspensionCause,
)

log = get_logger(__name__)


def insured_permit(event: PermitEvent, keys: identity.PersonKeys) -> InsuredPermit:
    """Social insurance's row for the permit this event carries, its holder by key."""
    p = event.data.permit
    return InsuredPermit(
        permit_no=p.permit_no,
        sequence=event.sequence,
        status=p.status.value,
        standard=p.standard.value,
        holder_name=p.holder.name,
        nationality=p.holder.nationality,
        holder_key=keys.passport(p.holder.nationality, p.holder.passport_no,
                                 p.holder.date_of_birth),
        employer_credit_code=p.employer.credit_code,
        employer_name=p.employer.name,
        issued_on=p.issued_on,
        valid_from=p.valid_from,
        valid_until=p.valid_until,
    )


def permit_row(keys: identity.PersonKeys) -> Callable[[PermitEvent], InsuredPermit]:
    """The view's row function under this deployment's pepper (projection and replay)."""

    def row(event: PermitEvent) -> InsuredPermit:
        return insured_permit(event, keys)

    return row


class RequestMismatch(NoPersonalData, ValueError):
    """A request whose envelope and data disagree: a front-door bug, dead-lettered."""


@dataclass(frozen=True)
class Policy:
    """What the handlers need beyond the event and the view."""

    agreements: Agreements
    keys: identity.PersonKeys
    new_ssn: Callable[[], str] = identity.new_ssn
    hold: timedelta = timedelta(hours=72)
    """How long a request naming what the agency does not know yet waits for it."""


# Requests -------------------------------------------------------------------------------


async def on_registration_requested(
    event: InsuranceRegistrationRequested,
    view: SocialInsuranceViewPort,
    policy: Policy,
    received: Received | None = None,
) -> Sequence[Emit] | Hold:
    """Decide a registration request, and store the decision.

    A request naming a permit, letter or e-card the agency does not know yet is held
    (`Hold`, keyed by the reference): the permit's event, the letter's NotificationLetterIssued
    or the card's ECardIssued releases it, and it is decided then; once its hold period has
    passed (`received.final`) it is refused as unknown, saying how long it waited. Without
    `received` (a direct call) nothing is held.
    """
    request = event.data
    if _reference_text(request.reference) != event.subject:
        # The codec refuses such a record already (subject_mismatch); a direct call may not.
        raise RequestMismatch("the subject is not the request's reference")
    resolved = await _resolve(request.reference, view)
    if await view.decided(request.request_id) is not None:
        return await _reject(event, view, resolved if isinstance(resolved, str) else None,
                             rules.Refuse(InsuranceRejection.DUPLICATE_REQUEST,
                                          f"request {request.request_id} was already decided;"
                                          " that decision stands"))
    can_wait = received is not None and not received.final
    if isinstance(resolved, rules.Refuse):
        if can_wait:
            return Hold(event.subject, resolved.reason.value)
        return await _reject(event, view, None, _waited(resolved, received, policy.hold))
    permit = await view.permit(resolved)
    if permit is None:
        if can_wait:
            return Hold(resolved, InsuranceRejection.PERMIT_UNKNOWN.value)
        return await _reject(event, view, None, _waited(rules.Refuse(
            InsuranceRejection.PERMIT_UNKNOWN,
            f"permit {resolved} is not known to the social insurance agency; check the "
            "number, or submit again once the permit has been issued"), received, policy.hold))
    if isinstance(request.reference, ByECard) and permit.standard == "legacy":
        return await _reject(event, view, None, _unknown_card(request.reference.card_id))
    if permit.status not in rules.IN_FORCE:
        current = await _current_permit(view, resolved, request.employer_credit_code, policy)
        if current is not None:
            resolved, permit = current.permit_no, current
    decision = rules.decide(
        request, permit, policy.agreements,
        registered=await view.registration_in_force(resolved) is not None,
        in_review=await view.review_pending(resolved))
    if isinstance(decision, rules.Refuse):
        return await _reject(event, view, resolved, decision)
    if isinstance(decision, rules.Refer):
        return await _refer(event, view, resolved, decision)
    return await _register(event, view, resolved, decision, policy)


def _waited(refusal: rules.Refuse, received: Received | None, hold: timedelta) -> rules.Refuse:
    """The refusal of an unknown reference, saying that the request waited for it."""
    if received is None or received.held_since is None:
        return refusal
    seconds = hold.total_seconds()
    waited = (f"{round(seconds / 3600)} h" if seconds >= 3600 else
              f"{round(seconds / 60)} min" if seconds >= 60 else f"{round(seconds)} s")
    return rules.Refuse(refusal.reason, f"{refusal.message} (the request waited {waited}"
                        " for it to reach the agency)")


async def _resolve(
    reference: ByPermitNo | ByLetterNo | ByECard, view: SocialInsuranceViewPort
) -> str | rules.Refuse:
    if isinstance(reference, ByPermitNo):
        return reference.permit_no
    if isinstance(reference, ByLetterNo):
        found = await view.permit_of_letter(reference.letter_no)
        return found or rules.Refuse(
            InsuranceRejection.LETTER_UNKNOWN,
            f"no work permit is known for notification letter {reference.letter_no}")
    return await view.permit_of_card(reference.card_id) or _unknown_card(reference.card_id)


async def _current_permit(
    view: SocialInsuranceViewPort, ended: str, employer: str, policy: Policy
) -> rules.PermitFacts | None:
    """The person's current permit with this employer, when the one named has ended.

    A letter, an e-card or a permit number of a cancelled or expired permit still names its
    holder; after a change of employer (the old permit cancelled, a new one issued) the
    new employer's request finds the new permit, not the old one. Only a permit of the
    requesting employer is followed to, so another employer learns nothing of it.
    """
    keys = await _person_keys(view, ended, policy.keys)
    found = [p for p in await view.permits_in_force_of(keys)
             if p.permit_no != ended and p.employer_credit_code == employer]
    return found[0] if len(found) == 1 else None


def _unknown_card(card_id: str) -> rules.Refuse:
    return rules.Refuse(
        InsuranceRejection.ECARD_UNKNOWN,
        f"no e-card {card_id} shows a work permit here; a pre-integration permit has no "
        "e-card until it is extended, changed or migrated, so give its permit number")


def _reference_text(reference: ByPermitNo | ByLetterNo | ByECard) -> str:
    if isinstance(reference, ByPermitNo):
        return reference.permit_no
    if isinstance(reference, ByLetterNo):
        return reference.letter_no
    return reference.card_id


async def _reject(
    event: InsuranceRegistrationRequested,
    view: SocialInsuranceViewPort,
    permit_no: str | None,
    refusal: rules.Refuse,
) -> Sequence[Emit]:
    request = event.data
    await view.record(event.id, request, event.subject, permit_no, outcome="rejected",
                      reason=refusal.reason.value, message=refusal.message)
    log.info("insurance registration rejected", request_id=request.request_id,
             reason=refusal.reason.value)
    return [Emit(InsuranceRegistrationRejected, permit_no or event.subject,
                 InsuranceRegistrationRejectedData(
                     request_id=request.request_id, reference=event.subject,
                     permit_no=permit_no, reason=refusal.reason, message=refusal.message))]


async def _refer(
    event: InsuranceRegistrationRequested,
    view: SocialInsuranceViewPort,
    permit_no: str,
    referral: rules.Refer,
) -> Sequence[Emit]:
    request = event.data
    await view.record(event.id, request, event.subject, permit_no, outcome="referred",
                      reason=referral.reason.value, message=referral.message)
    return [Emit(InsuranceRegistrationReferred, permit_no, InsuranceRegistrationReferredData(
        request_id=request.request_id, permit_no=permit_no, agreement=referral.agreement,
        reason=referral.reason, message=referral.message))]


async def _register(
    event: InsuranceRegistrationRequested,
    view: SocialInsuranceViewPort,
    permit_no: str,
    registration: rules.Register,
    policy: Policy,
) -> Sequence[Emit]:
    request = event.data
    await view.record(event.id, request, event.subject, permit_no, outcome="registered")
    return await _registration(view, request, permit_no, registration, policy)


async def _registration(
    view: SocialInsuranceViewPort,
    request: InsuranceRegistrationRequestedData,
    permit_no: str,
    registration: rules.Register,
    policy: Policy,
    reviewed_by: str | None = None,
) -> Sequence[Emit]:
    """Register the permit under the person's account (opened the first time), and say so."""
    keys = await _person_keys(view, permit_no, policy.keys)
    ssn, new = await view.account_for(keys, permit_no, request.requested_on, policy.new_ssn)
    await view.register(request, permit_no, ssn, registration.cover,
                        deadline=registration.deadline, late=registration.late)
    emits = [Emit(InsuranceRegistered, permit_no, InsuranceRegisteredData(
        request_id=request.request_id, permit_no=permit_no, ssn=ssn,
        requester=request.requester, employer_credit_code=request.employer_credit_code,
        insured=registration.cover.insured, exempt=registration.cover.exempt,
        agreement=registration.cover.agreement, registered_on=request.requested_on,
        deadline=registration.deadline, late=registration.late, reviewed_by=reviewed_by))]
    if new:
        emits.append(Emit(SocialSecurityNumberIssued, permit_no, SocialSecurityNumberIssuedData(
            permit_no=permit_no, ssn=ssn, issued_on=request.requested_on)))
    return emits


# Reviewers' decisions --------------------------------------------------------------------


class ReviewNotPending(MessageRefused):
    """A decision on a request that is not waiting in manual review (unknown, decided by the
    rules, or already decided otherwise by a reviewer): dead-lettered, nothing applied."""

    reason = "review_not_pending"


class ReviewMismatch(MessageRefused):
    """A decision naming another permit than the referred request: dead-lettered."""

    reason = "review_mismatch"


async def on_review_decided(
    event: InsuranceReviewDecided, view: SocialInsuranceViewPort, policy: Policy
) -> Sequence[Emit]:
    """Decide a referred request by a reviewer's decision (docs/domain.md §2, the request's
    states): approve → registered as if the agreement question were answered (the
    exemptions the reviewer found, the reviewer named); refuse → rejected, review_refused.

    The same decision again (a second submission by the desk) changes nothing and publishes
    nothing; any decision on a request not waiting in review is dead-lettered with why.
    """
    decision = event.data
    applied = await view.review_of(decision.request_id)
    if applied is not None:
        if (applied.decision, applied.exempt) == (decision.decision.value,
                                                  tuple(i.value for i in decision.exempt)):
            log.info("review decision repeated; the first stands", request_id=decision.request_id)
            return []
        raise ReviewNotPending(f"request {decision.request_id} was decided by a reviewer"
                               f" already ({applied.decision}); that decision stands")
    referral = await view.referral(decision.request_id)
    if referral is None:
        raise ReviewNotPending(f"request {decision.request_id} is not waiting in manual review")
    if referral.permit_no != decision.permit_no:
        raise ReviewMismatch(f"request {decision.request_id} was referred for another permit"
                             f" than {decision.permit_no}")
    if decision.decision is ReviewDecision.REFUSE:
        return await _review_rejects(event, view, referral, rules.Refuse(
            InsuranceRejection.REVIEW_REFUSED,
            f"a reviewer refused the request: {decision.reason}"))
    permit = await view.permit(referral.permit_no)
    if permit is None:  # erased from the view (retention) while under review
        return await _review_rejects(event, view, referral, rules.Refuse(
            InsuranceRejection.PERMIT_UNKNOWN,
            f"permit {referral.permit_no} is no longer known to the social insurance agency"))
    refused = rules.check_permit(permit, referral.request.requested_on)
    if refused is None and await view.registration_in_force(referral.permit_no) is not None:
        refused = rules.Refuse(InsuranceRejection.ALREADY_REGISTERED,
                               f"permit {referral.permit_no} is registered already; that"
                               " registration stands")
    if refused is not None:  # the permit ended (or was registered) while under review
        return await _review_rejects(event, view, referral, refused)
    exempt = tuple(i for i in rules.FIVE_INSURANCES if i in decision.exempt)
    cover = rules.Cover(tuple(i for i in rules.FIVE_INSURANCES if i not in exempt), exempt,
                        permit.nationality if exempt else None)
    deadline = rules.registration_deadline(permit)
    await view.record_review(event.id, decision, outcome="registered")
    return await _registration(view, referral.request, referral.permit_no,
                               rules.Register(cover, deadline,
                                              late=referral.request.requested_on > deadline),
                               policy, reviewed_by=decision.officer_id)


async def _review_rejects(
    event: InsuranceReviewDecided,
    view: SocialInsuranceViewPort,
    referral: Referral,
    refusal: rules.Refuse,
) -> Sequence[Emit]:
    request = referral.request
    await view.record_review(event.id, event.data, outcome="rejected")
    log.info("insurance registration rejected on review", request_id=request.request_id,
             reason=refusal.reason.value)
    return [Emit(InsuranceRegistrationRejected, referral.permit_no,
                 InsuranceRegistrationRejectedData(
                     request_id=request.request_id, reference=_reference_text(request.reference),
                     permit_no=referral.permit_no, reason=refusal.reason,
                     message=refusal.message[:500]))]


async def _person_keys(
    view: SocialInsuranceViewPort, permit_no: str, keys: identity.PersonKeys
) -> list[str]:
    found = [keys.permit(permit_no)]
    holder = await view.holder_key(permit_no)
    if holder is not None:  # unknown only for a row no event has rewritten since step 0002
        found.append(holder)
    return found


# Permit lifecycle and e-cards -----------------------------------------------------------


async def on_letter_issued(
    event: NotificationLetterIssued, view: SocialInsuranceViewPort
) -> Sequence[Emit]:
    """Remember the letter, so that a request may name the permit by it."""
    await view.remember_letter(event.data.letter_no, event.data.permit.permit_no)
    return []


async def on_ecard_issued(event: ECardIssued, view: SocialInsuranceViewPort) -> Sequence[Emit]:
    """Remember the e-card, so that a request may name the permit by it."""
    await view.remember_card(event.data.card_id, event.data.permit.permit_no)
    return []


async def on_permit_cancelled(
    event: PermitCancelled, view: SocialInsuranceViewPort
) -> Sequence[Emit]:
    """A cancelled permit suspends its registration; the account is kept."""
    record = event.data.permit
    assert record.cancelled_on is not None
    return await _suspend(view, record.permit_no, record.cancelled_on,
                          SuspensionCause.PERMIT_CANCELLED, event.data.reason)


async def on_permit_expired(event: PermitExpired, view: SocialInsuranceViewPort) -> Sequence[Emit]:
    """An expired permit (an automatic cancellation) suspends its registration too."""
    record = event.data.permit
    assert record.valid_until is not None
    return await _suspend(view, record.permit_no, record.valid_until + timedelta(days=1),
                          SuspensionCause.PERMIT_EXPIRED, None)


async def _suspend(
    view: SocialInsuranceViewPort,
    permit_no: str,
    on: date,
    cause: SuspensionCause,
    reason: CancellationReason | None,
) -> Sequence[Emit]:
    ssn = await view.suspend(permit_no, on, cause.value)
    if ssn is None:
        return []  # never registered: nothing to suspend
    return [Emit(InsuranceSuspended, permit_no, InsuranceSuspendedData(
        permit_no=permit_no, ssn=ssn, suspended_on=on, cause=cause, cancellation_reason=reason))]


async def on_permit_changed(
    event: PermitChanged, view: SocialInsuranceViewPort, policy: Policy
) -> Sequence[Emit]:
    """A renewed passport becomes another key of the same person (the SSN stays)."""
    if not any(c.field == "holder.passport_no" for c in event.data.changes):
        return []
    record = event.data.permit
    ssn = await view.registration_in_force(record.permit_no)
    if ssn is not None:
        holder = record.holder
        await view.add_keys(ssn, [policy.keys.passport(holder.nationality, holder.passport_no,
                                                       holder.date_of_birth)])
    return []
