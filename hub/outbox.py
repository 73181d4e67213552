"""The transactional outbox and its relay to Kafka.

A service writes its state change and the event about it in one Postgres transaction
(`enqueue`); the relay publishes outbox rows with the idempotent producer, signed, and
deletes them only after Kafka acknowledged them, logging each as sent in the agency's
evidence log (`hub.evidence`) in the transaction that deletes it. If the relay or Kafka
dies mid-way the rows are still there and are sent again; consumers drop the duplicate by
its `sequence`.

One relay is active per database at a time (a session advisory lock); others wait as hot
standbys. NOTIFY wakes the active relay as soon as a transaction commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.db import Connection
from hub.errors import Backoff, is_transient
from hub.evidence import append, sent_entry
from hub.evidence_chain import TREE_HEADER
from hub.kafka import Headers, Producer
from hub.logging import get_logger
from hub.signing import SIGNATURE_HEADER, SigningKey
from schemas import CONTENT_TYPE, CloudEvent

log = get_logger(__name__)

CHANNEL = "hub_outbox"



@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish once the transaction that wrote it commits."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers

    @classmethod
    def of_event(cls, topic: str, event: CloudEvent[Any]) -> OutgoingMessage:
        """A structured-mode CloudEvent keyed by its subject."""
        headers = [("content-type", CONTENT_TYPE.encode())]
        return cls(topic, event.subject.encode(), event.to_json(), headers)


async def enqueue(conn: Connection, messages: Sequence[OutgoingMessage]) -> None:
    """Write messages to the outbox inside the caller's transaction, and wake the relay."""
    if not messages:
        return
    await conn.executemany(
        "INSERT INTO hub_outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4::jsonb)",
        [(m.topic, m.key, m.value, _headers_json(m.headers)) for m in messages],
    )
    await conn.execute(f"NOTIFY {CHANNEL}")


def _headers_json(headers: Headers) -> str:
    return json.dumps([[k, v.decode("utf-8", "backslashreplace")] for k, v in headers])


class OutboxRelay:
    """Publishes one database's outbox to Kafka, in order, at least once."""

    LOCK_KEY = 0x6875626F  # "hubo": one active relay per database

    def __init__(
        self, dsn: str, producer: Producer, signer: Callable[[], SigningKey], *,
        batch_size: int = 1000,
    ) -> None:
        self.dsn = dsn
        self.producer = producer
        self.signer = signer
        """The agency's active key, asked for once per batch: every batch is signed as it
        leaves (one JWS over its Merkle root, hub.signing), and a rotation takes effect at
        the next batch."""
        self.batch_size = batch_size
        self.published = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.active = asyncio.Event()
        self.done = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand and return from `run`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped, reconnecting after transient faults."""
        try:
            await self._run()
        finally:
            self.done.set()

    async def _run(self) -> None:
        backoff = Backoff(cap=5.0)
        while not self._stopping.is_set():
            try:
                await self._run_connected()
                backoff.reset()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.active.clear()
                log.warning(
                    "outbox relay lost a connection, retrying",
                    error_class=type(exc).__name__,
                    error=str(exc)[:300],
                )
                await backoff.wait()

    async def _run_connected(self) -> None:
        conn: Connection = await asyncpg.connect(self.dsn)
        try:
            await self._become_active(conn)
            if self._stopping.is_set():
                return
            await conn.add_listener(CHANNEL, self._on_notify)
            self.active.set()
            log.info("outbox relay active")
            while not self._stopping.is_set():
                sent = await self._relay_once(conn)
                if sent < self.batch_size:
                    await self._sleep_until_woken(1.0)
        finally:
            self.active.clear()
            await conn.close(timeout=5)

    async def _become_active(self, conn: Connection) -> None:
        announced = False
        while not self._stopping.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.LOCK_KEY):
                return
            if not announced:
                log.info("another outbox relay is active; standing by")
                announced = True
            await asyncio.sleep(0.5)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _sleep_until_woken(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _relay_once(self, conn: Connection) -> int:
        self._wake.clear()
        rows = await conn.fetch(
            "SELECT id, topic, key, value, headers FROM hub_outbox ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        futures = []
        key = self.signer()
        sent_headers = []
        # One signature for the batch, over the Merkle root of its values (hub.signing).
        jws, places = key.sign_batch([row["value"] for row in rows])
        for row, place in zip(rows, places, strict=True):
            headers = [(k, v.encode()) for k, v in json.loads(row["headers"])]
            headers += [(SIGNATURE_HEADER, jws), (TREE_HEADER, place)]
            sent_headers.append(headers)
            futures.append(
                await self.producer.send(
                    row["topic"], key=row["key"], value=row["value"], headers=headers
                )
            )
        acks = await asyncio.gather(*futures)
        # Only what Kafka acknowledged is deleted (and logged as sent, where it landed); a
        # crash before the commit re-sends, and the evidence log then holds the second copy.
        async with conn.transaction():
            await append(conn, [
                sent_entry(ack.topic, ack.partition, ack.offset, row["value"], headers,
                           key.signer, key.kid, **_identity(row["value"]))
                for row, headers, ack in zip(rows, sent_headers, acks, strict=True)])
            await conn.execute(
                "DELETE FROM hub_outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        self.published += len(rows)
        return len(rows)


def _identity(value: bytes) -> dict[str, str | None]:
    """The CloudEvent id, type and subject of an outbox value, for the evidence log."""
    try:
        event = json.loads(value)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        event = {}
    return {k: (str(event[f]) if event.get(f) is not None else None)
            for k, f in (("event_id", "id"), ("event_type", "type"), ("subject", "subject"))}
