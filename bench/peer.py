"""Child process: the peer, what a team using FastStream would write first to keep the card
view, on the card's permit audience topic.

    python -m bench.peer SECONDS   (settings from HUB_* variables, the peer's own database's
                                    URL from BENCH_PEER_DATABASE_URL, set by the parent)

A FastStream `KafkaBroker` (faststream[kafka], the framework of the hub's design card) with
one subscriber on the card's topic, every option at its documented default but two that
reading a topic's history needs: `auto_offset_reset="earliest"` (the default, "latest",
would wait for new records) and the broker's TLS + SCRAM-SHA-512 login as the ops principal,
like every hub client. So: no group (`group_id=None`, no offsets committed), one message at
a time (`max_workers=1`), the default fetch settings. FastStream leaves a value whose
content type is `application/cloudevents+json` as bytes (it decodes only
`application/json`), so the handler `json.loads` it, maps it to the card's row
(permit_no -> status, holder, employer, dates, the event's sequence and type) and runs one
asyncpg upsert per message on a pool, in autocommit: one durable Postgres commit per
message, a later sequence wins. It verifies no signature, keeps no evidence log and no
exactly-once offsets: it does less than the hub, on purpose the first thing a team writes.

It runs until it has handled every record the topic held at its start, or SECONDS, and
reports `events_per_s` = messages handled / time from the first message to the last upsert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import date
from typing import Any

import asyncpg
from faststream.kafka import KafkaBroker

from bench.child import cpu_seconds, emit, install_stop_signal, peak_rss_mb
from hub.kafka import client_options, end_offsets, faststream_options
from hub.kafka_credentials import OPS
from hub.logging import configure_logging
from hub.registry import installed
from hub.settings import Settings
from schemas import topics

TABLE = """
CREATE TABLE IF NOT EXISTS card_peer (
    permit_no     text PRIMARY KEY,
    sequence      integer NOT NULL,
    status        text,
    standard      text,
    holder_name   text,
    nationality   char(2),
    category      char(1),
    employer_name text,
    position      text,
    valid_from    date,
    valid_until   date,
    last_event    text NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
UPSERT = """
INSERT INTO card_peer (permit_no, sequence, status, standard, holder_name, nationality,
                       category, employer_name, position, valid_from, valid_until, last_event)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (permit_no) DO UPDATE SET
    sequence = EXCLUDED.sequence, status = EXCLUDED.status, standard = EXCLUDED.standard,
    holder_name = EXCLUDED.holder_name, nationality = EXCLUDED.nationality,
    category = EXCLUDED.category, employer_name = EXCLUDED.employer_name,
    position = EXCLUDED.position, valid_from = EXCLUDED.valid_from,
    valid_until = EXCLUDED.valid_until, last_event = EXCLUDED.last_event,
    applied_at = clock_timestamp()
WHERE card_peer.sequence < EXCLUDED.sequence"""


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def row(event: dict[str, Any]) -> tuple[Any, ...]:
    """The card row of one decoded CloudEvent (the upsert's parameters)."""
    permit = (event.get("data") or {}).get("permit") or {}
    holder, employer = permit.get("holder") or {}, permit.get("employer") or {}
    return (event["subject"], int(event["sequence"]), permit.get("status"),
            permit.get("standard"), holder.get("name"), holder.get("nationality"),
            permit.get("category"), employer.get("name"), permit.get("position"),
            _date(permit.get("valid_from")), _date(permit.get("valid_until")), event["type"])


async def peer(database_url: str, seconds: float) -> dict[str, Any]:
    """Run the FastStream subscriber until it handled the topic or `seconds` passed."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    topic = settings.topic(installed().get("card").read_topic(topics.PERMIT_EVENTS))
    total = sum((await end_offsets(settings, [topic], OPS)).values())
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    await pool.execute(TABLE)
    broker = KafkaBroker(**faststream_options(client_options(settings, OPS)))
    done = asyncio.Event()
    install_stop_signal(done)
    handled = 0
    first: float | None = None
    last = 0.0
    cpu0 = 0.0

    @broker.subscriber(topic, auto_offset_reset="earliest")
    async def on_permit_event(body: bytes) -> None:
        nonlocal handled, first, last, cpu0
        if first is None:
            first = time.perf_counter()
            cpu0 = cpu_seconds()
        await pool.execute(UPSERT, *row(json.loads(body)))
        handled += 1
        last = time.perf_counter()
        if handled >= total:
            done.set()

    async with broker:
        await broker.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), seconds)
        cpu_used = cpu_seconds() - cpu0
    rows = await pool.fetchval("SELECT count(*) FROM card_peer")
    await pool.close()
    wall = last - first if first is not None else 0.0
    return {
        "framework": "faststream",
        "topic": topic,
        "events_in_topic": total,
        "handled": handled,
        "complete": handled >= total,
        "view_rows": rows,
        "time_limit_s": seconds,
        "wall_s": round(wall, 3),
        "events_per_s": round(handled / wall, 1) if wall else 0.0,
        "cpu_us_per_event": round(cpu_used / max(handled, 1) * 1e6, 1),
        "peak_rss_mb": peak_rss_mb(),
        "verifies_signatures": False,
    }


def main() -> None:
    """Entry point: `python -m bench.peer SECONDS`."""
    emit(asyncio.run(peer(os.environ["BENCH_PEER_DATABASE_URL"], float(sys.argv[1]))))


if __name__ == "__main__":
    main()
