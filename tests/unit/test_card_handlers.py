"""The card service's decisions as plain function calls against an in-memory view.

`tests.memory_views.MemoryCardView` keeps the same rows as `consumers.card.views.CardView`
with the same uniqueness rules (one e-card per permit, one physical card per permit and per
SSN, one notice per dedup key, one answer per request id); the integration tests run the
same decisions on Postgres.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from consumers.card import AGENCY, documents, handlers
from consumers.card.issuer import QrIssuer
from consumers.card.requests import registration_request, sweep_request
from consumers.card.settings import CardSettings
from hub.dispatch import Emit, Hold, Received
from hub.signing import SigningKey
from producers.work_permit import domain
from schemas import DecodeError, DecodeFailure
from schemas.card import (
    ECardIssued,
    ECardIssuedData,
    ECardRejected,
    ECardRejectedData,
    ECardRejectionReason,
    ExpiryReminderSweepRequested,
    NotificationKind,
    PermitNotificationSent,
    PermitNotificationSentData,
    PhysicalCardIssued,
    PhysicalCardIssuedData,
)
from schemas.permit_token import key_id, verify
from schemas.permits import (
    CancellationReason,
    LegacyPermitRegistered,
    NotificationLetterIssued,
    NotificationLetterLapsed,
    PermitCancelled,
    PermitChanged,
    PermitEvent,
    PermitExtended,
    PermitIssued,
    PermitMigrated,
    PermitPayload,
    PermitRecord,
    PermitStandard,
    PermitStatus,
)
from schemas.social_insurance import (
    InsuranceRegistered,
    InsuranceRegisteredData,
    SocialSecurityNumberIssued,
    SocialSecurityNumberIssuedData,
)
from tests.factories import active_record, holder
from tests.memory_views import MemoryCardView

if TYPE_CHECKING:
    from consumers.card.views import CardView

R = ECardRejectionReason
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in China, 2 March 2026
TODAY = date(2026, 3, 2)
PERMIT = "156000000000000001"
NAME = "Anna Schmidt"
CLOSING = CardSettings().closing_reminder_days


_PRIVATE = Ed25519PrivateKey.generate()
KEY = SigningKey("card-qr", key_id(_PRIVATE.public_key()), _PRIVATE)
ISSUER = QrIssuer.fixed(KEY, clock=lambda: NOW)


def record(**overrides: Any) -> PermitRecord:
    fields: dict[str, Any] = {
        "holder": holder(name=NAME), "issued_on": date(2025, 6, 1),
        "valid_from": date(2025, 6, 1), "valid_until": date(2026, 8, 31),
    }
    return active_record(PERMIT, **(fields | overrides))


def permit_event(event_type: type[Any], data: PermitPayload, sequence: int,
                 at: datetime = NOW) -> PermitEvent:
    event: PermitEvent = event_type.create(subject=data.permit.permit_no, sequence=sequence,
                                           data=data, time=at)
    return event


def view_with(rec: PermitRecord | None = None, sequence: int = 2) -> MemoryCardView:
    view = MemoryCardView()
    if rec is not None:
        view.project(permit_event(PermitIssued, domain.PermitIssuedData(permit=rec), sequence))
    return view


async def register(view: MemoryCardView, name: str = NAME, **kw: Any) -> list[Emit]:
    kw.setdefault("permit_no", PERMIT)
    event = registration_request(name, at=NOW, **kw)
    return await handlers.register_ecard(event, view, issuer=ISSUER, closing_days=CLOSING)


def as_card_view(view: MemoryCardView) -> CardView:
    """The in-memory view where `documents` still names the Postgres class (same methods)."""
    return cast("CardView", view)


async def physical(event: SocialSecurityNumberIssued, view: MemoryCardView) -> list[Emit]:
    return await handlers.issue_physical_card(event, view)


async def notify(event: PermitEvent, view: MemoryCardView) -> list[Emit]:
    return await handlers.notify_permit_change(event, view, closing_days=CLOSING)


async def sweep(event: ExpiryReminderSweepRequested, view: MemoryCardView,
                closing_days: int = CLOSING) -> list[Emit]:
    return await handlers.send_expiry_reminders(event, view, closing_days=closing_days)


def only(emits: list[Emit], event_type: type[Any]) -> Any:
    assert [e.event_type for e in emits] == [event_type], emits
    return emits[0].data


def rejection(emits: list[Emit]) -> ECardRejectedData:
    data = only(emits, ECardRejected)
    assert isinstance(data, ECardRejectedData)
    return data


# registration ---------------------------------------------------------------------------


async def test_a_matching_request_gets_an_ecard_with_the_permit_and_a_valid_qr_token() -> None:
    """Name as in the passport + permit number + passed face check → ECardIssued."""
    view = view_with(record())
    emits = await register(view)
    data = only(emits, ECardIssued)
    assert isinstance(data, ECardIssuedData)
    assert emits[0].subject == PERMIT
    assert data.permit.holder_name == NAME
    assert data.permit.valid_until == date(2026, 8, 31)
    claims = verify(data.qr.token, {KEY.kid: KEY.private_key.public_key()}, NOW)
    assert (claims.permit_no, claims.card_id) == (PERMIT, data.card_id)
    assert view.ecards[PERMIT].card_id == data.card_id
    assert [purpose for _, _, purpose in view.tokens] == ["ecard_issued"]


async def test_the_name_is_compared_as_a_passport_would_print_it() -> None:
    """Case, accents and punctuation do not make a mismatch; other letters do."""
    view = view_with(record(holder=holder(name="Maria Garcia-Lopez")))
    assert only(await register(view, "  MARÍA garcía lopez "), ECardIssued)
    other = view_with(record(holder=holder(name="Maria Garcia-Lopez")))
    assert rejection(await register(other, "Mario Garcia Lopez")).reason is R.NAME_MISMATCH


async def test_a_letter_stage_permit_can_register() -> None:
    """The notification letter's QR code registers the e-SSC: no need to wait for issue."""
    letter = domain.notification_letter(
        permit_no=PERMIT, letter_no="L1", holder=holder(name=NAME), employer=record().employer,
        category=record().category, position="Engineer", approved_months=12, today=TODAY)
    view = MemoryCardView()
    view.project(permit_event(NotificationLetterIssued, letter, 1))
    data = only(await register(view), ECardIssued)
    assert data.permit.status is PermitStatus.LETTER_ISSUED


