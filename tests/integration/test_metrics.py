"""Each long-running process's Prometheus endpoint, scraped during a lifecycle on the real
broker and database, against what happened (hub/metrics.py, `hub run --metrics-port`).

Every agency runs as its own process (`hub run AGENCY`), each with its endpoint and its
spans exported by OTLP/HTTP to a receiver the test runs. The test makes permits through the
authority's command path and puts one unsigned and one undecodable record on the card's
permit topic. Then: what the authority's relay published per topic is what the topics
hold; what each agency applied from its permit topic is every record there but the two
refused; the two are counted as dead letters by reason, the unsigned one as a signature
failure; lag is 0 once caught up, the newest applied event's age and the relay's backlog
are exposed; and the spans reached the receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from hub import bootstrap
from hub.kafka import end_offsets
from hub.kafka_credentials import ADMIN
from hub.ops.lag import caught_up
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas import topics
from schemas.permits import CancellationReason, Category
from tests.factories import employer, holder
from tests.integration.hub_fixtures import AUTHORITY, eventually, permit_topic, signed
from tests.integration.stack_fixtures import free_ports
from tests.integration.test_ops_cli import settings_env

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of the endpoint, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= ls)


AGENCIES = ("workpermit", "card", "public_security", "social_insurance")


class OtlpReceiver:
    """A stand-in OpenTelemetry collector's OTLP/HTTP endpoint: it keeps what is posted."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((request.path, request.content_type, await request.read()))
        return web.Response(status=200)


@contextlib.asynccontextmanager
async def running(settings: Settings, otlp: int) -> AsyncIterator[dict[str, int]]:
    """`hub run AGENCY` for every agency, each with a metrics port of its own and spans
    exported to the OTLP endpoint on `otlp`; stopped (SIGTERM) on exit."""
    env = {**os.environ, **settings_env(settings), "HUB_BATCH_TIMEOUT_MS": "50",
           "HUB_LOG_FORMAT": "json", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp}"}
    ports = dict(zip(AGENCIES, free_ports(len(AGENCIES)), strict=True))
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "run", agency, "--metrics-port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        for agency, port in ports.items()]
    try:
        async def serving() -> bool:
            try:
                return all(scrape(p) for p in ports.values())
            except OSError:
                return False
        await eventually(serving, timeout=90, what="every metrics endpoint")
        yield ports
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            _, err = await asyncio.wait_for(p.communicate(), 60)
            print(err.decode()[-3000:], file=sys.stderr)  # shown when the test fails
        assert [p.returncode for p in procs] == [0] * len(procs)


async def test_each_process_exposes_what_it_did(hub_settings: Settings) -> None:
    settings = hub_settings
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    [otlp] = free_ports(1)
    await web.TCPSite(runner, "127.0.0.1", otlp).start()
    try:
        async with running(settings, otlp) as processes:
            await _lifecycle_and_scrape(settings, processes)
    finally:
        await runner.cleanup()
    # Spans went to the collector by OTLP/HTTP (protobuf), flushed at the latest on SIGTERM.
    assert receiver.posts
    assert {(path, kind) for path, kind, _ in receiver.posts} == {
        ("/v1/traces", "application/x-protobuf")}
    sent = b"".join(body for _, _, body in receiver.posts)
    # Each process names itself as the service: the authority's relay publishing (its
    # decisions were taken in this process), and social insurance's work on the letters
    # (the card handled no request here: it records no span).
    assert b"permit-hub-workpermit" in sent
    assert b"publish workpermit" in sent
    assert b"permit-hub-social_insurance" in sent
    assert b"handle " in sent


