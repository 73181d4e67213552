"""The social insurance registration procedure on the real broker and database: the employer
portal or the foreigner publishes requests, the agency decides against its own view,
publishes the outcome through its outbox and keeps accounts and registrations in its own
database."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from hub.settings import Settings
from schemas import Codec, topics
from schemas.card import CardPermitInfo, ECardIssued, ECardIssuedData, QrReference
from schemas.permits import (
    CancellationReason,
    Category,
    PermitRecord,
    PermitStandard,
    PermitStatus,
)
from schemas.social_insurance import (
    INSURANCE_EVENT_TYPES,
    InsuranceRegistrationRequested,
    InsuranceRegistrationRequestedData,
)
from tests.integration.agency_requests import (
    HANSA,
    agency_running,
    by_request,
    holder,
    issued_permit,
    rows,
    send,
    send_raw,
    settled,
    synced,
    wait_for,
)
from tests.integration.hub_fixtures import eventually, read_topic

pytestmark = pytest.mark.integration

SI_CARD_EVENTS = topics.audience_topic(topics.CARD_EVENTS, "social_insurance")
"""Where social insurance receives the card's outcomes (those it reads, cut to what it reads)."""

CODEC = Codec(INSURANCE_EVENT_TYPES)
ENTRY = date(2025, 3, 3)
AGENCY = "social_insurance"
ACME = "91110105MA01ABCD3X"


def requested(
    reference: dict[str, str], request_id: str, **data: Any
) -> InsuranceRegistrationRequested:
    """A request from the employer 20 days after entry, naming the permit by `reference`."""
    fields: dict[str, Any] = {
        "request_id": request_id, "requester": "employer", "reference": reference,
        "employer_credit_code": HANSA.credit_code, "requested_on": ENTRY + timedelta(days=20),
    }
    payload = InsuranceRegistrationRequestedData.model_validate(fields | data)
    subject = next(v for k, v in reference.items() if k != "kind")
    event = InsuranceRegistrationRequested.create(subject=subject, sequence=1, data=payload)
    assert isinstance(event, InsuranceRegistrationRequested)
    return event


def by_no(permit_no: str) -> dict[str, str]:
    return {"kind": "permit_no", "permit_no": permit_no}


def card_issued(record: PermitRecord, card_id: str) -> ECardIssued:
    """What the card service publishes when it issues an e-card for the permit."""
    now = datetime.now(UTC)
    info = CardPermitInfo(
        permit_no=record.permit_no, status=record.status, standard=record.standard,
        holder_name=record.holder.name, nationality=record.holder.nationality,
        category=record.category, employer_name=record.employer.name,
        position=record.position, valid_from=record.valid_from, valid_until=record.valid_until)
    event = ECardIssued.create(subject=record.permit_no, sequence=1, data=ECardIssuedData(
        request_id=uuid.uuid4(), card_id=card_id, permit=info,
        qr=QrReference(token="t" * 40, key_id="k", issued_at=now,
                       expires_at=now + timedelta(minutes=10)),
        issued_at=now))
    assert isinstance(event, ECardIssued)
    return event


def kinds(events: list[Any]) -> list[str]:
    return [e.type.rsplit(".", 1)[-1] for e in events]


def outcome(events: list[Any]) -> tuple[str, str | None]:
    """The single outcome of one request: its event type and reason."""
    assert len(events) == 1, events
    return kinds(events)[0], getattr(events[0].data, "reason", None)


async def card_known(settings: Settings, card_id: str) -> None:
    """Wait until the agency has consumed the e-card's issue."""

    async def check() -> bool:
        return bool(await rows(settings, AGENCY, "SELECT 1 FROM si_ecards WHERE card_id = $1",
                               card_id))

    await eventually(check, what=f"e-card {card_id} to reach social insurance")


