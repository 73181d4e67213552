"""The benchmark's printed report, and its verdict against the targets."""

from __future__ import annotations

from typing import Any

from bench import signatures

TARGETS = {
    "rebuild_events_per_s": 20_000,
    "live_p99_ms": 100.0,
    "consumer_peak_mb": 250.0,
}
PERCENTILES = ("p50", "p95", "p99", "max", "mean")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table, first column left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _ok(passed: bool) -> str:
    return "ok" if passed else "MISSED"


def _verdict(target: str, measured: float, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met}


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured figure and whether it was met."""
    rate, p99, peak = (TARGETS[k] for k in ("rebuild_events_per_s", "live_p99_ms",
                                            "consumer_peak_mb"))
    out = []
    rebuilds = results.get("rebuild", {}).get("views", [])
    for r in rebuilds:
        out.append(_verdict(f"rebuild {r['agency']}: every event applied, every permit's row",
                            r["view_rows"], r.get("correct", False)))
    for r in rebuilds:
        out.append(_verdict(f"rebuild {r['agency']} >= {rate:,} events/s",
                            r["events_per_s"], r["events_per_s"] >= rate))
    for r in rebuilds:
        out.append(_verdict(f"rebuild {r['agency']} consumer peak RSS <= {peak:g} MB",
                            r["peak_rss_mb"], r["peak_rss_mb"] <= peak))
    if results.get("live_error"):
        out.append(_verdict("live phase completed", 0, False))
    live = results.get("live")
    if live and live.get("latency_ms"):
        measured = live["latency_ms"]["p99"]
        out.append(_verdict(f"live p99 commit -> all 3 views <= {p99:g} ms",
                            measured, measured <= p99))
        for name, comp in live.get("components", {}).items():
            if name != "relay" and "peak_rss_mb" in comp:
                out.append(_verdict(f"live {name} consumer peak RSS <= {peak:g} MB",
                                    comp["peak_rss_mb"], comp["peak_rss_mb"] <= peak))
    return out


def _machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    code = results.get("code", {})
    text = (
        "Machine\n"
        f"  CPU {m['cpu_model']}, {m['cores_logical']} logical cores "
        f"({m['cores_usable']} usable), RAM {m['ram_gb']} GB, {m['os']}, "
        f"data dir on {m['data_dir_fs']}\n"
        f"  Python {m['python']}, Kafka {m['kafka']} ({m['java']}), Postgres {m['postgres']}, "
        f"aiokafka {m['aiokafka']}, asyncpg {m['asyncpg']}, pydantic {m['pydantic']}\n"
        f"  code at {code.get('commit')} with {code.get('uncommitted_files')} uncommitted "
        f"files under hub/ consumers/ schemas/ producers/; "
        f"load average at start {m['loadavg_at_start']}"
    )
    fsync = results.get("durable_commit")
    if fsync:
        s = fsync["settings"]
        text += (
            f"\n  Postgres durable: fsync={s.get('fsync')}, synchronous_commit="
            f"{s.get('synchronous_commit')}, wal_sync_method={s.get('wal_sync_method')}; "
            f"a one-row commit takes p50 {fsync['p50_ms']} ms, p99 {fsync['p99_ms']} ms"
        )
    return text


def _replicas(results: dict[str, Any]) -> str:
    """The cluster's shape, for a run on more than one broker (older results have none)."""
    if results.get("brokers", 1) == 1:
        return ""
    return (f"{results['brokers']} brokers, {results['replication_factor']} replicas "
            f"(min in sync {results['min_insync_replicas']}), ")


def _fill(results: dict[str, Any]) -> str:
    f = results["fill"]
    text = (
        f"\nFill: {f['events']:,} events ({f['permits']:,} permits, "
        f"{f['events_per_permit']} events/permit, {f['mean_value_bytes']} B/event), "
        f"{results['partitions']} partitions, {_replicas(results)}linger {f['linger_ms']} ms\n"
    )
    audiences = f.get("audiences")
    if not audiences:  # results from before the permit lifecycle was published per audience
        return text + (
            f"  {f['events_per_s']:,.0f} events/s produced (idempotent, acks=all; "
            f"{f['send_s']} s sending; generating took {f['generate_s']} s apart)")
    return text + (
        f"  as {f['records']:,} records, one per event and audience: "
        + ", ".join(f"{agency} {a['records']:,} x {a['mean_value_bytes']} B"
                    for agency, a in audiences.items())
        + f"\n  {f['events_per_s']:,.0f} events/s = {f['records_per_s']:,.0f} records/s "
        f"produced (idempotent, acks=all; {f['send_s']} s signing and sending; generating "
        f"took {f['generate_s']} s and projecting {f['project_s']} s apart)"
    )


