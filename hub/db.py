"""Postgres pools and the hub's own tables in each agency database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from hub.errors import retry_transient

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection
"""A connection, whether opened directly or borrowed from a pool."""



class PooledConnection(asyncpg.Connection):
    """A pool's connection, released without asyncpg's reset statement.

    asyncpg sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: a round trip per borrowed connection, as many as an authority command's own.
    The hub keeps no session state on pooled connections (its advisory locks are
    transaction locks, its settings `SET LOCAL`/`set_config(…, true)`, LISTEN and session
    locks use connections of their own), and asyncpg still rolls back an open transaction
    and drops listeners on release; `tests/integration/test_db_pool.py` holds the pool to it.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A connection pool, retried while the server is still starting."""

    async def connect() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=60,
            connection_class=PooledConnection,
        )
        assert pool is not None
        return pool

    return await retry_transient(f"connect {dsn.rsplit('/', 1)[-1]}", connect)


@contextlib.asynccontextmanager
async def open_pool(dsn: str, *, max_size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    """A pool on one database, closed on exit."""
    pool = await create_pool(dsn, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


async def stored_offsets(
    conn: Connection | asyncpg.Pool, group_id: str
) -> dict[tuple[str, int], int]:
    """The next offset a group's view will apply, per (topic, partition) it has applied."""
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM hub_consumer_offsets WHERE group_id = $1",
        group_id,
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def lock_offsets(
    conn: Connection, group_id: str, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The stored offsets of these partitions, their rows locked until the transaction ends
    (the fence against a member that lost its partitions mid-batch, and the replay's switch)."""
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM hub_consumer_offsets"
        " WHERE group_id = $1 AND (topic, partition) IN"
        " (SELECT * FROM unnest($2::text[], $3::int[]))"
        " ORDER BY topic, partition FOR UPDATE",
        group_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def store_offsets(
    conn: Connection, group_id: str, offsets: dict[tuple[str, int], int]
) -> None:
    """Record the next offset of each partition, never moving one backwards."""
    if not offsets:
        return
    # GREATEST keeps the stored offset monotonic even against a late zombie write.
    await conn.execute(
        "INSERT INTO hub_consumer_offsets (group_id, topic, partition, next_offset)"
        " SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o)"
        " ON CONFLICT (group_id, topic, partition) DO UPDATE"
        " SET next_offset = GREATEST(hub_consumer_offsets.next_offset, EXCLUDED.next_offset),"
        "     updated_at = now()",
        group_id,
        [k[0] for k in offsets],
        [k[1] for k in offsets],
        list(offsets.values()),
    )