def _letter_view() -> tuple[MemoryCardView, PermitRecord]:
    letter = domain.notification_letter(
        permit_no=PERMIT, letter_no="L1", holder=holder(name=NAME), employer=record().employer,
        category=record().category, position="Engineer", approved_months=12,
        today=TODAY - timedelta(days=200))
    view = MemoryCardView()
    view.project(permit_event(NotificationLetterIssued, letter, 1))
    return view, letter.permit


async def test_a_lapsed_letter_gets_no_ecard_and_its_holder_is_told() -> None:
    """A letter past its 6 months lapses: a carded holder is told once that the QR code is
    void; a registration afterwards is refused, saying the letter lapsed and the number stays."""
    view, letter = _letter_view()
    await register(view)
    lapsed = permit_event(NotificationLetterLapsed, domain.lapse(letter, today=TODAY), 2)
    view.project(lapsed)
    notice = only(await notify(lapsed, view), PermitNotificationSent)
    assert notice.status is PermitStatus.LAPSED
    assert "lapsed" in notice.message
    assert "no longer valid" in notice.message
    assert await notify(lapsed, view) == []
    fresh = MemoryCardView()
    fresh.project(lapsed)
    refused = rejection(await register(fresh))
    assert refused.reason is R.PERMIT_EXPIRED
    assert "lapsed" in refused.message
    assert "same permit number" in refused.message


