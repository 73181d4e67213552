"""Public security's residence-permit rules, as plain function calls (docs/domain.md §2)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from consumers.public_security import rules
from consumers.public_security.rules import Extend, Grant, PermitFacts, Refuse, ResidenceFacts
from consumers.public_security.tokens import (
    AcceptedToken,
    check_scan_time,
    check_token,
    token_check,
)
from schemas.permit_token import Claims, KeySet, key_id, sign, token_digest
from schemas.public_security import (
    ApplicationPurpose,
    PresentedPermitNo,
    PresentedQrToken,
    ResidencePermitAppliedData,
    ResidenceReferralReason,
    ResidenceRejection,
)

PERMIT_NO = "156000000000000042"
ENTRY = date(2025, 3, 1)


def permit(**overrides: object) -> PermitFacts:
    """An active integrated work permit valid for two years from entry."""
    fields: dict[str, object] = {
        "permit_no": PERMIT_NO, "status": "active", "standard": "integrated",
        "valid_from": ENTRY, "valid_until": date(2027, 2, 28),
    }
    return PermitFacts(**(fields | overrides))  # type: ignore[arg-type]


def application(**overrides: object) -> ResidencePermitAppliedData:
    """A first application 10 days after entry, for one year."""
    fields: dict[str, object] = {
        "application_id": "A-1", "presented": PresentedPermitNo(permit_no=PERMIT_NO),
        "entry_date": ENTRY, "applied_on": ENTRY + timedelta(days=10),
        "requested_until": date(2026, 3, 10),
    }
    return ResidencePermitAppliedData.model_validate(fields | overrides)


def residence(**overrides: object) -> ResidenceFacts:
    """A residence permit in force until the end of 2025."""
    fields: dict[str, object] = {
        "residence_permit_no": "RP0000000001", "status": "issued",
        "valid_from": date(2025, 3, 11), "valid_until": date(2025, 12, 31),
    }
    return ResidenceFacts(**(fields | overrides))  # type: ignore[arg-type]


def reason(decision: rules.Decision) -> ResidenceRejection:
    assert isinstance(decision, Refuse), decision
    return decision.reason


# The work permit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (None, ResidenceRejection.PERMIT_UNKNOWN),
        (permit(status="letter_issued", valid_from=None, valid_until=None),
         ResidenceRejection.PERMIT_NOT_ACTIVE),
        (permit(status="cancelled"), ResidenceRejection.PERMIT_CANCELLED),
        (permit(status="expired"), ResidenceRejection.PERMIT_EXPIRED),
    ],
)
def test_a_permit_that_is_not_in_force_is_refused_with_its_reason(
    facts: PermitFacts | None, expected: ResidenceRejection
) -> None:
    """Unknown, letter-stage, cancelled and expired work permits each give their own reason."""
    refused = rules.check_permit(facts, PERMIT_NO, by_token=False)
    assert refused is not None
    assert refused.reason is expected
    assert PERMIT_NO in refused.message


def test_an_active_permit_passes() -> None:
    """An active work permit, integrated or legacy, presented by number, passes."""
    assert rules.check_permit(permit(), PERMIT_NO, by_token=False) is None
    assert rules.check_permit(permit(standard="legacy"), PERMIT_NO, by_token=False) is None


def test_a_legacy_permit_has_no_qr_token() -> None:
    """A pre-integration permit presented by QR token is refused: it has no e-card yet."""
    refused = rules.check_permit(permit(standard="legacy"), PERMIT_NO, by_token=True)
    assert refused is not None
    assert refused.reason is ResidenceRejection.LEGACY_PERMIT_NO_TOKEN


# First application ----------------------------------------------------------------------


def test_a_timely_application_is_granted_as_requested() -> None:
    """Ten days after entry, one year asked within the work permit: granted as asked."""
    decision = rules.decide(application(), permit(), None)
    assert decision == Grant(ENTRY + timedelta(days=10), date(2026, 3, 10),
                             limited_by_work_permit=False)


def test_the_thirtieth_day_after_entry_is_still_in_time() -> None:
    """Day 30 after entry is accepted; day 31 goes to an officer, decided within 15 days."""
    on_time = application(applied_on=ENTRY + timedelta(days=30))
    late = application(applied_on=ENTRY + timedelta(days=31))
    assert isinstance(rules.decide(on_time, permit(), None), Grant)
    referred = rules.decide(late, permit(), None)
    assert isinstance(referred, rules.Refer)
    assert referred.reason is ResidenceReferralReason.APPLIED_LATE
    assert referred.decide_by == ENTRY + timedelta(days=31 + 15)
    accepted = rules.decide(late, permit(), None, late_accepted=True)
    assert isinstance(accepted, Grant), "an officer's acceptance: the other rules decide"


@pytest.mark.parametrize(
    "entry_date", [None, ENTRY + timedelta(days=11)], ids=["missing", "after-application"]
)
def test_a_first_application_needs_an_entry_date_before_it(entry_date: date | None) -> None:
    """No entry date, or one after the application date, is refused."""
    decision = rules.decide(application(entry_date=entry_date), permit(), None)
    assert reason(decision) is ResidenceRejection.ENTRY_DATE_INVALID


def test_the_validity_never_runs_beyond_the_work_permit() -> None:
    """Asking for five years on a two-year work permit grants up to the work permit's end."""
    decision = rules.decide(application(requested_until=date(2030, 3, 10)), permit(), None)
    assert isinstance(decision, Grant)
    assert decision.valid_until == date(2027, 2, 28)
    assert decision.limited_by_work_permit


