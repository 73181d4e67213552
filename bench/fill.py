"""Fill every agency's permit audience topic with synthetic lifecycle events, as the
authority's relay would.

Events come from `demo.synthetic.stream` in chunks of permits (each chunk its own permit
numbers, so per-permit order holds across every topic and memory stays bounded);
the last chunk is cut at exactly N events, which leaves some lifecycles unfinished —
still valid, since a prefix of a lifecycle is in order.

The permit lifecycle is published per audience (`hub.agency.Channel.per_audience`): the
relay sends each event once per reading agency, to that agency's topic, with `data` cut
down to the paths its expectations read (`hub.agency.Audience.project`). The fill does the
same with the registry's list (`Registry.audiences`, what `running_relay` hands the relay):
N events become one record per event and audience (3N with the three agencies today, each
smaller than the full event), and each batch of RELAY_BATCH events is signed as the relay
signs it: one JWS over the Merkle root of all its records, every audience's copies together,
in the relay's order (event by event, each event's copies in the audiences' order).

The fill rate is timed over the signing and sending only (`sign_batch`, `send` + waiting
for every acknowledgement of a chunk); generating and encoding the events, and projecting
them per audience, are timed apart.
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
"""The outbox relay's batch size (`OutboxRelay.batch_size`): one signature per batch of
this many outbox rows, whatever number of records they fan out to."""
BASE = 900_000_000_000_000_000


def audience_labels(settings: Settings) -> dict[str, str]:
    """Each prefixed topic the authority's relay writes the permit lifecycle to → the agency
    that reads it (the topic itself for a copy in full, if the channel kept one)."""
    registry = installed()
    authority = registry.get(registry.authority().name)
    named = {settings.topic(a.topic): a.agency for a in authority.audiences}
    fan_out = registry.audiences(settings, authority.name)[settings.topic(topics.PERMIT_EVENTS)]
    topics_ = ([fan_out.full] if fan_out.full else []) + [t for t, _ in fan_out.audiences]
    return {topic: named.get(topic, topic) for topic in topics_}


async def fill(
    settings: Settings, events: int, *, seed: int = 7, linger_ms: int = 20, first_chunk: int = 0
) -> dict[str, Any]:
    """Produce `events` synthetic events to every audience topic; return counts and rates.

    `first_chunk` continues an earlier fill (the `chunks` it returned, summed): its chunks
    get new permit numbers and seeds, so the topics grow by new permits."""
    registry = installed()
    # As the authority, the one principal that writes the permit audience topics.
    authority = registry.authority().name
    fan_out = registry.audiences(settings, authority)[settings.topic(topics.PERMIT_EVENTS)]
    labels = audience_labels(settings)
    content = ("content-type", CONTENT_TYPE.encode())
    # Signed as the authority's relay signs them (one JWS per batch of RELAY_BATCH outbox
    # rows over the Merkle root of all their copies): the consumers verify every record.
    signer = bootstrap.signing_key(settings, "workpermit")
    produced = permits = records = 0
    chunk = first_chunk
    generate_s = project_s = send_s = 0.0
    value_bytes = 0
    audience_records = dict.fromkeys(labels.values(), 0)
    audience_bytes = dict.fromkeys(labels.values(), 0)
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
            # Per relay batch of outbox rows: each row's copies, as `OutboxRelay._copies`.
            batches: list[list[tuple[str, bytes, bytes]]] = []
            for i in range(0, len(messages), RELAY_BATCH):
                batches.append([
                    (topic, key, copy)
                    for key, value in messages[i:i + RELAY_BATCH]
                    for topic, copy in fan_out(value)
                ])
            project_s += time.perf_counter() - start
            start = time.perf_counter()
            futures = []
            for batch in batches:
                jws, places = signer.sign_batch([copy for _, _, copy in batch])
                futures += [
                    await prod.send(topic, key=key, value=copy, headers=[
                        content, (SIGNATURE_HEADER, jws), (TREE_HEADER, place)])
                    for (topic, key, copy), place in zip(batch, places, strict=True)
                ]
            await asyncio.gather(*futures)
            send_s += time.perf_counter() - start
            produced += len(messages)
            permits += len(subjects)
            value_bytes += sum(len(v) for _, v in messages)
            for batch in batches:
                records += len(batch)
                for topic, _, copy in batch:
                    audience_records[labels[topic]] += 1
                    audience_bytes[labels[topic]] += len(copy)
            chunk += 1
    return {
        "events": produced,
        "permits": permits,
        "events_per_permit": round(produced / permits, 2),
        "mean_value_bytes": round(value_bytes / produced),
        "records": records,
        "records_per_event": round(records / produced, 2),
        "audiences": {
            agency: {"topic": topic, "records": audience_records[agency],
                     "mean_value_bytes": round(audience_bytes[agency]
                                               / max(audience_records[agency], 1))}
            for topic, agency in labels.items()},
        "linger_ms": linger_ms,
        "chunks": chunk - first_chunk,
        "generate_s": round(generate_s, 2),
        "project_s": round(project_s, 2),
        "send_s": round(send_s, 2),
        "events_per_s": round(produced / send_s, 1),
        "records_per_s": round(records / send_s, 1),
    }


def merge_fills(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One fill result for several consecutive fills (a topic grown step by step): counts
    and times summed, means and rates over the sums."""
    if len(parts) == 1:
        return parts[0]
    events = sum(p["events"] for p in parts)
    permits = sum(p["permits"] for p in parts)
    records = sum(p["records"] for p in parts)
    send_s = sum(p["send_s"] for p in parts)
    audiences: dict[str, dict[str, Any]] = {}
    for part in parts:
        for agency, a in part["audiences"].items():
            into = audiences.setdefault(agency, {"topic": a["topic"], "records": 0, "bytes": 0})
            into["records"] += a["records"]
            into["bytes"] += a["records"] * a["mean_value_bytes"]
    return {
        "events": events,
        "permits": permits,
        "events_per_permit": round(events / permits, 2),
        "mean_value_bytes": round(sum(p["events"] * p["mean_value_bytes"] for p in parts)
                                  / events),
        "records": records,
        "records_per_event": round(records / events, 2),
        "audiences": {agency: {"topic": a["topic"], "records": a["records"],
                               "mean_value_bytes": round(a["bytes"] / max(a["records"], 1))}
                      for agency, a in audiences.items()},
        "linger_ms": parts[0]["linger_ms"],
        "chunks": sum(p["chunks"] for p in parts),
        "steps": len(parts),
        "generate_s": round(sum(p["generate_s"] for p in parts), 2),
        "project_s": round(sum(p["project_s"] for p in parts), 2),
        "send_s": round(send_s, 2),
        "events_per_s": round(events / send_s, 1),
        "records_per_s": round(records / send_s, 1),
    }
