"""What SASL_SSL costs per message: `python -m bench.security_cost [--records N] [--rounds R]`.

For each mode (PLAINTEXT, then SASL_SSL with SCRAM-SHA-512 over TLS) a throwaway Kafka node
is started on free ports in a temporary home; the hub's own client options
(`hub.kafka.client_options`) produce N small records (100 bytes, idempotent, acks=all) to
a one-partition topic and consume them back without a group. The best of R rounds is
printed per mode, as records per second and microseconds per record, with the login
(connection set-up) measured apart. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stack import free_ports, kafka_libs_dir
from hub.kafka import client_options, ensure_topics
from hub.kafka_credentials import ADMIN
from hub.settings import Settings
from hub.stack.local import kafka_node

Mode = Literal["plaintext", "sasl_ssl"]
VALUE = b"x" * 100


async def _produce(settings: Settings, topic: str, records: int) -> tuple[float, float]:
    producer = AIOKafkaProducer(**client_options(settings, ADMIN), enable_idempotence=True,
                                acks="all", linger_ms=5, max_batch_size=256 * 1024)
    started = time.perf_counter()
    await producer.start()
    login = time.perf_counter() - started
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, VALUE, key=str(n).encode()) for n in range(records)]
        await asyncio.gather(*futures)
        return login, time.perf_counter() - started
    finally:
        await producer.stop()


async def _consume(settings: Settings, topic: str, records: int) -> float:
    reader = AIOKafkaConsumer(**client_options(settings, ADMIN), enable_auto_commit=False,
                              max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20)
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        started, seen = time.perf_counter(), 0
        while seen < records:
            batch = await reader.getmany(tp, timeout_ms=1000, max_records=10_000)
            seen += sum(len(r) for r in batch.values())
        return time.perf_counter() - started
    finally:
        await reader.stop()


async def _rounds(settings: Settings, records: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for n in range(rounds):
        topic = f"cost-{n}"
        await ensure_topics(settings.model_copy(update={"partitions": 1}), {topic: "retained"},
                            ADMIN)
        login, produced = await _produce(settings, topic, records)
        consumed = await _consume(settings, topic, records)
        for key, value in (("login_s", login), ("produce_s", produced), ("consume_s", consumed)):
            best[key] = min(best.get(key, value), value)
    return best


def _measure(mode: Mode, records: int, rounds: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="permithub-cost-"))
    port, controller = free_ports(2)
    settings = Settings(home=home, kafka_port=port, kafka_controller_port=controller,
                        kafka_bootstrap=f"127.0.0.1:{port}", kafka_security_protocol=mode,
                        kafka_libs=kafka_libs_dir())
    node = kafka_node(settings, home / "kafka")
    try:
        node.start()
        node.wait_ready()
        best = asyncio.run(_rounds(settings, records, rounds))
    finally:
        node.stop()
        shutil.rmtree(home, ignore_errors=True)
    return {"mode": mode, "records": records, "login_ms": round(best["login_s"] * 1000, 1),
            **{f"{k}_per_s": round(records / best[f"{k}_s"]) for k in ("produce", "consume")},
            **{f"{k}_us_per_record": round(best[f"{k}_s"] / records * 1e6, 2)
               for k in ("produce", "consume")}}


def main() -> None:
    """Measure both modes and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for mode in ("plaintext", "sasl_ssl"):
        print(json.dumps(_measure(mode, args.records, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