@pytest.mark.parametrize(
    ("requested_until", "ok"),
    [
        (date(2025, 6, 8), True),    # 90 days from 11 March, counted inclusively
        (date(2025, 6, 7), False),   # 89 days
        (date(2030, 3, 10), True),   # exactly five years (limited by the work permit)
        (date(2030, 3, 11), False),  # five years and a day
        (date(2025, 3, 1), False),   # before the application
    ],
)
def test_the_requested_validity_is_between_90_days_and_5_years(
    requested_until: date, ok: bool
) -> None:
    """Art. 30: a period shorter than 90 days or longer than five years is refused."""
    decision = rules.decide(application(requested_until=requested_until), permit(), None)
    if ok:
        assert isinstance(decision, Grant)
    else:
        assert reason(decision) is ResidenceRejection.VALIDITY_OUT_OF_RANGE


def test_a_work_permit_ending_within_90_days_is_refused_with_what_to_do() -> None:
    """When the work permit's end leaves fewer than 90 days, the holder must extend it first."""
    decision = rules.decide(application(), permit(valid_until=date(2025, 5, 31)), None)
    assert reason(decision) is ResidenceRejection.WORK_PERMIT_ENDS_TOO_SOON
    assert isinstance(decision, Refuse)
    assert "extend the work permit" in decision.message


def test_a_second_first_application_is_refused() -> None:
    """A holder with a residence permit in force is told to apply for its extension."""
    decision = rules.decide(application(), permit(), residence())
    assert reason(decision) is ResidenceRejection.ALREADY_ISSUED


# Extension ------------------------------------------------------------------------------


def extension(**overrides: object) -> ResidencePermitAppliedData:
    """An extension applied for 60 days before the residence permit ends."""
    fields: dict[str, object] = {
        "purpose": ApplicationPurpose.EXTENSION, "entry_date": None,
        "applied_on": date(2025, 11, 1), "requested_until": date(2026, 12, 31),
    }
    return application(**(fields | overrides))


def test_an_extension_moves_the_end_up_to_the_work_permit() -> None:
    """An extension within the rules is granted up to the requested end."""
    decision = rules.decide(extension(), permit(), residence())
    assert decision == Extend(date(2025, 12, 31), date(2026, 12, 31),
                              limited_by_work_permit=False)


