"""`hub public_security …`: the officers' desk at public security, for operators.

- `hub public_security pending --purpose WHY`: the applications referred to an officer and
  the open cancellation cases (what is waiting for a decision). The look is recorded in
  public security's database first (`hub.looks`): the lists name permits.
- `hub public_security decide APPLICATION_ID --accept|--refuse --officer ID --reason WHY`:
  an officer's decision on a referred application.
- `hub public_security close RESIDENCE_PERMIT_NO --cancelled-on DATE --officer ID --reason
  WHY`: an officer closes a cancellation case.

A decision is checked against public security's database first (something pending, a
reason that does not name the holder) for a clear error (exit 2) before anything is
published; the consumer checks it again when it applies it (the database may have moved
on), and dead-letters with the reason what cannot apply. Decisions are published by the
agency's desk (`CommandContext.submit_decisions`: signed as `public_security-desk`, to
`publicsecurity.decisions.v1`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer

from consumers.public_security.views import PublicSecurityView
from hub.agency import CommandContext
from hub.commands import Operator, Purpose, emit_json, run
from hub.db import open_pool
from hub.errors import BadTarget
from hub.looks import Look, Seen, record
from hub.settings import Settings
from schemas.public_security import (
    ResidenceApplicationDecided,
    ResidenceApplicationDecidedData,
    ResidencePermitCancellationDecided,
    ResidencePermitCancellationDecidedData,
    ResidenceVerdict,
)

AGENCY = "public_security"

Officer = Annotated[str, typer.Option(
    "--officer", show_default=False, help="the deciding officer's staff id (not a name)")]
Reason = Annotated[str, typer.Option(
    "--reason", show_default=False,
    help="why, in one line of 3 to 200 characters: the rule or facts weighed, never the "
         "applicant's name, passport or other personal data")]


async def pending(settings: Settings, look: Look) -> dict[str, list[dict[str, Any]]]:
    """The referred applications and the open cancellation cases; the look recorded first."""
    async with open_pool(settings.dsn(AGENCY), max_size=1) as p, p.acquire() as conn:
        view = PublicSecurityView(conn)
        referred = await view.referred_applications()
        cases = await view.open_cases()
        seen = [Seen(r["application_id"], r["permit_no"], list(r)) for r in referred] + [
            Seen(c["residence_permit_no"], c["permit_no"], list(c)) for c in cases]
        if seen:
            await record(conn, look, seen)
    return {"referred_applications": referred, "open_cancellation_cases": cases}


async def decide(
    context: CommandContext, settings: Settings, application_id: str, verdict: ResidenceVerdict,
    officer: str, reason: str, *, now: datetime | None = None,
) -> ResidenceApplicationDecided:
    """Publish an officer's decision on a referred application (BadTarget: nothing pending)."""
    async with open_pool(settings.dsn(AGENCY), max_size=1) as p, p.acquire() as conn:
        view = PublicSecurityView(conn)
        app = await view.application(application_id)
        if app is None:
            raise BadTarget(f"no application {application_id}; nothing was published")
        if app.outcome != "referred":
            raise BadTarget(f"application {application_id} is not referred to an officer (it"
                            f" was {app.outcome}); nothing was published")
        if await view.names_holder(app.permit_no, reason):
            raise BadTarget("--reason names the holder (name or passport): state the rule or"
                            " facts weighed without personal data; nothing was published")
    event = ResidenceApplicationDecided.create(
        subject=app.permit_no, sequence=1, data=ResidenceApplicationDecidedData(
            application_id=application_id, permit_no=app.permit_no, verdict=verdict,
            officer_id=officer, decided_at=now or datetime.now(UTC), reason=reason))
    assert isinstance(event, ResidenceApplicationDecided)
    await context.submit_decisions(settings, AGENCY, [event])
    return event


async def close(
    context: CommandContext, settings: Settings, residence_permit_no: str, cancelled_on: date,
    officer: str, reason: str, *, now: datetime | None = None,
) -> ResidencePermitCancellationDecided:
    """Publish an officer's closing of a cancellation case (BadTarget: no open case)."""
    async with open_pool(settings.dsn(AGENCY), max_size=1) as p, p.acquire() as conn:
        view = PublicSecurityView(conn)
        case = await view.cancellation_case(residence_permit_no)
        if case is None:
            raise BadTarget(f"no residence permit {residence_permit_no}; nothing was published")
        if case.status != "cancellation_required":
            raise BadTarget(f"residence permit {residence_permit_no} has no open cancellation"
                            f" case (it is {case.status}); nothing was published")
        if await view.names_holder(case.permit_no, reason):
            raise BadTarget("--reason names the holder (name or passport): state the rule or"
                            " facts weighed without personal data; nothing was published")
    event = ResidencePermitCancellationDecided.create(
        subject=case.permit_no, sequence=1, data=ResidencePermitCancellationDecidedData(
            permit_no=case.permit_no, residence_permit_no=residence_permit_no,
            cancelled_on=cancelled_on, officer_id=officer, decided_at=now or datetime.now(UTC),
            reason=reason))
    assert isinstance(event, ResidencePermitCancellationDecided)
    await context.submit_decisions(settings, AGENCY, [event])
    return event


def desk_app(context: CommandContext) -> typer.Typer:
    """`hub public_security pending | decide | close`."""
    app = typer.Typer(help="Public security's officers' desk: referrals and cancellation cases.",
                      no_args_is_help=True)

    @app.command("pending")
    def pending_command(purpose: Purpose, operator: Operator = None) -> None:
        """List the applications referred to an officer and the open cancellation cases."""
        look = Look("public_security pending", purpose, False, operator)
        emit_json(run(lambda s: pending(s, look)))

    @app.command("decide")
    def decide_command(
        application_id: str,
        officer: Officer,
        reason: Reason,
        accept: Annotated[bool, typer.Option("--accept/--refuse", show_default=False,
                                             help="accept the application or refuse it")],
    ) -> None:
        """An officer's decision on a referred application (published by the desk)."""
        verdict = ResidenceVerdict.ACCEPT if accept else ResidenceVerdict.REFUSE
        event = run(lambda s: decide(context, s, application_id, verdict, officer, reason))
        emit_json({"published": "ResidenceApplicationDecided", "id": str(event.id),
                   "application_id": application_id, "verdict": verdict.value})

    @app.command("close")
    def close_command(
        residence_permit_no: str,
        officer: Officer,
        reason: Reason,
        cancelled_on: Annotated[datetime, typer.Option(
            "--cancelled-on", formats=["%Y-%m-%d"], show_default=False,
            help="the day the residence permit was cancelled")],
    ) -> None:
        """Close a cancellation case: the residence permit cancelled on a date."""
        event = run(lambda s: close(context, s, residence_permit_no, cancelled_on.date(),
                                    officer, reason))
        emit_json({"published": "ResidencePermitCancellationDecided", "id": str(event.id),
                   "residence_permit_no": residence_permit_no})

    return app


def commands(context: CommandContext) -> Sequence[tuple[str, typer.Typer]]:
    """Public security's operator commands, as the hub mounts them: `hub public_security`."""
    return [(AGENCY, desk_app(context))]
