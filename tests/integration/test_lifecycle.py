"""The spine end to end on the real Kafka and Postgres: authority → outbox → relay →
three agency views, and replays and duplicates that must change nothing."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta
from typing import Any

import pytest

from demo.synthetic import _employer, _holder
from hub import bootstrap
from hub.ops.lag import caught_up
from hub.ops.views import drifts
from hub.projection import fetch_all
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import Authority, PermitRuleViolation, authority
from schemas.permits import CancellationReason, Category, PermitStatus
from tests.integration.hub_fixtures import AUTHORITY, eventually, permit_topic, read_topic

pytestmark = pytest.mark.integration

AGENCIES = tuple(a.name for a in installed().consumers())


async def random_lifecycles(auth: Authority, rng: random.Random, permits: int) -> list[str]:
    """Apply for `permits` permits, then run random valid and invalid commands on them."""
    nos = []
    for _ in range(permits):
        today = bootstrap_date(rng)
        rec = await auth.apply(holder=_holder(rng), employer=_employer(rng),
                               category=rng.choice(list(Category)), position="Engineer",
                               approved_months=rng.choice((6, 12, 24)), today=today)
        nos.append(rec.permit_no)
    for _ in range(permits * 3):
        permit_no = rng.choice(nos)
        found = await auth.get(permit_no)
        assert found is not None
        record = found[0]
        # Refused commands publish nothing, as at the real authority.
        with contextlib.suppress(PermitRuleViolation):
            await _random_command(auth, record, rng)
    return nos


def bootstrap_date(rng: random.Random) -> Any:
    from datetime import date

    return date(2025, 1, 1) + timedelta(days=rng.randrange(300))


async def _random_command(auth: Authority, record: Any, rng: random.Random) -> None:
    no = record.permit_no
    if record.status is PermitStatus.LETTER_ISSUED:
        roll = rng.random()
        if roll < 0.8:
            day = record.letter_issued_on + timedelta(days=rng.randrange(5, 60))
            await auth.issue(no, valid_from=day, today=day)
        elif roll < 0.9:
            await auth.cancel(no, reason=CancellationReason.EMPLOYER_APPLICATION,
                              today=record.letter_issued_on)
        else:  # never entered: the letter lapses after its 6 months
            await auth.lapse(no, today=record.letter_issued_on + timedelta(days=200))
        return
    if record.status in (PermitStatus.CANCELLED, PermitStatus.EXPIRED, PermitStatus.LAPSED):
        if rng.random() < 0.3:  # the former holder applies again, keeping the number
            ended = record.cancelled_on or record.valid_until or record.letter_issued_on
            await auth.apply(holder=record.holder, employer=_employer(rng),
                             category=record.category, position="Engineer",
                             approved_months=12, today=ended + timedelta(days=190),
                             previous_permit_no=no)
        return
    roll = rng.random()
    if roll < 0.35:
        await auth.extend(no, new_valid_until=record.valid_until + timedelta(days=365),
                          today=record.valid_until - timedelta(days=rng.randrange(25, 95)))
    elif roll < 0.75:
        await auth.change(no, position=f"Position {rng.randrange(1000)}")
    elif roll < 0.9:
        await auth.cancel(no, reason=rng.choice(list(CancellationReason)),
                          today=record.valid_until - timedelta(days=3))
    else:
        await auth.expire(no, today=record.valid_until + timedelta(days=rng.randrange(-3, 3)))


async def snapshot(settings: Settings) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every row of every view, applied_at included."""
    out = {}
    for agency in AGENCIES:
        async with bootstrap.pool(settings, agency, max_size=1) as p:
            out[agency] = await fetch_all(p, installed().view(agency).table)
    return out


async def all_caught_up(settings: Settings) -> bool:
    return all([await caught_up(settings, a) for a in AGENCIES])


async def test_random_lifecycles_reach_every_view_exactly(hub_settings: Settings) -> None:
    """Hundreds of permits through random commands end with every view equal to the authority."""
    async with (
        bootstrap.running_relay(hub_settings, "workpermit"),
        bootstrap.running_consumer(hub_settings, "card"),
        bootstrap.running_consumer(hub_settings, "public_security"),
        bootstrap.running_consumer(hub_settings, "social_insurance"),
        authority(hub_settings) as auth,
    ):
        nos = await random_lifecycles(auth, random.Random(42), permits=300)

        async def settled() -> bool:
            return not await drifts(hub_settings)

        await eventually(settled, timeout=90, what="views to agree with the authority")
    truth = await _truth(hub_settings)
    assert len(nos) == len(truth) == 300
    statuses = {record.status for record, _ in truth.values()}
    assert statuses == set(PermitStatus), "the random walk should reach every status"
    assert max(seq for _, seq in truth.values()) >= 4


async def _truth(settings: Settings) -> dict[str, Any]:
    async with authority(settings) as auth:
        return await auth.all()


async def test_duplicates_and_replays_change_nothing(hub_settings: Settings) -> None:
    """Every event published twice, and a view replayed from offset 0, leave the views as
    they were."""
    async with bootstrap.running_relay(hub_settings, "workpermit"), authority(hub_settings) as auth:
        await random_lifecycles(auth, random.Random(7), permits=60)
        async with (
            bootstrap.running_consumer(hub_settings, "card"),
            bootstrap.running_consumer(hub_settings, "public_security"),
            bootstrap.running_consumer(hub_settings, "social_insurance"),
        ):
            await eventually(lambda: _no_drift(hub_settings), what="first convergence")
            before = await snapshot(hub_settings)
            copied = await _republish_everything(hub_settings)
            assert copied > 60
            await eventually(lambda: all_caught_up(hub_settings), what="duplicates consumed")
            assert await snapshot(hub_settings) == before
        # Replay: forget the card view's offsets, so it reads the topic again from 0.
        async with bootstrap.pool(hub_settings, "card", max_size=1) as p:
            await p.execute("DELETE FROM hub_consumer_offsets")
        async with bootstrap.running_consumer(hub_settings, "card"):
            await eventually(lambda: caught_up(hub_settings, "card"), what="replay to finish")
        assert await snapshot(hub_settings) == before
        assert await drifts(hub_settings) == []


async def _no_drift(settings: Settings) -> bool:
    return not await drifts(settings)


async def _republish_everything(settings: Settings) -> int:
    """Read every agency's permit topic from the start and produce every message again."""
    copied = 0
    for agency in ("card", "public_security", "social_insurance"):
        copied += await _republish(settings, permit_topic(settings, agency))
    return copied


async def _republish(settings: Settings, topic: str) -> int:
    records = await read_topic(settings, topic, timeout=30.0)
    async with bootstrap.producer(settings, "republisher", principal=AUTHORITY) as prod:
        futures = [await prod.send(topic, key=r.key, value=r.value, headers=list(r.headers))
                   for r in records]
        for f in futures:
            await f
    return len(records)