def test_an_extension_is_limited_by_the_work_permit() -> None:
    """An extension never goes beyond the work permit's end."""
    decision = rules.decide(extension(requested_until=date(2028, 12, 31)), permit(), residence())
    assert isinstance(decision, Extend)
    assert decision.valid_until == date(2027, 2, 28)
    assert decision.limited_by_work_permit


def test_an_extension_needs_thirty_days_notice() -> None:
    """Art. 32: applied for fewer than 30 days before the end, the extension is refused."""
    in_time = extension(applied_on=date(2025, 12, 1))
    too_late = extension(applied_on=date(2025, 12, 2))
    assert isinstance(rules.decide(in_time, permit(), residence()), Extend)
    assert reason(rules.decide(too_late, permit(), residence())) is (
        ResidenceRejection.EXTENSION_TOO_LATE)


def test_an_extension_needs_a_residence_permit_in_force() -> None:
    """No residence permit, or one whose cancellation is required, cannot be extended."""
    assert reason(rules.decide(extension(), permit(), None)) is (
        ResidenceRejection.NO_RESIDENCE_PERMIT)
    marked = residence(status="cancellation_required")
    assert reason(rules.decide(extension(), permit(), marked)) is (
        ResidenceRejection.NO_RESIDENCE_PERMIT)


def test_an_extension_the_work_permit_does_not_allow_is_refused() -> None:
    """When the work permit ends with the residence permit, there is nothing to extend."""
    short = permit(valid_until=date(2025, 12, 31))
    assert reason(rules.decide(extension(), short, residence())) is (
        ResidenceRejection.NOTHING_TO_EXTEND)


def test_a_work_permit_extension_opens_a_window_up_to_its_new_end() -> None:
    """After PermitExtended: may extend to the new end, applying 30 days before the current."""
    window = rules.extension_window(residence(), date(2026, 12, 31))
    assert window == (date(2026, 12, 31), date(2025, 12, 1))
    assert rules.extension_window(residence(), date(2025, 12, 31)) is None


def test_the_cancellation_deadline_is_configuration_not_law() -> None:
    """No deadline configured means none published ('promptly'); a configured one is dated."""
    assert rules.cancel_by(date(2025, 8, 1), None) is None
    assert rules.cancel_by(date(2025, 8, 1), 10) == date(2025, 8, 11)


# The QR token ---------------------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
KEYS = KeySet({KID: KEY.public_key()})
SCANNED = datetime(2025, 3, 11, 9, 30, tzinfo=UTC)


def token(permit_no: str = PERMIT_NO, *, lifetime: timedelta = timedelta(minutes=10),
          key: Ed25519PrivateKey = KEY) -> str:
    issued = SCANNED - timedelta(minutes=2)
    claims = Claims(permit_no=permit_no, card_id="ESSC0123456789ABCDEF", issued_at=issued,
                    expires_at=issued + lifetime)
    return sign(claims, key, key_id(key.public_key()))


def presented(text: str, scanned_at: datetime = SCANNED) -> PresentedQrToken:
    return PresentedQrToken(token=text, scanned_at=scanned_at)


def test_a_genuine_token_for_the_permit_passes() -> None:
    """A token signed by a published key, valid when scanned, naming the permit, passes."""
    assert check_token(presented(token()), PERMIT_NO, KEYS, timedelta(0)) is None


def test_a_token_is_checked_at_the_moment_it_was_scanned() -> None:
    """A token valid when scanned passes even if the application is processed much later."""
    assert check_token(presented(token()), PERMIT_NO, KEYS, timedelta(0)) is None
    late_scan = SCANNED + timedelta(minutes=9)
    refused = check_token(presented(token(), late_scan), PERMIT_NO, KEYS, timedelta(0))
    assert refused is not None
    assert refused.reason is ResidenceRejection.TOKEN_EXPIRED


