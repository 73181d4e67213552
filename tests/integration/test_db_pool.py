"""The hub's connection pool on the session's real Postgres: a release sends no reset
statement (one round trip fewer per borrowed connection), and what a borrower leaves
behind inside a transaction still does not reach the next one."""

from __future__ import annotations

import asyncpg
import pytest

from hub.db import create_pool
from hub.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_release_sends_no_reset_statement(stack_settings: Settings) -> None:
    url = stack_settings.server_url()
    pool = await create_pool(url, min_size=1, max_size=1)
    watcher = await asyncpg.connect(url)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid() /* last statement */")
        # pg_stat_activity shows each backend's latest statement as it runs: asyncpg's
        # default release would show `SELECT pg_advisory_unlock_all(); ... RESET ALL;`.
        last = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        assert "last statement" in last
        assert "RESET ALL" not in last
    finally:
        await watcher.close()
        await pool.close()


async def test_a_borrowers_transaction_does_not_reach_the_next(stack_settings: Settings) -> None:
    pool = await create_pool(stack_settings.server_url(), min_size=1, max_size=1)
    try:
        async def borrow_and_fail() -> None:
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await conn.execute("SET LOCAL statement_timeout = '1234ms'")
                await conn.execute("CREATE TEMP TABLE left_behind (x int)")
                raise RuntimeError("the borrower fails inside its transaction")

        with pytest.raises(RuntimeError):
            await borrow_and_fail()
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW statement_timeout") != "1234ms"
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    finally:
        await pool.close()
