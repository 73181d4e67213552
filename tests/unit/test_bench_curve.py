"""The benchmark's search for the highest sustainable live rate, and its scale verdicts."""

from __future__ import annotations

from typing import Any

from bench import curve


def live(rate: float, achieved: float, p99: float, failed: int = 0,
         missing: int = 0) -> dict[str, Any]:
    return {"scheduled_rate": rate, "achieved_rate": achieved, "failed": failed,
            "missing_in_a_view": missing, "latency_ms": {"p50": p99 / 2, "p99": p99}}


def test_sustained_needs_99_percent_achieved_no_failure_and_p99_within_the_bound() -> None:
    assert curve.sustained(live(1000, 990, 80), 500)
    assert not curve.sustained(live(1000, 989, 80), 500)
    assert not curve.sustained(live(1000, 1000, 501), 500)
    assert not curve.sustained(live(1000, 1000, 80, failed=1), 500)
    assert not curve.sustained(live(1000, 1000, 80, missing=1), 500)
    assert not curve.sustained({"scheduled_rate": 100, "achieved_rate": 100,
                                "latency_ms": {}}, 500)


def test_the_search_grows_while_everything_is_sustained() -> None:
    assert curve.next_rate({100: True, 300: True, 1000: True}) == 1500


def test_the_search_bisects_between_the_best_sustained_and_the_lowest_failure_above() -> None:
    # sqrt(300 * 1000) = 547.7 -> 550
    assert curve.next_rate({100: True, 300: True, 1000: False}) == 550
    assert curve.next_rate({100: True, 300: True, 550: False, 1000: False}) == 410


def test_the_search_stops_at_the_resolution() -> None:
    assert curve.next_rate({300: True, 340: False}) is None


def test_the_search_goes_down_when_nothing_is_sustained_and_stops_at_the_floor() -> None:
    assert curve.next_rate({100: False, 300: False}) == 33
    assert curve.next_rate({10: False}) is None
    assert curve.next_rate({}) is None


def test_a_coarse_gap_is_bisected_again() -> None:
    assert curve.next_rate({100: True, 150: False}) == 120  # sqrt(15000) = 122.5


def test_a_full_search_finds_the_knee_in_a_few_steps() -> None:
    """A system that sustains up to 420/s: from 100, 300, 1000 the search closes in."""
    tried = {r: r <= 420 for r in (100.0, 300.0, 1000.0)}
    for _ in range(6):
        rate = curve.next_rate(tried)
        if rate is None:
            break
        tried[rate] = rate <= 420
    best = curve.highest_sustainable(tried)
    assert best is not None
    assert 420 / curve.RESOLUTION <= best <= 420


def test_highest_sustainable_is_none_when_nothing_was() -> None:
    assert curve.highest_sustainable({100: False}) is None
    assert curve.highest_sustainable({100: True, 300: False, 1000: True}) == 1000


def test_curve_points_are_sorted_by_offered_rate_and_skip_failed_runs() -> None:
    runs = [{"live": live(300, 300, 40), "sustained": True},
            {"error": "boom", "sustained": False},
            {"live": live(100, 100, 20), "sustained": True, "search": True}]
    points = curve.curve_points(runs)
    assert [p["offered"] for p in points] == [100, 300]
    assert points[0] == {"offered": 100, "achieved": 100, "p50_ms": 10, "p99_ms": 20,
                         "sustained": True, "search": True}


def point(events: int, rate: float, peak: float = 60.0) -> dict[str, Any]:
    return {"events": events, "events_per_s": rate, "wall_s": events / rate,
            "peak_rss_mb": peak}


def test_scale_is_linear_when_the_rate_holds_within_ten_percent() -> None:
    assert curve.scale_linear([point(100_000, 4000), point(200_000, 3700),
                               point(400_000, 4100)])
    assert not curve.scale_linear([point(100_000, 4000), point(400_000, 3500)])
    assert not curve.scale_linear([point(100_000, 4000)])


def test_memory_is_flat_within_the_limit_and_growth() -> None:
    assert curve.memory_flat([point(100_000, 1, 90), point(400_000, 1, 105)], 150)
    assert not curve.memory_flat([point(100_000, 1, 90), point(400_000, 1, 151)], 150)
    assert not curve.memory_flat([point(100_000, 1, 60), point(400_000, 1, 90)], 150)
    assert not curve.memory_flat([], 150)
