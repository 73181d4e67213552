"""Public security's handlers as plain function calls against an in-memory view.

The same behaviours as tests/integration/test_public_security_applications.py, without
Kafka or Postgres: `MemoryPublicSecurityView` keeps the rows and unique indexes of
`PublicSecurityView` (one residence permit per work permit, one decision per application id).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.card.issuer import QrIssuer
from consumers.public_security import handlers
from consumers.public_security.handlers import Policy
from consumers.public_security.tokens import token_check
from hub.dispatch import Emit
from hub.signing import SigningKey
from producers.work_permit import domain
from schemas.permit_token import KeySet, key_id, token_digest
from schemas.permits import (
    CancellationReason,
    Category,
    PermitCancelled,
    PermitEvent,
    PermitExtended,
    PermitPayload,
    PermitRecord,
    PermitStandard,
    PermitStatus,
)
from schemas.public_security import (
    ApplicationPurpose,
    PresentedPermitNo,
    PresentedQrToken,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
    ResidencePermitCancellationRequired,
    ResidencePermitCancellationRequiredData,
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
from tests.factories import employer, holder, permit_event
from tests.memory_views import MemoryPublicSecurityView

R = ResidenceRejection
PERMIT = "156000000000000042"
OTHER = "156000000000000043"
ENTRY = date(2025, 3, 3)
SCANNED = datetime(2025, 3, 13, 2, 0, tzinfo=UTC)
CARD_ID = "ESSC0123456789ABCDEF"


def _key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    return SigningKey("card-qr", key_id(private.public_key()), private)


CARD_KEY = _key()
"""The card service's key, the one public security has from the published set."""
FORGER = _key()
"""A key nobody published."""
POLICY = Policy(
    check_token=token_check(lambda: KeySet({CARD_KEY.kid: CARD_KEY.private_key.public_key()}),
                            timedelta(seconds=30)),
    cancellation_deadline_days=15,
)


class Authority:
    """The work-permit authority in memory: each decision is its permit's next event."""

    def __init__(self, view: MemoryPublicSecurityView) -> None:
        self.view = view
        self.sequences: dict[str, int] = {}

    def publish(self, data: PermitPayload) -> PermitEvent:
        """Wrap the decision in the permit's next event and project it into the view."""
        no = data.permit.permit_no
        self.sequences[no] = self.sequences.get(no, 0) + 1
        event = permit_event(data, self.sequences[no])
        self.view.project(event)
        return event

    def letter(self, permit_no: str = PERMIT, months: int = 24) -> PermitRecord:
        """A notification letter three weeks before entry."""
        data = domain.notification_letter(
            permit_no=permit_no, letter_no=f"NL{permit_no}", holder=holder(),
            employer=employer(), category=Category.B, position="Engineer",
            approved_months=months, today=ENTRY - timedelta(days=21))
        return self.publish(data).data.permit

    def issued(self, permit_no: str = PERMIT, months: int = 24) -> PermitRecord:
        """A permit issued on the entry date for `months`."""
        letter = self.letter(permit_no, months)
        return self.publish(domain.issue(letter, valid_from=ENTRY, today=ENTRY)).data.permit

    def legacy(self, permit_no: str = PERMIT) -> PermitRecord:
        """A pre-integration permit valid until February 2027."""
        record = PermitRecord(
            permit_no=permit_no, status=PermitStatus.ACTIVE,
            standard=PermitStandard.LEGACY, holder=holder(), category=Category.B,
            employer=employer(), position="Teacher", approved_months=36,
            issued_on=date(2024, 3, 1), valid_from=date(2024, 3, 1),
            valid_until=date(2027, 2, 28))
        return self.publish(domain.legacy(record)).data.permit