async def test_a_new_period_under_the_holders_number_reactivates_the_same_ecard() -> None:
    """Cancelled (new employer), then a new application keeps the number: the e-card of the
    number serves the new period (no second card, no second registration); its holder is
    told of the new letter and of the new issue; the card shows the new period."""
    view = view_with(record())
    card_id = only(await register(view), ECardIssued).card_id
    cancelled = domain.cancel(record(), reason=CancellationReason.NEW_EMPLOYER, today=TODAY)
    view.project(permit_event(PermitCancelled, cancelled, 3))
    assert rejection(await register(view)).reason is R.PERMIT_CANCELLED
    letter = domain.reapply(cancelled.permit, letter_no="NL2", holder=record().holder,
                            employer=record().employer, category=record().category,
                            position="Director", approved_months=12, today=TODAY)
    letter_event = permit_event(NotificationLetterIssued, letter, 4)
    view.project(letter_event)
    notice = only(await notify(letter_event, view), PermitNotificationSent)
    assert notice.status is PermitStatus.LETTER_ISSUED
    assert "valid again" in notice.message
    issued = domain.issue(letter.permit, valid_from=TODAY, today=TODAY)
    issued_event = permit_event(PermitIssued, issued, 5)
    view.project(issued_event)
    assert only(await notify(issued_event, view), PermitNotificationSent).card_id == card_id
    again = rejection(await register(view))
    assert again.reason is R.ALREADY_REGISTERED
    assert card_id in again.message
    assert list(view.ecards) == [PERMIT]
    assert view.permits[PERMIT].position == "Director"
    assert view.permits[PERMIT].valid_until == issued.permit.valid_until


async def test_a_request_for_a_permit_not_known_yet_is_held_then_decided() -> None:
    """Held (keyed by the permit number) while the permit may still arrive; once it has,
    the card; past the hold period still unknown: refused, saying the request waited."""
    waiting = Received(NOW)
    view = view_with(None)
    event = registration_request(NAME, permit_no=PERMIT, at=NOW)
    call = handlers.register_ecard
    held = await call(event, view, waiting, issuer=ISSUER, closing_days=CLOSING)
    assert held == Hold(PERMIT, "unknown_permit")
    assert view.requests == {}  # not claimed: the request id is still open
    view.project(permit_event(PermitIssued, domain.PermitIssuedData(permit=record()), 2))
    again = Received(NOW, held_since=NOW)
    assert only(list(await call(event, view, again, issuer=ISSUER, closing_days=CLOSING)),
                ECardIssued)
    late = registration_request(NAME, permit_no="156000000000000099", at=NOW)
    final = Received(NOW, held_since=NOW, final=True)
    refused = rejection(list(await call(late, view, final, issuer=ISSUER,
                                        closing_days=CLOSING)))
    assert refused.reason is R.UNKNOWN_PERMIT
    assert "waited" in refused.message


async def test_an_unknown_ssn_is_held_on_the_ssn_and_a_failed_face_check_never_waits() -> None:
    view = view_with(record())
    by_ssn = registration_request(NAME, ssn="SSN0000077", at=NOW)
    assert await handlers.register_ecard(by_ssn, view, Received(NOW), issuer=ISSUER,
                                         closing_days=CLOSING) == Hold("SSN0000077",
                                                                       "unknown_ssn")
    unverified = registration_request(NAME, permit_no="156000000000000098", verified=False,
                                      at=NOW)
    refused = await handlers.register_ecard(unverified, view, Received(NOW), issuer=ISSUER,
                                            closing_days=CLOSING)
    assert rejection(list(refused)).reason is R.VERIFICATION_FAILED


def _cancelled() -> PermitRecord:
    return domain.cancel(record(), reason=CancellationReason.CONTRACT_ENDED, today=TODAY).permit


@pytest.mark.parametrize(("setup", "request_kw", "reason"), [
    (record, {"verified": False}, R.VERIFICATION_FAILED),
    (None, {}, R.UNKNOWN_PERMIT),
    (record, {"permit_no": None, "ssn": "SSN-UNKNOWN-1"}, R.UNKNOWN_SSN),
    (record, {"name": "Someone Else"}, R.NAME_MISMATCH),
    (_cancelled, {}, R.PERMIT_CANCELLED),
    (lambda: record(status=PermitStatus.EXPIRED), {}, R.PERMIT_EXPIRED),
    (lambda: record(valid_until=TODAY - timedelta(days=1)), {}, R.PERMIT_EXPIRED),
    (lambda: record(standard=PermitStandard.LEGACY), {}, R.LEGACY_NOT_MIGRATED),
], ids=["verification-failed", "unknown-permit", "unknown-ssn", "name-mismatch", "cancelled",
        "expired-status", "expired-by-date", "legacy"])
