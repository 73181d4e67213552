"""`python -m bench [--events N] [--rate R] [--latency-seconds S] [--json PATH]`

One run: own Kafka + durable Postgres on free ports in a temp dir → fill every agency's
permit audience topic (each event once per agency, cut down to what it reads) → reference
decode rate (the card's topic) → rebuild of each agency view in a child process → live
end-to-end latency with the relay and the three consumers as child processes → table (and
JSON) → everything stopped. BENCHMARKS.md explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import machine, signatures
from bench.child import spawn
from bench.cpu import CpuMonitor
from bench.fill import fill
from bench.live import run_live
from bench.report import render, verdicts
from bench.stack import REPO_ROOT, BenchStack, kafka_libs_dir
from hub import bootstrap
from hub.bootstrap import init_all
from hub.logging import configure_logging
from hub.ops.replay import run_replay
from hub.registry import installed
from hub.settings import Settings

AGENCIES = tuple(a.name for a in installed().consumers())
_T0 = time.perf_counter()


def say(message: str) -> None:
    """Progress on stderr, with the time since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    env_batch = os.environ.get("HUB_BATCH_MAX_RECORDS")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000,
                        help="synthetic permit lifecycle events, each written to every agency's "
                             "audience topic (default 200000)")
    parser.add_argument("--rate", type=float, default=1000,
                        help="authority commands per second in the live phase (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=30,
                        help="length of the live window; 0 skips the phase (default 30)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--partitions", type=int, default=6, help="topic partitions (default 6)")
    parser.add_argument("--brokers", type=int, default=1, choices=range(1, 10), metavar="N",
                        help="Kafka nodes (default 1); with 3, topics get three replicas and "
                             "need two in sync")
    parser.add_argument(
        "--batch-sizes", default=env_batch or "500,2000,5000",
        help="HUB_BATCH_MAX_RECORDS values to try on the card rebuild; the one with the "
             "least consumer CPU per event is used for all three views "
             "(default: $HUB_BATCH_MAX_RECORDS, else 500,2000,5000)")
    parser.add_argument("--linger-ms", type=int, default=20,
                        help="producer linger while filling (default 20)")
    parser.add_argument("--authority-pool", type=int, default=8,
                        help="connections of the authority's pool in the live phase (default 8)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (data, logs) instead of deleting it")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(x) for x in str(args.batch_sizes).split(",") if x.strip()]
    return args