async def _lifecycle_and_scrape(settings: Settings, processes: dict[str, int]) -> None:
    card = installed().get("card")
    group, card_topic = card.group_id(settings), permit_topic(settings, "card")
    # Recent dates: `hub run workpermit`'s calendar (today's date) expires none of them.
    start = date.today() - timedelta(days=60)
    async with authority(settings) as auth:
        nos = []
        for n in range(3):
            rec = await auth.apply(holder=holder(), employer=employer(), category=Category.B,
                                   position=f"Engineer {n}", approved_months=12, today=start)
            await auth.issue(rec.permit_no, valid_from=start + timedelta(days=10),
                             today=start + timedelta(days=10))
            nos.append(rec.permit_no)
        await auth.cancel(nos[1], reason=CancellationReason.EMPLOYER_APPLICATION,
                          today=start + timedelta(days=40))
    async with bootstrap.producer(settings, "test-bad-records", principal=AUTHORITY) as prod:
        await prod.send_and_wait(card_topic, key=nos[0].encode(), value=b"not json",
                                 headers=signed(settings, topics.PERMIT_EVENTS, b"not json"))
        await prod.send_and_wait(card_topic, key=nos[0].encode(), value=b'{"unsigned": 1}')

    async def settled() -> bool:
        # Every consuming process, not the card alone: each is its own process, and under
        # load one may still be joining its group when the card has caught up.
        for agency in ("card", "public_security", "social_insurance"):
            if not await caught_up(settings, agency):
                return False
        return value(scrape(processes["workpermit"]), "hub_relay_backlog_rows",
                     agency="workpermit") == 0
    await eventually(settled, timeout=90, what="every view to catch up, the authority's"
                     " outbox to drain")

    # The authority's relay: per topic, what it published is what the topic holds (the two
    # bad records on the card's topic were written by the test, not by the relay).
    relay = installed().get(AUTHORITY)
    written = [settings.topic(c.topic) for c in (*relay.publications(), relay.heads) if c]
    ends = await end_offsets(settings, written, ADMIN)
    held = {t: sum(o for tp, o in ends.items() if tp.topic == t) for t in written}
    authority_samples = scrape(processes["workpermit"])
    for topic, n in held.items():
        expected = n - (2 if topic == card_topic else 0)
        assert total(authority_samples, "hub_events_published_total", agency=AUTHORITY,
                     topic=topic) == expected, topic
    # The card reads every permit event: three letters, three issues, one cancellation.
    async with bootstrap.pool(settings, AUTHORITY, max_size=1) as p:
        events = await p.fetchval("SELECT sum(sequence) FROM permits")
    assert events == 7
    assert held[card_topic] - 2 == events

    # Every consuming process: what it applied from its own permit topic is what that topic
    # holds (the two bad records were put on the card's alone).
    for agency in ("public_security", "social_insurance"):
        topic = permit_topic(settings, agency)
        end = sum((await end_offsets(settings, [topic], ADMIN)).values())
        samples = scrape(processes[agency])
        assert total(samples, "hub_events_applied_total",
                     group=installed().get(agency).group_id(settings), topic=topic) == end == 7
    card_samples = scrape(processes["card"])
    applied = total(card_samples, "hub_events_applied_total", group=group, topic=card_topic)
    assert applied == held[card_topic] - 2
    assert value(card_samples, "hub_events_dead_lettered_total", group=group,
                 reason="undecodable") == 1
    assert value(card_samples, "hub_events_dead_lettered_total", group=group,
                 reason="unauthenticated") == 1
    assert value(card_samples, "hub_signature_failures_total", group=group) == 1
    lags = {ls: v for (n, ls), v in card_samples.items() if n == "hub_consumer_lag_records"}
    assert lags
    assert set(lags.values()) == {0}
    age = value(card_samples, "hub_newest_applied_event_age_seconds", group=group)
    assert age is not None
    assert age >= 0
    assert total(card_samples, "hub_batch_seconds_count", group=group) >= 1
    assert total(card_samples, "hub_commit_seconds_count", group=group) >= 1
    assert value(card_samples, "hub_relay_backlog_rows", agency="card") is not None
    assert value(authority_samples, "hub_outbox_parked_rows", agency=AUTHORITY) == 0