def applied(
    application_id: str = "A-1", permit_no: str = PERMIT, **data: Any
) -> ResidencePermitApplied:
    """A first application by permit number, ten days after entry, for a year."""
    fields: dict[str, Any] = {
        "application_id": application_id,
        "presented": PresentedPermitNo(permit_no=permit_no),
        "entry_date": ENTRY, "applied_on": ENTRY + timedelta(days=10),
        "requested_until": date(2026, 3, 12),
    }
    event = ResidencePermitApplied.create(
        subject=permit_no, sequence=1,
        data=ResidencePermitAppliedData.model_validate(fields | data))
    assert isinstance(event, ResidencePermitApplied)
    return event


def by_token(application_id: str, permit_no: str, token: str,
             scanned_at: datetime = SCANNED) -> ResidencePermitApplied:
    """An application presented with a scanned permit QR code."""
    return applied(application_id, permit_no,
                   presented=PresentedQrToken(token=token, scanned_at=scanned_at))


def token(permit_no: str, key: SigningKey = CARD_KEY, issued_at: datetime = SCANNED) -> str:
    """A permit QR token signed with `key` at `issued_at`, valid ten minutes."""
    return QrIssuer.fixed(key, clock=lambda: issued_at).issue(permit_no, CARD_ID)[0]


async def apply(
    view: MemoryPublicSecurityView, event: ResidencePermitApplied,
    received_at: datetime | None = None,
) -> Sequence[Emit]:
    """Decide as the router would; the record reached Kafka two seconds after the scan."""
    if received_at is None:
        presented = event.data.presented
        scanned = presented.scanned_at if isinstance(presented, PresentedQrToken) else SCANNED
        received_at = scanned + timedelta(seconds=2)
    return await handlers.on_application(event, view, POLICY, received_at=received_at)


def only(emits: Sequence[Emit], event_type: type[Any], subject: str = PERMIT) -> Any:
    assert [e.event_type for e in emits] == [event_type], emits
    assert emits[0].subject == subject
    return emits[0].data


def rejected(emits: Sequence[Emit], subject: str = PERMIT) -> ResidencePermitRejectedData:
    data = only(emits, ResidencePermitRejected, subject)
    assert isinstance(data, ResidencePermitRejectedData)
    return data


def extension(
    application_id: str, applied_on: date, requested_until: date
) -> ResidencePermitApplied:
    """An application to extend the residence permit in force."""
    return applied(application_id, purpose=ApplicationPurpose.EXTENSION, entry_date=None,
                   applied_on=applied_on, requested_until=requested_until)


# first applications by permit number ------------------------------------------------------


async def test_a_timely_application_is_granted_the_requested_period_and_stored() -> None:
    """Ten days after entry, a year asked: ResidencePermitIssued from the application day."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    data = only(await apply(view, applied()), ResidencePermitIssued)
    assert isinstance(data, ResidencePermitIssuedData)
    assert (data.valid_from, data.valid_until) == (ENTRY + timedelta(days=10), date(2026, 3, 12))
    assert not data.limited_by_work_permit
    assert data.verified_by == "permit_no"
    stored = view.residence_of(PERMIT)
    assert stored is not None
    assert (stored.residence_permit_no, stored.status) == (data.residence_permit_no, "issued")
    assert [(a.outcome, a.residence_permit_no) for a in view.applications] == [
        ("issued", data.residence_permit_no)]


async def test_the_residence_permit_never_runs_beyond_the_work_permit() -> None:
    """Asked until 2030 on a permit ending in 2027: granted to the permit's end, flagged."""
    view = MemoryPublicSecurityView()
    permit = Authority(view).issued()
    data = only(await apply(view, applied(requested_until=date(2030, 3, 1))),
                ResidencePermitIssued)
    assert data.valid_until == permit.valid_until
    assert data.limited_by_work_permit


def _letter(auth: Authority) -> None:
    auth.letter()


def _cancelled(auth: Authority) -> None:
    permit = auth.issued()
    auth.publish(domain.cancel(permit, reason=CancellationReason.CONTRACT_ENDED,
                               today=ENTRY + timedelta(days=5)))