async def test_each_refusal_has_its_reason_and_a_message_to_act_on(
    setup: Any, request_kw: dict[str, Any], reason: ECardRejectionReason
) -> None:
    """Every way a registration fails gives its own reason code and a non-empty message."""
    view = view_with(setup() if setup else None)
    name = request_kw.pop("name", NAME)
    data = rejection(await register(view, name, **request_kw))
    assert data.reason is reason
    assert len(data.message) > 40
    assert view.ecards == {}
    assert NAME not in data.message  # the holder's name is never revealed to the requester


async def test_a_failed_face_check_reveals_nothing_about_the_permit() -> None:
    """Face verification is checked first: an unknown permit and a known one answer alike."""
    known = rejection(await register(view_with(record()), verified=False))
    unknown = rejection(await register(view_with(None), verified=False))
    assert known.reason is unknown.reason is R.VERIFICATION_FAILED
    assert known.message == unknown.message


async def test_a_second_registration_for_the_permit_is_refused_as_already_registered() -> None:
    """One e-card per permit: a new request names the card that exists."""
    view = view_with(record())
    card_id = only(await register(view), ECardIssued).card_id
    data = rejection(await register(view))
    assert data.reason is R.ALREADY_REGISTERED
    assert card_id in data.message
    assert len(view.ecards) == 1


async def test_a_resubmitted_request_id_gets_no_second_outcome() -> None:
    """The same request id in a new event is answered already: nothing more is published."""
    view = view_with(record())
    rid = uuid.uuid4()
    assert only(await register(view, request_id=rid), ECardIssued)
    assert await register(view, request_id=rid) == []
    assert view.requests[rid][2:] == ("issued", None)


async def test_registration_by_ssn_finds_the_permit_and_links_the_ssn() -> None:
    """After the SSN was issued, registering with it finds the permit; the card carries it."""
    view = view_with(record())
    await physical(ssn_issued("SSN0000001"), view)
    data = only(await register(view, permit_no=None, ssn="SSN0000001"), ECardIssued)
    assert data.permit.permit_no == PERMIT
    assert data.ssn == "SSN0000001"
    assert view.physical[PERMIT].ecard_id == data.card_id


async def test_an_unknown_ssn_rejection_is_keyed_by_the_ssn_it_named() -> None:
    """No permit is known, so the rejection's subject is the request's subject."""
    emits = await register(view_with(None), permit_no=None, ssn="SSN0000404")
    assert emits[0].subject == "SSN0000404"
    assert rejection(emits).permit_no is None


async def test_a_permit_in_the_extension_window_is_reminded_at_registration() -> None:
    """Registering 60 days before the end issues the card and the window's reminder at once,
    naming the last day to apply (30 days before the end)."""
    view = view_with(record(valid_until=TODAY + timedelta(days=60)))
    emits = await register(view)
    assert [e.event_type for e in emits] == [ECardIssued, PermitNotificationSent]
    data = emits[1].data
    assert isinstance(data, PermitNotificationSentData)
    assert data.days_left == 60
    assert f"until {TODAY + timedelta(days=30)}" in data.message


async def test_a_permit_past_the_window_gets_no_extension_reminder_at_registration() -> None:
    """Registering 20 days before the end: the notice says it is too late to extend."""
    view = view_with(record(valid_until=TODAY + timedelta(days=20)))
    emits = await register(view)
    assert [e.event_type for e in emits] == [ECardIssued, PermitNotificationSent]
    message = emits[1].data.message  # type: ignore[attr-defined]
    assert "too late to extend" in message
    assert "new application" in message


# legacy: "No Change, No Replacement" ----------------------------------------------------


def legacy_view() -> MemoryCardView:
    view = MemoryCardView()
    legacy = record(standard=PermitStandard.LEGACY, valid_until=date(2026, 6, 30))
    view.project(permit_event(LegacyPermitRegistered,
                              domain.LegacyPermitRegisteredData(permit=legacy), 1))
    return view


async def test_a_legacy_permit_gets_no_ecard_but_keeps_its_physical_card_rights() -> None:
    """Before the line: registration is refused with legacy_not_migrated; the SSN still
    gets a physical card (honoured as it is), linked to no e-card."""
    view = legacy_view()
    assert rejection(await register(view)).reason is R.LEGACY_NOT_MIGRATED
    card = only(await physical(ssn_issued("SSN0000002"), view),
                PhysicalCardIssued)
    assert card.ecard_id is None


