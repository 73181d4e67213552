"""The calendar's clock and task (hub/clock.py), with a test clock instead of real days."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from hub.clock import CHINA_STANDARD_TIME, CalendarTask, FixedClock, SystemClock


class Ledger:
    """Calendar work over an in-memory set of permits' last days: what an idempotent
    calendar must look like (each due item done once, then never again)."""

    def __init__(self, ends: dict[str, date]) -> None:
        self.ends = ends
        self.expired: list[tuple[str, date]] = []
        self.days: list[date] = []

    async def work(self, pool: Any, today: date) -> int:
        self.days.append(today)
        done = {no for no, _ in self.expired}
        due = [no for no, end in sorted(self.ends.items()) if end < today and no not in done]
        self.expired += [(no, today) for no in due]
        return len(due)


def test_the_system_clock_gives_beijings_day() -> None:
    """The authority's day is UTC+8's, whatever zone the host runs in."""
    before = (datetime.now(UTC) + timedelta(hours=8)).date()
    today = SystemClock().today()
    after = (datetime.now(UTC) + timedelta(hours=8)).date()
    assert today in (before, after)
    assert CHINA_STANDARD_TIME.utcoffset(None) == timedelta(hours=8)


def test_a_fixed_clock_moves_only_when_told() -> None:
    """A test sets the day it needs and moves it forward by whole days."""
    clock = FixedClock(date(2026, 3, 1))
    assert clock.today() == date(2026, 3, 1)
    clock.advance(2)
    assert clock.today() == date(2026, 3, 3)


async def test_a_tick_does_the_work_due_on_the_clocks_day_once() -> None:
    """A tick passes the clock's day; a second tick on the same day changes nothing; the
    next day does what fell due since."""
    ledger = Ledger({"a": date(2026, 3, 1), "b": date(2026, 3, 2), "c": date(2027, 1, 1)})
    clock = FixedClock(date(2026, 3, 3))
    task = CalendarTask(None, ledger.work, clock,  # type: ignore[arg-type]
                        agency="workpermit", interval=60)
    assert await task.tick() == 2
    assert await task.tick() == 0
    clock.day = date(2027, 1, 2)
    assert await task.tick() == 1
    assert ledger.expired == [("a", date(2026, 3, 3)), ("b", date(2026, 3, 3)),
                              ("c", date(2027, 1, 2))]
    assert task.ticks == 3


async def test_the_task_ticks_at_its_interval_until_stopped() -> None:
    """It runs at once, then every interval; stop ends it and sets done."""
    ledger, third = Ledger({}), asyncio.Event()

    async def work(pool: Any, today: date) -> int:
        if len(ledger.days) == 2:
            third.set()
        return await ledger.work(pool, today)

    task = CalendarTask(None, work, FixedClock(date(2026, 1, 1)),  # type: ignore[arg-type]
                        agency="workpermit", interval=0.01)
    running = asyncio.create_task(task.run())
    await asyncio.wait_for(third.wait(), 5)
    task.stop()
    await asyncio.wait_for(running, 5)
    assert task.done.is_set()
    assert ledger.days[:3] == [date(2026, 1, 1)] * 3


async def test_a_transient_fault_waits_for_the_next_tick() -> None:
    """A lost connection skips one tick; the calendar goes on."""
    calls, recovered = 0, asyncio.Event()

    async def flaky(pool: Any, today: date) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("server closed the connection")
        recovered.set()
        return 0

    task = CalendarTask(None, flaky, FixedClock(date(2026, 1, 1)),  # type: ignore[arg-type]
                        agency="workpermit", interval=0.01)
    running = asyncio.create_task(task.run())
    await asyncio.wait_for(recovered.wait(), 5)
    task.stop()
    await asyncio.wait_for(running, 5)
    assert task.ticks >= 1


async def test_any_other_fault_ends_the_task() -> None:
    """A bug is not retried for ever: the task ends, done is set, `hub run` stops."""

    async def broken(pool: Any, today: date) -> int:
        raise KeyError("valid_until")

    task = CalendarTask(None, broken, FixedClock(date(2026, 1, 1)),  # type: ignore[arg-type]
                        agency="workpermit", interval=0.01)
    with pytest.raises(KeyError):
        await task.run()
    assert task.done.is_set()
