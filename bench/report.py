"""The benchmark's printed report, and its verdict against the targets."""

from __future__ import annotations

from typing import Any

from bench import curve, signatures

TARGETS = {
    # Issue 13's targets.
    "rebuild_x_bare_fetch": 0.5,     # every view >= 0.5 x the bare aiokafka fetch rate
    "live_rate": 1000.0,             # offered authority commands/s ...
    "live_achieved": 990.0,          # ... of which achieved at least this
    "live_p99_ms": 100.0,            # p99 authority commit -> commit in all three views
    "live_cpu_ms_per_command": 1.5,  # CPU of the whole pipeline per command
    "consumer_peak_mb": 150.0,       # consumer peak memory, flat in N
    "relay_peak_mb": 100.0,          # relay peak memory
}
LIVE_TARGET_RATE = TARGETS["live_rate"]
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


def _measured(value: Any) -> str:
    """A verdict's measured figure: numbers with thousands separators, text as it is."""
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def _ok(passed: bool | None) -> str:
    return "info" if passed is None else "ok" if passed else "MISSED"


def _verdict(target: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met}


def rate_of(result: dict[str, Any] | None) -> float | None:
    """A ceiling's or peer's events/s, None when it did not run."""
    if not result or "skipped" in result or not result.get("events_per_s"):
        return None
    return float(result["events_per_s"])


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of issue 13's targets with the measured figure and whether it was met; the
    ratios to the peers and the machine's load are information (met None)."""
    t = TARGETS
    out = []
    rebuilds = results.get("rebuild", {}).get("views", [])
    ceilings = results.get("ceilings", {})
    bare = rate_of(ceilings.get("bare_fetch"))
    for r in rebuilds:
        out.append(_verdict(f"rebuild {r['agency']}: every event applied, every permit's row",
                            r["view_rows"], r.get("correct", False)))
    for r in rebuilds:
        if bare:
            ratio = round(r["events_per_s"] / bare, 3)
            out.append(_verdict(
                f"rebuild {r['agency']} >= {t['rebuild_x_bare_fetch']} x bare fetch "
                f"({bare:,.0f}/s)", ratio, ratio >= t["rebuild_x_bare_fetch"]))
    card = next((r for r in rebuilds if r["agency"] == "card"), None)
    if card:
        for label, peer in (("kcat", rate_of(ceilings.get("kcat"))),
                            ("FastStream peer", rate_of(results.get("peer")))):
            if peer:
                out.append(_verdict(f"rebuild card / {label} (events/s ratio)",
                                    round(card["events_per_s"] / peer, 3), None))
    if results.get("live_error"):
        out.append(_verdict("live phase completed", 0, False))
    live = results.get("live")
    if live and live.get("latency_ms"):
        offered = live["scheduled_rate"]
        met_rate = offered >= t["live_rate"] and live["achieved_rate"] >= t["live_achieved"]
        out.append(_verdict(f"live: offered {offered:g}/s (target {t['live_rate']:g}), "
                            f"achieved >= {t['live_achieved']:g}/s",
                            live["achieved_rate"], met_rate))
        p99 = live["latency_ms"]["p99"]
        out.append(_verdict(f"live p99 commit -> all 3 views <= {t['live_p99_ms']:g} ms",
                            p99, p99 <= t["live_p99_ms"]))
        cpu = live.get("cpu_ms_per_command", {}).get("total")
        if cpu is not None:
            out.append(_verdict(f"live CPU per command, whole pipeline <= "
                                f"{t['live_cpu_ms_per_command']:g} ms",
                                cpu, cpu <= t["live_cpu_ms_per_command"]))
    if "highest_sustainable_rate" in results:
        out.append(_verdict("highest sustainable rate (commands/s)",
                            results["highest_sustainable_rate"] or "none", None))
    scale = results.get("scale", [])
    if scale:
        out.append(_verdict(
            "scale: rebuild time linear in N or better (rate at each N >= 0.9 x smallest N's)",
            " / ".join(f"{p['events']:,}: {p['wall_s']:.1f} s" for p in scale),
            curve.scale_linear(scale)))
    peaks = _consumer_peaks(results)
    if peaks:
        flat = curve.memory_flat(scale, t["consumer_peak_mb"]) if scale else True
        top = max(peaks.values())
        out.append(_verdict(f"consumer peak RSS <= {t['consumer_peak_mb']:g} MB"
                            + (", flat in N" if scale else ""),
                            top, top <= t["consumer_peak_mb"] and flat))
    relay = _relay_peak(results)
    if relay is not None:
        out.append(_verdict(f"relay peak RSS <= {t['relay_peak_mb']:g} MB", relay,
                            relay <= t["relay_peak_mb"]))
    load = results.get("load")
    if load and load.get("loadavg_1m"):
        others = load.get("others", {})
        out.append(_verdict("machine load: 1-min loadavg mean/max; others' cores",
                            f"{load['loadavg_1m']['mean']}/{load['loadavg_1m']['max']}; "
                            f"{others.get('other_cores', 0)}", None))
    return out


