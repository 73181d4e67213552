"""`hub social_insurance …`: the reviewers' desk of the social insurance agency.

- `hub social_insurance reviews --purpose WHY [--operator ID]`: the registration requests
  waiting in manual review, oldest first (JSON). It shows which permits, the holders'
  nationality and the referral, so it says why (`--purpose`) and records the look in the
  agency's database first (`hub.looks`), one row per permit shown.
- `hub social_insurance decide REQUEST_ID --officer ID (--approve [--exempt INSURANCE ...] |
  --refuse) --reason TEXT`: the reviewer's decision, published by the agency's desk
  (`<agency>-desk`, signed) on `socialinsurance.decisions.v1`; the agency's consumer then
  registers or rejects the request. A request that is not waiting in review is refused here
  (exit 2, nothing published); the agency refuses it again if it gets there anyway.

The hub mounts the app through the agency's declaration (`commands`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from consumers.social_insurance.views import SocialInsuranceView
from hub.agency import CommandContext
from hub.commands import Operator, Purpose, emit_json
from hub.commands import settings as _settings
from hub.db import open_pool
from hub.errors import BadTarget, NotReady
from hub.looks import Look, Seen, record
from hub.settings import Settings
from schemas.social_insurance import (
    Insurance,
    InsuranceReviewDecided,
    InsuranceReviewDecidedData,
    ReviewDecision,
)

AGENCY = "social_insurance"
SHOWN = ("permit_no", "nationality", "requested_on", "certificate", "referral")
"""What the list of pending reviews shows of each person's case (field names for the look)."""


async def pending(settings: Settings, look: Look) -> list[dict[str, Any]]:
    """The requests waiting in review, the look recorded first (nothing shown if it fails)."""
    async with open_pool(settings.dsn(AGENCY), max_size=1) as p, p.acquire() as conn:
        rows = await SocialInsuranceView(conn).pending_reviews()
        if rows:
            await record(conn, look, [Seen(r["permit_no"], r["permit_no"], SHOWN) for r in rows])
    return [{k: _plain(v) for k, v in r.items()} for r in rows]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


async def decision_for(
    settings: Settings,
    request_id: str,
    *,
    officer: str,
    decision: ReviewDecision,
    exempt: Sequence[Insurance],
    reason: str,
    now: datetime | None = None,
) -> InsuranceReviewDecided:
    """The decision event for a request waiting in review; BadTarget if it is not waiting
    or the decision is not valid (nothing is published then)."""
    async with open_pool(settings.dsn(AGENCY), max_size=1) as p, p.acquire() as conn:
        view = SocialInsuranceView(conn)
        referral = await view.referral(request_id)
        reviewed = await view.review_of(request_id)
    if referral is None or reviewed is not None:
        raise BadTarget(f"request {request_id} is not waiting in manual review"
                        " (`hub social_insurance reviews` lists those that are)")
    try:
        data = InsuranceReviewDecidedData(
            request_id=request_id, permit_no=referral.permit_no, decision=decision,
            exempt=tuple(exempt), officer_id=officer, decided_at=now or datetime.now(UTC),
            reason=reason)
    except ValidationError as exc:
        fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        raise BadTarget(f"the decision is not valid ({fields or 'exempt'}): an officer id of"
                        " letters, digits, '.', '_' or '-'; a reason of 4 to 300 characters on"
                        " one line, without personal data (no run of 6 digits, no e-mail);"
                        " exemptions only on --approve") from None
    event = InsuranceReviewDecided.create(subject=referral.permit_no, sequence=1, data=data)
    assert isinstance(event, InsuranceReviewDecided)
    return event


def commands(context: CommandContext) -> Sequence[tuple[str, typer.Typer]]:
    """The agency's operator commands, as the hub mounts them: `hub social_insurance`."""
    app = typer.Typer(help="The social insurance agency: its reviewers' desk.",
                      no_args_is_help=True)

    @app.command("reviews")
    def reviews_command(purpose: Purpose, operator: Operator = None) -> None:
        """List the registration requests waiting in manual review (the look is recorded)."""
        try:
            look = Look("social_insurance reviews", purpose, False, operator)
            emit_json(asyncio.run(pending(_settings(), look)))
        except (BadTarget, NotReady) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2 if isinstance(exc, BadTarget) else 1) from None

    @app.command("decide")
    def decide_command(
        request_id: Annotated[str, typer.Argument(help="the referred request's id")],
        officer: Annotated[str, typer.Option(help="your staff id (never a name)")],
        reason: Annotated[str, typer.Option(
            help="the ground, for the requester: no names, passport or SSN numbers")],
        approve: Annotated[bool, typer.Option("--approve/--refuse",
                                              help="register it, or refuse it")],
        exempt: Annotated[list[Insurance] | None, typer.Option(
            help="on --approve: an insurance the agreement exempts (repeat)")] = None,
    ) -> None:
        """Decide a request waiting in manual review; the agency's desk publishes it."""
        settings = _settings()
        choice = ReviewDecision.APPROVE if approve else ReviewDecision.REFUSE

        async def go() -> InsuranceReviewDecided:
            event = await decision_for(settings, request_id, officer=officer, decision=choice,
                                       exempt=exempt or [], reason=reason)
            await context.submit_decisions(settings, AGENCY, [event])
            return event

        try:
            event = asyncio.run(go())
        except (BadTarget, NotReady) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2 if isinstance(exc, BadTarget) else 1) from None
        emit_json({"published": "InsuranceReviewDecided", "request_id": request_id,
                   "permit_no": event.subject, "decision": choice.value,
                   "exempt": [i.value for i in event.data.exempt], "officer_id": officer,
                   "event_id": str(event.id)})

    return [(AGENCY, app)]
