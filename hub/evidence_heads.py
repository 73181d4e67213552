"""Each publishing agency's chain head, sent regularly through its own outbox.

The relay signs a head like any record the agency sends and logs it as sent; a new head
is sent only once the chain holds news (a row other than a chain head) past the last one
(`hub.evidence`). After a restart the current head is sent once more.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from hub.errors import raise_unless_transient
from hub.evidence import HEAD_TYPE
from hub.logging import get_logger
from hub.outbox import OutgoingMessage, enqueue
from schemas.evidence import EvidenceHeadPublished, EvidenceHeadPublishedData

log = get_logger(__name__)


class HeadPublisher:
    """Publishes an agency's chain head through its outbox whenever it moved, every
    `interval` seconds, so the relay signs and sends it like any other record."""

    def __init__(self, pool: asyncpg.Pool, agency: str, topic: str, *,
                 interval: float) -> None:
        self.pool, self.agency, self.topic, self.interval = pool, agency, topic, interval
        self.published: int | None = None
        self._stopping = asyncio.Event()
        self.done = asyncio.Event()

    def stop(self) -> None:
        """Return from `run` at the next tick."""
        self._stopping.set()

    async def run(self) -> None:
        """Publish until stopped; transient faults wait for the next tick."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.publish_once()
                except Exception as exc:
                    raise_unless_transient(exc)
                    log.warning("chain head not published, retrying",
                                error_class=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval)
        finally:
            self.done.set()

    async def publish_once(self) -> int | None:
        """Enqueue the head as of the chain's last row that is not itself a chain head (sent
        or received), if that row is newer than the last head sent; its row number.

        Heads alone never move the published head: otherwise each agency's recording of
        the others' heads would make it publish a new head, which they would record, and
        so on without end. Those rows are covered by the next head that has news."""
        async with self.pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(
                "SELECT seq, row_hash, recorded_at FROM hub_evidence"
                " WHERE event_type IS DISTINCT FROM $1 ORDER BY seq DESC LIMIT 1", HEAD_TYPE)
            if head is None or (self.published is not None and head["seq"] <= self.published):
                return None
            event = EvidenceHeadPublished.create(
                subject=self.agency, sequence=head["seq"],
                data=EvidenceHeadPublishedData(
                    agency=self.agency, seq=head["seq"],
                    row_hash=bytes(head["row_hash"]).hex(), recorded_at=head["recorded_at"]))
            await enqueue(conn, [OutgoingMessage.of_event(self.topic, event)])
        self.published = head["seq"]
        log.info("chain head published", agency=self.agency, seq=head["seq"])
        return int(head["seq"])
