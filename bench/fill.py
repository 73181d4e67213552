"""Fill the permit topic with synthetic lifecycle events, as the authority's relay would.

Events come from `demo.synthetic.stream` in chunks of permits (each chunk its own permit
numbers, so per-permit order holds across the whole topic and memory stays bounded);
the last chunk is cut at exactly N events, which leaves some lifecycles unfinished —
still valid, since a prefix of a lifecycle is in order.

The fill rate is timed over the sending only (`send` + waiting for every acknowledgement
of a chunk); generating and encoding the events is timed apart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from demo.synthetic import stream
from hub import bootstrap
from hub.evidence_chain import TREE_HEADER
from hub.registry import installed
from hub.settings import Settings
from hub.signing import SIGNATURE_HEADER
from schemas import CONTENT_TYPE, topics

CHUNK_PERMITS = 2000
RELAY_BATCH = 1000
"""The outbox relay's batch size (`OutboxRelay.batch_size`): one signature per batch."""
BASE = 900_000_000_000_000_000


async def fill(
    settings: Settings, events: int, *, seed: int = 7, linger_ms: int = 20
) -> dict[str, Any]:
    """Produce `events` synthetic events to the permit topic; return counts and rates."""
    topic = settings.topic(topics.PERMIT_EVENTS)
    content = ("content-type", CONTENT_TYPE.encode())
    # Signed as the authority's relay signs them (one JWS per batch of RELAY_BATCH over its
    # Merkle root): the consumers verify every record.
    signer = bootstrap.signing_key(settings, "workpermit")
    produced = permits = chunk = 0
    generate_s = send_s = 0.0
    value_bytes = 0
    # As the authority, the one principal that writes the permit topic.
    authority = installed().authority().name
    async with bootstrap.producer(settings, "bench-fill", principal=authority,
                                  linger_ms=linger_ms) as prod:
        while produced < events:
            start = time.perf_counter()
            messages: list[tuple[bytes, bytes]] = []
            subjects: set[str] = set()
            base = BASE + chunk * CHUNK_PERMITS
            for event in stream(CHUNK_PERMITS, seed=seed + chunk, base=base):
                messages.append((event.subject.encode(), event.to_json()))
                subjects.add(event.subject)
                if produced + len(messages) >= events:
                    break
            generate_s += time.perf_counter() - start
            start = time.perf_counter()
            futures = []
            for i in range(0, len(messages), RELAY_BATCH):
                batch = messages[i:i + RELAY_BATCH]
                jws, places = signer.sign_batch([value for _, value in batch])
                futures += [
                    await prod.send(topic, key=key, value=value, headers=[
                        content, (SIGNATURE_HEADER, jws), (TREE_HEADER, place)])
                    for (key, value), place in zip(batch, places, strict=True)
                ]
            await asyncio.gather(*futures)
            send_s += time.perf_counter() - start
            produced += len(messages)
            permits += len(subjects)
            value_bytes += sum(len(v) for _, v in messages)
            chunk += 1
    return {
        "events": produced,
        "permits": permits,
        "events_per_permit": round(produced / permits, 2),
        "mean_value_bytes": round(value_bytes / produced),
        "linger_ms": linger_ms,
        "generate_s": round(generate_s, 2),
        "send_s": round(send_s, 2),
        "events_per_s": round(produced / send_s, 1),
    }
