"""A reviewer's decision on a referred registration, on the real broker and database (issue
11, item 1): the pending list (a recorded look), the desk's signed decision on
socialinsurance.decisions.v1, the registration naming the reviewer, the same decision
again publishing nothing, and a decision on a request not in review dead-lettered."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
import typer
from typer.testing import CliRunner

from consumers.social_insurance.cli import commands, pending
from hub import bootstrap
from hub.bootstrap import command_context
from hub.logging import configure_logging
from hub.looks import Look
from hub.settings import Settings
from schemas import topics
from schemas.social_insurance import (
    Insurance,
    InsuranceReviewDecided,
    InsuranceReviewDecidedData,
    ReviewDecision,
)
from tests.integration.agency_requests import (
    agency_running,
    by_request,
    holder,
    issued_permit,
    rows,
    send,
    settled,
    synced,
    wait_for,
)
from tests.integration.hub_fixtures import read_topic
from tests.integration.test_ops_cli import settings_env
from tests.integration.test_social_insurance_registrations import (
    AGENCY,
    CODEC,
    ENTRY,
    by_no,
    kinds,
    requested,
)

pytestmark = pytest.mark.integration
OFFICER = "SI-0042"


async def hub_cli(settings: Settings, *args: str) -> tuple[int, Any]:
    """Run `hub <args>` with social insurance's commands mounted as `hub` mounts them, in a
    thread; the exit code and the JSON printed (None when it printed none)."""
    if not structlog.is_configured():
        configure_logging("console", "INFO")  # inside the runner it would keep its buffer
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    for name, sub in commands(command_context()):
        app.add_typer(sub, name=name)
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args),
                                     env=settings_env(settings), catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None


async def test_a_reviewer_decides_referred_requests_through_the_desk(
    hub_settings: Settings,
) -> None:
    """Two Koreans referred; the reviewer lists them (look recorded), approves one with the
    pension exempt and refuses the other; the same approval again changes nothing; a
    decision on a request not in review is dead-lettered; a later request for the refused
    permit is decided again."""
    async with agency_running(hub_settings, AGENCY) as auth:
        approved = await issued_permit(auth, holder(61, "KR"), entry=ENTRY)
        refused = await issued_permit(auth, holder(62, "KR"), entry=ENTRY)
        await synced(hub_settings, AGENCY, auth)
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(approved.permit_no), "V-yes", certificate_of_coverage=True),
            requested(by_no(refused.permit_no), "V-no", certificate_of_coverage=True)])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 2,
                       what="two referrals")
        await settled(hub_settings, AGENCY)

        look = Look("social_insurance reviews", "CASE-2025-17", False, "reviewer-1")
        code, listed = await hub_cli(hub_settings, "social_insurance", "reviews",
                                     "--purpose", "CASE-2025-17", "--operator", "reviewer-1")
        assert code == 0
        assert sorted((r["request_id"], r["permit_no"], r["nationality"]) for r in listed) == [
            ("V-no", refused.permit_no, "KR"), ("V-yes", approved.permit_no, "KR")]
        code, _ = await hub_cli(hub_settings, "social_insurance", "reviews")
        assert code == 2, "no look without a purpose"
        code, _ = await hub_cli(hub_settings, "social_insurance", "decide", "V-unknown",
                                "--officer", OFFICER, "--refuse", "--reason", "nothing pending")
        assert code == 2, "a request not in review is refused before anything is published"
        code, _ = await hub_cli(hub_settings, "social_insurance", "decide", "V-no",
                                "--officer", OFFICER, "--refuse",
                                "--reason", "holder passport M12345678 is forged")
        assert code == 2, "personal data in the reason is refused"
        code, yes = await hub_cli(hub_settings, "social_insurance", "decide", "V-yes",
                                  "--officer", OFFICER, "--approve", "--exempt", "pension",
                                  "--reason", "certificate of coverage checked; pension exempt")
        assert (code, yes["decision"], yes["exempt"]) == (0, "approve", ["pension"])
        code, no = await hub_cli(hub_settings, "social_insurance", "decide", "V-no",
                                 "--officer", OFFICER, "--refuse", "--reason",
                                 "the certificate of coverage names another employer")
        assert (code, no["permit_no"]) == (0, refused.permit_no)
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 5,
                       what="the reviewed outcomes")
        again = InsuranceReviewDecided.create(  # the desk submits the approval once more
            subject=approved.permit_no, sequence=1, data=InsuranceReviewDecidedData(
                request_id="V-yes", permit_no=approved.permit_no,
                decision=ReviewDecision.APPROVE, exempt=(Insurance.PENSION,),
                officer_id=OFFICER, decided_at=datetime.now(UTC),
                reason="certificate of coverage checked; pension exempt"))
        stray = InsuranceReviewDecided.create(
            subject=approved.permit_no, sequence=1, data=InsuranceReviewDecidedData(
                request_id="V-unknown", permit_no=approved.permit_no,
                decision=ReviewDecision.REFUSE, officer_id=OFFICER,
                decided_at=datetime.now(UTC), reason="a decision on nothing pending"))
        await bootstrap.submit_decisions(hub_settings, AGENCY, [again, stray])
        await send(hub_settings, topics.SOCIAL_INSURANCE_REQUESTS, [
            requested(by_no(refused.permit_no), "V-no-again")])
        await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC, lambda es: len(es) >= 7,
                       what="the refused permit registered on a new request")
        await settled(hub_settings, AGENCY)
        events = await wait_for(hub_settings, topics.INSURANCE_EVENTS, CODEC,
                                lambda es: len(es) >= 7, what="no more outcomes")
        assert await pending(hub_settings, look) == []

    assert Counter(kinds(events)) == {
        "InsuranceRegistrationReferred": 2, "InsuranceRegistered": 2,
        "SocialSecurityNumberIssued": 2, "InsuranceRegistrationRejected": 1}
    decided = by_request(events, "request_id")
    registered = next(e for e in decided["V-yes"] if kinds([e]) == ["InsuranceRegistered"])
    assert (registered.data.reviewed_by, registered.data.agreement) == (OFFICER, "KR")
    assert [i.value for i in registered.data.exempt] == ["pension"]
    rejection = next(e for e in decided["V-no"]
                     if kinds([e]) == ["InsuranceRegistrationRejected"])
    assert rejection.data.reason == "review_refused"
    assert "another employer" in rejection.data.message
    assert kinds(decided["V-no-again"]) == ["InsuranceRegistered"]

    reviews = await rows(hub_settings, AGENCY, "SELECT request_id, decision, officer_id,"
                         " outcome FROM si_reviews ORDER BY request_id")
    assert reviews == [
        {"request_id": "V-no", "decision": "refuse", "officer_id": OFFICER,
         "outcome": "rejected"},
        {"request_id": "V-yes", "decision": "approve", "officer_id": OFFICER,
         "outcome": "registered"}]
    looks = await rows(hub_settings, AGENCY, "SELECT command, purpose, permit_no FROM hub_looks")
    assert sorted(r["permit_no"] for r in looks) == sorted([approved.permit_no,
                                                            refused.permit_no])
    assert {r["purpose"] for r in looks} == {"CASE-2025-17"}
    dead = await read_topic(hub_settings, topics.dead_letter_topic(hub_settings.topic(AGENCY)))
    reasons = Counter(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons == {"review_not_pending": 1}
