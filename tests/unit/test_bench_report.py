"""The benchmark's verdicts against issue 13's targets, its report, its chart data and its
PNG charts, from a made-up run's results (no stack)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bench import charts, machine
from bench.fill import merge_fills
from bench.report import render, verdicts


def view(agency: str, rate: float, peak: float = 90.0) -> dict[str, Any]:
    return {"agency": agency, "events_per_s": rate, "wall_s": 200_000 / rate,
            "batch_max_records": 2000, "mean_batch": 1800, "cpu_us_per_event": 200.0,
            "peak_rss_mb": peak, "view_rows": 50_000, "correct": True, "caught_up": True,
            "applied": 200_000, "events_in_topic": 200_000,
            "split_s": {"decode": 1, "projection": 1, "offsets_commit_rest": 1,
                        "waiting_for_kafka": 1},
            "cpu": {"cpu_s": {"consumer": 5.0}, "wall_s": 50.0, "other_s": 10.0}}


def live_run(rate: float, achieved: float, p99: float, relay_mb: float = 70.0,
             cpu_ms: float = 1.2) -> dict[str, Any]:
    return {"scheduled_rate": rate, "seconds": 30, "commands": int(rate * 30),
            "completed": int(rate * 30), "measured": int(rate * 30), "failed": 0,
            "missing_in_a_view": 0, "achieved_rate": achieved,
            "latency_ms": {"p50": p99 / 3, "p95": p99 / 1.5, "p99": p99, "max": p99 * 2,
                           "mean": p99 / 2},
            "latency_ms_per_view": {},
            "components": {"relay": {"peak_rss_mb": relay_mb},
                           "card": {"peak_rss_mb": 95.0}},
            "cpu": {"wall_s": 30, "cores": 2, "cpu_s": {"relay": 3.0}, "other_s": 6.0},
            "cpu_ms_per_command": {"total": cpu_ms}}


def results() -> dict[str, Any]:
    """A run meeting every target."""
    return {
        "machine": {"cpu_model": "Test CPU", "cores_logical": 2, "cores_usable": 2,
                    "ram_gb": 8, "os": "Linux", "data_dir_fs": "ext4", "python": "3.12",
                    "kafka": "4.1", "java": "17", "postgres": "18", "aiokafka": "0.14",
                    "asyncpg": "0.30", "pydantic": "2", "loadavg_at_start": [1, 1, 1]},
        "started_at": "2026-11-30T12:00:00+0000",
        "fill": {"events": 200_000},
        "ceilings": {"kcat": {"events_per_s": 230_000.0, "wall_s": 0.9, "records": 200_000},
                     "bare_fetch": {"events_per_s": 96_000.0, "wall_s": 2.1,
                                    "batch_max_records": 5000, "cpu_us_per_event": 9.0,
                                    "peak_rss_mb": 60.0}},
        "reference": {"agency": "card", "events_per_s": 40_000.0, "wall_s": 5.0,
                      "batch_max_records": 5000, "cpu_us_per_event": 24.0,
                      "peak_rss_mb": 70.0},
        "peer": {"events_per_s": 1_200.0, "wall_s": 60.0, "cpu_us_per_event": 400.0,
                 "peak_rss_mb": 80.0, "handled": 72_000, "events_in_topic": 200_000},
        "rebuild": {"batch_max_records": 2000,
                    "views": [view("card", 60_000), view("public_security", 50_000),
                              view("social_insurance", 49_000)]},
        "scale": [{"events": n, "events_per_s": 60_000, "wall_s": n / 60_000,
                   "peak_rss_mb": 90 + n / 100_000, "cpu_us_per_event": 20.0,
                   "correct": True} for n in (100_000, 200_000, 400_000)],
        "latency_curve": [
            {"rate": 100.0, "search": False, "sustained": True, "live": live_run(100, 100, 20)},
            {"rate": 300.0, "search": False, "sustained": True, "live": live_run(300, 300, 30)},
            {"rate": 1000.0, "search": False, "sustained": True,
             "live": live_run(1000, 995, 90)},
            {"rate": 1500.0, "search": True, "sustained": False,
             "live": live_run(1500, 1100, 900)},
        ],
        "highest_sustainable_rate": 1000.0,
        "phase_wall_s": {"fills": 120.0, "latency curve": 600.0},
        "sustain_rule": {"achieved_share": 0.99, "max_p99_ms": 500},
        "live": live_run(1000, 995, 90),
        "load": {"loadavg_1m": {"min": 1.0, "mean": 2.0, "max": 3.0}, "wall_s": 1500,
                 "machine_busy_cpu_s": 2400, "machine_busy_cores": 1.6,
                 "others": {"other_cpu_s": 100, "measured_wall_s": 1000,
                            "other_cores": 0.1}},
    }


def by_target(found: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    matches = [v for v in found if v["target"].startswith(prefix)]
    assert len(matches) == 1, (prefix, [v["target"] for v in found])
    return matches[0]


def test_a_run_meeting_issue_13s_targets_misses_none() -> None:
    found = verdicts(results())
    assert [v["target"] for v in found if v["met"] is False] == []
    assert by_target(found, "rebuild social_insurance >= 0.5 x bare fetch")["measured"] == 0.51
    assert by_target(found, "rebuild card / kcat")["met"] is None
    assert by_target(found, "rebuild card / FastStream peer")["measured"] == 50.0
    assert by_target(found, "highest sustainable rate")["measured"] == 1000.0
    assert by_target(found, "relay peak RSS")["measured"] == 70.0
    assert by_target(found, "machine load")["met"] is None


def test_a_view_below_half_the_bare_fetch_rate_misses() -> None:
    r = results()
    r["rebuild"]["views"][2]["events_per_s"] = 47_000
    assert by_target(verdicts(r), "rebuild social_insurance >= 0.5")["met"] is False


def test_live_misses_below_990_achieved_over_100_ms_or_over_1_5_ms_of_cpu() -> None:
    for change, prefix in ((("achieved_rate", 989.0), "live: offered"),
                           (("latency_ms", {"p99": 101.0}), "live p99"),
                           (("cpu_ms_per_command", {"total": 1.6}), "live CPU")):
        r = results()
        r["live"][change[0]] = change[1]
        assert by_target(verdicts(r), prefix)["met"] is False, prefix


def test_a_live_run_below_the_target_rate_does_not_meet_the_rate_target() -> None:
    r = results()
    r["live"] = live_run(300, 300, 30)
    assert by_target(verdicts(r), "live: offered")["met"] is False


def test_scale_and_memory_verdicts() -> None:
    r = results()
    r["scale"][2]["events_per_s"] = 50_000
    assert by_target(verdicts(r), "scale:")["met"] is False
    r = results()
    r["scale"][2]["peak_rss_mb"] = 140  # under the limit but not flat
    assert by_target(verdicts(r), "consumer peak RSS")["met"] is False
    r = results()
    r["latency_curve"][3]["live"]["components"]["relay"]["peak_rss_mb"] = 101
    assert by_target(verdicts(r), "relay peak RSS")["met"] is False


def test_missing_ceilings_and_peer_leave_their_rows_out() -> None:
    r = results()
    r["ceilings"] = {"kcat": {"skipped": "no kcat"}}
    del r["peer"]
    targets = [v["target"] for v in verdicts(r)]
    assert not any("bare fetch" in t or "kcat" in t or "FastStream" in t for t in targets)


def test_the_report_renders_every_section() -> None:
    r = results()
    r["targets"] = verdicts(r)
    del r["fill"]  # its section is the old one's
    text = render(r)
    for needle in ("kcat (C, librdkafka", "bare aiokafka fetch", "FastStream peer",
                   "Scale: the card view", "Latency curve", "Highest sustainable: 1000.0 commands",
                   "Machine load during the run", "Targets",
                   "Wall time per phase (s): fills 120, latency curve 600; total 720"):
        assert needle in text, needle


def test_chart_data() -> None:
    r = results()
    bars = charts.rebuild_bars(r)
    assert [b["kind"] for b in bars] == ["ceiling"] * 3 + ["peer"] + ["hub"] * 3
    assert bars[0] == {"label": "kcat", "events_per_s": 230_000.0, "kind": "ceiling"}
    assert charts.rebuild_target(r) == 48_000.0
    assert [p["offered"] for p in charts.latency_series(r)] == [100, 300, 1000, 1500]
    assert [p["events"] for p in charts.scale_series(r)] == [100_000, 200_000, 400_000]
    # An older result with one live run and no curve still gives a point.
    old = copy.deepcopy(r)
    del old["latency_curve"]
    assert [p["offered"] for p in charts.latency_series(old)] == [1000]


def test_the_charts_are_written_as_png(tmp_path: Path) -> None:
    said = charts.write_charts(results(), tmp_path)
    assert len(said) == 3, said
    for name in ("rebuild.png", "latency.png", "scale.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merged_fills_sum_counts_and_weight_means() -> None:
    def part(events: int, size: int) -> dict[str, Any]:
        return {"events": events, "permits": events // 4, "mean_value_bytes": size,
                "records": 3 * events, "linger_ms": 20, "chunks": 2, "generate_s": 1.0,
                "project_s": 0.5, "send_s": events / 10_000,
                "audiences": {"card": {"topic": "t.card", "records": events,
                                       "mean_value_bytes": size - 400}}}

    merged = merge_fills([part(100_000, 1000), part(300_000, 1200)])
    assert merged["events"] == 400_000
    assert merged["permits"] == 100_000
    assert merged["mean_value_bytes"] == 1150
    assert merged["audiences"]["card"] == {"topic": "t.card", "records": 400_000,
                                           "mean_value_bytes": 750}
    assert merged["events_per_s"] == 10_000.0
    assert merged["chunks"] == 4


def test_load_summary() -> None:
    load = machine.summarize_load([1.0, 2.0, 3.0], 100.0, 150.0)
    assert load["loadavg_1m"] == {"min": 1.0, "mean": 2.0, "max": 3.0}
    assert load["machine_busy_cores"] == 1.5
    others = machine.others_cpu([{"other_s": 10, "wall_s": 50}, {"other_s": 20, "wall_s": 50}])
    assert others == {"other_cpu_s": 30, "measured_wall_s": 100, "other_cores": 0.3,
                      "phases": 2}


def test_the_phase_clock_adds_up_phases_met_twice() -> None:
    clock = machine.PhaseClock()
    clock.lap("fills")
    clock.lap("sweep")
    clock.lap("fills")
    assert list(clock.phases) == ["fills", "sweep"]
    assert all(v >= 0 for v in clock.phases.values())
