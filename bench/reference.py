"""Child process: the reference rate, a bare consumer that only decodes one agency's permit
audience topic, and the bare fetch ceiling, the same consumer decoding nothing.

    python -m bench.reference [AGENCY] [--fetch-only]   (settings from HUB_* variables)

The permit lifecycle is published per audience: each agency reads its own topic, each
event cut down to what it reads (`topics.audience_topic`, `schemas.audiences`). The
reference reads the card's (AGENCY, `card` by default): the card is the view the batch-size
sweep runs on, so its rebuilds and the reference decode the same records. Its records are
the smallest of the three audiences' (it reads the fewest paths), so its rate is the upper
one; the other views' "x ref" compare them against decoding the card's records.

A plain AIOKafkaConsumer without a group: every partition assigned, seeked to the start,
`getmany` batches of HUB_BATCH_MAX_RECORDS, each value decoded with the permit event types
as that agency decodes them (narrowed to its paths: the `accepts` the registry gives it,
what its ViewConsumer's codec holds for them) and thrown away. The fetch settings are the
ones ViewConsumer uses, so the difference to a rebuild is the view's own work (mapping,
Postgres, offsets in the transaction), not the Kafka client's tuning.

`events_per_s` = events decoded / time from the first batch returned to the last decoded.

With `--fetch-only` the values are not decoded: the rate of aiokafka itself (TLS, SCRAM,
fetch, record parsing into ConsumerRecord) on the same records, the ceiling issue 13 sets
the rebuild target against (every view >= 0.5 x this).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.child import cpu_seconds, emit, peak_rss_mb
from hub.kafka import client_options, partitions_of
from hub.kafka_credentials import OPS
from hub.logging import configure_logging
from hub.registry import installed
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES, Codec, topics
from schemas.audiences import contract_of

DEFAULT_AGENCY = "card"


async def reference(agency: str = DEFAULT_AGENCY, *, decode_values: bool = True) -> dict[str, Any]:
    """Decode (or only fetch) the agency's whole permit audience topic once; return the
    rate."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    declared = installed().get(agency)
    topic = settings.topic(declared.read_topic(topics.PERMIT_EVENTS))
    decode = Codec(tuple(t for t in declared.accepts
                         if contract_of(t) in PERMIT_EVENT_TYPES)).decode
    consumer = AIOKafkaConsumer(
        **client_options(settings, OPS),
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        fetch_max_wait_ms=500,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        total = sum((await consumer.end_offsets(tps)).values())
        decoded = 0
        first: float | None = None
        cpu0 = 0.0
        while decoded < total:
            batch = await consumer.getmany(timeout_ms=settings.batch_timeout_ms,
                                           max_records=settings.batch_max_records)
            if first is None and batch:
                first = time.perf_counter()
                cpu0 = cpu_seconds()
            for records in batch.values():
                if decode_values:
                    for record in records:
                        decode(record.value)
                decoded += len(records)
        end = time.perf_counter()
        cpu_used = cpu_seconds() - cpu0
    finally:
        await consumer.stop()
    assert first is not None
    return {
        "agency": agency,
        "topic": topic,
        "decoded": decode_values,
        "events": decoded,
        "batch_max_records": settings.batch_max_records,
        "wall_s": round(end - first, 3),
        "events_per_s": round(decoded / (end - first), 1),
        "cpu_us_per_event": round(cpu_used / decoded * 1e6, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    """Entry point: `python -m bench.reference [AGENCY]`."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    emit(asyncio.run(reference(*args[:1], decode_values="--fetch-only" not in sys.argv)))


if __name__ == "__main__":
    main()