@pytest.mark.parametrize("move", ["extend", "change", "migrate"])
async def test_an_extension_change_or_migration_opens_the_ecard(move: str) -> None:
    """After the line: once the authority's event makes the permit integrated, it registers."""
    view = legacy_view()
    assert rejection(await register(view)).reason is R.LEGACY_NOT_MIGRATED
    held = view.permits[PERMIT]
    current = record(standard=PermitStandard.LEGACY, valid_until=held.valid_until)
    data: PermitPayload
    if move == "extend":
        data = domain.extend(current, new_valid_until=date(2027, 6, 30), today=date(2026, 5, 1))
    elif move == "change":
        data = domain.change(current, position="Lead engineer")
    else:
        data = domain.migrate(current)
    event_type = {"extend": PermitExtended, "change": PermitChanged,
                  "migrate": PermitMigrated}[move]
    view.project(permit_event(event_type, data, 2))
    assert only(await register(view), ECardIssued).permit.standard is PermitStandard.INTEGRATED


# physical card --------------------------------------------------------------------------


def ssn_issued(ssn: str, permit_no: str = PERMIT) -> SocialSecurityNumberIssued:
    event = SocialSecurityNumberIssued.create(
        subject=permit_no, sequence=1,
        data=SocialSecurityNumberIssuedData(permit_no=permit_no, ssn=ssn, issued_on=TODAY))
    assert isinstance(event, SocialSecurityNumberIssued)
    return event


async def test_an_ssn_gives_a_physical_card_linked_to_the_ecard() -> None:
    """SocialSecurityNumberIssued → PhysicalCardIssued; the e-card now carries the SSN."""
    view = view_with(record())
    card_id = only(await register(view), ECardIssued).card_id
    data = only(await physical(ssn_issued("SSN0000003"), view),
                PhysicalCardIssued)
    assert isinstance(data, PhysicalCardIssuedData)
    assert (data.ssn, data.ecard_id) == ("SSN0000003", card_id)
    assert view.ecards[PERMIT].ssn == "SSN0000003"


async def test_the_same_ssn_again_issues_no_second_card() -> None:
    """A republished SocialSecurityNumberIssued (new event id) changes nothing."""
    view = view_with(record())
    assert only(await physical(ssn_issued("SSN0000004"), view),
                PhysicalCardIssued)
    assert await physical(ssn_issued("SSN0000004"), view) == []
    assert len(view.physical) == 1


async def test_a_second_ssn_for_a_permit_is_a_conflict_not_a_second_card() -> None:
    """A different SSN for the same permit raises (the runtime dead-letters it)."""
    view = view_with(record())
    await physical(ssn_issued("SSN0000005"), view)
    with pytest.raises(handlers.CardConflict, match="another SSN"):
        await physical(ssn_issued("SSN0000006"), view)


async def test_an_ssn_already_on_another_permits_card_is_a_conflict() -> None:
    """One SSN, one physical card."""
    view = view_with(record())
    await physical(ssn_issued("SSN0000007"), view)
    with pytest.raises(handlers.CardConflict, match="already on the physical card"):
        await physical(
            ssn_issued("SSN0000007", "156000000000000009"), view)


NEW_PERMIT = "156000000000000002"


def insurance_registered(ssn: str, permit_no: str = PERMIT) -> InsuranceRegistered:
    event = InsuranceRegistered.create(
        subject=permit_no, sequence=1, data=InsuranceRegisteredData(
            request_id="EMP-1", permit_no=permit_no, ssn=ssn, requester="employer",
            employer_credit_code=record().employer.credit_code, insured=("medical",),
            exempt=(), agreement=None, registered_on=TODAY, deadline=TODAY, late=False))
    assert isinstance(event, InsuranceRegistered)
    return event


