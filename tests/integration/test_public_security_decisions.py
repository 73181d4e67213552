"""Decisions by officers at public security on the real broker and database: the desk
(`public_security-desk`) publishes them to `publicsecurity.decisions.v1`, public security's
consumer applies them and publishes the outcome through its outbox."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import typer

from consumers.public_security.cli import commands
from hub import bootstrap
from hub.bootstrap import command_context
from hub.settings import Settings
from schemas import Codec, topics
from schemas.permits import CancellationReason
from schemas.public_security import (
    RESIDENCE_EVENT_TYPES,
    PresentedPermitNo,
    ResidenceApplicationDecided,
    ResidenceApplicationDecidedData,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
    ResidencePermitCancellationDecided,
    ResidencePermitCancellationDecidedData,
    ResidenceVerdict,
)
from tests.integration.agency_requests import (
    agency_running,
    holder,
    issued_permit,
    rows,
    send,
    settled,
    synced,
    wait_for,
)
from tests.integration.hub_fixtures import read_topic
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration

CODEC = Codec(RESIDENCE_EVENT_TYPES)
ENTRY = date(2025, 3, 3)
AGENCY = "public_security"
OFFICER = "PSB-0417"


def applied(permit_no: str, application_id: str, **data: Any) -> ResidencePermitApplied:
    """A first application by permit number for a year, ten days after entry unless told."""
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


def decided(permit_no: str, application_id: str, verdict: ResidenceVerdict
            ) -> ResidenceApplicationDecided:
    event = ResidenceApplicationDecided.create(
        subject=permit_no, sequence=1, data=ResidenceApplicationDecidedData(
            application_id=application_id, permit_no=permit_no, verdict=verdict,
            officer_id=OFFICER, decided_at=datetime.now(UTC),
            reason="hospital stay after entry documented"))
    assert isinstance(event, ResidenceApplicationDecided)
    return event


def closing(permit_no: str, residence_permit_no: str, cancelled_on: date
            ) -> ResidencePermitCancellationDecided:
    event = ResidencePermitCancellationDecided.create(
        subject=permit_no, sequence=1, data=ResidencePermitCancellationDecidedData(
            permit_no=permit_no, residence_permit_no=residence_permit_no,
            cancelled_on=cancelled_on, officer_id=OFFICER, decided_at=datetime.now(UTC),
            reason="residence permit withdrawn at the counter"))
    assert isinstance(event, ResidencePermitCancellationDecided)
    return event


async def test_officers_decide_a_referral_and_close_a_cancellation_case(
    hub_settings: Settings,
) -> None:
    """late → referred → accepted (issued, once); issued → cancellation required → closed
    (cancelled); a decision on nothing pending is dead-lettered with its reason."""
    async with agency_running(hub_settings, AGENCY) as auth:
        late = await issued_permit(auth, holder(41), entry=ENTRY)
        other = await issued_permit(auth, holder(42), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [
            applied(late.permit_no, "D-late", applied_on=ENTRY + timedelta(days=40)),
            applied(other.permit_no, "D-ok")])
        first = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                               lambda es: len(es) >= 2, what="a referral and an issue")
        number = next(e.data.residence_permit_no for e in first
                      if e.data.application_id == "D-ok")
        await auth.cancel(other.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                          today=date(2025, 6, 1))
        await synced(hub_settings, AGENCY, auth)
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 3,
                       what="the cancellation case")
        sent = await bootstrap.submit_decisions(hub_settings, AGENCY, [
            decided(late.permit_no, "D-late", ResidenceVerdict.ACCEPT),
            decided(late.permit_no, "D-late", ResidenceVerdict.ACCEPT),  # the same again
            decided(other.permit_no, "D-ok", ResidenceVerdict.REFUSE),  # nothing pending
            closing(other.permit_no, number, date(2025, 6, 3)),
        ])
        assert sent == 4
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 5, what="the officers' outcomes")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 5, what="nothing more")

    kinds = [(e.type.rsplit(".", 1)[-1], e.subject) for e in events]
    assert sorted(kinds) == sorted([
        ("ResidenceApplicationReferred", late.permit_no),
        ("ResidencePermitIssued", other.permit_no),
        ("ResidencePermitCancellationRequired", other.permit_no),
        ("ResidencePermitIssued", late.permit_no),
        ("ResidencePermitCancelled", other.permit_no)])
    cancelled = next(e.data for e in events if e.type.endswith("ResidencePermitCancelled"))
    assert (cancelled.cancelled_on, cancelled.officer_id) == (date(2025, 6, 3), OFFICER)
    stored = await rows(hub_settings, AGENCY, "SELECT application_id, outcome FROM"
                        " ps_applications ORDER BY application_id")
    assert stored == [{"application_id": "D-late", "outcome": "issued"},
                      {"application_id": "D-ok", "outcome": "issued"}]
    status = await rows(hub_settings, AGENCY, "SELECT status, cancelled_on FROM"
                        " ps_residence_permits WHERE residence_permit_no = $1", number)
    assert status == [{"status": "cancelled", "cancelled_on": date(2025, 6, 3)}]
    officers = await rows(hub_settings, AGENCY, "SELECT kind, target, officer_id FROM"
                          " ps_officer_decisions ORDER BY kind")
    assert officers == [{"kind": "application", "target": "D-late", "officer_id": OFFICER},
                        {"kind": "cancellation", "target": number, "officer_id": OFFICER}]
    dead = await read_topic(hub_settings, topics.dead_letter_topic(hub_settings.topic(AGENCY)))
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["dlq.reason"] == b"handler_error"
    assert b"not referred to an officer" in headers["dlq.error.message"]


async def test_the_desk_commands_list_decide_and_refuse_what_is_not_pending(
    hub_settings: Settings,
) -> None:
    """`hub public_security pending --purpose` lists the referral (a look recorded);
    `decide` refuses a reason naming the holder and a second decision (exit 2, nothing
    published), and publishes the officer's acceptance as the desk."""
    app = typer.Typer()
    for name, sub in commands(command_context()):
        app.add_typer(sub, name=name)
    async with agency_running(hub_settings, AGENCY) as auth:
        permit = await issued_permit(auth, holder(43), entry=ENTRY)
        leaving = await issued_permit(auth, holder(44), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.PUBLIC_SECURITY_REQUESTS, [
            applied(permit.permit_no, "E-late", applied_on=ENTRY + timedelta(days=40)),
            applied(leaving.permit_no, "E-ok")])
        first = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                               lambda es: len(es) >= 2, what="the referral and an issue")
        number = next(e.data.residence_permit_no for e in first
                      if e.data.application_id == "E-ok")
        await auth.cancel(leaving.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                          today=date(2025, 6, 1))
        await synced(hub_settings, AGENCY, auth)
        await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC, lambda es: len(es) >= 3,
                       what="the cancellation case")
        nothing = await invoke(hub_settings, AGENCY, "pending", app=app)
        assert nothing.exit_code != 0, "no purpose, nothing shown"
        listed = await invoke(hub_settings, AGENCY, "pending", "--purpose", "CASE-2026-9",
                              app=app)
        assert listed.exit_code == 0, listed.output
        shown = json.loads(listed.stdout)
        assert [r["application_id"] for r in shown["referred_applications"]] == ["E-late"]
        assert [c["residence_permit_no"] for c in shown["open_cancellation_cases"]] == [number]
        looks = await rows(hub_settings, AGENCY, "SELECT command, purpose, subject FROM"
                           " hub_looks ORDER BY subject")
        assert looks == [{"command": "public_security pending", "purpose": "CASE-2026-9",
                          "subject": s} for s in sorted(["E-late", number])]
        closed = await invoke(hub_settings, AGENCY, "close", number, "--cancelled-on",
                              "2025-06-03", "--officer", OFFICER, "--reason",
                              "withdrawn at the counter", app=app)
        assert closed.exit_code == 0, closed.output
        naming = await invoke(hub_settings, AGENCY, "decide", "E-late", "--accept",
                              "--officer", OFFICER, "--reason",
                              f"passport {permit.holder.passport_no} seen", app=app)
        assert naming.exit_code == 2
        assert permit.holder.passport_no not in naming.output
        accepted = await invoke(hub_settings, AGENCY, "decide", "E-late", "--accept",
                                "--officer", OFFICER, "--reason", "hospital stay documented",
                                app=app)
        assert accepted.exit_code == 0, accepted.output
        events = await wait_for(hub_settings, topics.RESIDENCE_EVENTS, CODEC,
                                lambda es: len(es) >= 5, what="the issue and the closing")
        reclosed = await invoke(hub_settings, AGENCY, "close", number, "--cancelled-on",
                                "2025-06-03", "--officer", OFFICER, "--reason",
                                "withdrawn at the counter", app=app)
        assert reclosed.exit_code == 2
        assert "no open cancellation case" in reclosed.output
        again = await invoke(hub_settings, AGENCY, "decide", "E-late", "--refuse",
                             "--officer", OFFICER, "--reason", "changed my mind", app=app)
        assert again.exit_code == 2
        assert "not referred" in again.output
        await settled(hub_settings, AGENCY)
    assert sorted(e.type.rsplit(".", 1)[-1] for e in events) == sorted([
        "ResidenceApplicationReferred", "ResidencePermitIssued", "ResidencePermitIssued",
        "ResidencePermitCancellationRequired", "ResidencePermitCancelled"])
