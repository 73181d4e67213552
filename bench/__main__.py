"""`python -m bench [--events N] [--scale N,N,N] [--rates R,R,R] [--latency-seconds S]
[--json PATH] ...` (`--help` for all)

One run: own Kafka + durable Postgres on free ports in a temp dir → the topics grown step
by step (each event once per agency, cut down to what it reads), the card rebuilt at each
scale point below --events (the batch-size sweep at the first) → at --events: the ceilings
on the card's topic (kcat, bare aiokafka fetch, decode reference), the FastStream peer, the
rebuild of each agency view in a child process, `hub replay` → the latency curve (live
runs at each rate, then the search for the highest sustainable one) → the scale points
above --events → table, JSON and PNG charts (docs/bench/ by default) → everything
stopped. BENCHMARKS.md explains each figure.
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

from bench import curve, kcat, machine, signatures
from bench.charts import write_charts
from bench.child import spawn
from bench.cpu import CpuMonitor
from bench.fill import fill, merge_fills
from bench.live import run_live
from bench.report import LIVE_TARGET_RATE, render, verdicts
from bench.stack import REPO_ROOT, BenchStack, kafka_libs_dir
from hub import bootstrap
from hub.bootstrap import init_all
from hub.kafka import end_offsets
from hub.kafka_credentials import OPS
from hub.logging import configure_logging
from hub.ops.replay import run_replay
from hub.registry import installed
from hub.settings import Settings
from hub.stack.postgres import ensure_databases
from schemas import topics

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
    parser.add_argument("--scale", default="100000,200000,400000",
                        help="event counts at which the card view is rebuilt for the scale "
                             "series, the topics filled step by step; '' for none "
                             "(default 100000,200000,400000)")
    parser.add_argument("--rates", default="100,300,1000",
                        help="authority commands/s of the latency curve's live runs "
                             "(default 100,300,1000)")
    parser.add_argument("--rate", type=float,
                        help="one live rate only: the same as --rates R --search-steps 0")
    parser.add_argument("--latency-seconds", type=float, default=30,
                        help="length of each curve rate's live window; 0 skips the live "
                             "phase (default 30)")
    parser.add_argument("--search-steps", type=int, default=3,
                        help="extra live runs searching the highest sustainable rate "
                             "(default 3)")
    parser.add_argument("--search-seconds", type=float, default=15,
                        help="length of a search run's live window (default 15)")
    parser.add_argument("--sustain-p99-ms", type=float, default=500,
                        help="a rate is sustained when >= 99%% of it is achieved and p99 "
                             "stays within this (default 500)")
    parser.add_argument("--peer-seconds", type=float, default=60,
                        help="time limit of the FastStream peer; 0 skips it (default 60)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "bench" / "bench.json",
                        help="write the results as JSON here, the PNG charts beside it "
                             "(default docs/bench/bench.json)")
    parser.add_argument("--no-charts", action="store_true", help="write no PNG charts")
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
    args.scale = [int(x) for x in str(args.scale).split(",") if x.strip()]
    args.rates = sorted({float(x) for x in str(args.rates).split(",") if x.strip()})
    if args.rate is not None:
        args.rates, args.search_steps = [args.rate], 0
    # The rate the live target names (1000 commands/s), when the curve has it.
    args.target_rate = LIVE_TARGET_RATE if LIVE_TARGET_RATE in args.rates else (
        args.rates[-1] if args.rates else LIVE_TARGET_RATE)
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


async def fill_to(stack: BenchStack, state: dict[str, Any], target: int,
                  args: argparse.Namespace) -> None:
    """Grow the audience topics to `target` events on the card's topic (records the live
    phase published count), continuing the synthetic permits where the last fill ended."""
    topic = card_topic(stack.settings)
    have = sum((await end_offsets(stack.settings, [topic], OPS)).values())
    if have >= target:
        return
    say(f"fill: {target - have:,} synthetic events (the card's topic to {target:,}), one "
        "record per event and audience")
    f = await fill(stack.settings, target - have, linger_ms=args.linger_ms,
                   first_chunk=state["chunks"])
    state["chunks"] += f["chunks"]
    state["fills"].append(f)
    say(f"  {f['records']:,} records; {f['events_per_s']:,.0f} events/s ="
        f" {f['records_per_s']:,.0f} records/s produced")


def card_topic(settings: Settings) -> str:
    """The card's permit audience topic (prefixed)."""
    return settings.topic(installed().get("card").read_topic(topics.PERMIT_EVENTS))


def scale_point(rebuilt: dict[str, Any]) -> dict[str, Any]:
    """A rebuild's figures as a point of the scale series."""
    return {"events": rebuilt["events_in_topic"], "applied": rebuilt["applied"],
            "wall_s": rebuilt["wall_s"], "events_per_s": rebuilt["events_per_s"],
            "peak_rss_mb": rebuilt["peak_rss_mb"], "cpu_us_per_event": rebuilt["cpu_us_per_event"],
            "batch_max_records": rebuilt["batch_max_records"],
            "correct": rebuilt["caught_up"] and rebuilt["applied"] == rebuilt["events_in_topic"]}