async def checkpoint(stack: BenchStack) -> None:
    """Flush dirty pages now, so a phase does not pay for the previous one's checkpoint."""
    conn = await asyncpg.connect(stack.settings.server_url())
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def reset_agency_database(stack: BenchStack, agency: str) -> None:
    """Empty every table of one agency's database: views, stored offsets, handled events,
    outbox, evidence log and the other append-only records (TRUNCATE: new files, no dead
    rows), as before its first rebuild.
    As the owner: the runtime role may not truncate, and the evidence log refuses it to
    anyone until its owner switches the append-only trigger off (a bench database only)."""
    async with bootstrap.pool(stack.settings, agency, max_size=1, role="owner") as p, \
            p.acquire() as conn, conn.transaction():
        tables = [r["t"] for r in await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public'")]
        # Every append-only record (evidence, looks, retention runs) refuses TRUNCATE
        # through a user trigger.
        guarded = [r["t"] for r in await conn.fetch(
            "SELECT DISTINCT quote_ident(c.relname) AS t FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND NOT t.tgisinternal")]
        if tables:
            for table in guarded:
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await conn.execute(f"TRUNCATE {', '.join(tables)}")
            for table in guarded:
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def view_rows(stack: BenchStack, agency: str) -> int:
    """Rows in one agency's view."""
    table = installed().view(agency).table.name
    async with bootstrap.pool(stack.settings, agency, max_size=1) as p:
        return int(await p.fetchval(f"SELECT count(*) FROM {table}"))


async def run_child_measured(stack: BenchStack, name: str, module: str, args: list[str],
                             env: dict[str, str], log_dir: Path, wait_s: float) -> dict[str, Any]:
    """Run one measuring child to its end, with the CPU of it, Kafka and Postgres sampled."""
    await checkpoint(stack)
    async with CpuMonitor(stack.server_roots()) as monitor:
        child = await spawn(name, module, args, env, log_dir)
        monitor.add("consumer", child.pid)
        try:
            result = await child.result(wait_s)
        finally:
            child.kill()
    result["cpu"] = monitor.result()
    return result


async def rebuild_one(stack: BenchStack, agency: str, batch: int, log_dir: Path,
                      wait_s: float) -> dict[str, Any]:
    """Rebuild one empty view in a child process with this batch size."""
    env = stack.child_env(HUB_BATCH_MAX_RECORDS=str(batch))
    result = await run_child_measured(stack, f"rebuild-{agency}-{batch}", "bench.rebuild",
                                      [agency], env, log_dir, wait_s)
    result["view_rows"] = await view_rows(stack, agency)
    say(f"  {agency} (max {batch} records): {result['events_per_s']:,.0f} events/s, "
        f"{result['wall_s']:.2f} s, mean batch {result['mean_batch']:.0f}, "
        f"peak {result['peak_rss_mb']:.0f} MB, caught up: {result['caught_up']}")
    return result


async def replay_measured(settings: Settings, view: str) -> dict[str, Any]:
    """One full `hub replay` of a view, in this process: its events per second."""
    started = time.perf_counter()
    replay = await run_replay(settings, view, "earliest")
    wall = time.perf_counter() - started
    return {"view": view, "status": replay.status, "events": replay.events,
            "skipped": replay.skipped, "wall_s": round(wall, 2),
            "events_per_s": round(replay.events / wall, 1) if wall else 0.0}


async def run(args: argparse.Namespace, stack: BenchStack) -> dict[str, Any]:
    """All phases against a started stack."""
    settings = stack.settings
    log_dir = stack.home / "logs"
    log_dir.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "partitions": settings.partitions,
        "brokers": args.brokers,
        "replication_factor": settings.replication_factor,
        "min_insync_replicas": settings.min_insync_replicas,
        "machine": machine.describe(kafka_libs_dir(), stack.home),
        "code": machine.code_state(REPO_ROOT),
    }
    m = results["machine"]
    say(f"machine: {m['cpu_model']}, {m['cores_logical']} cores, {m['ram_gb']} GB RAM; "
        f"Python {m['python']}, Kafka {m['kafka']}, Postgres {m['postgres']}")

    results["signatures"] = signatures.measure()
    say(signatures.render(results["signatures"]).strip())

    await init_all(settings)
    results["durable_commit"] = await machine.durable_commit_ms(settings.server_url())
    say(f"stack up: Kafka {settings.bootstrap}, Postgres port {settings.postgres_port} "
        f"(durable), {settings.partitions} partitions, {settings.replication_factor} "
        f"replicas (min in sync {settings.min_insync_replicas}); one durable commit p50 "
        f"{results['durable_commit']['p50_ms']} ms")

    say(f"fill: {args.events:,} synthetic events, one record per event and audience")
    results["fill"] = f = await fill(settings, args.events, linger_ms=args.linger_ms)
    say(f"  {f['records']:,} records; {f['events_per_s']:,.0f} events/s ="
        f" {f['records_per_s']:,.0f} records/s produced")

    # A child that takes longer than this is stuck, not slow (100 events/s).
    timeout = max(600.0, args.events / 100)
    say("reference: bare decode consumer of the card's permit audience topic")
    env = stack.child_env(HUB_BATCH_MAX_RECORDS=str(max(args.batch_sizes)))
    results["reference"] = await run_child_measured(
        stack, "reference", "bench.reference", ["card"], env, log_dir, timeout)
    say(f"  {results['reference']['events_per_s']:,.0f} events/s")

    rebuild: dict[str, Any] = {}
    sizes = args.batch_sizes
    if len(sizes) > 1:
        say(f"rebuild: batch-size sweep on card: {sizes}")
        sweep = []
        for size in sizes:
            sweep.append(await rebuild_one(stack, "card", size, log_dir, timeout))
            await reset_agency_database(stack, "card")
        rebuild["sweep"] = sweep
        # Chosen by the consumer's CPU per event, which is what the batch size changes
        # (per-batch overheads) and which others' load on the machine disturbs far less
        # than the wall-clock rate.
        best = min(sweep, key=lambda r: r["cpu_us_per_event"])["batch_max_records"]
    else:
        best = sizes[0]
    rebuild["batch_max_records"] = best
    say(f"rebuild: each view from offset 0, max {best} records per batch")
    rebuild["views"] = [
        await rebuild_one(stack, agency, best, log_dir, timeout) for agency in AGENCIES
    ]
    for r in rebuild["views"]:
        # Every permit of the fill must have its row, every event must have been applied.
        r["correct"] = (r["view_rows"] == results["fill"]["permits"] and r["caught_up"]
                        and r["applied"] == r["events_in_topic"])
        if not r["correct"]:
            say(f"  WRONG: the {r['agency']} view has {r['view_rows']} rows for "
                f"{results['fill']['permits']} permits, applied {r['applied']} of "
                f"{r['events_in_topic']} events, caught up: {r['caught_up']}")
    results["rebuild"] = rebuild

    # `hub replay` after the rebuild: the card's evidence log now proves every record it
    # verified and applied, so the replay checks digests and key status, not Ed25519.
    say("replay: hub replay card --from earliest (records proven by the evidence log)")
    results["replay"] = await replay_measured(settings, "card")
    say(f"  {results['replay']['events_per_s']:,.0f} events/s, status"
        f" {results['replay']['status']}")

    if args.latency_seconds > 0:
        await checkpoint(stack)
        say(f"live: relay + 3 consumers as child processes, {args.rate:g} commands/s for "
            f"{args.latency_seconds:g} s")
        try:
            results["live"] = await run_live(
                stack, rate=args.rate, seconds=args.latency_seconds,
                pool_size=args.authority_pool, log_dir=log_dir, say=say)
        except Exception as exc:  # the figures so far are still worth printing
            results["live_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            say(f"  live phase FAILED: {results['live_error']}")
        else:
            lat = results["live"]["latency_ms"]
            say(f"  p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms;"
                f" achieved {results['live']['achieved_rate']:,.0f}/s")
    results["targets"] = verdicts(results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench`."""
    args = parse_args(argv)
    configure_logging("console", "WARNING")
    stack = BenchStack.create(partitions=args.partitions, brokers=args.brokers,
                              keep=args.keep)
    say(f"starting Kafka and durable Postgres in {stack.home}")
    try:
        stack.start()
        results = asyncio.run(run(args, stack))
    finally:
        say("stopping Kafka and Postgres")
        stack.stop()
        if args.keep:
            say(f"kept {stack.home}")
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
