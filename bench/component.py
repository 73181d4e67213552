"""Child process: one long-running hub component for the live-latency phase.

    python -m bench.component relay | card | public_security | social_insurance

Runs the hub's own `running_relay` or `running_consumer` until SIGTERM, then prints its
counters, CPU time and peak RSS as the result line.

`BENCH_WHATIF` (comma-separated, for measuring a change to the consumer before making it;
the result line names the ones applied) patches a consumer from outside:

- `fetch_wait=MS`: the Kafka consumer's `fetch_max_wait_ms` (the hub's is 500);
- `min_bytes=N`: its `fetch_min_bytes` (1): the broker holds a fetch until N bytes or the
  wait, so a live view takes fewer, larger batches (a transaction and fsync each);
- `gc_defaults`: CPython's garbage collector as it comes, not `hub.consumer.tune_gc` (which
  `hub run` and this child otherwise apply once started);
- `quiet_enqueue`: the view's outcome events are written to its outbox without the NOTIFY
  in its transaction (which holds Postgres' cluster-wide notify lock through the commit's
  fsync, so every notifying commit waits for the others'); its relay, if one ran, would
  find them by polling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from typing import Any

from bench.child import cpu_seconds, emit, install_stop_signal, peak_rss_mb
from hub.bootstrap import running_consumer, running_relay
from hub.consumer import tune_gc
from hub.logging import configure_logging
from hub.settings import Settings


async def _until(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _quiet_enqueue(conn: Any, messages: Any) -> None:
    from hub.outbox import outbox_row

    if messages:
        await conn.executemany(
            "INSERT INTO hub_outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4::jsonb)",
            [outbox_row(m) for m in messages])


def what_if(spec: str) -> list[str]:
    """Apply the `BENCH_WHATIF` patches (module docstring); the ones applied."""
    import aiokafka

    import hub.consumer
    import hub.dispatch

    kafka: dict[str, int] = {}
    applied = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, value = item.partition("=")
        if name == "fetch_wait":
            kafka["fetch_max_wait_ms"] = int(value)
        elif name == "min_bytes":
            kafka["fetch_min_bytes"] = int(value)
        elif name == "gc_defaults":
            pass  # `run` leaves the collector alone
        elif name == "quiet_enqueue":
            setattr(hub.dispatch, "enqueue", _quiet_enqueue)  # noqa: B010 - a patch
        else:
            raise SystemExit(f"unknown BENCH_WHATIF item {item!r}")
        applied.append(item)
    if kafka:
        def consumer(*args: Any, **options: Any) -> aiokafka.AIOKafkaConsumer:
            return aiokafka.AIOKafkaConsumer(*args, **(options | kafka))

        setattr(hub.consumer, "AIOKafkaConsumer", consumer)  # noqa: B010 - a patch
    return applied


async def run(component: str) -> dict[str, Any]:
    """Run the component until stopped; return its counters."""
    settings = Settings()
    whatif = what_if(os.environ.get("BENCH_WHATIF", "")) if component != "relay" else []
    if "gc_defaults" not in whatif:
        tune_gc()  # as `hub run` does
    configure_logging(settings.log_format, settings.log_level)
    stop = asyncio.Event()
    install_stop_signal(stop)
    result: dict[str, Any] = {"component": component}
    if component == "relay":
        async with running_relay(settings, "workpermit") as relay:
            await _until(stop, relay.done)
        result["published"] = relay.published
    else:
        client_id = f"bench-live-{component}"
        async with running_consumer(settings, component, client_id=client_id) as consumer:
            await _until(stop, consumer.done)
        stats = dataclasses.asdict(consumer.stats)
        stats.pop("last_commit_monotonic", None)
        result["stats"] = stats
    if whatif:
        result["what_if"] = whatif
    result["cpu_s"] = round(cpu_seconds(), 2)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    """Entry point: `python -m bench.component NAME`."""
    emit(asyncio.run(run(sys.argv[1])))


if __name__ == "__main__":
    main()