def _expired(auth: Authority) -> None:
    permit = auth.issued(months=1)
    assert permit.valid_until is not None
    auth.publish(domain.expire(permit, today=permit.valid_until + timedelta(days=1)))


def _issued(auth: Authority) -> None:
    auth.issued()


def _short(auth: Authority) -> None:
    auth.issued(months=2)


@pytest.mark.parametrize(("setup", "request_data", "reason"), [
    (None, {}, R.PERMIT_UNKNOWN),
    (_letter, {}, R.PERMIT_NOT_ACTIVE),
    (_cancelled, {}, R.PERMIT_CANCELLED),
    (_expired, {}, R.PERMIT_EXPIRED),
    (_issued, {"entry_date": ENTRY + timedelta(days=11)}, R.ENTRY_DATE_INVALID),
    (_issued, {"entry_date": None}, R.ENTRY_DATE_INVALID),
    (_issued, {"requested_until": ENTRY + timedelta(days=60)}, R.VALIDITY_OUT_OF_RANGE),
    (_short, {}, R.WORK_PERMIT_ENDS_TOO_SOON),
], ids=["unknown", "letter-stage", "cancelled", "expired", "entry-after-applying",
        "no-entry-date", "too-short", "permit-ends-too-soon"])
async def test_each_refusal_is_published_with_its_reason_and_stored(
    setup: Any, request_data: dict[str, Any], reason: ResidenceRejection
) -> None:
    """Every way a first application fails gives its reason; no residence permit is issued."""
    view = MemoryPublicSecurityView()
    if setup is not None:
        setup(Authority(view))
    data = rejected(await apply(view, applied(**request_data)))
    assert (data.reason, data.permit_no, data.application_id) == (reason, PERMIT, "A-1")
    assert data.message
    assert view.residences == {}
    assert [(a.outcome, a.reason) for a in view.applications] == [("rejected", reason.value)]


async def test_a_second_application_for_the_same_permit_is_told_to_extend_instead() -> None:
    """One residence permit per work permit: a new first application is already_issued."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    number = only(await apply(view, applied("A-1")), ResidencePermitIssued).residence_permit_no
    data = rejected(await apply(view, applied("A-2")))
    assert data.reason is R.ALREADY_ISSUED
    assert number in data.message
    assert len(view.residences) == 1


async def test_a_resubmitted_application_id_is_a_duplicate_and_the_first_decision_stands() -> None:
    """The same application id in a new envelope: duplicate_application, nothing changes."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    first = only(await apply(view, applied("A-1")), ResidencePermitIssued)
    data = rejected(await apply(view, applied("A-1", requested_until=date(2026, 12, 31))))
    assert data.reason is R.DUPLICATE_APPLICATION
    assert await view.decided("A-1") == "issued"
    stored = view.residence_of(PERMIT)
    assert stored is not None
    assert stored.valid_until == first.valid_until
    assert [(a.outcome, a.reason) for a in view.applications] == [
        ("issued", None), ("rejected", "duplicate_application")]


async def test_a_rejected_application_id_stays_rejected_when_resubmitted() -> None:
    """A refusal is a decision too: the same id, now with a permit known, is a duplicate."""
    view = MemoryPublicSecurityView()
    assert rejected(await apply(view, applied("A-1"))).reason is R.PERMIT_UNKNOWN
    Authority(view).issued()
    assert rejected(await apply(view, applied("A-1"))).reason is R.DUPLICATE_APPLICATION
    assert view.residences == {}


async def test_a_request_whose_subject_and_presented_number_disagree_is_refused_loudly() -> None:
    """A front-door bug: RequestMismatch (dead-lettered), and nothing is stored."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    event = applied(permit_no=PERMIT).model_copy(update={"subject": OTHER})
    with pytest.raises(handlers.RequestMismatch):
        await apply(view, event)
    assert view.applications == []


# QR tokens ------------------------------------------------------------------------------


async def test_a_genuine_qr_token_for_the_permit_is_accepted() -> None:
    """Signed with the published key, scanned while valid, naming the permit: issued."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    data = only(await apply(view, by_token("T-1", PERMIT, token(PERMIT))), ResidencePermitIssued)
    assert data.verified_by == "qr_token"