def test_a_tampered_token_is_invalid() -> None:
    """A token whose payload was altered after signing fails the signature check."""
    body, signature = token().split(".")
    other_body = token("156000000000000099").split(".")[0]
    refused = check_token(presented(f"{other_body}.{signature}"), "156000000000000099", KEYS,
                          timedelta(0))
    assert refused is not None
    assert refused.reason is ResidenceRejection.TOKEN_INVALID
    assert "bad_signature" in refused.message
    assert body != other_body


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("x" * 40, "malformed"),
        (token(key=Ed25519PrivateKey.generate()), "unknown_key"),
    ],
    ids=["malformed", "forged-with-another-key"],
)
def test_a_forged_or_damaged_token_is_invalid(text: str, detail: str) -> None:
    """A token that is not ours, or signed by a key the card service never published, fails."""
    refused = check_token(presented(text), PERMIT_NO, KEYS, timedelta(0))
    assert refused is not None
    assert refused.reason is ResidenceRejection.TOKEN_INVALID
    assert detail in refused.message


def test_a_genuine_token_for_another_permit_is_invalid() -> None:
    """A real token of someone else's permit does not back this application."""
    refused = check_token(presented(token("156000000000000099")), PERMIT_NO, KEYS, timedelta(0))
    assert refused is not None
    assert refused.reason is ResidenceRejection.TOKEN_INVALID
    assert "another work permit" in refused.message


def test_an_application_presents_exactly_one_kind_of_proof() -> None:
    """The contract refuses an unknown presentation kind and a naive scan time."""
    with pytest.raises(ValidationError):
        application(presented={"kind": "passport", "permit_no": PERMIT_NO})
    with pytest.raises(ValidationError):
        PresentedQrToken(token=token(), scanned_at=datetime(2025, 3, 11, 9, 30))


# The scan time against the record's time -----------------------------------------------------

LEEWAY = timedelta(seconds=30)


@pytest.mark.parametrize("offset", [timedelta(0), LEEWAY, -LEEWAY],
                         ids=["same", "+leeway", "-leeway"])
def test_a_scan_within_the_leeway_of_the_record_time_passes(offset: timedelta) -> None:
    """The counter's clock may be off by the leeway either way, or its submission slow."""
    assert check_scan_time(SCANNED + offset, SCANNED, LEEWAY) is None


@pytest.mark.parametrize("offset", [
    LEEWAY + timedelta(seconds=1), -LEEWAY - timedelta(seconds=1), -timedelta(days=30),
], ids=["future", "past", "backdated"])
def test_a_scan_time_beyond_the_leeway_is_refused(offset: timedelta) -> None:
    """A backdated (or future) scan time is refused for itself, whatever the token says."""
    refused = check_scan_time(SCANNED + offset, SCANNED, LEEWAY)
    assert refused is not None
    assert refused.reason is ResidenceRejection.SCAN_TIME_INVALID
    assert "30 s" in refused.message


def test_a_long_expired_token_with_a_backdated_scan_is_refused_for_the_scan_time() -> None:
    """The measured hole: scanned_at set back into the token's life made an expired token
    pass; checked against the record's time it is refused, before the token is looked at."""
    check = token_check(lambda: KEYS, LEEWAY)
    backdated = presented(token(), scanned_at=SCANNED)
    received_long_after = SCANNED + timedelta(days=3)
    assert check_token(backdated, PERMIT_NO, KEYS, LEEWAY) is None  # alone it looks fine
    refused = check(backdated, PERMIT_NO, received_long_after)
    assert isinstance(refused, Refuse)
    assert refused.reason is ResidenceRejection.SCAN_TIME_INVALID


def test_an_accepted_token_is_kept_as_its_digest_and_expiry() -> None:
    """What the handler records: the digest of the signed segment, never the token."""
    text = token()
    accepted = token_check(lambda: KEYS, LEEWAY)(presented(text), PERMIT_NO, SCANNED)
    assert isinstance(accepted, AcceptedToken)
    assert accepted.digest == token_digest(text)
    assert accepted.expires_at == SCANNED + timedelta(minutes=8)