async def test_the_ssn_follows_the_person_to_the_new_permits_ecard() -> None:
    """Change of employer under a new number: social insurance reuses the SSN and says so
    only in InsuranceRegistered. The new e-card gets the SSN, the physical card is carried
    over (same card number) and announced once for the new permit; registration by SSN now
    finds the new permit. Before, the registration's SSN was ignored."""
    view = view_with(record())
    await register(view)
    first = only(await physical(ssn_issued("SSN0000010"), view), PhysicalCardIssued)
    view.project(permit_event(PermitIssued, domain.PermitIssuedData(
        permit=record().model_copy(update={"permit_no": NEW_PERMIT})), 2))
    new_card = only(await register(view, permit_no=NEW_PERMIT), ECardIssued).card_id
    event = insurance_registered("SSN0000010", NEW_PERMIT)
    carried = only(await handlers.link_registered_ssn(event, view), PhysicalCardIssued)
    assert (carried.permit_no, carried.ssn, carried.ecard_id) == (
        NEW_PERMIT, "SSN0000010", new_card)
    assert (carried.card_no, carried.issued_on) == (first.card_no, first.issued_on)
    assert view.ecards[NEW_PERMIT].ssn == "SSN0000010"
    assert await view.permit_no_of_ssn("SSN0000010") == NEW_PERMIT
    assert await handlers.link_registered_ssn(insurance_registered("SSN0000010", NEW_PERMIT),
                                              view) == []  # a duplicate: nothing more
    assert len(view.physical) == 1


async def test_a_first_registration_and_its_ssn_issue_give_one_physical_card() -> None:
    """The first registration (InsuranceRegistered, then SocialSecurityNumberIssued for a new
    SSN), in either order: one PhysicalCardIssued, the e-card linked."""
    for order in ("registered-first", "ssn-first"):
        view = view_with(record())
        card_id = only(await register(view), ECardIssued).card_id
        steps = [handlers.link_registered_ssn(insurance_registered("SSN0000011"), view),
                 physical(ssn_issued("SSN0000011"), view)]
        if order == "ssn-first":
            steps.reverse()
        outcomes = [await step for step in steps]
        assert [len(o) for o in outcomes] == [1, 0], order
        assert view.ecards[PERMIT].ssn == "SSN0000011"
        assert view.physical[PERMIT].ecard_id == card_id


async def test_a_registration_with_another_ssn_than_the_permits_card_is_a_conflict() -> None:
    """The permit's card carries one SSN: another is dead-lettered, never a second card."""
    view = view_with(record())
    await physical(ssn_issued("SSN0000012"), view)
    with pytest.raises(handlers.CardConflict, match="another SSN"):
        await handlers.link_registered_ssn(insurance_registered("SSN0000013"), view)


# notifications --------------------------------------------------------------------------


async def test_each_change_of_a_carded_permit_is_notified_once() -> None:
    """An extension after registration is news; the same event again is not."""
    view = view_with(record())
    await register(view)
    ext = permit_event(PermitExtended, domain.extend(record(), new_valid_until=date(2027, 5, 31),
                                                     today=date(2026, 7, 1)), 3)
    view.project(ext)
    data = only(await notify(ext, view), PermitNotificationSent)
    assert isinstance(data, PermitNotificationSentData)
    assert (data.kind, data.trigger) == (NotificationKind.STATUS_CHANGED, "PermitExtended")
    assert "2027-05-31" in data.message
    assert await notify(ext, view) == []


async def test_events_before_the_card_and_permits_without_one_are_not_notified() -> None:
    """The card shows the permit as of its issue; a permit without an e-card has no channel."""
    view = view_with(record(), sequence=2)
    await register(view)
    issued_again = permit_event(PermitIssued, domain.PermitIssuedData(permit=record()), 2)
    assert await notify(issued_again, view) == []
    bare = view_with(record())
    cancel = permit_event(PermitCancelled, domain.cancel(
        record(), reason=CancellationReason.REVOKED, today=TODAY), 3)
    assert await notify(cancel, bare) == []


async def test_a_cancellation_tells_the_holder_the_qr_code_is_void() -> None:
    """Status change to cancelled: the notice says so."""
    view = view_with(record())
    await register(view)
    cancel = permit_event(PermitCancelled, domain.cancel(
        record(), reason=CancellationReason.REVOKED, today=TODAY), 3)
    view.project(cancel)
    data = only(await notify(cancel, view), PermitNotificationSent)
    assert data.status is PermitStatus.CANCELLED
    assert "no longer valid" in data.message


END = date(2026, 8, 31)
"""The end of the permit the reminder tests sweep for (the default `record()`)."""


def days_before_end(days: int, end: date = END) -> ExpiryReminderSweepRequested:
    return sweep_request(end - timedelta(days=days))