@pytest.mark.parametrize(("make_token", "reason"), [
    (lambda: token(PERMIT, issued_at=SCANNED - timedelta(minutes=30)), R.TOKEN_EXPIRED),
    (lambda: token(PERMIT, key=FORGER), R.TOKEN_INVALID),
    (lambda: token(OTHER), R.TOKEN_INVALID),
], ids=["expired", "unpublished-key", "other-permit"])
async def test_a_qr_token_that_does_not_prove_the_permit_is_refused(
    make_token: Any, reason: ResidenceRejection
) -> None:
    """Expired when scanned, signed by a key nobody published, or naming another permit."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    assert rejected(await apply(view, by_token("T-1", PERMIT, make_token()))).reason is reason
    assert view.residences == {}


async def test_an_expired_token_is_judged_at_scan_time_not_processing_time() -> None:
    """A token scanned within its ten minutes is valid whenever the request is processed."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    issued_at = SCANNED - timedelta(minutes=9)
    emits = await apply(view, by_token("T-1", PERMIT, token(PERMIT, issued_at=issued_at)))
    assert only(emits, ResidencePermitIssued)


async def test_a_forged_token_learns_nothing_about_the_permit() -> None:
    """The signature is checked first: an unknown permit and a known one answer alike."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    known = rejected(await apply(view, by_token("T-1", PERMIT, token(PERMIT, key=FORGER))))
    unknown = rejected(await apply(view, by_token("T-2", OTHER, token(OTHER, key=FORGER))), OTHER)
    assert known.reason is unknown.reason is R.TOKEN_INVALID


async def test_a_backdated_scan_of_a_long_expired_token_is_refused() -> None:
    """The counter says the code was scanned while valid, but its request reached Kafka a
    month later: scan_time_invalid, and the token is not recorded as used."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    event = by_token("T-1", PERMIT, token(PERMIT))  # scanned_at SCANNED, within its life
    emits = await apply(view, event, received_at=SCANNED + timedelta(days=30))
    assert rejected(emits).reason is R.SCAN_TIME_INVALID
    assert view.accepted_tokens == {}
    assert view.residences == {}


async def test_a_token_is_taken_once_and_only_its_digest_is_kept() -> None:
    """Presented again for another application of the same purpose: token_reused, with a
    message that names neither the token nor the permit."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    auth.issued()
    auth.issued(OTHER)
    text = token(PERMIT)
    assert only(await apply(view, by_token("T-1", PERMIT, text)), ResidencePermitIssued)
    assert list(view.accepted_tokens) == [(token_digest(text), "first")]
    again = rejected(await apply(view, by_token("T-2", PERMIT, text)))
    assert again.reason is R.TOKEN_REUSED
    assert PERMIT not in again.message
    assert text not in again.message
    assert len(view.accepted_tokens) == 1


async def test_a_token_that_proved_its_permit_is_used_up_even_if_the_application_fails() -> None:
    """Refused on its merits (too short): the token did prove the permit, so it is taken."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    text = token(PERMIT)
    short = applied("T-1", PERMIT, presented=PresentedQrToken(token=text, scanned_at=SCANNED),
                    requested_until=ENTRY + timedelta(days=60))
    assert rejected(await apply(view, short)).reason is R.VALIDITY_OUT_OF_RANGE
    assert rejected(await apply(view, by_token("T-2", PERMIT, text))).reason is R.TOKEN_REUSED