def _rebuild(results: dict[str, Any]) -> str:
    ref, rb = results["reference"], results["rebuild"]
    rate, peak = TARGETS["rebuild_events_per_s"], TARGETS["consumer_peak_mb"]
    rows = [[
        f"reference (bare decode{', ' + ref['agency'] if 'agency' in ref else ''})",
        f"{ref['events_per_s']:,.0f}", "1.00",
        f"{ref['wall_s']:.2f}", str(ref["batch_max_records"]), "-",
        f"{ref['cpu_us_per_event']}", f"{1e6 / ref['cpu_us_per_event']:,.0f}",
        f"{ref['peak_rss_mb']:.0f}", "",
    ]]
    for r in rb["views"]:
        rows.append([
            f"rebuild {r['agency']}", f"{r['events_per_s']:,.0f}",
            f"{r['events_per_s'] / ref['events_per_s']:.2f}", f"{r['wall_s']:.2f}",
            str(r["batch_max_records"]), f"{r['mean_batch']:.0f}",
            f"{r['cpu_us_per_event']}", f"{1e6 / r['cpu_us_per_event']:,.0f}",
            f"{r['peak_rss_mb']:.0f}",
            _ok(r["events_per_s"] >= rate and r["peak_rss_mb"] <= peak),
        ])
    parts = ["\nRebuild from offset 0 into an empty view (one child process each)\n" + table(
        ["", "events/s", "x ref", "wall s", "max rec", "mean batch", "cpu us/ev",
         "1-core cap/s", "peak MB", "target"], rows)]
    split_rows = []
    for label, r in [("reference", ref), *((v["agency"], v) for v in rb["views"])]:
        s = r.get("split_s")
        cpu = r.get("cpu", {})
        per = cpu.get("cpu_s", {})
        keys = ("decode", "projection", "offsets_commit_rest", "waiting_for_kafka")
        split = [f"{s[k]:.2f}" for k in keys] if s else ["-"] * len(keys)
        split_rows.append([
            label, *split,
            f"{per.get('consumer', 0):.1f}", f"{per.get('postgres', 0):.1f}",
            f"{per.get('kafka', 0):.1f}", f"{cpu.get('other_s', 0):.1f}",
            f"{cpu.get('wall_s', 0):.1f}",
        ])
    parts.append(
        "  where the wall time goes inside the consumer (s), and CPU s per process tree\n"
        + table(["", "decode", "projection", "offs+commit", "wait kafka", "cpu consumer",
                 "cpu postgres", "cpu kafka", "cpu others'", "phase wall s"], split_rows))
    if rb.get("sweep"):
        parts.append("  batch-size sweep on card: " + ", ".join(
            f"{s['batch_max_records']} -> {s['events_per_s']:,.0f}/s "
            f"({s['cpu_us_per_event']} us/ev, {s['peak_rss_mb']:.0f} MB)"
            for s in rb["sweep"]) + f"; used {rb['batch_max_records']}")
    return "\n".join(parts)


def _live(live: dict[str, Any]) -> str:
    def cells(p: dict[str, float]) -> list[str]:
        return [f"{p.get(k, 0):.1f}" for k in PERCENTILES]

    rows = [["authority commit -> commit in all 3 views", *cells(live["latency_ms"])]]
    for agency, p in live["latency_ms_per_view"].items():
        rows.append([f"  ... in {agency}", *cells(p)])
    for label, key in (
        ("  authority commit -> Kafka (relay sent)", "commit_to_kafka_ms"),
        ("  Kafka -> commit in the last view", "kafka_to_last_view_ms"),
        ("  relay's copies: last - first CreateTime", "relay_copies_spread_ms"),
        ("client after return -> last applied_at", "client_after_to_applied_at_ms"),
        ("authority command (client round trip)", "command_ms"),
        ("schedule slip (start - scheduled)", "schedule_slip_ms"),
    ):
        if key in live:  # results from before per-audience topics have no spread
            rows.append([label, *cells(live[key])])
    comps = live.get("components", {})
    cpu = live.get("cpu", {})
    return (
        f"\nLive end-to-end latency, ms: {live['measured']:,} of {live['commands']:,} "
        f"commands measured; scheduled {live['scheduled_rate']:g}/s for "
        f"{live['seconds']:g} s, achieved {live['achieved_rate']:,.1f}/s; "
        f"{live['failed']} failed, {live['missing_in_a_view']} missing in a view\n"
        + table(["", *PERCENTILES], rows)
        + "\n  peak RSS (child processes): "
        + ", ".join(f"{n} {c.get('peak_rss_mb', '?')} MB" for n, c in comps.items())
        + f"\n  CPU s while commands ran ({cpu.get('wall_s', 0):.0f} s, "
        f"{cpu.get('cores')} cores): "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu.get("cpu_s", {}).items())
        + f", others' processes {cpu.get('other_s', 0):.1f}"
        + "\n  CPU ms per completed command: "
        + ", ".join(f"{k} {v:.2f}" for k, v in live.get("cpu_ms_per_command", {}).items())
    )


def render(results: dict[str, Any]) -> str:
    """The full human-readable report."""
    parts = [_machine(results)]
    if "signatures" in results:
        parts.append(signatures.render(results["signatures"]))
    if "fill" in results:
        parts.append(_fill(results))
    if "reference" in results and "rebuild" in results:
        parts.append(_rebuild(results))
    if results.get("replay"):
        r = results["replay"]
        parts.append(f"\nReplay of the {r['view']} view (`hub replay`, records proven by its"
                     f" evidence log): {r['events']:,} events in {r['wall_s']} s ="
                     f" {r['events_per_s']:,.0f} events/s, {r['skipped']} skipped,"
                     f" status {r['status']}")
    if results.get("live"):
        parts.append(_live(results["live"]))
    if results.get("live_error"):
        parts.append(f"\nLive phase failed: {results['live_error']}")
    if results.get("targets"):
        parts.append("\nTargets\n" + table(["", "measured", ""], [
            [v["target"], f"{v['measured']:,}", _ok(v["met"])] for v in results["targets"]]))
    return "\n".join(parts)
