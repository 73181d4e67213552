"""What public security (entry-exit administration) does with the permit lifecycle and its requests.

- Every permit event keeps its view of the permit (`checked_permit`).
- `ResidencePermitApplied` → `ResidencePermitIssued`, `ResidencePermitExtended` or
  `ResidencePermitRejected` (rules in `rules.py`, docs/domain.md §2 public security). One
  naming a permit not known yet is held (`Hold`) until the permit's events arrive or the
  hold period ends (then refused as permit_unknown). A QR
  token is checked against the time its request reached Kafka (`received_at`), and taken
  once per purpose: its digest is recorded once it has proven the permit.
- `PermitCancelled` → `ResidencePermitCancellationRequired` for the residence permit on it.
- `PermitExtended` → `ResidencePermitExtensionAvailable`: the holder may apply to extend the
  residence permit up to the new end; nothing changes until that application is decided.
- A first application more than 30 days after entry → `ResidenceApplicationReferred`: an
  officer decides (`ResidenceApplicationDecided` from the desk) → issued or rejected.
- `ResidencePermitCancellationDecided` (an officer, from the desk) closes the cancellation
  case `ResidencePermitCancellationRequired` opened → `ResidencePermitCancelled`.
  A decision on nothing pending is dead-lettered with the reason (`DecisionRefused`); the
  same decision again yields nothing.
- `PermitChanged` of the holder's name or passport → `ResidencePermitChangeRequired` for the
  residence permit in force (art. 33): the holder applies for the change within 10 days. The
  permit's new particulars are in the view already (the projection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from consumers.public_security import rules
from consumers.public_security.ports import PublicSecurityViewPort
from consumers.public_security.records import CheckedPermit
from consumers.public_security.tokens import AcceptedToken, TokenCheck
from hub.clock import CHINA_STANDARD_TIME
from hub.dispatch import Emit, Hold
from hub.logging import get_logger
from hub.redaction import NoPersonalData
from schemas.permits import PermitCancelled, PermitChanged, PermitEvent, PermitExtended
from schemas.public_security import (
    ApplicationPurpose,
    PresentedPermitNo,
    PresentedQrToken,
    ResidenceApplicationDecided,
    ResidenceApplicationReferred,
    ResidenceApplicationReferredData,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
    ResidencePermitCancellationDecided,
    ResidencePermitCancellationRequired,
    ResidencePermitCancellationRequiredData,
    ResidencePermitCancelled,
    ResidencePermitCancelledData,
    ResidencePermitChangeRequired,
    ResidencePermitChangeRequiredData,
    ResidencePermitExtended,
    ResidencePermitExtendedData,
    ResidencePermitExtensionAvailable,
    ResidencePermitExtensionAvailableData,
    ResidencePermitIssued,
    ResidencePermitIssuedData,
    ResidencePermitRejected,
    ResidencePermitRejectedData,
    ResidenceReferralReason,
    ResidenceRejection,
    ResidenceVerdict,
)

log = get_logger(__name__)


def checked_permit(event: PermitEvent) -> CheckedPermit:
    """Public security's row for the permit this event carries."""
    p = event.data.permit
    return CheckedPermit(
        permit_no=p.permit_no,
        sequence=event.sequence,
        status=p.status.value,
        standard=p.standard.value,
        holder_name=p.holder.name,
        nationality=p.holder.nationality,
        passport_no=p.holder.passport_no,
        passport_expiry=p.holder.passport_expiry,
        employer_city=f"{p.employer.province}/{p.employer.city}",
        valid_from=p.valid_from,
        valid_until=p.valid_until,
        cancelled_on=p.cancelled_on,
    )


class RequestMismatch(NoPersonalData, ValueError):
    """A request whose envelope and data disagree: a front-door bug, dead-lettered."""


class DecisionRefused(NoPersonalData, ValueError):
    """An officer's decision that cannot apply (nothing pending, a date that cannot stand,
    a reason naming the holder): dead-lettered with this message, which names no one."""


@dataclass(frozen=True)
class Policy:
    """What public security's handlers need beyond the event and the view."""

    check_token: TokenCheck
    cancellation_deadline_days: int | None = None
    """docs/domain.md §2 [U]: no national deadline is known; None publishes 'promptly'."""