async def swept_daily(view: MemoryCardView, first: int, last: int, closing_days: int = CLOSING,
                      end: date = END) -> dict[int, PermitNotificationSentData]:
    """Sweep every day from `first` to `last` days before `end`; what each day sent."""
    sent = {}
    for days in range(first, last - 1, -1):
        emits = await sweep(days_before_end(days, end), view, closing_days)
        if emits:
            sent[days] = only(emits, PermitNotificationSent)
    return sent


async def test_daily_sweeps_remind_when_the_window_opens_before_it_closes_and_once_late(
) -> None:
    """90 days before the end (the window opens), 45 (it closes soon), 29 (too late, no
    extension offered): one notice each, and nothing on the other days."""
    view = view_with(record())
    await register(view)
    sent = await swept_daily(view, 120, 0)
    assert sorted(sent, reverse=True) == [90, CLOSING, 29]
    assert {d.kind for d in sent.values()} == {NotificationKind.EXPIRY_REMINDER}
    assert [d.days_left for d in sent.values()] == [90, CLOSING, 29]
    apply_by = END - timedelta(days=30)
    assert f"until {apply_by}" in sent[90].message
    assert f"by {apply_by}" in sent[CLOSING].message
    assert "too late to extend" in sent[29].message
    assert str(apply_by) not in sent[29].message


async def test_a_late_sweep_still_sends_the_closing_reminder_while_the_window_is_open(
) -> None:
    """The sweep of day 45 missed: day 44 sends it; once sent, not again; day 30 is the
    window's last day and still sends it to a holder not yet told."""
    view = view_with(record())
    await register(view)
    assert await sweep(days_before_end(90), view)
    data = only(await sweep(days_before_end(CLOSING - 1), view), PermitNotificationSent)
    assert (data.days_left, data.valid_until) == (CLOSING - 1, END)
    assert await sweep(days_before_end(CLOSING - 2), view) == []
    other = view_with(record())
    await register(other)
    last_day = only(await sweep(days_before_end(30), other), PermitNotificationSent)
    assert f"by {END - timedelta(days=30)}" in last_day.message


async def test_the_closing_reminder_follows_the_card_setting() -> None:
    """With `closing_reminder_days` = 60, the second reminder comes 60 days before the end."""
    view = view_with(record())
    await register(view)
    assert sorted(await swept_daily(view, 100, 30, closing_days=60), reverse=True) == [90, 60]


def test_the_closing_reminder_setting_must_lie_inside_the_extension_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HUB_CARD_CLOSING_REMINDER_DAYS is read from the environment; 29 (too late to act) and
    90 (the opening reminder's day) are refused."""
    monkeypatch.setenv("HUB_CARD_CLOSING_REMINDER_DAYS", "50")
    assert CardSettings().closing_reminder_days == 50
    for wrong in (29, 90):
        with pytest.raises(ValidationError):
            CardSettings(closing_reminder_days=wrong)


async def test_the_last_day_a_reminder_names_is_the_last_day_the_authority_extends() -> None:
    """The card's 'apply until' day is the authority's: extending on it is allowed, a day
    later refused, and so is the day of the opening reminder (both agencies read
    schemas.permits.EXTENSION_WINDOW)."""
    view = view_with(record())
    await register(view)
    sent = await swept_daily(view, 90, 90)
    apply_by = END - timedelta(days=30)
    assert f"until {apply_by}" in sent[90].message
    domain.extend(record(), new_valid_until=END + timedelta(days=365), today=apply_by)
    with pytest.raises(domain.PermitRuleViolation):
        domain.extend(record(), new_valid_until=END + timedelta(days=365),
                      today=apply_by + timedelta(days=1))
    domain.extend(record(), new_valid_until=END + timedelta(days=365),
                  today=END - timedelta(days=90))


async def test_an_extension_gives_the_new_end_its_own_reminders() -> None:
    """The reminders are per end date: after an extension, the new end is reminded again."""
    view = view_with(record())
    await register(view)
    assert await sweep(days_before_end(90), view)
    new_end = date(2027, 8, 31)
    ext = domain.extend(record(), new_valid_until=new_end, today=END - timedelta(days=60))
    view.project(permit_event(PermitExtended, ext, 3))
    assert await sweep(days_before_end(CLOSING), view) == []
    sent = await swept_daily(view, 120, 0, end=new_end)
    assert sorted(sent, reverse=True) == [90, CLOSING, 29]
    assert all(d.valid_until == new_end for d in sent.values())


# bad input: the contract refuses it before any handler -------------------------------------


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda b: b["data"].pop("name"), "name"),
    (lambda b: b["data"].pop("verification"), "verification"),
    (lambda b: b["data"].update(ssn="SSN0000001"), "exactly one of permit_no or ssn"),
    (lambda b: b["data"].update(permit_no="12345", ssn=None), "permit_no"),
    (lambda b: b["data"]["verification"].update(result="maybe"), "result"),
    (lambda b: b["data"].update(request_id="not-a-uuid"), "request_id"),
], ids=["no-name", "no-verification", "both-ids", "bad-permit-no", "bad-result",
        "bad-request-id"])