async def test_a_permit_named_by_number_letter_or_ecard_is_registered_with_one_ssn_each(
    hub_settings: Settings,
) -> None:
    """Three people, three kinds of reference: each registered on all five insurances with a
    new SSN, announced once by SocialSecurityNumberIssued, and stored as account and
    registration."""
    card_id = "ESSC00000000000000A1"
    async with agency_running(hub_settings, AGENCY) as auth:
        a = await issued_permit(auth, holder(1, "US"), entry=ENTRY)
        b = await issued_permit(auth, holder(2, "NG"), entry=ENTRY)
        c = await issued_permit(auth, holder(3, "BR"), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, SI_CARD_EVENTS, [card_issued(c, card_id)])
        await card_known(hub_settings, card_id)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(a.permit_no), "R-number"),
            requested({"kind": "letter_no", "letter_no": f"NL{b.permit_no}"}, "R-letter",
                      requester="foreigner"),
            requested({"kind": "ecard", "card_id": card_id}, "R-ecard", requester="foreigner"),
        ])
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 6, what="three registrations")

    assert Counter(kinds(events)) == {"InsuranceRegistered": 3, "SocialSecurityNumberIssued": 3}
    registered = {e.data.request_id: e for e in events if kinds([e]) == ["InsuranceRegistered"]}
    assert {r: e.subject for r, e in registered.items()} == {
        "R-number": a.permit_no, "R-letter": b.permit_no, "R-ecard": c.permit_no}
    for e in registered.values():
        assert [i.value for i in e.data.insured] == [
            "pension", "medical", "work_injury", "unemployment", "maternity"]
        assert e.data.exempt == ()
        assert not e.data.late
        assert e.data.deadline == ENTRY + timedelta(days=30)
    ssns = {e.subject: e.data.ssn for e in events if kinds([e]) == ["SocialSecurityNumberIssued"]}
    assert ssns == {e.subject: e.data.ssn for e in registered.values()}
    assert len(set(ssns.values())) == 3
    assert all(e.source == "/cn/mohrss/social-insurance" for e in events)
    accounts = await rows(hub_settings, AGENCY, "SELECT ssn, status FROM si_accounts")
    assert {r["ssn"] for r in accounts} == set(ssns.values())
    stored = await rows(hub_settings, AGENCY, "SELECT reference_kind, outcome FROM si_requests")
    assert sorted((r["reference_kind"], r["outcome"]) for r in stored) == [
        ("ecard", "registered"), ("letter_no", "registered"), ("permit_no", "registered")]
    keys = await rows(hub_settings, AGENCY, "SELECT person_key FROM si_person_keys")
    assert all(":" in r["person_key"] and "P0000000" not in r["person_key"] for r in keys)