async def on_application(
    event: ResidencePermitApplied,
    view: PublicSecurityViewPort,
    policy: Policy,
    *,
    received_at: datetime,
    may_hold: bool = False,
    held_since: datetime | None = None,
) -> Sequence[Emit] | Hold:
    """Decide an application for a work-type residence permit, and store the decision.

    `received_at` is when the request's record reached Kafka (the broker's clock). With
    `may_hold` (the router's hold period has not passed), an application naming a work
    permit this view does not know yet is held (`Hold`, released by the permit's events)
    instead of refused; nothing of it is stored until it is decided. `held_since`: it was
    held, and is decided now (its permit arrived, or the hold period ended).
    """
    app: ResidencePermitAppliedData = event.data
    permit_no = event.subject
    if isinstance(app.presented, PresentedPermitNo) and app.presented.permit_no != permit_no:
        # The codec refuses such a record already (subject_mismatch); a direct call may not.
        raise RequestMismatch("the subject is not the presented permit number")
    earlier = await view.decided(app.application_id)
    if earlier is not None:
        standing = ("is with an officer, who decides it" if earlier == "referred"
                    else "was already decided; that decision stands")
        return await _refuse(event, view, rules.Refuse(
            ResidenceRejection.DUPLICATE_APPLICATION,
            f"application {app.application_id} {standing}"))
    checked: rules.Refuse | AcceptedToken | None = None
    if isinstance(app.presented, PresentedQrToken):
        # The signature first: a forged token learns nothing about the permit.
        checked = policy.check_token(app.presented, permit_no, received_at)
    permit = await view.permit(permit_no)
    if permit is None and may_hold and not isinstance(checked, rules.Refuse):
        log.info("residence permit application held", application_id=app.application_id,
                 reason=ResidenceRejection.PERMIT_UNKNOWN.value)
        return Hold(permit_no, ResidenceRejection.PERMIT_UNKNOWN.value)
    refused = checked if isinstance(checked, rules.Refuse) else rules.check_permit(
        permit, permit_no, by_token=checked is not None)
    if permit is None and held_since is not None and not isinstance(checked, rules.Refuse):
        refused = rules.Refuse(ResidenceRejection.PERMIT_UNKNOWN,
                               f"work permit {permit_no} did not reach public security while "
                               f"the application waited (since {held_since:%Y-%m-%d %H:%M} "
                               "UTC); check the number, or apply again once the permit has "
                               "been issued")
    if refused is None and isinstance(checked, AcceptedToken):
        refused = await _take_once(event, view, checked)
    if refused is not None:
        return await _refuse(event, view, refused)
    assert permit is not None
    residence = await view.residence(permit_no)
    decision = rules.decide(app, permit, residence)
    if isinstance(decision, rules.Refuse):
        return await _refuse(event, view, decision)
    if isinstance(decision, rules.Grant):
        return await _grant(event, view, decision)
    if isinstance(decision, rules.Refer):
        return await _refer(event, view, decision)
    assert residence is not None
    return await _extend(event, view, decision, residence.residence_permit_no)


async def _take_once(
    event: ResidencePermitApplied, view: PublicSecurityViewPort, token: AcceptedToken
) -> rules.Refuse | None:
    """Record a token that proved its permit; refuse it if it did so before for this purpose.

    Only now: a token refused earlier (its signature, its permit's state in this view, which
    may lag the card's) is not used up, so the holder may present it again.
    """
    purpose = event.data.purpose.value
    if await view.accept_token(token.digest, purpose, event.data.application_id, event.id,
                               token.expires_at):
        return None
    return rules.Refuse(ResidenceRejection.TOKEN_REUSED,
                        f"this QR code was already presented for a {purpose} application; "
                        "refresh it in the e-SSC app and scan again")


async def _refuse(
    event: ResidencePermitApplied, view: PublicSecurityViewPort, refusal: rules.Refuse
) -> Sequence[Emit]:
    app = event.data
    await view.record(event.id, event.subject, app, outcome="rejected",
                      reason=refusal.reason.value, message=refusal.message)
    log.info("residence permit application rejected", application_id=app.application_id,
             reason=refusal.reason.value)
    return [Emit(ResidencePermitRejected, event.subject, ResidencePermitRejectedData(
        application_id=app.application_id, permit_no=event.subject, reason=refusal.reason,
        message=refusal.message))]


async def _refer(
    event: ResidencePermitApplied, view: PublicSecurityViewPort, refer: rules.Refer
) -> Sequence[Emit]:
    app = event.data
    await view.record(event.id, event.subject, app, outcome="referred",
                      message=refer.message, referral=refer.reason.value)
    log.info("residence permit application referred", application_id=app.application_id,
             referral=refer.reason.value)
    return [Emit(ResidenceApplicationReferred, event.subject, ResidenceApplicationReferredData(
        application_id=app.application_id, permit_no=event.subject, reason=refer.reason,
        message=refer.message, decide_by=refer.decide_by))]


