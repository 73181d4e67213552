"""Child process: rebuild one agency view from offset 0 and report its rate and memory.

    python -m bench.rebuild AGENCY      (settings from HUB_* variables, set by the parent)

Runs the hub's own `running_consumer` (a ViewConsumer in the agency's consumer group) on an
empty view database until it has applied everything its topics hold, then checks with
`hub.ops.lag.caught_up` that the stored offsets equal the log-end offsets. Of its topics
(`Agency.reads`, as the registry gives them) only its own permit audience topic has records
in a bench run (`workpermit.permit-events.<agency>.v1`, each event cut down to what it
reads; bench/fill.py): `events_in_topic` counts them all.

What is measured:
- `wall_s`: from the moment the first fetched batch is accepted (`ViewConsumer._decode`)
  to the moment the `_land` call that applied the last event returned (its Postgres
  transaction committed). Group join and partition assignment come before and are
  reported apart as `startup_s`.
- `events_per_s`: events applied (`ConsumerStats.applied`) / `wall_s`.
- `peak_rss_mb`: this process's ru_maxrss at the end (imports, Kafka buffers, batch).
- a per-batch split: decoding (`_decode`: verify, decode, checks), the projection
  (`spec.apply`: handler, COPY, merge) and the rest of the batch's transaction
  (`_land` less the projection: offset lock and store, evidence, commit). The consumer
  accepts the next batch while a transaction is in flight, so these overlap:
  `overlap_s` is the time both ran, `waiting_for_kafka` the time neither did.
  The wrappers only read the clock a few times per batch.

The garbage collector is set as `hub run` sets it (`hub.consumer.tune_gc`). BENCH_GC (what-if
experiments, never set by `python -m bench`) sets it otherwise: `defaults` (CPython's),
or `freeze`, `threshold=N`, or both comma-separated.

With BENCH_PROFILE=path set and pyinstrument importable, the rebuild runs under
pyinstrument and its report is written to path (text) and path.html.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from bench.child import cpu_seconds, emit, peak_rss_mb
from hub.bootstrap import running_consumer
from hub.consumer import ViewConsumer, tune_gc
from hub.delivery import Delivery
from hub.kafka import end_offsets
from hub.kafka_credentials import OPS
from hub.logging import configure_logging
from hub.ops.lag import agency_lag, caught_up
from hub.registry import installed
from hub.settings import Settings


class BatchTiming:
    """Clock readings around each batch of a ViewConsumer, by wrapping its methods."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.first_start: float | None = None
        self.done_at: float | None = None  # when the batch that applied the last event landed
        self.cpu_at_first = 0.0
        self.cpu_at_done = 0.0
        self.finished = asyncio.Event()
        self.batches = 0
        self.records = 0
        self.landing = 0.0
        self.decode = 0.0
        self.apply = 0.0
        self.busy = 0.0  # time a decode or a transaction was under way
        self._active = 0
        self._busy_since = 0.0

    def _enter(self, now: float) -> None:
        if self._active == 0:
            self._busy_since = now
        self._active += 1

    def _leave(self, now: float) -> None:
        self._active -= 1
        if self._active == 0:
            self.busy += now - self._busy_since

    def attach(self, runtime: ViewConsumer) -> None:
        """Wrap `_land`, `_decode` and `spec.apply` of this runtime (instance attributes)."""
        land, decode, apply = runtime._land, runtime._decode, runtime.spec.apply

        async def timed_land(taken: Any) -> None:
            start = time.perf_counter()
            self._enter(start)
            try:
                await land(taken)
            finally:
                end = time.perf_counter()
                self._leave(end)
            if self.done_at is not None:
                return  # after the measured span (a redelivered duplicate, say)
            self.landing += end - start
            self.batches += 1
            self.records += sum(len(r) for r in taken.batch.values())
            if runtime.stats.applied + runtime.stats.dead_lettered >= self.total:
                self.done_at = end
                self.cpu_at_done = cpu_seconds()
                self.finished.set()

        def timed_decode(batch: dict[TopicPartition, list[ConsumerRecord]]) -> Any:
            start = time.perf_counter()
            if self.first_start is None:
                self.first_start = start
                self.cpu_at_first = cpu_seconds()
            self._enter(start)
            try:
                return decode(batch)
            finally:
                end = time.perf_counter()
                self._leave(end)
                self.decode += end - start

        async def timed_apply(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
            start = time.perf_counter()
            try:
                await apply(conn, deliveries)
            finally:
                self.apply += time.perf_counter() - start

        runtime._land = timed_land  # type: ignore[method-assign]
        runtime._decode = timed_decode  # type: ignore[method-assign]
        runtime.spec = dataclasses.replace(runtime.spec, apply=timed_apply)


async def rebuild(agency: str) -> dict[str, Any]:
    """Consume the agency's topics (its permit audience topic) into its (empty) view until
    caught up."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    read = [settings.topic(t) for t in installed().get(agency).reads]
    total = sum((await end_offsets(settings, read, OPS)).values())
    if any(p.stored is not None for p in await agency_lag(settings, agency)):
        raise RuntimeError(f"the {agency} database already holds offsets: not a rebuild")
    timing = BatchTiming(total)
    launched = time.perf_counter()
    async with running_consumer(settings, agency, client_id=f"bench-rebuild-{agency}") as runtime:
        timing.attach(runtime)
        stats = runtime.stats
        # No polling on the consumer's loop: the wrapper sets `finished` after the batch
        # that applied the last event (skipped redeliveries do not count as events).
        while not timing.finished.is_set():
            if runtime.done.is_set():
                raise RuntimeError(f"the {agency} consumer stopped before catching up")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(timing.finished.wait(), 1.0)
        applied, skipped = stats.applied, stats.skipped_below_stored
        is_caught_up = await caught_up(settings, agency)
    assert timing.first_start is not None
    assert timing.done_at is not None
    wall = timing.done_at - timing.first_start
    cpu_used = timing.cpu_at_done - timing.cpu_at_first
    return {
        "agency": agency,
        "batch_max_records": settings.batch_max_records,
        "events_in_topic": total,
        "applied": applied,
        "skipped_below_stored": skipped,
        "dead_lettered": stats.dead_lettered,
        "caught_up": is_caught_up,
        "startup_s": round(timing.first_start - launched, 3),
        "wall_s": round(wall, 3),
        "events_per_s": round(applied / wall, 1),
        "batches": timing.batches,
        "mean_batch": round(timing.records / max(timing.batches, 1), 1),
        "busy_fraction": round(timing.busy / wall, 3),
        "split_s": {
            "decode": round(timing.decode, 3),
            "projection": round(timing.apply, 3),
            "offsets_commit_rest": round(timing.landing - timing.apply, 3),
            "overlap_s": round(timing.decode + timing.landing - timing.busy, 3),
            "waiting_for_kafka": round(wall - timing.busy, 3),
        },
        "cpu_s": round(cpu_used, 3),
        "cpu_us_per_event": round(cpu_used / max(applied, 1) * 1e6, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def _gc_experiment(spec: str) -> None:
    """BENCH_GC, for what-if runs only: `defaults`, or `freeze` and/or `threshold=N` (gen0
    threshold); unset, the collector is set as `hub run` sets it."""
    if not spec:
        tune_gc()
        return
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part == "freeze":
            gc.collect()
            gc.freeze()
        elif part == "defaults":
            pass
        elif part.startswith("threshold="):
            gc.set_threshold(int(part.split("=", 1)[1]), *gc.get_threshold()[1:])
        else:
            raise ValueError(f"unknown BENCH_GC part {part!r}")


def main() -> None:
    """Entry point: `python -m bench.rebuild AGENCY`."""
    agency = sys.argv[1]
    _gc_experiment(os.environ.get("BENCH_GC", ""))
    profile_path = os.environ.get("BENCH_PROFILE")
    if profile_path:
        from pyinstrument import Profiler  # optional, only when profiling

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        result = asyncio.run(rebuild(agency))
        profiler.stop()
        with open(profile_path, "w") as out:
            out.write(profiler.output_text(unicode=True, show_all=False))
        with open(f"{profile_path}.html", "w") as out:
            out.write(profiler.output_html())
    else:
        result = asyncio.run(rebuild(agency))
    emit(result)


if __name__ == "__main__":
    main()
