"""Bad input on the real broker: each kind lands in the group's dead-letter topic with its
reason and origin, its offset is still advanced, and the stream goes on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.card.handlers import card_permit
from demo.synthetic import stream
from hub import bootstrap
from hub.ops.lag import caught_up
from hub.settings import Settings
from schemas import topics
from tests.integration.hub_fixtures import (
    AUTHORITY,
    eventually,
    expected_rows,
    permit_topic,
    publish,
    read_topic,
    signed,
    view_rows,
)

pytestmark = pytest.mark.integration


def _bad_messages(
    template: dict[str, Any], subject: str, lone: dict[str, Any]
) -> dict[str, tuple[bytes, bytes]]:
    """One message of each kind the runtime must refuse, by the reason it must give."""

    def variant(change: Any) -> bytes:
        body = json.loads(json.dumps(template))
        change(body)
        return json.dumps(body).encode()

    def wrong_nationality(b: dict[str, Any]) -> None:
        b["data"]["permit"]["holder"]["nationality"] = "Germany"

    def unknown_type(b: dict[str, Any]) -> None:
        b["type"] = "cn.mohrss.workpermit.PermitTeleported"

    # Valid for the schema, but Postgres cannot store NUL in text: a handler error. It is
    # the only event of its permit, so no newer version in the batch can supersede it.
    lone["data"]["permit"]["holder"]["name"] = "Bad\u0000Name"

    key = subject.encode()
    return {
        "undecodable": (key, b"\xff\xfe this is not JSON"),
        "schema_violation": (key, variant(wrong_nationality)),
        "unknown_type": (key, variant(unknown_type)),
        "key_mismatch": (b"999999999999999999", json.dumps(template).encode()),
        "handler_error": (lone["subject"].encode(), json.dumps(lone).encode()),
    }


async def test_each_kind_of_bad_input_is_dead_lettered_with_its_reason(
    hub_settings: Settings,
) -> None:
    """Undecodable, schema-violating, unknown-type, mis-keyed and handler-breaking messages
    each reach card's DLQ once, with origin headers; good messages around them are applied."""
    events = list(stream(40, seed=3))
    first, rest = events[:20], events[20:]
    victim = next(e for e in events if e.sequence == 2)
    lone = next(e for e in stream(1, seed=5, base=800_000_000_000_000_000) if e.sequence == 1)
    bad = _bad_messages(json.loads(victim.to_json()), victim.subject, json.loads(lone.to_json()))
    topic = permit_topic(hub_settings, "card")
    origins = {}
    await publish(hub_settings, first)
    async with bootstrap.producer(hub_settings, "bad-client", principal=AUTHORITY) as prod:
        for reason, (key, value) in bad.items():
            meta = await prod.send_and_wait(
                topic, key=key, value=value,
                headers=signed(hub_settings, topics.PERMIT_EVENTS, value))
            origins[reason] = (meta.partition, meta.offset)
    await publish(hub_settings, rest)

    async with bootstrap.running_consumer(hub_settings, "card") as consumer:
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to pass the bad input")
    assert consumer.stats.dead_lettered == len(bad)
    assert await view_rows(hub_settings, "card") == expected_rows(events, card_permit)

    group = hub_settings.topic("card")
    dead = await read_topic(hub_settings, topics.dead_letter_topic(group))
    assert len(dead) == len(bad)
    by_reason = {}
    for rec in dead:
        headers = {k: v.decode() for k, v in rec.headers}
        by_reason[headers["dlq.reason"]] = (rec, headers)
    assert set(by_reason) == set(bad)
    for reason, (rec, headers) in by_reason.items():
        key, value = bad[reason]
        partition, offset = origins[reason]
        assert headers["dlq.origin.topic"] == topic
        assert (int(headers["dlq.origin.partition"]), int(headers["dlq.origin.offset"])) == (
            partition, offset)
        assert headers["dlq.group"] == group
        assert headers["dlq.error.class"]
        assert headers["dlq.error.message"]
        assert headers["dlq.time"]
        if reason != "handler_error":
            # Raw failures keep the original bytes; the handler error re-encodes the event.
            assert (rec.key, rec.value) == (key, value)
    assert "nationality" in by_reason["schema_violation"][1]["dlq.error.message"]
    assert "PermitTeleported" in by_reason["unknown_type"][1]["dlq.error.message"]
    assert by_reason["handler_error"][1]["dlq.error.class"] == "CharacterNotInRepertoireError"