async def test_a_token_refused_before_it_proved_anything_is_not_used_up() -> None:
    """Forged, expired, or its permit not yet provable by token in this view: nothing is
    recorded, so a genuine token may be presented again once the view has caught up."""
    view = MemoryPublicSecurityView()
    Authority(view).legacy()
    forged = rejected(await apply(view, by_token("T-1", PERMIT, token(PERMIT, key=FORGER))))
    legacy = rejected(await apply(view, by_token("T-2", PERMIT, token(PERMIT))))
    assert (forged.reason, legacy.reason) == (R.TOKEN_INVALID, R.LEGACY_PERMIT_NO_TOKEN)
    assert view.accepted_tokens == {}


async def test_a_token_is_taken_once_per_purpose() -> None:
    """The same token backs one first application and one extension, not two of either."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    await _first_residence(view, auth)
    text = token(PERMIT, issued_at=SCANNED)
    ext = applied("X-1", purpose=ApplicationPurpose.EXTENSION, entry_date=None,
                  applied_on=ENTRY + timedelta(days=10), requested_until=date(2026, 3, 2),
                  presented=PresentedQrToken(token=text, scanned_at=SCANNED))
    assert rejected(await apply(view, ext)).reason is R.NOTHING_TO_EXTEND
    again = ext.model_copy(update={"id": uuid.uuid4(),
                                   "data": ext.data.model_copy(update={"application_id": "X-2"})})
    assert rejected(await apply(view, again)).reason is R.TOKEN_REUSED
    first = rejected(await apply(view, by_token("F-1", PERMIT, text)))
    assert first.reason is R.ALREADY_ISSUED
    assert sorted(p for _, p in view.accepted_tokens) == ["extension", "first"]


async def test_a_legacy_permit_needs_its_number_until_it_is_migrated() -> None:
    """No e-card QR code on a legacy permit: refused by token, accepted after PermitMigrated."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    legacy = auth.legacy()
    refused = rejected(await apply(view, by_token("T-1", PERMIT, token(PERMIT))))
    assert refused.reason is R.LEGACY_PERMIT_NO_TOKEN
    auth.publish(domain.migrate(legacy))
    assert only(await apply(view, by_token("T-2", PERMIT, token(PERMIT))), ResidencePermitIssued)


async def test_a_legacy_permit_by_number_is_honoured_as_it_is() -> None:
    """'No Change, No Replacement': the permit number of a legacy permit is enough."""
    view = MemoryPublicSecurityView()
    Authority(view).legacy()
    assert only(await apply(view, applied()), ResidencePermitIssued)


# the work permit's extension and cancellation ---------------------------------------------


async def _first_residence(view: MemoryPublicSecurityView, auth: Authority) -> PermitRecord:
    """A 12-month work permit (to 2 March 2026) and a residence permit limited to it."""
    permit = auth.issued(months=12)
    assert permit.valid_until == date(2026, 3, 2)
    await apply(view, applied(requested_until=date(2027, 1, 1)))
    return permit


async def test_a_work_permit_extension_offers_a_residence_extension_without_changing_it() -> None:
    """PermitExtended → ResidencePermitExtensionAvailable; the end moves only on application."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    ext = auth.publish(domain.extend(permit, new_valid_until=date(2027, 3, 2),
                                     today=date(2026, 1, 15)))
    assert isinstance(ext, PermitExtended)
    offer = only(await handlers.on_permit_extended(ext, view), ResidencePermitExtensionAvailable)
    assert isinstance(offer, ResidencePermitExtensionAvailableData)
    assert (offer.current_valid_until, offer.may_extend_until, offer.apply_by) == (
        date(2026, 3, 2), date(2027, 3, 2), date(2026, 1, 31))
    stored = view.residence_of(PERMIT)
    assert stored is not None
    assert (stored.valid_until, stored.extension_available_until) == (
        date(2026, 3, 2), date(2027, 3, 2))


async def test_the_extension_application_moves_the_end_and_uses_up_the_offer() -> None:
    """ResidencePermitExtended from the old end to the work permit's new end."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    ext = auth.publish(domain.extend(permit, new_valid_until=date(2027, 3, 2),
                                     today=date(2026, 1, 15)))
    assert isinstance(ext, PermitExtended)
    await handlers.on_permit_extended(ext, view)
    data = only(await apply(view, extension("L-2", date(2026, 1, 20), date(2027, 3, 2))),
                ResidencePermitExtended)
    assert isinstance(data, ResidencePermitExtendedData)
    assert (data.previous_valid_until, data.valid_until) == (date(2026, 3, 2), date(2027, 3, 2))
    stored = view.residence_of(PERMIT)
    assert stored is not None
    assert (stored.valid_until, stored.extension_available_until) == (date(2027, 3, 2), None)
    assert [a.outcome for a in view.applications] == ["issued", "extended"]