async def ceilings(stack: BenchStack, args: argparse.Namespace, log_dir: Path,
                   wait_s: float) -> dict[str, Any]:
    """The card's topic read by kcat, by a bare aiokafka fetch and by the decode reference."""
    settings = stack.settings
    topic = card_topic(settings)
    total = sum((await end_offsets(settings, [topic], OPS)).values())
    out: dict[str, Any] = {}
    say("ceiling: kcat consumes the card's permit audience topic (TLS + SCRAM)")
    out["kcat"] = await kcat.consume_rate(settings, topic, total, wait_s=wait_s)
    if "skipped" in out["kcat"]:
        say(f"  skipped: {out['kcat']['skipped']}")
    else:
        say(f"  {out['kcat']['events_per_s']:,.0f} events/s ({out['kcat']['records']:,} records)")
    env = stack.child_env(HUB_BATCH_MAX_RECORDS=str(max(args.batch_sizes)))
    say("ceiling: bare aiokafka fetch of the same topic (no decode)")
    out["bare_fetch"] = await run_child_measured(
        stack, "bare-fetch", "bench.reference", ["card", "--fetch-only"], env, log_dir, wait_s)
    say(f"  {out['bare_fetch']['events_per_s']:,.0f} events/s")
    return out


async def peer_run(stack: BenchStack, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """The FastStream peer in a child process, on a database of its own."""
    name = f"{stack.settings.database_prefix}faststream_peer"
    await ensure_databases(stack.settings.server_url(), [name])
    url = stack.settings.server_url().rsplit("/", 1)[0] + "/" + name
    env = stack.child_env(BENCH_PEER_DATABASE_URL=url)
    say(f"peer: FastStream subscriber, one upsert per message (at most {args.peer_seconds:g} s)")
    result = await run_child_measured(stack, "peer-faststream", "bench.peer",
                                      [str(args.peer_seconds)], env, log_dir,
                                      args.peer_seconds + 300)
    say(f"  {result['events_per_s']:,.0f} events/s ({result['handled']:,} of "
        f"{result['events_in_topic']:,} handled, {result['view_rows']:,} rows)")
    return result


async def latency_curve(stack: BenchStack, args: argparse.Namespace,
                        log_dir: Path) -> list[dict[str, Any]]:
    """Live runs at the curve's rates, then the search for the highest sustainable rate."""
    runs: list[dict[str, Any]] = []
    tried: dict[float, bool] = {}

    async def one(rate: float, seconds: float, search: bool) -> None:
        await checkpoint(stack)
        say(f"live: relay + 3 consumers as child processes, {rate:g} commands/s for "
            f"{seconds:g} s{' (search)' if search else ''}")
        entry: dict[str, Any] = {"rate": rate, "seconds": seconds, "search": search}
        try:
            entry["live"] = await run_live(stack, rate=rate, seconds=seconds,
                                           pool_size=args.authority_pool, log_dir=log_dir,
                                           say=say)
        except Exception as exc:  # the figures so far are still worth printing
            entry["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            say(f"  live phase FAILED: {entry['error']}")
            entry["sustained"] = False
        else:
            live = entry["live"]
            lat = live["latency_ms"]
            entry["sustained"] = curve.sustained(live, args.sustain_p99_ms)
            say(f"  p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms;"
                f" achieved {live['achieved_rate']:,.0f}/s; sustained: {entry['sustained']}")
        tried[rate] = entry["sustained"]
        runs.append(entry)

    for rate in args.rates:
        await one(rate, args.latency_seconds, False)
    for _ in range(args.search_steps):
        rate = curve.next_rate(tried)
        if rate is None:
            break
        await one(rate, args.search_seconds, True)
    return runs


async def run(args: argparse.Namespace, stack: BenchStack) -> dict[str, Any]:
    """All phases against a started stack."""
    settings = stack.settings
    log_dir = stack.home / "logs"
    log_dir.mkdir(exist_ok=True)
    load = machine.LoadSampler()
    load.start()
    clock = machine.PhaseClock()
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
    clock.lap("stack and probes")

    # The topics grow step by step: the scale points below --events (card rebuilt at each;
    # the batch-size sweep runs at the first step), --events itself (every measurement but
    # the larger scale points), then after the live phase the scale points above it.
    steps = sorted(set(args.scale) | {args.events})
    below = [n for n in steps if n <= args.events]
    above = [n for n in steps if n > args.events]
    state: dict[str, Any] = {"chunks": 0, "fills": []}
    scale: list[dict[str, Any]] = []
    # A child that takes longer than this is stuck, not slow (100 events/s).
    timeout = max(600.0, max(steps) / 100)
    rebuild: dict[str, Any] = {}
    best = args.batch_sizes[0]
    for n in below:
        await fill_to(stack, state, n, args)
        clock.lap("fills")
        if n == below[0] and len(args.batch_sizes) > 1:
            say(f"rebuild: batch-size sweep on card at {n:,} events: {args.batch_sizes}")
            sweep = []
            for size in args.batch_sizes:
                sweep.append(await rebuild_one(stack, "card", size, log_dir, timeout))
                await reset_agency_database(stack, "card")
            rebuild["sweep"] = sweep
            # Chosen by the consumer's CPU per event, which is what the batch size changes
            # (per-batch overheads) and which others' load on the machine disturbs far less
            # than the wall-clock rate.
            chosen = min(sweep, key=lambda r: r["cpu_us_per_event"])
            best = chosen["batch_max_records"]
            if n != args.events and n in args.scale:
                scale.append(scale_point(chosen))
            clock.lap("batch-size sweep")
        elif n != args.events:
            say(f"scale: card rebuild at {n:,} events")
            scale.append(scale_point(await rebuild_one(stack, "card", best, log_dir, timeout)))
            await reset_agency_database(stack, "card")
            clock.lap("scale rebuilds")
    results["fill"] = merge_fills(state["fills"])

    results["ceilings"] = await ceilings(stack, args, log_dir, timeout)
    say("reference: bare decode consumer of the card's permit audience topic")
    env = stack.child_env(HUB_BATCH_MAX_RECORDS=str(max(args.batch_sizes)))
    results["reference"] = await run_child_measured(
        stack, "reference", "bench.reference", ["card"], env, log_dir, timeout)
    say(f"  {results['reference']['events_per_s']:,.0f} events/s")
    clock.lap("ceilings and reference")
    if args.peer_seconds > 0:
        results["peer"] = await peer_run(stack, args, log_dir)
        clock.lap("FastStream peer")

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
        if r["agency"] == "card" and args.events in args.scale:
            scale.append(scale_point(r))
    results["rebuild"] = rebuild
    clock.lap("rebuild of the views")

    # `hub replay` after the rebuild: the card's evidence log now proves every record it
    # verified and applied, so the replay checks digests and key status, not Ed25519.
    say("replay: hub replay card --from earliest (records proven by the evidence log)")
    results["replay"] = await replay_measured(settings, "card")
    say(f"  {results['replay']['events_per_s']:,.0f} events/s, status"
        f" {results['replay']['status']}")
    clock.lap("replay")

    if args.latency_seconds > 0 and args.rates:
        runs = await latency_curve(stack, args, log_dir)
        results["latency_curve"] = runs
        tried = {r["rate"]: r["sustained"] for r in runs}
        results["highest_sustainable_rate"] = curve.highest_sustainable(tried)
        results["sustain_rule"] = {"achieved_share": curve.ACHIEVED_SHARE,
                                   "max_p99_ms": args.sustain_p99_ms}
        say(f"highest sustainable rate: {results['highest_sustainable_rate']} commands/s")
        # The report's live section: the fixed rate the target names (1000), else the
        # highest fixed rate.
        fixed = [r for r in runs if not r["search"]]
        main_run = next((r for r in fixed if r["rate"] == args.target_rate), fixed[-1])
        if "live" in main_run:
            results["live"] = main_run["live"]
        else:
            results["live_error"] = main_run["error"]
        clock.lap("latency curve")

    for n in above:
        await fill_to(stack, state, n, args)
        clock.lap("fills")
        # The card's database holds the live phase's state: empty it, rebuild from 0 (the
        # topic now also holds the live phase's events, counted in N).
        await reset_agency_database(stack, "card")
        say(f"scale: card rebuild at {n:,} events")
        scale.append(scale_point(await rebuild_one(stack, "card", best, log_dir, timeout)))
        clock.lap("scale rebuilds")
    if scale:
        results["scale"] = sorted(scale, key=lambda p: p["events"])

    results["phase_wall_s"] = clock.phases
    results["load"] = await load.stop()
    results["load"]["others"] = machine.others_cpu(phase_cpu(results))
    results["targets"] = verdicts(results)
    return results


def phase_cpu(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The CpuMonitor result of every measured phase (rebuilds, ceilings, live runs)."""
    found: list[dict[str, Any]] = []
    for r in [*results.get("rebuild", {}).get("sweep", []),
              *results.get("rebuild", {}).get("views", []),
              results.get("reference"), results.get("peer"),
              results.get("ceilings", {}).get("bare_fetch")]:
        if r and "cpu" in r:
            found.append(r["cpu"])
    for run_ in results.get("latency_curve", []):
        if "live" in run_ and "cpu" in run_["live"]:
            found.append(run_["live"]["cpu"])
    return found


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
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    say(f"wrote {args.json}")
    if not args.no_charts:
        for line in write_charts(results, args.json.parent):
            say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
