"""The latency curve's search for the highest sustainable rate, and the scale series: pure
functions over the figures of live and rebuild runs (no I/O), unit-tested apart.

A live run at an offered rate is *sustained* when it achieved at least 99 % of it
(`ACHIEVED_SHARE`), every command succeeded and reached all three views, and p99 authority
commit -> commit in all three views stayed within a bound (`--sustain-p99-ms`, 500 ms by
default: beyond it the pipeline is queueing, not keeping up).

The search starts from the curve's fixed rates (100, 300, 1000 commands/s by default):
while no offered rate has failed it multiplies the highest sustained one by `GROWTH`; once
one has, it tries the geometric mean of the highest sustained rate and the lowest failed
rate above it, until the two are within `RESOLUTION` of each other or the steps run out.
The highest sustainable rate is the highest sustained rate tried.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ACHIEVED_SHARE = 0.99
GROWTH = 1.5
RESOLUTION = 1.15
MIN_RATE = 10.0


def sustained(live: Mapping[str, Any], max_p99_ms: float) -> bool:
    """Whether a live run kept up with its offered rate (see the module docstring)."""
    p99 = (live.get("latency_ms") or {}).get("p99")
    return bool(
        p99 is not None
        and live.get("achieved_rate", 0) >= ACHIEVED_SHARE * live["scheduled_rate"]
        and live.get("failed", 1) == 0
        and live.get("missing_in_a_view", 1) == 0
        and p99 <= max_p99_ms
    )


def _round_rate(rate: float) -> float:
    """Rates above 100/s to a multiple of 10, below to a whole number."""
    return float(round(rate, -1) if rate >= 100 else round(rate))


def next_rate(tried: Mapping[float, bool]) -> float | None:
    """The next offered rate to try given {rate: sustained}, or None when the search is
    done."""
    if not tried:
        return None
    ok = [r for r, good in tried.items() if good]
    if not ok:
        lowest = min(tried)
        return None if lowest <= MIN_RATE else _round_rate(max(MIN_RATE, lowest / 3))
    best = max(ok)
    failed_above = [r for r, good in tried.items() if not good and r > best]
    if not failed_above:
        candidate = _round_rate(best * GROWTH)
    else:
        low_fail = min(failed_above)
        if low_fail / best <= RESOLUTION:
            return None
        candidate = _round_rate(math.sqrt(best * low_fail))
    return None if candidate in tried else candidate


def highest_sustainable(tried: Mapping[float, bool]) -> float | None:
    """The highest offered rate that was sustained, None if none was."""
    ok = [r for r, good in tried.items() if good]
    return max(ok) if ok else None


def curve_points(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One point per live run, by offered rate: offered, achieved, p50, p99 (ms)."""
    points = []
    for run in runs:
        live = run.get("live")
        if not live or not live.get("latency_ms"):
            continue
        lat = live["latency_ms"]
        points.append({"offered": live["scheduled_rate"], "achieved": live["achieved_rate"],
                       "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"),
                       "sustained": run.get("sustained", False),
                       "search": run.get("search", False)})
    return sorted(points, key=lambda p: p["offered"])


def scale_linear(points: Sequence[Mapping[str, Any]], tolerance: float = 0.10) -> bool:
    """Rebuild time linear in N or better: the rate at every larger N is at least
    (1 - tolerance) x the rate at the smallest N (the same as time(N) <= N/N0 x time(N0)
    within the tolerance). Needs two points or more."""
    if len(points) < 2:
        return False
    ordered = sorted(points, key=lambda p: p["events"])
    base = ordered[0]["events_per_s"]
    return all(p["events_per_s"] >= (1 - tolerance) * base for p in ordered[1:])


def memory_flat(points: Sequence[Mapping[str, Any]], limit_mb: float,
                growth_mb: float = 20.0) -> bool:
    """Peak memory within `limit_mb` at every N, and the largest N's at most `growth_mb`
    above the smallest N's (flat: it does not grow with the topic)."""
    if not points:
        return False
    ordered = sorted(points, key=lambda p: p["events"])
    peaks = [p["peak_rss_mb"] for p in ordered]
    return bool(max(peaks) <= limit_mb and peaks[-1] - peaks[0] <= growth_mb)