async def _grant(
    event: ResidencePermitApplied, view: PublicSecurityViewPort, grant: rules.Grant
) -> Sequence[Emit]:
    app = event.data
    number = await view.issue(event.subject, app.application_id, grant.valid_from,
                              grant.valid_until)
    await view.record(event.id, event.subject, app, outcome="issued", residence_permit_no=number)
    return [Emit(ResidencePermitIssued, event.subject, ResidencePermitIssuedData(
        application_id=app.application_id, permit_no=event.subject, residence_permit_no=number,
        valid_from=grant.valid_from, valid_until=grant.valid_until,
        limited_by_work_permit=grant.limited_by_work_permit, verified_by=app.presented.kind))]


async def _extend(
    event: ResidencePermitApplied,
    view: PublicSecurityViewPort,
    extension: rules.Extend,
    number: str,
) -> Sequence[Emit]:
    app = event.data
    await view.extend(number, extension.valid_until)
    await view.record(event.id, event.subject, app, outcome="extended", residence_permit_no=number)
    return [Emit(ResidencePermitExtended, event.subject, ResidencePermitExtendedData(
        application_id=app.application_id, permit_no=event.subject, residence_permit_no=number,
        previous_valid_until=extension.previous_valid_until, valid_until=extension.valid_until,
        limited_by_work_permit=extension.limited_by_work_permit))]


async def on_permit_cancelled(
    event: PermitCancelled, view: PublicSecurityViewPort, policy: Policy
) -> Sequence[Emit]:
    """A cancelled work permit requires the residence permit on it to be cancelled."""
    record = event.data.permit
    residence = await view.residence(record.permit_no)
    if residence is None or residence.status != "issued":
        return []  # no residence permit was issued on it: nothing to cancel
    assert record.cancelled_on is not None
    deadline = rules.cancel_by(record.cancelled_on, policy.cancellation_deadline_days)
    await view.require_cancellation(residence.residence_permit_no, deadline,
                                    record.cancelled_on)
    return [Emit(ResidencePermitCancellationRequired, record.permit_no,
                 ResidencePermitCancellationRequiredData(
                     permit_no=record.permit_no,
                     residence_permit_no=residence.residence_permit_no,
                     work_permit_cancelled_on=record.cancelled_on, cancel_by=deadline))]


async def on_permit_extended(event: PermitExtended, view: PublicSecurityViewPort) -> Sequence[Emit]:
    """A longer work permit opens an extension of the residence permit, on application."""
    record = event.data.permit
    residence = await view.residence(record.permit_no)
    if residence is None or record.valid_until is None:
        return []
    window = rules.extension_window(residence, record.valid_until)
    if window is None:
        return []
    may_extend_until, apply_by = window
    await view.offer_extension(residence.residence_permit_no, may_extend_until)
    return [Emit(ResidencePermitExtensionAvailable, record.permit_no,
                 ResidencePermitExtensionAvailableData(
                     permit_no=record.permit_no,
                     residence_permit_no=residence.residence_permit_no,
                     current_valid_until=residence.valid_until,
                     may_extend_until=may_extend_until, apply_by=apply_by))]


async def on_permit_changed(event: PermitChanged, view: PublicSecurityViewPort) -> Sequence[Emit]:
    """A change of the holder's name or passport requires the residence permit's change."""
    record = event.data.permit
    changed_on = event.time.astimezone(CHINA_STANDARD_TIME).date()
    residence = await view.residence(record.permit_no)
    required = rules.change_required([c.field for c in event.data.changes], residence,
                                     changed_on)
    if required is None:
        return []
    assert residence is not None
    changed, report_by = required
    await view.require_change(residence.residence_permit_no, changed, changed_on, report_by)
    log.info("residence permit change required", changed=",".join(changed))
    return [Emit(ResidencePermitChangeRequired, record.permit_no,
                 ResidencePermitChangeRequiredData(
                     permit_no=record.permit_no,
                     residence_permit_no=residence.residence_permit_no,
                     changed=changed, changed_on=changed_on, report_by=report_by))]


# Decisions by officers ------------------------------------------------------------------


async def _check_reason(view: PublicSecurityViewPort, permit_no: str, reason: str) -> None:
    if await view.names_holder(permit_no, reason):
        raise DecisionRefused("the decision's reason names the holder (name or passport); "
                              "state the rule or facts weighed without personal data")