async def test_each_rejection_reason_and_the_bilateral_agreements(
    hub_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A German secondee is exempt from pension and unemployment; a Korean one goes to manual
    review (no SSN); a late registration is accepted and flagged; every other request gets
    its rejection reason (the unknown references once their hold period, 9 s here, ends)."""
    monkeypatch.setenv("HUB_SOCIAL_INSURANCE_HOLD_HOURS", "0.0025")
    async with agency_running(hub_settings, AGENCY) as auth:
        german = await issued_permit(auth, holder(11, "DE"), entry=ENTRY)
        korean = await issued_permit(auth, holder(12, "KR"), entry=ENTRY)
        late = await issued_permit(auth, holder(13, "FR"), entry=ENTRY)
        letter = await auth.apply(holder=holder(14), employer=HANSA, category=Category.B,
                                  position="Engineer", approved_months=12, today=ENTRY)
        cancelled = await issued_permit(auth, holder(15), entry=ENTRY)
        await auth.cancel(cancelled.permit_no, reason=CancellationReason.REVOKED,
                          today=ENTRY + timedelta(days=3))
        expired = await issued_permit(auth, holder(16), entry=date(2025, 1, 6), months=1)
        assert expired.valid_until is not None
        await auth.expire(expired.permit_no, today=expired.valid_until + timedelta(days=1))
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(german.permit_no), "R-de", certificate_of_coverage=True),
            requested(by_no(german.permit_no), "R-de-again", requester="foreigner"),
            requested(by_no(german.permit_no), "R-de"),  # resubmitted under the same id
            requested(by_no(korean.permit_no), "R-kr", certificate_of_coverage=True),
            requested(by_no(korean.permit_no), "R-kr-again"),
            requested(by_no(late.permit_no), "R-late", requested_on=ENTRY + timedelta(days=45)),
            requested(by_no(letter.permit_no), "R-letter-stage"),
            requested(by_no(cancelled.permit_no), "R-cancelled"),
            requested(by_no(expired.permit_no), "R-expired"),
            requested(by_no("999999999999999999"), "R-unknown"),
            requested({"kind": "letter_no", "letter_no": "NL-NOPE"}, "R-no-letter"),
            requested({"kind": "ecard", "card_id": "ESSC00000000000000FF"}, "R-no-card"),
            requested(by_no(late.permit_no), "R-employer", employer_credit_code=ACME),
        ])
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 15, what="fifteen outcomes")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 15, what="no more outcomes")

    assert len(events) == 15
    decided = by_request(events, "request_id")
    german_outcomes = decided.pop("R-de")
    assert kinds(german_outcomes) == ["InsuranceRegistered", "InsuranceRegistrationRejected"]
    registered = german_outcomes[0].data
    assert [i.value for i in registered.exempt] == ["pension", "unemployment"]
    assert [i.value for i in registered.insured] == ["medical", "work_injury", "maternity"]
    assert registered.agreement == "DE"
    assert german_outcomes[1].data.reason == "duplicate_request"
    late_registered = decided.pop("R-late")[0].data
    assert late_registered.late
    assert late_registered.agreement is None  # France is [U], but no certificate: no question
    assert {k: outcome(v) for k, v in decided.items()} == {
        "R-de-again": ("InsuranceRegistrationRejected", "already_registered"),
        "R-kr": ("InsuranceRegistrationReferred", "agreement_unconfirmed"),
        "R-kr-again": ("InsuranceRegistrationRejected", "review_pending"),
        "R-letter-stage": ("InsuranceRegistrationRejected", "permit_not_active"),
        "R-cancelled": ("InsuranceRegistrationRejected", "permit_cancelled"),
        "R-expired": ("InsuranceRegistrationRejected", "permit_expired"),
        "R-unknown": ("InsuranceRegistrationRejected", "permit_unknown"),
        "R-no-letter": ("InsuranceRegistrationRejected", "letter_unknown"),
        "R-no-card": ("InsuranceRegistrationRejected", "ecard_unknown"),
        "R-employer": ("InsuranceRegistrationRejected", "employer_mismatch"),
    }
    ssn_events = [e for e in events if kinds([e]) == ["SocialSecurityNumberIssued"]]
    assert {e.subject for e in ssn_events} == {german.permit_no, late.permit_no}, (
        "no SSN for the Korean in review")
    unresolved = decided["R-no-letter"][0]
    assert "waited 9 s" in unresolved.data.message
    assert unresolved.subject == "NL-NOPE"
    assert unresolved.data.permit_no is None
    stored = await rows(hub_settings, AGENCY, "SELECT outcome FROM si_requests")
    assert Counter(r["outcome"] for r in stored) == {"registered": 2, "referred": 1,
                                                     "rejected": 10}


async def test_cancellation_suspends_and_the_person_keeps_one_ssn_across_permits(
    hub_settings: Settings,
) -> None:
    """A redelivered request decides once; PermitCancelled and PermitExpired suspend
    contributions and keep the account; the same person's next permit, after a passport
    renewal, registers under the same SSN without a second SocialSecurityNumberIssued."""
    person = holder(21, "GB")
    async with agency_running(hub_settings, AGENCY) as auth:
        first = await issued_permit(auth, person, entry=ENTRY)
        short = await issued_permit(auth, holder(22), entry=date(2025, 1, 6), months=1)
        await synced(hub_settings, AGENCY, auth)
        request = requested(by_no(first.permit_no), "R-first")
        await send_raw(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS,
                       [(request.subject.encode(), request.to_json())] * 2)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(short.permit_no), "R-short", requested_on=date(2025, 1, 10))])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 4,
                       what="two registrations")
        await auth.change(first.permit_no, passport_no="N99999999",
                          passport_expiry=date(2036, 1, 1))
        await auth.cancel(first.permit_no, reason=CancellationReason.NEW_EMPLOYER,
                          today=date(2025, 9, 30))
        assert short.valid_until is not None
        await auth.expire(short.permit_no, today=short.valid_until + timedelta(days=1))
        renewed = person.model_copy(update={"passport_no": "N99999999",
                                            "passport_expiry": date(2036, 1, 1)})
        second = await issued_permit(auth, renewed, entry=date(2025, 10, 20))
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(second.permit_no), "R-second", requested_on=date(2025, 10, 25))])
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 7, what="suspensions and re-registration")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 7, what="no more outcomes")

    assert len(events) == 7
    assert Counter(kinds(events)) == {"InsuranceRegistered": 3, "SocialSecurityNumberIssued": 2,
                                      "InsuranceSuspended": 2}
    registered = {e.data.request_id: e.data for e in events
                  if kinds([e]) == ["InsuranceRegistered"]}
    ssn = registered["R-first"].ssn
    assert registered["R-second"].ssn == ssn
    issued = [e for e in events if kinds([e]) == ["SocialSecurityNumberIssued"]]
    assert [e.data.ssn for e in issued].count(ssn) == 1, "never a second SSN event per person"
    suspended = {e.subject: e.data for e in events if kinds([e]) == ["InsuranceSuspended"]}
    assert suspended[first.permit_no].cause == "permit_cancelled"
    assert suspended[first.permit_no].cancellation_reason == "new_employer"
    assert suspended[first.permit_no].suspended_on == date(2025, 9, 30)
    assert suspended[short.permit_no].cause == "permit_expired"
    accounts = {r["ssn"]: r for r in await rows(
        hub_settings, AGENCY, "SELECT ssn, status, current_permit_no FROM si_accounts")}
    assert len(accounts) == 2, "accounts are kept, never deleted"
    assert accounts[ssn]["status"] == "active"
    assert accounts[ssn]["current_permit_no"] == second.permit_no
    assert accounts[registered["R-short"].ssn]["status"] == "suspended"
    history = await rows(hub_settings, AGENCY, "SELECT permit_no, status FROM si_registrations"
                         " WHERE ssn = $1 ORDER BY registered_on", ssn)
    assert history == [{"permit_no": first.permit_no, "status": "suspended"},
                       {"permit_no": second.permit_no, "status": "active"}]
    stored = await rows(hub_settings, AGENCY, "SELECT request_id FROM si_requests")
    assert sorted(r["request_id"] for r in stored) == ["R-first", "R-second", "R-short"]
    passports = [person.passport_no, "N99999999", holder(22).passport_no]
    assert await clear_passports(hub_settings, passports) == [], (
        "person keys suffice: no si_ column holds a passport number in clear")
    assert "si_permits.permit_no" in await clear_passports(hub_settings, [first.permit_no]), (
        "the scan finds what is there")


async def clear_passports(settings: Settings, passports: list[str]) -> list[str]:
    """Every column of every si_ table holding one of these passport numbers, any type read
    as text (arrays and JSON too), as `table.column`."""
    columns = await rows(settings, AGENCY,
                         "SELECT table_name, column_name FROM information_schema.columns"
                         " WHERE table_schema = current_schema() AND table_name LIKE 'si\\_%'")
    assert {c["table_name"] for c in columns} >= {"si_permits", "si_person_keys", "si_accounts"}
    found = []
    for c in columns:
        table, column = c["table_name"], c["column_name"]
        hits = await rows(settings, AGENCY,
                          f'SELECT 1 FROM {table} WHERE "{column}"::text ILIKE ANY($1::text[])'
                          " LIMIT 1", [f"%{p}%" for p in passports])
        if hits:
            found.append(f"{table}.{column}")
    return found


def legacy_record(permit_no: str, n: int) -> PermitRecord:
    """A pre-integration physical permit issued in March 2024."""
    return PermitRecord(
        permit_no=permit_no, status=PermitStatus.ACTIVE, standard=PermitStandard.LEGACY,
        holder=holder(n, "CA"), category=Category.B, employer=HANSA, position="Teacher",
        approved_months=36, issued_on=date(2024, 3, 1), valid_from=date(2024, 3, 1),
        valid_until=date(2027, 2, 28))


async def test_legacy_permits_are_honoured_and_named_by_ecard_only_after_migration(
    hub_settings: Settings,
) -> None:
    """A legacy permit registers by number as it is (late, from its 2024 issue); named by an
    e-card it is refused until PermitMigrated, then accepted."""
    early_card, late_card = "ESSC00000000000000B1", "ESSC00000000000000B2"
    async with agency_running(hub_settings, AGENCY) as auth:
        by_number = await auth.register_legacy(legacy_record("110000201900000031", 31))
        by_card = await auth.register_legacy(legacy_record("110000201900000032", 32))
        await synced(hub_settings, AGENCY, auth)
        # Even if an e-card were announced for it, a legacy permit has no card features yet.
        await send(hub_settings, SI_CARD_EVENTS, [card_issued(by_card, early_card)])
        await card_known(hub_settings, early_card)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(by_number.permit_no), "L-number"),
            requested({"kind": "ecard", "card_id": early_card}, "L-card-early"),
        ])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 3,
                       what="legacy decisions")
        migrated = await auth.migrate(by_card.permit_no)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, SI_CARD_EVENTS, [card_issued(migrated, late_card)])
        await card_known(hub_settings, late_card)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested({"kind": "ecard", "card_id": late_card}, "L-card-late")])
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 5, what="the migrated registration")

    decided = by_request(events, "request_id")
    assert outcome(decided["L-card-early"]) == ("InsuranceRegistrationRejected", "ecard_unknown")
    for request_id, permit_no in (("L-number", by_number.permit_no),
                                  ("L-card-late", by_card.permit_no)):
        registered = decided[request_id][0]
        assert kinds([registered]) == ["InsuranceRegistered"]
        assert registered.subject == permit_no
    assert decided["L-number"][0].data.late
    assert decided["L-number"][0].data.deadline == date(2024, 3, 31)


async def test_bad_requests_are_dead_lettered_with_their_reason(hub_settings: Settings) -> None:
    """Undecodable, schema-violating (a bad e-card id), mis-keyed and self-contradicting
    requests go to the DLQ with their reason (the last one refused by the codec, before any
    handler); card events the agency ignores do not; the stream goes on."""
    async with agency_running(hub_settings, AGENCY) as auth:
        permit = await issued_permit(auth, holder(41), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        good = requested(by_no(permit.permit_no), "B-good")
        bad_card = json.loads(good.to_json())
        bad_card["data"]["reference"] = {"kind": "ecard", "card_id": "nope"}
        contradicting = good.model_copy(update={"subject": "156000000000999999",
                                                "id": uuid.uuid4()})
        key = permit.permit_no.encode()
        await send_raw(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            (key, b"{ not json"),
            (key, json.dumps(bad_card).encode()),
            (b"999999999999999999", good.to_json()),
            (b"156000000000999999", contradicting.to_json()),
            (key, good.to_json()),
        ])
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 2, what="the good request's outcome")
        await settled(hub_settings, AGENCY)

    assert kinds(events) == ["InsuranceRegistered", "SocialSecurityNumberIssued"]
    dead = await read_topic(hub_settings, topics.dead_letter_topic(hub_settings.topic(AGENCY)))
    reasons = Counter(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons == {"undecodable": 1, "schema_violation": 1, "key_mismatch": 1,
                       "subject_mismatch": 1}
    mismatch = next(r for r in dead if dict(r.headers)["dlq.reason"] == b"subject_mismatch")
    assert b"data.reference.permit_no" in dict(mismatch.headers)["dlq.error.message"]
