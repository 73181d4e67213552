"""What public security (entry-exit administration) does with the permit lifecycle and its requests.

- Every permit event keeps its view of the permit (`checked_permit`).
- `ResidencePermitApplied` → `ResidencePermitIssued`, `ResidencePermitExtended` or
  `ResidencePermitRejected` (rules in `rules.py`, docs/domain.md §2 public security). A QR
  token is checked against the time its request reached Kafka (`received_at`), and taken
  once per purpose: its digest is recorded once it has proven the permit.
- `PermitCancelled` → `ResidencePermitCancellationRequired` for the residence permit on it.
- `PermitExtended` → `ResidencePermitExtensionAvailable`: the holder may apply to extend the
  residence permit up to the new end; nothing changes until that application is decided.
- `PermitChanged` of the holder's name or passport → `ResidencePermitChangeRequired` for the
  residence permit in force (art. 33): the holder applies for the change within 10 days. The
  permit's new particulars are in the view already (the projection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from consumers.public_security import rules
from consumers.public_security.ports import PublicSecurityViewPort
from consumers.public_security.records import CheckedPermit
from consumers.public_security.tokens import AcceptedToken, TokenCheck
from hub.clock import CHINA_STANDARD_TIME
from hub.dispatch import Emit
from hub.logging import get_logger
from hub.redaction import NoPersonalData
from schemas.permits import PermitCancelled, PermitChanged, PermitEvent, PermitExtended
from schemas.public_security import (
    PresentedPermitNo,
    PresentedQrToken,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
    ResidencePermitCancellationRequired,
    ResidencePermitCancellationRequiredData,
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
    ResidenceRejection,
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
) -> Sequence[Emit]:
    """Decide an application for a work-type residence permit, and store the decision.

    `received_at` is when the request's record reached Kafka (the broker's clock).
    """
    app: ResidencePermitAppliedData = event.data
    permit_no = event.subject
    if isinstance(app.presented, PresentedPermitNo) and app.presented.permit_no != permit_no:
        # The codec refuses such a record already (subject_mismatch); a direct call may not.
        raise RequestMismatch("the subject is not the presented permit number")
    if await view.decided(app.application_id) is not None:
        return await _refuse(event, view, rules.Refuse(
            ResidenceRejection.DUPLICATE_APPLICATION,
            f"application {app.application_id} was already decided; that decision stands"))
    checked: rules.Refuse | AcceptedToken | None = None
    if isinstance(app.presented, PresentedQrToken):
        # The signature first: a forged token learns nothing about the permit.
        checked = policy.check_token(app.presented, permit_no, received_at)
    permit = await view.permit(permit_no)
    refused = checked if isinstance(checked, rules.Refuse) else rules.check_permit(
        permit, permit_no, by_token=checked is not None)
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
    await view.require_cancellation(residence.residence_permit_no, deadline)
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
