"""Prometheus metrics of the hub's long-running processes (`hub run AGENCY --metrics-port`).

One registry per process, labelled by consumer group or agency, so that a process running
several components (`hub run` runs an agency's consumer, relay, chain-head publisher and
calendar) exposes them all on one endpoint. Two kinds:

- **counters and histograms**, moved where things happen: events applied per topic, dead
  letters per reason, records refused as unauthenticated, batch and commit latency,
  transient faults retried, records published;
- **live gauges**, read when Prometheus scrapes (`_Live`): each running consumer's lag per
  partition (the partition's high watermark, as its last fetch saw it, minus the offset its
  view has applied) and the age of the newest event it applied (now minus the event's `time`);
  each running relay's backlog, the age of its oldest row and its parked rows, as its last
  look at the outbox found them.

Labels carry group, agency, topic, partition and reason names only: never a key, a subject
or a value, so no personal data reaches a scrape. The endpoint listens on loopback unless
told otherwise (`Settings.metrics_address`): it is for the host's Prometheus agent.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()
"""Everything this process exposes."""
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
REGISTRY.register(GC_COLLECTOR)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0)

EVENTS_APPLIED = Counter(
    "hub_events_applied", "Events a consumer group applied to its view (handled, projected"
    " or recorded), per topic read.", ["group", "topic"], registry=REGISTRY)
DEAD_LETTERED = Counter(
    "hub_events_dead_lettered", "Records a consumer group sent to its dead-letter topic,"
    " per reason (dlq.reason).", ["group", "reason"], registry=REGISTRY)
SIGNATURE_FAILURES = Counter(
    "hub_signature_failures", "Records refused as unauthenticated: unsigned, a signature"
    " that does not verify, an unknown or revoked key, or a signer not entitled to the"
    " event type.", ["group"], registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "hub_batch_seconds", "From a fetched batch to its view transaction committed, retries"
    " included.", ["group"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
COMMIT_SECONDS = Histogram(
    "hub_commit_seconds", "The COMMIT of a batch's view transaction (offsets, rows,"
    " outcomes and evidence together).", ["group"], buckets=_LATENCY_BUCKETS,
    registry=REGISTRY)
BATCH_RECORDS = Histogram(
    "hub_batch_records", "Records per applied batch.", ["group"],
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000), registry=REGISTRY)
RETRIES = Counter(
    "hub_retries", "Transient faults retried (a broker or database briefly away), per"
    " operation.", ["operation"], registry=REGISTRY)
PUBLISHED = Counter(
    "hub_events_published", "Records an outbox relay published and Kafka acknowledged, per"
    " topic.", ["agency", "topic"], registry=REGISTRY)


class LiveConsumer(Protocol):
    """What a running consumer tells a scrape (`hub.consumer.ViewConsumer`)."""

    group_id: str

    def lag(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition) assigned: records in the log its view has not applied."""

    def newest_event_time(self) -> float | None:
        """The `time` of the newest event it applied, seconds since the epoch."""


@dataclass
class OutboxLook:
    """What a relay's last look at its outbox found."""

    backlog: int = 0
    oldest_created: float | None = None
    """When the oldest waiting row was written, seconds since the epoch."""
    parked: int = 0


@dataclass(eq=False)
class LiveRelay:
    """A running relay, as a scrape sees it."""

    agency: str
    look: OutboxLook = field(default_factory=OutboxLook)


class _Live(Collector):
    """The gauges read at scrape time from the components running in this process."""

    def __init__(self) -> None:
        self.consumers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.relays: weakref.WeakSet[LiveRelay] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        lag = GaugeMetricFamily(
            "hub_consumer_lag_records", "Records in a partition's log its view has not"
            " applied (the high watermark of the last fetch minus the applied offset).",
            labels=["group", "topic", "partition"])
        age = GaugeMetricFamily(
            "hub_newest_applied_event_age_seconds", "Now minus the time of the newest event"
            " the group applied: how far behind the world its view is.", labels=["group"])
        for c in list(self.consumers):
            for (topic, partition), n in sorted(c.lag().items()):
                lag.add_metric([c.group_id, topic, str(partition)], n)
            newest = c.newest_event_time()
            if newest is not None:
                age.add_metric([c.group_id], max(now - newest, 0.0))
        backlog = GaugeMetricFamily(
            "hub_relay_backlog_rows", "Outbox rows waiting to be published.", labels=["agency"])
        oldest = GaugeMetricFamily(
            "hub_relay_oldest_row_age_seconds", "Age of the oldest outbox row waiting"
            " (0 when none waits).", labels=["agency"])
        parked = GaugeMetricFamily(
            "hub_outbox_parked_rows", "Outbox rows Kafka refused, parked for an operator"
            " (`hub outbox parked`).", labels=["agency"])
        for r in list(self.relays):
            backlog.add_metric([r.agency], r.look.backlog)
            created = r.look.oldest_created
            oldest.add_metric([r.agency], 0.0 if created is None else max(now - created, 0.0))
            parked.add_metric([r.agency], r.look.parked)
        yield from (lag, age, backlog, oldest, parked)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


LIVE = _Live()
REGISTRY.register(LIVE)


def watch_consumer(consumer: LiveConsumer) -> None:
    """Expose a running consumer's lag and event age until it is gone."""
    LIVE.consumers.add(consumer)


def watch_relay(relay: LiveRelay) -> None:
    """Expose a running relay's outbox until it is gone."""
    LIVE.relays.add(relay)


class MetricsServer:
    """The process's `/metrics` endpoint, on a thread of its own until closed."""

    def __init__(self, address: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, address, registry=REGISTRY)
        self.port = self._server.server_port

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