def _consumer_peaks(results: dict[str, Any]) -> dict[str, float]:
    """Every measured consumer process's peak RSS: rebuilds, scale points, live consumers."""
    peaks: dict[str, float] = {}
    for r in results.get("rebuild", {}).get("views", []):
        peaks[f"rebuild {r['agency']}"] = r["peak_rss_mb"]
    for p in results.get("scale", []):
        peaks[f"scale {p['events']}"] = p["peak_rss_mb"]
    for run in results.get("latency_curve", []) or [{"live": results.get("live")}]:
        for name, comp in ((run.get("live") or {}).get("components") or {}).items():
            if name != "relay" and "peak_rss_mb" in comp:
                peaks[f"live {name} {run.get('rate', '')}"] = comp["peak_rss_mb"]
    return peaks


def _relay_peak(results: dict[str, Any]) -> float | None:
    """The relay's highest peak RSS over the live runs."""
    found = [
        float(comp["peak_rss_mb"])
        for run in results.get("latency_curve", []) or [{"live": results.get("live")}]
        for name, comp in ((run.get("live") or {}).get("components") or {}).items()
        if name == "relay" and "peak_rss_mb" in comp
    ]
    return max(found) if found else None


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
    ceilings = results.get("ceilings", {})
    bare = rate_of(ceilings.get("bare_fetch"))
    x_bare, peak = TARGETS["rebuild_x_bare_fetch"], TARGETS["consumer_peak_mb"]

    def ratio(rate: float) -> str:
        return f"{rate / bare:.2f}" if bare else "-"

    rows = []
    kc = ceilings.get("kcat")
    if kc:
        rows.append(["kcat (C, librdkafka; no decode)",
                     f"{kc['events_per_s']:,.0f}" if "skipped" not in kc else "skipped",
                     ratio(kc["events_per_s"]) if "skipped" not in kc else "-",
                     f"{kc['wall_s']:.2f}" if "skipped" not in kc else "-",
                     "-", "-", "-", "-", "-", "", "-"])
    for label, r in (("bare aiokafka fetch (no decode)", ceilings.get("bare_fetch")),
                     (f"reference (bare decode{', ' + ref['agency'] if 'agency' in ref else ''})",
                      ref)):
        if r:
            rows.append([
                label, f"{r['events_per_s']:,.0f}", ratio(r["events_per_s"]),
                f"{r['wall_s']:.2f}", str(r["batch_max_records"]), "-",
                f"{r['cpu_us_per_event']}", f"{1e6 / max(r['cpu_us_per_event'], 0.1):,.0f}",
                f"{r['peak_rss_mb']:.0f}", "",
                f"{r['events_per_s'] / ref['events_per_s']:.2f}",
            ])
    peer = results.get("peer")
    if peer:
        rows.append([
            "FastStream peer (no signatures; 1 upsert/msg)", f"{peer['events_per_s']:,.0f}",
            ratio(peer["events_per_s"]), f"{peer['wall_s']:.2f}", "1", "1",
            f"{peer['cpu_us_per_event']}", f"{1e6 / max(peer['cpu_us_per_event'], 0.1):,.0f}",
            f"{peer['peak_rss_mb']:.0f}", "", f"{peer['events_per_s'] / ref['events_per_s']:.2f}",
        ])
    for r in rb["views"]:
        met = (r["events_per_s"] >= x_bare * bare if bare else False) and r["peak_rss_mb"] <= peak
        rows.append([
            f"rebuild {r['agency']}", f"{r['events_per_s']:,.0f}", ratio(r["events_per_s"]),
            f"{r['wall_s']:.2f}", str(r["batch_max_records"]), f"{r['mean_batch']:.0f}",
            f"{r['cpu_us_per_event']}", f"{1e6 / r['cpu_us_per_event']:,.0f}",
            f"{r['peak_rss_mb']:.0f}", _ok(met),
            f"{r['events_per_s'] / ref['events_per_s']:.2f}",
        ])
    parts = ["\nRebuild from offset 0 into an empty view (one child process each), beside the "
             "ceilings and the peer on the card's topic\n" + table(
                 ["", "events/s", "x bare", "wall s", "max rec", "mean batch", "cpu us/ev",
                  "1-core cap/s", "peak MB", "target", "x ref"], rows)]
    split_rows = []
    measured = [("bare fetch", ceilings.get("bare_fetch")), ("reference", ref),
                ("FastStream peer", results.get("peer")),
                *((v["agency"], v) for v in rb["views"])]
    for label, r in ((name, r) for name, r in measured if r):
        s = r.get("split_s")
        cpu = r.get("cpu", {})
        per = cpu.get("cpu_s", {})
        keys = ("decode", "projection", "offsets_commit_rest", "overlap_s", "waiting_for_kafka")
        split = [f"{s.get(k, 0):.2f}" for k in keys] if s else ["-"] * len(keys)
        split_rows.append([
            label, *split,
            f"{per.get('consumer', 0):.1f}", f"{per.get('postgres', 0):.1f}",
            f"{per.get('kafka', 0):.1f}", f"{cpu.get('other_s', 0):.1f}",
            f"{cpu.get('wall_s', 0):.1f}",
        ])
    parts.append(
        "  where the wall time goes inside the consumer (s), and CPU s per process tree\n"
        + table(["", "decode", "projection", "offs+commit", "overlap", "wait kafka", "cpu consumer",
                 "cpu postgres", "cpu kafka", "cpu others'", "phase wall s"], split_rows))
    if rb.get("sweep"):
        events = rb["sweep"][0]["events_in_topic"]
        parts.append(f"  batch-size sweep on card ({events:,} events): " + ", ".join(
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


def _scale(points: list[dict[str, Any]]) -> str:
    rows = [[f"{p['events']:,}", f"{p['wall_s']:.1f}", f"{p['events_per_s']:,.0f}",
             f"{p['cpu_us_per_event']}", f"{p['peak_rss_mb']:.0f}", str(p["correct"])]
            for p in points]
    return ("\nScale: the card view rebuilt from offset 0 at each N (topics filled step by step)\n"
            + table(["N (card topic)", "wall s", "events/s", "cpu us/ev", "peak MB",
                     "all applied"], rows))


def _curve(results: dict[str, Any]) -> str:
    rule = results.get("sustain_rule", {})
    rows = []
    for run in sorted(results["latency_curve"], key=lambda r: r["rate"]):
        live = run.get("live")
        if not live:
            rows.append([f"{run['rate']:g}", "failed", "-", "-", "-", "-", "-"])
            continue
        lat = live["latency_ms"]
        rows.append([
            f"{run['rate']:g}" + (" (search)" if run["search"] else ""),
            f"{live['achieved_rate']:,.1f}", f"{lat.get('p50', 0):.1f}",
            f"{lat.get('p99', 0):.1f}",
            f"{live.get('cpu_ms_per_command', {}).get('total', 0):.2f}",
            f"{(live.get('components', {}).get('relay') or {}).get('peak_rss_mb', '?')}",
            "yes" if run["sustained"] else "no"])
    return (f"\nLatency curve (authority commit -> commit in all 3 views, ms); sustained = "
            f">= {rule.get('achieved_share', 0.99):.0%} achieved, no failure, p99 <= "
            f"{rule.get('max_p99_ms', '?')} ms. Highest sustainable: "
            f"{results.get('highest_sustainable_rate') or 'none'} commands/s\n"
            + table(["offered/s", "achieved/s", "p50", "p99", "cpu ms/cmd", "relay MB",
                     "sustained"], rows))


def _load(load: dict[str, Any]) -> str:
    la, others = load.get("loadavg_1m", {}), load.get("others", {})
    return (f"\nMachine load during the run ({load['wall_s']:.0f} s): 1-min load average min "
            f"{la.get('min')} / mean {la.get('mean')} / max {la.get('max')}; the machine busy "
            f"{load['machine_busy_cores']} cores on average; other processes than the "
            f"benchmark's {others.get('other_cpu_s')} CPU-s over {others.get('measured_wall_s')} "
            f"s of measured phases ({others.get('other_cores')} cores)")


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
    if results.get("scale"):
        parts.append(_scale(results["scale"]))
    if results.get("latency_curve"):
        parts.append(_curve(results))
    if results.get("live"):
        parts.append(_live(results["live"]))
    if results.get("live_error"):
        parts.append(f"\nLive phase failed: {results['live_error']}")
    if results.get("load"):
        parts.append(_load(results["load"]))
    if results.get("phase_wall_s"):
        parts.append("Wall time per phase (s): " + ", ".join(
            f"{name} {sec:,.0f}" for name, sec in results["phase_wall_s"].items())
            + f"; total {sum(results['phase_wall_s'].values()):,.0f}")
    if results.get("targets"):
        parts.append("\nTargets\n" + table(["", "measured", ""], [
            [v["target"], _measured(v["measured"]), _ok(v["met"])] for v in results["targets"]]))
    return "\n".join(parts)
