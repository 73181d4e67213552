"""The benchmark's PNG charts, written beside its JSON (docs/bench/ by default).

- `rebuild.png`: each view's rebuild events/s beside the ceilings on the card's topic
  (kcat, the bare aiokafka fetch, the decode reference) and the FastStream peer, with the
  target line at 0.5 x the bare fetch.
- `latency.png`: p50 and p99 authority commit -> commit in all three views against the
  offered rate (log-log), the achieved rate on a second axis, the 100 ms target line.
- `scale.png`: the card rebuild's wall time and consumer peak memory against N.

The chart data are pure functions of the results (unit-tested); matplotlib (Agg backend, no
display) only draws them. Without matplotlib the run says so and writes no chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import curve
from bench.report import TARGETS, rate_of


def rebuild_bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The bars of rebuild.png, in order: label, events/s, kind (ceiling, peer, hub)."""
    bars: list[dict[str, Any]] = []
    ceilings = results.get("ceilings", {})
    for label, result in (("kcat", ceilings.get("kcat")),
                          ("bare aiokafka fetch", ceilings.get("bare_fetch")),
                          ("decode reference", results.get("reference"))):
        rate = rate_of(result)
        if rate:
            bars.append({"label": label, "events_per_s": rate, "kind": "ceiling"})
    peer = rate_of(results.get("peer"))
    if peer:
        bars.append({"label": "FastStream peer\n(no signatures)", "events_per_s": peer,
                     "kind": "peer"})
    for r in results.get("rebuild", {}).get("views", []):
        bars.append({"label": f"hub: {r['agency']}", "events_per_s": float(r["events_per_s"]),
                     "kind": "hub"})
    return bars


def rebuild_target(results: dict[str, Any]) -> float | None:
    """The rebuild target line: 0.5 x the bare fetch rate, None without it."""
    bare = rate_of(results.get("ceilings", {}).get("bare_fetch"))
    return bare * TARGETS["rebuild_x_bare_fetch"] if bare else None


def latency_series(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of latency.png: offered, achieved, p50, p99 per live run."""
    runs = results.get("latency_curve")
    if runs is None and results.get("live"):
        runs = [{"live": results["live"]}]
    return curve.curve_points(runs or [])


def scale_series(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of scale.png: N, wall s, peak MB."""
    return [{"events": p["events"], "wall_s": p["wall_s"], "peak_rss_mb": p["peak_rss_mb"]}
            for p in sorted(results.get("scale", []), key=lambda p: p["events"])]


COLORS = {"ceiling": "#9e9e9e", "peer": "#f4a261", "hub": "#2a6f97"}


def _save(plt: Any, fig: Any, path: Path) -> str:
    """Lay out, write and close one chart; the line the run prints for it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


def write_charts(results: dict[str, Any], out_dir: Path) -> list[str]:
    """Draw every chart the results have data for into out_dir; one line per chart."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return ["charts: matplotlib is not installed (pip install -e '.[dev]'); none written"]
    out_dir.mkdir(parents=True, exist_ok=True)
    said = []
    subtitle = (f"{results.get('machine', {}).get('cpu_model', '')}, "
                f"{results.get('machine', {}).get('cores_logical', '?')} cores; "
                f"{results.get('started_at', '')}")

    bars = rebuild_bars(results)
    if bars:
        fig, ax = plt.subplots(figsize=(9, 4.8))
        labels = [b["label"] for b in bars]
        values = [b["events_per_s"] for b in bars]
        ax.barh(labels, values, color=[COLORS[b["kind"]] for b in bars])
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
        target = rebuild_target(results)
        if target:
            ax.axvline(target, color="#c1121f", linestyle="--", linewidth=1)
            ax.text(target, len(bars) - 0.5, f" target 0.5 x bare fetch = {target:,.0f}/s",
                    color="#c1121f", fontsize=8, va="bottom")
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("events/s (log scale), card's permit audience topic for the ceilings")
        n = results.get("fill", {}).get("events")
        ax.set_title(f"Rebuild from offset 0 beside the ceilings ({n:,} events)\n{subtitle}"
                     if n else "Rebuild from offset 0 beside the ceilings", fontsize=10)
        said.append(_save(plt, fig, out_dir / "rebuild.png"))

    points = latency_series(results)
    if points:
        fig, ax = plt.subplots(figsize=(8, 4.8))
        offered = [p["offered"] for p in points]
        ax.plot(offered, [p["p50_ms"] for p in points], "o-", label="p50", color="#2a6f97")
        ax.plot(offered, [p["p99_ms"] for p in points], "s-", label="p99", color="#c1121f")
        ax.axhline(TARGETS["live_p99_ms"], color="#c1121f", linestyle=":", linewidth=1,
                   label=f"p99 target {TARGETS['live_p99_ms']:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(offered, [f"{o:g}" for o in offered])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("offered authority commands/s")
        ax.set_ylabel("authority commit -> commit in all 3 views, ms")
        ax2 = ax.twinx()
        ax2.plot(offered, [p["achieved"] for p in points], "^--", color="#6a994e",
                 label="achieved/s")
        ax2.plot(offered, offered, color="#6a994e", linewidth=0.5, alpha=0.5,
                 label="achieved = offered")
        ax2.set_yscale("log")
        ax2.set_ylabel("achieved commands/s")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="best",
                  framealpha=0.8)
        best = results.get("highest_sustainable_rate")
        best_text = f"{best:g}/s" if best else "none"
        ax.set_title(f"Live latency vs offered rate (highest sustainable: {best_text})\n"
                     f"{subtitle}", fontsize=10)
        said.append(_save(plt, fig, out_dir / "latency.png"))

    scale = scale_series(results)
    if scale:
        fig, ax = plt.subplots(figsize=(8, 4.8))
        ns = [p["events"] for p in scale]
        ax.plot(ns, [p["wall_s"] for p in scale], "o-", color="#2a6f97", label="rebuild wall s")
        base = scale[0]
        ax.plot(ns, [base["wall_s"] * n / base["events"] for n in ns], ":", color="#2a6f97",
                linewidth=1, label="linear from the smallest N")
        ax.set_xlabel("events in the card's topic")
        ax.set_ylabel("card rebuild wall time, s")
        ax2 = ax.twinx()
        ax2.plot(ns, [p["peak_rss_mb"] for p in scale], "s--", color="#f4a261",
                 label="consumer peak MB")
        ax2.axhline(TARGETS["consumer_peak_mb"], color="#f4a261", linestyle=":", linewidth=1)
        ax2.set_ylim(0, max(TARGETS["consumer_peak_mb"],
                            *(p["peak_rss_mb"] for p in scale)) * 1.15)
        ax2.set_ylabel("peak RSS, MB")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
        ax.set_title(f"Card rebuild at growing N\n{subtitle}", fontsize=10)
        said.append(_save(plt, fig, out_dir / "scale.png"))
    return said