async def on_application_decision(
    event: ResidenceApplicationDecided, view: PublicSecurityViewPort
) -> Sequence[Emit]:
    """An officer's decision on a referred application: issued (the other rules still apply)
    or rejected with the referral's reason and the officer's reason."""
    d = event.data
    app = await view.application(d.application_id)
    if app is None or app.permit_no != d.permit_no:
        raise DecisionRefused(f"no application {d.application_id} on this permit was received")
    earlier = await view.officer_decision("application", d.application_id)
    if earlier == d.verdict.value:
        log.info("the same officer's decision again: nothing more",
                 application_id=app.application_id)
        return []
    if earlier is not None:
        raise DecisionRefused(f"application {d.application_id} was decided by an officer "
                              f"already ({earlier}); that decision stands")
    if app.outcome != "referred" or app.referral is None:
        raise DecisionRefused(f"application {d.application_id} is not referred to an officer "
                              f"(it was {app.outcome})")
    await _check_reason(view, d.permit_no, d.reason)
    await view.record_officer_decision(event.id, "application", d.application_id,
                                       d.verdict.value, d.officer_id, d.decided_at, d.reason)
    log.info("officer decided a referred application", application_id=d.application_id,
             verdict=d.verdict.value, officer_id=d.officer_id)
    if d.verdict is ResidenceVerdict.REFUSE:
        reason = rules.REFUSAL_OF_REFERRAL[ResidenceReferralReason(app.referral)]
        return await _settle_refused(app, view, rules.Refuse(
            reason, f"refused by officer {d.officer_id}: {d.reason}"))
    permit = await view.permit(app.permit_no)
    refused = rules.check_permit(permit, app.permit_no, by_token=False)
    if refused is not None:  # the permit changed while the officer looked
        return await _settle_refused(app, view, refused)
    assert permit is not None
    data = ResidencePermitAppliedData(
        application_id=app.application_id, purpose=ApplicationPurpose(app.purpose),
        presented=PresentedPermitNo(permit_no=app.permit_no), entry_date=app.entry_date,
        applied_on=app.applied_on, requested_until=app.requested_until)
    decision = rules.decide(data, permit, await view.residence(app.permit_no),
                            late_accepted=True)
    if isinstance(decision, rules.Refuse):
        return await _settle_refused(app, view, decision)
    assert isinstance(decision, rules.Grant), "a referral is of a first application"
    number = await view.issue(app.permit_no, app.application_id, decision.valid_from,
                              decision.valid_until)
    await view.settle(app.application_id, "issued", residence_permit_no=number)
    verified_by: Literal["permit_no", "qr_token"] = (
        "qr_token" if app.presented == "qr_token" else "permit_no")
    return [Emit(ResidencePermitIssued, app.permit_no, ResidencePermitIssuedData(
        application_id=app.application_id, permit_no=app.permit_no, residence_permit_no=number,
        valid_from=decision.valid_from, valid_until=decision.valid_until,
        limited_by_work_permit=decision.limited_by_work_permit, verified_by=verified_by))]


async def _settle_refused(
    app: rules.ApplicationFacts, view: PublicSecurityViewPort, refusal: rules.Refuse
) -> Sequence[Emit]:
    message = refusal.message[:500]
    await view.settle(app.application_id, "rejected", reason=refusal.reason.value,
                      message=message)
    return [Emit(ResidencePermitRejected, app.permit_no, ResidencePermitRejectedData(
        application_id=app.application_id, permit_no=app.permit_no, reason=refusal.reason,
        message=message))]


async def on_cancellation_decision(
    event: ResidencePermitCancellationDecided, view: PublicSecurityViewPort
) -> Sequence[Emit]:
    """An officer closes a cancellation case: the residence permit is cancelled on a date."""
    d = event.data
    case = await view.cancellation_case(d.residence_permit_no)
    if case is None or case.permit_no != d.permit_no:
        raise DecisionRefused(f"no residence permit {d.residence_permit_no} on this permit")
    if case.status == "cancelled" and case.cancelled_on == d.cancelled_on:
        log.info("the same cancellation again: nothing more")
        return []
    if case.status != "cancellation_required":
        raise DecisionRefused(f"residence permit {d.residence_permit_no} has no open "
                              f"cancellation case (it is {case.status})")
    decided_on = d.decided_at.astimezone(CHINA_STANDARD_TIME).date()
    wrong = rules.check_cancellation(d.cancelled_on, decided_on, case.valid_from,
                                     case.work_permit_cancelled_on)
    if wrong is not None:
        raise DecisionRefused(wrong)
    await _check_reason(view, d.permit_no, d.reason)
    await view.record_officer_decision(event.id, "cancellation", d.residence_permit_no,
                                       "cancel", d.officer_id, d.decided_at, d.reason)
    await view.close_cancellation(d.residence_permit_no, d.cancelled_on)
    log.info("cancellation case closed", officer_id=d.officer_id)
    return [Emit(ResidencePermitCancelled, d.permit_no, ResidencePermitCancelledData(
        permit_no=d.permit_no, residence_permit_no=d.residence_permit_no,
        cancelled_on=d.cancelled_on, officer_id=d.officer_id, decided_at=d.decided_at))]
