"""The authority's calendar on the real broker and database: `hub run workpermit`'s clock,
set by the test past a permit's end, expires it through the outbox, and the card view shows
it; the calendar run again on the same day changes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hub import bootstrap
from hub.clock import FixedClock
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import Authority, authority
from schemas.permits import Category, PermitStatus
from tests.factories import employer, holder
from tests.integration.hub_fixtures import eventually

pytestmark = pytest.mark.integration

DAY = date(2026, 6, 1)
"""The day the test's clock says it is."""


async def _permit(auth: Authority, name: str, letter_on: date, *, issue: bool = True) -> str:
    rec = await auth.apply(holder=holder(name=name), employer=employer(), category=Category.B,
                           position="Engineer", approved_months=12, today=letter_on)
    if issue:
        entry = letter_on + timedelta(days=9)
        await auth.issue(rec.permit_no, valid_from=entry, today=entry)
    return rec.permit_no


async def _card_status(settings: Settings, permit_no: str) -> Any:
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        return await p.fetchval("SELECT status FROM card_permits WHERE permit_no = $1",
                                permit_no)


async def _events_and_outbox(settings: Settings) -> tuple[dict[str, int], int]:
    async with bootstrap.pool(settings, "workpermit", max_size=1) as p:
        rows = await p.fetch("SELECT permit_no, sequence FROM permits")
        waiting = await p.fetchval("SELECT count(*) FROM hub_outbox")
    return {r["permit_no"]: r["sequence"] for r in rows}, waiting


async def test_the_clock_expires_ended_permits_once_and_the_card_view_shows_it(
    hub_settings: Settings,
) -> None:
    """A permit that ended before the clock's day expires (PermitExpired reaches the card
    view); one still valid and a letter not yet used stay; ticking again changes nothing."""
    settings = hub_settings.model_copy(update={"clock_interval_s": 0.2})
    clock = FixedClock(DAY)
    async with authority(settings) as auth:
        ended = await _permit(auth, "Anna Schmidt", date(2025, 1, 1))  # until 2026-01-09
        valid = await _permit(auth, "Kenji Sato", date(2026, 1, 1))  # until 2027-01-09
        letter = await _permit(auth, "Ngozi Okafor", date(2026, 5, 1), issue=False)

        async def expired_in_card_view() -> bool:
            return bool(await _card_status(settings, ended) == "expired")

        async with bootstrap.running_consumer(settings, "card"), \
                bootstrap.running_agency(settings, "workpermit", clock=clock):
            await eventually(expired_in_card_view, what="PermitExpired in the card view")
        states = {no: (await auth.get(no)) for no in (ended, valid, letter)}
        assert {no: s[0].status for no, s in states.items() if s} == {
            ended: PermitStatus.EXPIRED, valid: PermitStatus.ACTIVE,
            letter: PermitStatus.LETTER_ISSUED}
        before, waiting = await _events_and_outbox(settings)
        assert before[ended] == 3  # letter, issue, expiry: expired exactly once

        async with bootstrap.running_calendar(
                settings, installed().get("workpermit"), clock) as calendar:
            done_ticks = calendar.ticks

            async def ticked_twice() -> bool:
                return calendar.ticks >= done_ticks + 2

            await eventually(ticked_twice, what="two more ticks of the calendar")
        assert await _events_and_outbox(settings) == (before, waiting)


async def _view_status(settings: Settings, agency: str, table: str, permit_no: str) -> Any:
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        return await p.fetchval(f"SELECT status FROM {table} WHERE permit_no = $1", permit_no)


async def test_the_clock_lapses_letters_past_their_six_months_once_in_every_view(
    hub_settings: Settings,
) -> None:
    """A letter issued 2025-11-01 is valid until 2026-04-30: on the clock's day (2026-06-01)
    it lapses (NotificationLetterLapsed), and the card, public security and social insurance
    views show it lapsed; a letter of 2026-05-01 and an issued permit stay; ticking again on
    the same day publishes nothing more."""
    settings = hub_settings.model_copy(update={"clock_interval_s": 0.2})
    clock = FixedClock(DAY)
    async with authority(settings) as auth:
        old = await _permit(auth, "Ngozi Okafor", date(2025, 11, 1), issue=False)
        young = await _permit(auth, "Kenji Sato", date(2026, 5, 1), issue=False)
        issued = await _permit(auth, "Anna Schmidt", date(2025, 11, 1))  # until 2026-11-09
        views = (("card", "card_permits"), ("public_security", "ps_permits"),
                 ("social_insurance", "si_permits"))

        async def lapsed_in_every_view() -> bool:
            return all([await _view_status(settings, a, t, old) == "lapsed" for a, t in views])

        async with bootstrap.running_consumer(settings, "card"), \
                bootstrap.running_consumer(settings, "public_security"), \
                bootstrap.running_consumer(settings, "social_insurance"), \
                bootstrap.running_agency(settings, "workpermit", clock=clock):
            await eventually(lapsed_in_every_view, what="NotificationLetterLapsed in the views")
        states = {no: (await auth.get(no)) for no in (old, young, issued)}
        assert {no: s[0].status for no, s in states.items() if s} == {
            old: PermitStatus.LAPSED, young: PermitStatus.LETTER_ISSUED,
            issued: PermitStatus.ACTIVE}
        before, waiting = await _events_and_outbox(settings)
        assert before[old] == 2  # letter, lapse: lapsed exactly once

        async with bootstrap.running_calendar(
                settings, installed().get("workpermit"), clock) as calendar:
            done_ticks = calendar.ticks

            async def ticked_twice() -> bool:
                return calendar.ticks >= done_ticks + 2

            await eventually(ticked_twice, what="two more ticks of the calendar")
        assert await _events_and_outbox(settings) == (before, waiting)
