"""The alert rules and the Grafana dashboard (stack/prometheus, stack/grafana): valid for
Prometheus (`promtool check rules`, `promtool check config`), each alert firing on the series
that should raise it and quiet otherwise (`promtool test rules`), and every hub metric they
name one the processes expose (hub/metrics.py), so a renamed metric cannot silence an alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hub import metrics

STACK = Path(__file__).resolve().parents[2] / "stack"
RULES = STACK / "prometheus" / "alerts.yml"
NAME = re.compile(r"\bhub_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `apt-get install prometheus` (.ci/run installs it)")
    return found


def run(*args: str) -> str:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES.parent, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_rules_and_the_scrape_configuration() -> None:
    assert "SUCCESS: 6 rules found" in run("check", "rules", RULES.name)
    run("check", "config", "prometheus.yml")


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    assert "SUCCESS" in run("test", "rules", "alerts_test.yml")


class _Consumer:
    group_id = "g"

    def lag(self) -> dict[tuple[str, int], int]:
        return {("t", 0): 1}

    def newest_event_time(self) -> float | None:
        return 0.0


def exposed() -> set[str]:
    """Every sample name the process registry yields with a consumer and a relay running."""
    consumer, relay = _Consumer(), metrics.LiveRelay("a")
    metrics.watch_consumer(consumer)
    metrics.watch_relay(relay)
    for counter in (metrics.EVENTS_APPLIED, metrics.DEAD_LETTERED, metrics.PUBLISHED):
        counter.labels(*["x"] * len(counter._labelnames))  # a child, so it has samples
    metrics.SIGNATURE_FAILURES.labels("x")
    metrics.RETRIES.labels("x")
    metrics.BATCH_SECONDS.labels("x")
    metrics.COMMIT_SECONDS.labels("x")
    return {s.name for family in metrics.REGISTRY.collect() for s in family.samples}


def named(text: str) -> set[str]:
    return {n for n in NAME.findall(text) if not n.endswith("_")}


def test_every_metric_the_rules_and_dashboard_name_is_exposed() -> None:
    rules = yaml.safe_load(RULES.read_text())
    in_rules = named(" ".join(r["expr"] for g in rules["groups"] for r in g["rules"]))
    dashboard = json.loads((STACK / "grafana" / "permit-hub.json").read_text())
    in_dashboard = named(" ".join(t["expr"] for p in dashboard["panels"]
                                  for t in p["targets"]))
    assert len(in_rules) >= 6
    assert len(in_dashboard) >= 10
    assert (in_rules | in_dashboard) - exposed() == set()