async def test_an_extension_without_a_residence_permit_is_refused() -> None:
    """Nothing to extend: no_residence_permit."""
    view = MemoryPublicSecurityView()
    Authority(view).issued()
    emits = await apply(view, extension("L-1", date(2025, 6, 1), date(2026, 6, 1)))
    assert rejected(emits).reason is R.NO_RESIDENCE_PERMIT


async def test_a_work_permit_extension_without_a_residence_permit_publishes_nothing() -> None:
    """No residence permit on the work permit: no offer, nothing stored."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = auth.issued(months=12)
    ext = auth.publish(domain.extend(permit, new_valid_until=date(2027, 3, 2),
                                     today=date(2026, 1, 15)))
    assert isinstance(ext, PermitExtended)
    assert await handlers.on_permit_extended(ext, view) == []


async def test_a_cancelled_work_permit_requires_the_residence_permit_cancelled() -> None:
    """PermitCancelled → ResidencePermitCancellationRequired by the configured deadline."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    cancel = auth.publish(domain.cancel(permit, reason=CancellationReason.CONTRACT_ENDED,
                                        today=date(2025, 6, 1)))
    assert isinstance(cancel, PermitCancelled)
    data = only(await handlers.on_permit_cancelled(cancel, view, POLICY),
                ResidencePermitCancellationRequired)
    assert isinstance(data, ResidencePermitCancellationRequiredData)
    assert (data.work_permit_cancelled_on, data.cancel_by) == (date(2025, 6, 1), date(2025, 6, 16))
    stored = view.residence_of(PERMIT)
    assert stored is not None
    assert (stored.status, stored.cancel_by) == ("cancellation_required", date(2025, 6, 16))
    assert await handlers.on_permit_cancelled(cancel, view, POLICY) == [], "required once"
    later = await apply(view, extension("L-after", date(2025, 6, 2), date(2026, 3, 2)))
    assert rejected(later).reason is R.PERMIT_CANCELLED


async def test_without_a_configured_deadline_the_cancellation_is_required_promptly() -> None:
    """No national deadline is known: cancel_by is None ('promptly')."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = await _first_residence(view, auth)
    cancel = auth.publish(domain.cancel(permit, reason=CancellationReason.REVOKED,
                                        today=date(2025, 6, 1)))
    assert isinstance(cancel, PermitCancelled)
    policy = Policy(check_token=POLICY.check_token)
    data = only(await handlers.on_permit_cancelled(cancel, view, policy),
                ResidencePermitCancellationRequired)
    assert data.cancel_by is None


async def test_a_cancelled_work_permit_without_a_residence_permit_publishes_nothing() -> None:
    """Nothing was issued on it, so there is nothing to cancel."""
    view = MemoryPublicSecurityView()
    auth = Authority(view)
    permit = auth.issued()
    cancel = auth.publish(domain.cancel(permit, reason=CancellationReason.CONTRACT_ENDED,
                                        today=date(2025, 6, 1)))
    assert isinstance(cancel, PermitCancelled)
    assert await handlers.on_permit_cancelled(cancel, view, POLICY) == []