def test_a_malformed_request_is_a_schema_violation_with_the_field_named(
    mutate: Any, needle: str
) -> None:
    """Missing or wrong fields fail decoding (→ DLQ with the reason), naming the field."""
    body = registration_request(NAME, permit_no=PERMIT, at=NOW).model_dump(mode="json")
    mutate(body)
    with pytest.raises(DecodeError) as caught:
        AGENCY.codec().decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.SCHEMA
    assert needle in caught.value.detail


def test_a_request_whose_subject_is_not_its_permit_is_a_subject_mismatch() -> None:
    """The envelope rule, not a field: its own dead-letter reason, naming where the subject
    must come from and neither value."""
    body = registration_request(NAME, permit_no=PERMIT, at=NOW).model_dump(mode="json")
    body["subject"] = "156000000000000002"
    with pytest.raises(DecodeError) as caught:
        AGENCY.codec().decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.SUBJECT
    assert "subject must be data.permit_no" in caught.value.detail
    assert PERMIT not in caught.value.detail
    assert "156000000000000002" not in caught.value.detail


def test_the_card_codec_reads_every_contract_type_and_refuses_unknown_ones() -> None:
    """Shared topics carry types the card ignores: decoded, not dead-lettered; a type no
    one defined is."""
    assert "cn.mohrss.socialinsurance.InsuranceRegistered" in AGENCY.codec().types
    body = registration_request(NAME, permit_no=PERMIT, at=NOW).model_dump(mode="json")
    body["type"] = "cn.example.Unknown"
    with pytest.raises(DecodeError) as caught:
        AGENCY.codec().decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.UNKNOWN_TYPE


# work-permit services via the e-card -----------------------------------------------------


async def test_a_legacy_permit_is_queried_as_it_is_but_gets_no_qr_code() -> None:
    """Honoured as it is: its information is shown, marked legacy; no QR until migrated."""
    view = legacy_view()
    document = await documents.query_permit(as_card_view(view), PERMIT, TODAY)
    assert document["permit"]["standard"] == "legacy"
    assert (document["qr_available"], document["qr_unavailable_reason"]) == (
        False, "legacy_not_migrated")
    with pytest.raises(documents.ServiceRefused) as refused:
        await documents.issue_qr(as_card_view(view), PERMIT, ISSUER, TODAY)
    assert refused.value.reason == "legacy_not_migrated"


async def test_a_download_signs_a_fresh_token_only_for_a_valid_carded_permit() -> None:
    """With an e-card: a new recorded token; cancelled or without a card: refused."""
    view = view_with(record())
    with pytest.raises(documents.ServiceRefused, match="no_ecard"):
        await documents.issue_qr(as_card_view(view), PERMIT, ISSUER, TODAY)
    card_id = only(await register(view), ECardIssued).card_id
    _, claims = await documents.issue_qr(as_card_view(view), PERMIT, ISSUER, TODAY)
    assert claims.card_id == card_id
    assert [purpose for _, _, purpose in view.tokens] == ["ecard_issued", "download"]
    view.project(permit_event(PermitCancelled, domain.cancel(
        record(), reason=CancellationReason.REVOKED, today=TODAY), 3))
    with pytest.raises(documents.ServiceRefused, match="permit_cancelled"):
        await documents.issue_qr(as_card_view(view), PERMIT, ISSUER, TODAY)
