"""A fourth agency, installed the way another distribution would be, with no edit to hub/.

The housing provident fund (`tests/agencies/housing_fund`) is registered only through the
`permit_hub.agencies` entry point: the test writes a `.dist-info` directory with that entry
point onto the path, which is what `pip install` of its own distribution leaves behind. It
then gets its topics, its consumer group and database (`hub init`), `hub run`, `hub lag`,
`hub replay`, the DLQ tools and its AsyncAPI entries, and keeps a view equal to the
authority's records after a lifecycle.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from hub import bootstrap
from hub.bootstrap import init_all
from hub.ops.asyncapi import describe
from hub.ops.lag import caught_up
from hub.ops.reconcile import reconcile
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas import topics
from schemas.permits import CancellationReason, Category
from tests.factories import employer, holder
from tests.integration.hub_fixtures import AUTHORITY, eventually, permit_topic, signed

pytestmark = pytest.mark.integration

AGENCIES_DIR = Path(__file__).resolve().parents[1] / "agencies"
ENTRY_POINTS = """[permit_hub.agencies]
housing_fund = housing_fund:AGENCY
"""


@pytest.fixture
def fund_installed(tmp_path: Path) -> Iterator[list[str]]:
    """The fund's distribution on the path (its package and its entry point), for this
    process and, through PYTHONPATH, for the `hub` processes the test starts."""
    site = tmp_path / "site"
    info = site / "permit_hub_housing_fund-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: permit-hub-housing-fund\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    paths = [str(site), str(AGENCIES_DIR)]
    sys.path[:0] = paths
    installed.cache_clear()
    try:
        yield paths
    finally:
        for p in paths:
            sys.path.remove(p)
        installed.cache_clear()


@pytest.fixture
async def fund_hub(stack_settings: Settings, fund_installed: list[str]) -> Settings:
    """A fresh prefix on the session's stack, initialised with the fund installed."""
    tag = secrets.token_hex(3)
    settings = stack_settings.model_copy(update={
        "topic_prefix": f"{stack_settings.topic_prefix}{tag}.",
        "database_prefix": f"{stack_settings.database_prefix}{tag}_",
        "batch_timeout_ms": 50,
    })
    await init_all(settings)
    return settings


def _env(settings: Settings, paths: list[str]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
        "HUB_KAFKA_BOOTSTRAP": settings.bootstrap,
        "HUB_DATABASE_URL": settings.server_url(),
        "HUB_DATABASE_PREFIX": settings.database_prefix,
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_HOME": str(settings.home),
        "HUB_KAFKA_CA_FILE": str(settings.kafka_ca()),
        "HUB_KAFKA_CREDENTIALS_DIR": str(settings.kafka_password_file("ops").parent),
        "HUB_BATCH_TIMEOUT_MS": "50",
        "HUB_LOG_FORMAT": "json",
    }


async def _hub(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    if proc.returncode not in (0, 1):
        raise AssertionError(f"hub {' '.join(args)} exited {proc.returncode}: {err.decode()}")
    return proc.returncode, out.decode()


async def _lifecycle(settings: Settings) -> list[str]:
    """Three permits: one issued and extended, one cancelled, one changed."""
    start = date(2025, 3, 1)
    async with authority(settings) as auth:
        nos = []
        for n in range(3):
            rec = await auth.apply(holder=holder(random.Random(n)), employer=employer(),
                                   category=Category.B, position="Engineer",
                                   approved_months=12, today=start)
            await auth.issue(rec.permit_no, valid_from=start + timedelta(days=10),
                             today=start + timedelta(days=10))
            nos.append(rec.permit_no)
        found = await auth.get(nos[0])
        assert found is not None
        until = found[0].valid_until
        assert until is not None
        await auth.extend(nos[0], new_valid_until=until + timedelta(days=365),
                          today=until - timedelta(days=60))
        await auth.cancel(nos[1], reason=CancellationReason.EMPLOYER_APPLICATION,
                          today=start + timedelta(days=40))
        await auth.change(nos[2], position="Chief Engineer")
    return nos


async def test_an_agency_from_another_distribution_gets_the_whole_hub(
    fund_hub: Settings, fund_installed: list[str]
) -> None:
    """Registered only by entry point, the fund gets its topics, database, `hub run`, lag,
    replay, DLQ tools and AsyncAPI entries, and its view matches the authority."""
    settings, env = fund_hub, _env(fund_hub, fund_installed)
    fund = installed().get("housing_fund")
    group = fund.group_id(settings)

    # Declared topics and the database: created by `hub init` (the fixture's init_all).
    code, listed = await _hub(env, "topics", "list")
    assert fund.dead_letter_topic(settings) in listed.split()
    async with bootstrap.pool(settings, "housing_fund", max_size=1) as p:
        steps = await p.fetch("SELECT source, version FROM hub_schema_migrations"
                              " WHERE source = 'housing_fund'")
    assert [(r["source"], r["version"]) for r in steps] == [("housing_fund", 1)]

    # The AsyncAPI document receives the fund's own permit topic in the fund's group.
    described = describe(settings)
    assert described.groups == {**described.groups,
                                f"{permit_topic(settings, 'housing_fund')}:{group}": group}

    # `hub run housing_fund` as its own process; the authority's relay in this one.
    runner = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "run", "housing_fund", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with bootstrap.running_agency(settings, "workpermit"):
            nos = await _lifecycle(settings)
            bad = await _publish_garbage(settings)

            async def agrees() -> bool:
                return await caught_up(settings, "housing_fund") and not await reconcile(
                    settings, ["housing_fund"])

            async def explain() -> str:
                drifts = await reconcile(settings, ["housing_fund"])
                return f"hub run exited {runner.returncode}; {len(drifts)} drift(s): {drifts[:3]}"

            await eventually(agrees, timeout=90, what="the fund's view to match the authority",
                             explain=explain)
    finally:
        if runner.returncode is None:
            runner.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(runner.communicate(), 60)
        print(err.decode()[-4000:], file=sys.stderr)  # the runner's log, shown on failure
    assert runner.returncode == 0, err.decode()[-2000:]

    # `hub lag`: every partition of the fund's topic applied.
    code, out = await _hub(env, "lag", "housing_fund", "--json")
    rows = json.loads(out)
    assert code == 0
    assert rows
    assert {r["group"] for r in rows} == {group}
    assert sum(r["lag"] for r in rows) == 0

    # The DLQ tools see the record it could not decode, with the reason.
    code, out = await _hub(env, "dlq", "list", "housing_fund", "--json")
    listing = json.loads(out)
    assert listing["by_reason"] == {"undecodable": 1}
    assert listing["messages"][0]["origin"].endswith(f":{bad}")

    # `hub replay` rebuilds the view and switches it in; it still matches the authority.
    code, out = await _hub(env, "replay", "housing_fund", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "switched"
    assert await reconcile(settings, ["housing_fund"]) == []
    async with bootstrap.pool(settings, "housing_fund", max_size=1) as p:
        held = {r["permit_no"]: r for r in await p.fetch("SELECT * FROM hf_permits")}
    assert set(held) == set(nos)
    assert held[nos[1]]["status"] == "cancelled"


async def _publish_garbage(settings: Settings) -> int:
    """One record no agency can decode, on the fund's permit topic; its offset."""
    async with bootstrap.producer(settings, "test-garbage", principal=AUTHORITY) as prod:
        meta = await prod.send_and_wait(
            permit_topic(settings, "housing_fund"), key=b"000000000000000000", value=b"not json",
            headers=signed(settings, topics.PERMIT_EVENTS, b"not json"))
    offset: int = meta.offset
    return offset

