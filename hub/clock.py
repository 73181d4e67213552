"""The calendar an agency keeps: a clock that says what day it is, and a task that runs what
has fallen due on that day at a fixed interval.

The day comes from a `Clock` rather than from `date.today()` so that a test sets the date it
needs (a permit's end long past) instead of waiting for it. What falls due is the agency's
business (`Agency.calendar`); this module only runs it, again and again: the work must be
idempotent, so that two ticks on one day, or a restart after a crash half-way through,
change nothing more than one tick would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol

import asyncpg

from hub.errors import raise_unless_transient
from hub.logging import get_logger
from hub.settings import Settings

log = get_logger(__name__)

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
"""The authorities' calendar day is Beijing's: China keeps one zone, UTC+8, with no summer
time, so a fixed offset is exact and needs no tz database."""

CalendarWork = Callable[[asyncpg.Pool, date], Awaitable[int]]
"""What falls due at an agency on a day, done on its database; returns how many records it
changed (0 when the day's work was already done)."""

Calendar = Callable[[Settings], CalendarWork]
"""An agency's calendar as it declares it: bound to the settings (its topic names) when the
composition root assembles it, never at declaration."""


class Clock(Protocol):
    """Tells the day; the only way the calendar learns it."""

    def today(self) -> date:
        """The current calendar day."""


class SystemClock:
    """The real day in China Standard Time."""

    def today(self) -> date:
        """Today in Beijing, whatever zone the host runs in."""
        return datetime.now(UTC).astimezone(CHINA_STANDARD_TIME).date()


class FixedClock:
    """A day that moves only when told: for tests and for replaying a past day on purpose."""

    def __init__(self, day: date) -> None:
        self.day = day

    def today(self) -> date:
        """The day it was set to."""
        return self.day

    def advance(self, days: int) -> None:
        """Move the day forward (or back, with a negative count)."""
        self.day += timedelta(days=days)


class CalendarTask:
    """Runs an agency's calendar work for the clock's day every `interval` seconds, until
    stopped; a transient fault waits for the next tick, any other ends the task."""

    def __init__(self, pool: asyncpg.Pool, work: CalendarWork, clock: Clock, *, agency: str,
                 interval: float) -> None:
        self.pool, self.work, self.clock = pool, work, clock
        self.agency, self.interval = agency, interval
        self.ticks = 0
        """How many ticks completed: a test waits for it to move instead of sleeping."""
        self._stopping = asyncio.Event()
        self.done = asyncio.Event()

    def stop(self) -> None:
        """Return from `run` at the next tick."""
        self._stopping.set()

    async def run(self) -> None:
        """Tick until stopped."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick()
                except Exception as exc:
                    raise_unless_transient(exc)
                    log.warning("calendar tick failed, retrying", agency=self.agency,
                                error_class=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval)
        finally:
            self.done.set()

    async def tick(self) -> int:
        """Do what is due today, once; how many records changed."""
        day = self.clock.today()
        changed = await self.work(self.pool, day)
        self.ticks += 1
        if changed:
            log.info("calendar work done", agency=self.agency, day=day.isoformat(),
                     changed=changed)
        return changed
