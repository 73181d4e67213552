"""Each publishing agency's chain head, sent regularly through its own outbox.

The relay signs a head like any record the agency sends and logs it as sent; a head is
sent again only once the chain has moved past the previous one (`hub.evidence`).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from hub.errors import is_transient
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
                    if not is_transient(exc):
                        raise
                    log.warning("chain head not published, retrying",
                                error_class=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval)
        finally:
            self.done.set()

    async def publish_once(self) -> int | None:
        """Enqueue the current head if it moved since the last one sent; its row number."""
        async with self.pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(
                "SELECT seq, row_hash, recorded_at, direction, event_type FROM hub_evidence"
                " ORDER BY seq DESC LIMIT 1")
            if head is None or head["seq"] == self.published:
                return None
            if head["direction"] == "sent" and head["event_type"] == HEAD_TYPE:
                return None  # the last row is our previous head: nothing happened since
            event = EvidenceHeadPublished.create(
                subject=self.agency, sequence=head["seq"],
                data=EvidenceHeadPublishedData(
                    agency=self.agency, seq=head["seq"],
                    row_hash=bytes(head["row_hash"]).hex(), recorded_at=head["recorded_at"]))
            await enqueue(conn, [OutgoingMessage.of_event(self.topic, event)])
        self.published = head["seq"]
        log.info("chain head published", agency=self.agency, seq=head["seq"])
        return int(head["seq"])


