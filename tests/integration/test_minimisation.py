"""Each agency's Kafka principal obtains only the fields it needs (docs/privacy.md §2).

The authority's relay publishes a lifecycle with every sensitive field filled in (family
members, a passport change, a cancellation for death); the card's relay publishes an
e-card with its live QR token. Then each agency's own principal reads every permit and
outcome topic: it is refused every topic but its own, and what it reads of its own holds no
JSON path beyond what its expectations declare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from aiokafka.errors import KafkaError

from hub import bootstrap
from hub.db import open_pool
from hub.kafka_credentials import front_door
from hub.outbox import OutgoingMessage, enqueue
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas import topics
from schemas.audiences import data_paths
from schemas.permits import CancellationReason, Category, FamilyMember
from tests.factories import employer, holder
from tests.integration.hub_fixtures import eventually, permit_topic, read_topic
from tests.integration.test_social_insurance_registrations import card_issued

pytestmark = pytest.mark.integration

AGENCIES = ("card", "public_security", "social_insurance")


def leaf_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every JSON path below `value` that holds a scalar (or an empty container), with `[]`
    for array items: what a reader actually obtained."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaf_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list) and value:
        for v in value:
            yield from leaf_paths(v, f"{prefix}[]")
    else:
        yield prefix


def covered(path: str, declared: frozenset[str]) -> bool:
    """Whether `path` is one a reader declared, or lies below one it takes whole."""
    return any(path == d or path.startswith((f"{d}.", f"{d}[]")) for d in declared)


async def _read_as(settings: Settings, principal: str, topic: str) -> list[bytes] | str:
    """Every value of `topic` read as `principal`, or the error Kafka refused it with."""
    try:
        return [r.value for r in await read_topic(settings, topic, principal=principal)]
    except (KafkaError, LookupError) as exc:
        return type(exc).__name__


async def test_each_principal_reads_only_its_own_topics_and_fields(
    hub_settings: Settings,
) -> None:
    settings = hub_settings
    start = date(2025, 5, 1)
    family = (FamilyMember(name="Lea Example", relationship="child"),)
    async with bootstrap.running_relay(settings, "workpermit"), authority(settings) as auth:
        letter = await auth.apply(holder=holder(), employer=employer(), category=Category.B,
                                  position="Engineer", approved_months=12, family=family,
                                  today=start)
        no = letter.permit_no
        await auth.issue(no, valid_from=start, today=start)
        await auth.change(no, passport_no="E99887766")
        record = await auth.cancel(no, reason=CancellationReason.DEATH, today=date(2025, 9, 1))
        async with open_pool(settings.dsn("card")) as pool, pool.acquire() as conn, \
                conn.transaction():
            ecard = card_issued(record, "ESSC0123456789ABCDEF")
            await enqueue(conn, [OutgoingMessage.of_event(settings.topic(topics.CARD_EVENTS),
                                                          ecard)])

        async def relayed() -> bool:
            return all([len(await read_topic(settings, permit_topic(settings, a))) == 4
                        for a in AGENCIES])

        await eventually(relayed, what="four events on each agency's permit topic")
    async with bootstrap.running_relay(settings, "card"):
        si_cards = settings.topic(topics.audience_topic(topics.CARD_EVENTS, "social_insurance"))

        async def card_relayed() -> bool:
            return len(await read_topic(settings, si_cards)) == 1

        await eventually(card_relayed, what="the e-card on social insurance's card topic")

    permit_topics = {a: permit_topic(settings, a) for a in AGENCIES}
    full_cards = settings.topic(topics.CARD_EVENTS)
    # The e-card in full, with its token, is for the card's front door alone.
    [full] = await read_topic(settings, full_cards, principal=front_door("card"))
    assert json.loads(full.value)["data"]["qr"]["token"] == "t" * 40

    for agency in AGENCIES:
        declared = installed().get(agency).expectations
        for owner, topic in [*permit_topics.items(), ("social_insurance", si_cards),
                             ("card-front-door", full_cards)]:
            got = await _read_as(settings, agency, topic)
            if owner != agency:
                assert isinstance(got, str), f"{agency} read {topic}"
                continue
            assert isinstance(got, list), f"{agency} could not read {topic}: {got}"
            assert got, f"{agency} found nothing on {topic}"
            for value in got:
                event = json.loads(value)
                name = event["type"].rsplit(".", 1)[1]
                reads = data_paths(declared[name])
                extra = sorted(p for p in leaf_paths(event["data"]) if not covered(p, reads))
                assert extra == [], f"{agency} obtained {extra} of {name}"
    # What the agencies did not need is nowhere in their topics, named outright too.
    received = {a: b"".join(r.value for r in await read_topic(settings, permit_topics[a],
                                                               principal=a))
                for a in AGENCIES}
    received["social_insurance"] += b"".join(
        r.value for r in await read_topic(settings, si_cards, principal="social_insurance"))
    for a, blob in received.items():
        assert b"Lea Example" not in blob, a  # family members: no agency reads them
        assert b"token" not in blob, a  # the QR token: no agency verifies it from Kafka
        assert (b"date_of_birth" in blob) == (a == "social_insurance"), a
        assert (b"death" in blob) == (a == "social_insurance"), a  # its suspension cause
    assert b"E99887766" not in received["card"]  # the card never needs the passport
    assert b"E99887766" in received["public_security"]
