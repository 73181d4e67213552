"""Public security's residence-permit procedure on the real broker and database: the entry-exit
counter publishes applications, public security decides against its own view, publishes the
outcome through its outbox and stores it in its own database."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from consumers.card.issuer import QrIssuer
from hub.logging import configure_logging
from hub.ops.keys import keys_app
from hub.settings import Settings
from hub.signing import KeyStore
from schemas import Codec, topics
from schemas.permit_token import QR_SIGNER, token_digest
from schemas.permits import CancellationReason, Category, PermitRecord, PermitStandard, PermitStatus
from schemas.public_security import (
    RESIDENCE_EVENT_TYPES,
    ApplicationPurpose,
    PresentedPermitNo,
    PresentedQrToken,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
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
from tests.integration.hub_fixtures import read_topic, with_home

pytestmark = pytest.mark.integration

CODEC = Codec(RESIDENCE_EVENT_TYPES)
ENTRY = date(2025, 3, 3)
AGENCY = "public_security"


def applied(permit_no: str, application_id: str, **data: Any) -> ResidencePermitApplied:
    """An application by permit number, ten days after entry, for a year."""
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


def outcome(events: list[Any]) -> tuple[str, str | None]:
    """The single outcome of one application: its event type and rejection reason."""
    assert len(events) == 1, events
    e = events[0]
    return e.type.rsplit(".", 1)[-1], getattr(e.data, "reason", None)


def legacy_record(permit_no: str, n: int) -> PermitRecord:
    """A pre-integration physical permit, valid until 2027."""
    return PermitRecord(
        permit_no=permit_no, status=PermitStatus.ACTIVE, standard=PermitStandard.LEGACY,
        holder=holder(n, "CA"), category=Category.B, employer=HANSA, position="Teacher",
        approved_months=36, issued_on=date(2024, 3, 1), valid_from=date(2024, 3, 1),
        valid_until=date(2027, 2, 28))


async def test_each_application_gets_its_decision_published_and_stored(
    hub_settings: Settings,
) -> None:
    """Granted, limited, legacy and each rejection reason by permit number: one outcome per
    application on the residence topic, and every submission stored with its decision."""
    async with agency_running(hub_settings, AGENCY) as auth:
        ok = await issued_permit(auth, holder(1), entry=ENTRY)
        ok2 = await issued_permit(auth, holder(2), entry=ENTRY)
        letter = await auth.apply(holder=holder(3), employer=HANSA, category=Category.B,
                                  position="Engineer", approved_months=12, today=ENTRY)
        cancelled = await issued_permit(auth, holder(4), entry=ENTRY)
        await auth.cancel(cancelled.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                          today=ENTRY + timedelta(days=5))
        expired = await issued_permit(auth, holder(5), entry=date(2025, 1, 6), months=1)
        assert expired.valid_until is not None
        await auth.expire(expired.permit_no, today=expired.valid_until + timedelta(days=1))
        short = await issued_permit(auth, holder(6), entry=ENTRY, months=2)
        legacy = await auth.register_legacy(legacy_record("110000201900000007", 7))
        await synced(hub_settings, AGENCY, auth)

        requests = [
            applied(ok.permit_no, "A-ok"),
            applied(ok.permit_no, "A-again"),
            applied(ok2.permit_no, "A-late", applied_on=ENTRY + timedelta(days=31)),
            applied(ok2.permit_no, "A-entry", entry_date=ENTRY + timedelta(days=11)),
            applied(ok2.permit_no, "A-range", requested_until=ENTRY + timedelta(days=60)),
            applied(ok2.permit_no, "A-limited", requested_until=date(2030, 3, 1)),
            applied(letter.permit_no, "A-letter"),
            applied(cancelled.permit_no, "A-cancelled"),
            applied(expired.permit_no, "A-expired"),
            applied(short.permit_no, "A-short"),
            applied(legacy.permit_no, "A-legacy"),
            applied(ok.permit_no, "A-ok"),  # a second submission of A-ok: a new envelope id
            applied(ok.permit_no, "A-ok", requested_until=date(2026, 3, 1)),  # other data
        ]
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, requests)
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= len(requests), what="13 answers")

    decided = by_request(events, "application_id")
    assert decided.pop("A-ok")
    assert len(events) == len(requests)
    assert {k: outcome(v) for k, v in decided.items()} == {
        "A-again": ("ResidencePermitRejected", "already_issued"),
        "A-late": ("ResidenceApplicationReferred", "applied_late"),
        "A-entry": ("ResidencePermitRejected", "entry_date_invalid"),
        "A-range": ("ResidencePermitRejected", "validity_out_of_range"),
        "A-limited": ("ResidencePermitIssued", None),
        "A-letter": ("ResidencePermitRejected", "permit_not_active"),
        "A-cancelled": ("ResidencePermitRejected", "permit_cancelled"),
        "A-expired": ("ResidencePermitRejected", "permit_expired"),
        "A-short": ("ResidencePermitRejected", "work_permit_ends_too_soon"),
        "A-legacy": ("ResidencePermitIssued", None),
    }
    first, again, duplicate = [e for e in events if e.data.application_id == "A-ok"]
    assert first.type.endswith("ResidencePermitIssued")
    assert (first.data.valid_from, first.data.valid_until) == (ENTRY + timedelta(days=10),
                                                               date(2026, 3, 12))
    # The same application again (same data): the same answer, not a second decision.
    assert (again.type, again.data) == (first.type, first.data)
    # The same id with other data: decided, and refused as a duplicate.
    assert duplicate.data.reason == "duplicate_application"
    limited = decided["A-limited"][0].data
    assert limited.valid_until == ok2.valid_until
    assert limited.limited_by_work_permit
    assert all(e.source == "/cn/mps/entry-exit" for e in events)
    # Per-subject sequences of public security's own outcomes: 1, 2, 3 for ok's three
    # decisions; the repeated answer is the first one's record again.
    assert sorted(e.sequence for e in events if e.subject == ok.permit_no) == [1, 1, 2, 3]

    stored = await rows(hub_settings, AGENCY, "SELECT application_id, outcome, reason"
                        " FROM ps_applications")
    assert len(stored) == len(requests) - 1, "the repeated A-ok reached no handler"
    assert Counter(r["outcome"] for r in stored) == {"rejected": 8, "issued": 3, "referred": 1}
    residence = await rows(hub_settings, AGENCY, "SELECT permit_no, valid_until, status"
                           " FROM ps_residence_permits")
    assert {r["permit_no"] for r in residence} == {ok.permit_no, ok2.permit_no, legacy.permit_no}
    assert {r["status"] for r in residence} == {"issued"}


async def test_a_scanned_qr_token_is_verified_with_the_card_services_published_key(
    hub_settings: Settings, tmp_path: Path
) -> None:
    """Genuine, expired, forged and misdirected tokens; a legacy permit's token is refused
    until PermitMigrated puts it on the integrated standard, then accepted."""
    settings = with_home(hub_settings, tmp_path)
    issuer = QrIssuer.configured(settings)  # card-qr's key, published in the key registry
    forger = QrIssuer.from_store(KeyStore(tmp_path / "elsewhere"))  # a key nobody published
    now = datetime.now(UTC)
    stale = QrIssuer(issuer.key, clock=lambda: now - timedelta(minutes=30))

    def by_token(permit_no: str, app_id: str, token: str,
                 scanned_at: datetime | None = None) -> ResidencePermitApplied:
        return applied(permit_no, app_id, presented=PresentedQrToken(
            token=token, scanned_at=scanned_at or datetime.now(UTC)))

    card = "ESSC0123456789ABCDEF"
    async with agency_running(settings, AGENCY) as auth:
        good = await issued_permit(auth, holder(11), entry=ENTRY)
        other = await issued_permit(auth, holder(12), entry=ENTRY)
        legacy = await auth.register_legacy(legacy_record("110000201900000013", 13))
        await synced(settings, AGENCY, auth)
        good_token = issuer.issue(good.permit_no, card)[0]
        await send(settings, topics.PUBLIC_SECURITY_REQUESTS, [
            by_token(good.permit_no, "T-good", good_token),
            by_token(good.permit_no, "T-reused", good_token),
            by_token(other.permit_no, "T-expired", stale.issue(other.permit_no, card)[0]),
            # Scanned (says the counter) while the stale token was valid: a backdated scan.
            by_token(other.permit_no, "T-backdated", stale.issue(other.permit_no, card)[0],
                     scanned_at=now - timedelta(minutes=25)),
            by_token(other.permit_no, "T-forged", forger.issue(other.permit_no, card)[0]),
            by_token(other.permit_no, "T-misdirected", issuer.issue(good.permit_no, card)[0]),
            by_token(legacy.permit_no, "T-legacy", issuer.issue(legacy.permit_no, card)[0]),
        ])
        await wait_for(settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 7,
                       what="seven token decisions")
        await auth.migrate(legacy.permit_no)
        await synced(settings, AGENCY, auth)
        await send(settings, topics.PUBLIC_SECURITY_REQUESTS, [
            by_token(legacy.permit_no, "T-migrated", issuer.issue(legacy.permit_no, card)[0])])
        events = await wait_for(settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 8, what="the migrated holder's decision")

    decided = {k: outcome(v) for k, v in by_request(events, "application_id").items()}
    assert decided == {
        "T-good": ("ResidencePermitIssued", None),
        "T-reused": ("ResidencePermitRejected", "token_reused"),
        "T-expired": ("ResidencePermitRejected", "token_expired"),
        "T-backdated": ("ResidencePermitRejected", "scan_time_invalid"),
        "T-forged": ("ResidencePermitRejected", "token_invalid"),
        "T-misdirected": ("ResidencePermitRejected", "token_invalid"),
        "T-legacy": ("ResidencePermitRejected", "legacy_permit_no_token"),
        "T-migrated": ("ResidencePermitIssued", None),
    }
    issued = [e for e in events if e.type.endswith("Issued")]
    assert {e.data.verified_by for e in issued} == {"qr_token"}
    taken = await rows(settings, AGENCY, "SELECT token_digest, purpose, application_id"
                       " FROM ps_accepted_tokens ORDER BY application_id")
    assert [(r["application_id"], r["purpose"]) for r in taken] == [
        ("T-good", "first"), ("T-migrated", "first")]
    assert taken[0]["token_digest"] == token_digest(good_token)


async def hub_keys(settings: Settings, *args: str) -> Any:
    """`hub keys ARGS` as an operator runs it on this hub's keys; its JSON output."""
    if not structlog.is_configured():
        # Configured inside the runner, logging would keep writing to its closed buffer.
        configure_logging("console", "INFO")
    env = {"HUB_HOME": str(settings.home), "HUB_LOG_FORMAT": "json"}
    result = await asyncio.to_thread(CliRunner().invoke, keys_app, list(args), env=env,
                                     catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_the_qr_key_rotates_and_a_revoked_keys_tokens_are_refused(
    hub_settings: Settings, tmp_path: Path
) -> None:
    """`hub keys rotate card-qr` while public security runs: a token signed before still
    proves its permit (its key is retired), the new key's too; `hub keys revoke KID`: a
    token under that key, issued before the revocation, is refused with the reason named."""
    settings = with_home(hub_settings, tmp_path)
    issuer = QrIssuer.configured(settings)  # what the card service signs with
    card = "ESSC0123456789ABCDEF"

    def by_token(permit_no: str, app_id: str, token: str) -> ResidencePermitApplied:
        return applied(permit_no, app_id, presented=PresentedQrToken(
            token=token, scanned_at=datetime.now(UTC)))

    async with agency_running(settings, AGENCY) as auth:
        first, second, third = [await issued_permit(auth, holder(n), entry=ENTRY)
                                for n in (31, 32, 33)]
        await synced(settings, AGENCY, auth)
        before, old = issuer.issue(first.permit_no, card)
        rotated = await hub_keys(settings, "rotate", QR_SIGNER)
        after, new = issuer.issue(second.permit_no, card)
        assert (old.key_id, new.key_id) != (rotated["active"], rotated["active"])
        assert new.key_id == rotated["active"]
        await send(settings, topics.PUBLIC_SECURITY_REQUESTS, [
            by_token(first.permit_no, "K-retired", before),
            by_token(second.permit_no, "K-rotated", after)])
        await wait_for(settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 2,
                       what="the decisions on both keys' tokens")

        doomed, _ = issuer.issue(third.permit_no, card)
        assert await hub_keys(settings, "revoke", new.key_id) == {
            "revoked": new.key_id, "signer": QR_SIGNER}
        await send(settings, topics.PUBLIC_SECURITY_REQUESTS, [
            by_token(third.permit_no, "K-revoked", doomed)])
        events = await wait_for(settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 3, what="the revoked key's decision")

    decided = by_request(events, "application_id")
    assert {k: outcome(v) for k, v in decided.items()} == {
        "K-retired": ("ResidencePermitIssued", None),
        "K-rotated": ("ResidencePermitIssued", None),
        "K-revoked": ("ResidencePermitRejected", "token_invalid"),
    }
    message = decided["K-revoked"][0].data.message
    assert "revoked_key" in message
    assert new.key_id in message
    listed = {r["kid"]: r["status"] for r in await hub_keys(settings, "list", "--json")
              if r["signer"] == QR_SIGNER}
    assert listed == {old.key_id: "retired", new.key_id: "revoked"}


async def test_work_permit_extension_and_cancellation_reach_the_residence_permit(
    hub_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PermitExtended offers an extension without changing the residence permit; the
    extension application moves its end; PermitCancelled requires its cancellation by the
    configured deadline; a cancelled permit without a residence permit publishes nothing."""
    monkeypatch.setenv("HUB_PUBLIC_SECURITY_CANCELLATION_DEADLINE_DAYS", "15")
    async with agency_running(hub_settings, AGENCY) as auth:
        permit = await issued_permit(auth, holder(21), entry=ENTRY, months=12)
        bystander = await issued_permit(auth, holder(22), entry=ENTRY, months=24)
        assert permit.valid_until == date(2026, 3, 2)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [
            applied(permit.permit_no, "L-first", requested_until=date(2027, 1, 1))])
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 1,
                       what="the first residence permit")
        await auth.extend(permit.permit_no, new_valid_until=date(2027, 3, 2),
                          today=date(2026, 1, 15))
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 2,
                       what="the extension offer")
        before = await rows(hub_settings, AGENCY, "SELECT valid_until, extension_available_until"
                            " FROM ps_residence_permits")
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied(
            permit.permit_no, "L-extend", purpose=ApplicationPurpose.EXTENSION, entry_date=None,
            applied_on=date(2026, 1, 20), requested_until=date(2027, 3, 2))])
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 3,
                       what="the extension")
        await auth.cancel(permit.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                          today=date(2026, 6, 1))
        await auth.cancel(bystander.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                          today=date(2026, 6, 1))
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [applied(
            permit.permit_no, "L-after", purpose=ApplicationPurpose.EXTENSION, entry_date=None,
            applied_on=date(2026, 6, 2), requested_until=date(2027, 3, 2))])
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 5, what="cancellation and refusal")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 5, what="nothing more")

    kinds = [e.type.rsplit(".", 1)[-1] for e in events]
    assert kinds == ["ResidencePermitIssued", "ResidencePermitExtensionAvailable",
                     "ResidencePermitExtended", "ResidencePermitCancellationRequired",
                     "ResidencePermitRejected"]
    issued, offer, extended, cancel, refused = (e.data for e in events)
    assert issued.valid_until == date(2026, 3, 2)
    assert issued.limited_by_work_permit
    assert (offer.current_valid_until, offer.may_extend_until, offer.apply_by) == (
        date(2026, 3, 2), date(2027, 3, 2), date(2026, 1, 31))
    assert before == [{"valid_until": date(2026, 3, 2),
                       "extension_available_until": date(2027, 3, 2)}], "not silently extended"
    assert (extended.previous_valid_until, extended.valid_until) == (
        date(2026, 3, 2), date(2027, 3, 2))
    assert cancel.cancel_by == date(2026, 6, 16)
    assert cancel.work_permit_cancelled_on == date(2026, 6, 1)
    assert refused.reason == "permit_cancelled"
    assert {e.subject for e in events} == {permit.permit_no}
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    stored = await rows(hub_settings, AGENCY, "SELECT status, valid_until, cancel_by"
                        " FROM ps_residence_permits")
    assert stored == [{"status": "cancellation_required", "valid_until": date(2027, 3, 2),
                       "cancel_by": date(2026, 6, 16)}]


async def test_bad_requests_are_dead_lettered_and_a_redelivery_decides_once(
    hub_settings: Settings,
) -> None:
    """The same message delivered twice yields one outcome; undecodable, schema-violating,
    mis-keyed and self-contradicting requests go to the DLQ with their reason (the last one
    refused by the codec, before any handler), and the stream goes on."""
    async with agency_running(hub_settings, AGENCY) as auth:
        permit = await issued_permit(auth, holder(31), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        twice = applied(permit.permit_no, "B-twice")
        missing = json.loads(applied(permit.permit_no, "B-missing").to_json())
        del missing["data"]["applied_on"]
        # `create` refuses to build it (subject_mismatch), as any producer of ours would.
        contradicting = applied(permit.permit_no, "B-contra").model_copy(
            update={"subject": "156000000000999999"})
        key = permit.permit_no.encode()
        await send_raw(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [
            (key, twice.to_json()),
            (key, twice.to_json()),
            (key, b"\x00 not json"),
            (key, json.dumps(missing).encode()),
            (b"999999999999999999", twice.to_json()),
            (contradicting.subject.encode(), contradicting.to_json()),
        ])
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [
            applied(permit.permit_no, "B-after")])
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 2, what="two decisions")
        await settled(hub_settings, AGENCY)

    decided = by_request(events, "application_id")
    assert set(decided) == {"B-twice", "B-after"}
    assert outcome(decided["B-twice"]) == ("ResidencePermitIssued", None)
    assert outcome(decided["B-after"]) == ("ResidencePermitRejected", "already_issued")
    group = hub_settings.topic(AGENCY)
    dead = await read_topic(hub_settings, topics.dead_letter_topic(group))
    reasons = Counter(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons == {"undecodable": 1, "schema_violation": 1, "key_mismatch": 1,
                       "subject_mismatch": 1}
    mismatch = next(r for r in dead if dict(r.headers)["dlq.reason"] == b"subject_mismatch")
    assert b"data.presented.permit_no" in dict(mismatch.headers)["dlq.error.message"]
    stored = await rows(hub_settings, AGENCY, "SELECT application_id FROM ps_applications")
    assert sorted(r["application_id"] for r in stored) == ["B-after", "B-twice"]
