"""`hub.outbox.RelayWaker`: one NOTIFY in flight at a time, the commits made meanwhile
covered by one more after it, none of it awaited by the committer."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.outbox import RelayWaker


class _Pool:
    """Records each statement; each waits until the test lets it finish."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate = asyncio.Event()

    async def execute(self, sql: str) -> None:
        self.sent.append(sql)
        await self.gate.wait()
        self.gate.clear()


def _waker(pool: _Pool) -> RelayWaker:
    any_pool: Any = pool
    return RelayWaker(any_pool)


async def test_commits_while_a_notify_is_in_flight_get_one_more_after_it() -> None:
    pool = _Pool()
    waker = _waker(pool)
    waker.wake()
    await asyncio.sleep(0)
    for _ in range(5):  # committed while the first NOTIFY is in flight
        waker.wake()
    assert len(pool.sent) == 1
    pool.gate.set()
    await asyncio.sleep(0.01)
    assert len(pool.sent) == 2  # one more covers the five
    pool.gate.set()
    await waker.flush()
    assert len(pool.sent) == 2
    assert all("pg_notify('hub_outbox'" in s and "synchronous_commit" in s for s in pool.sent)


async def test_a_wake_after_the_last_notify_returned_sends_a_new_one() -> None:
    pool = _Pool()
    waker = _waker(pool)
    pool.gate.set()
    waker.wake()
    await waker.flush()
    pool.gate.set()
    waker.wake()
    await waker.flush()
    assert len(pool.sent) == 2


async def test_a_failed_notify_is_not_raised() -> None:
    class Broken:
        async def execute(self, sql: str) -> None:
            raise ConnectionError("gone")

    broken: Any = Broken()
    waker = RelayWaker(broken)
    waker.wake()
    await waker.flush()
