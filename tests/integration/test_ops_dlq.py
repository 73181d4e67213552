"""`hub dlq list|show|redrive` on the real broker: dead letters are listed with their reasons,
shown with their headers, redriven to their origin after a fix and recorded, a message that
keeps failing ends in quarantine, and bad input changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from demo.synthetic import stream
from hub import bootstrap
from hub.kafka import REDRIVE_COUNT, REDRIVE_LIMIT, end_offsets, quarantine_topic
from hub.ops.lag import caught_up
from hub.settings import Role, Settings
from schemas import CloudEvent, topics
from tests.integration.hub_fixtures import (
    AUTHORITY,
    OBSERVER,
    eventually,
    permit_topic,
    publish,
    read_topic,
    signed,
)
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration

BLOCK = ("ALTER TABLE card_permits ADD CONSTRAINT ops_test_block"
         " CHECK (holder_name NOT LIKE 'Blocked%')")
UNBLOCK = "ALTER TABLE card_permits DROP CONSTRAINT ops_test_block"
WHY = ("--purpose", "T-1 check")


def _lone(base: int, name: str) -> CloudEvent[Any]:
    """The first event of a permit of its own, with this holder name."""
    event = next(stream(1, seed=5, base=base))
    body = json.loads(event.to_json())
    body["data"]["permit"]["holder"]["name"] = name
    return type(event).model_validate(body)


async def _sql(settings: Settings, statement: str, *args: Any, role: Role = "app") -> Any:
    async with bootstrap.pool(settings, "card", max_size=1, role=role) as p:
        return await p.fetch(statement, *args)


async def _json(settings: Settings, *args: str, code: int = 0) -> Any:
    result = await invoke(settings, *args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


async def test_dead_letters_are_listed_shown_redriven_recorded_and_quarantined(
    hub_settings: Settings,
) -> None:
    """A handler failure fixed later is redriven and applied once; a message that keeps
    failing is redriven until the loop guard quarantines it; every redrive is recorded."""
    group = hub_settings.topic("card")
    dlq = topics.dead_letter_topic(group)
    card_topic = permit_topic(hub_settings, "card")
    blocked = _lone(800_000_000_000_000_000, "Blocked Person")
    broken = _lone(700_000_000_000_000_000, "Bad\u0000Name")
    unknown = json.loads(blocked.to_json())
    unknown["type"] = "cn.mohrss.workpermit.PermitTeleported"
    await _sql(hub_settings, BLOCK, role="owner")  # DDL: the owner's
    await publish(hub_settings, [*stream(10, seed=9), blocked, broken])
    async with bootstrap.producer(hub_settings, "foreign", principal=AUTHORITY) as prod:
        value = json.dumps(unknown).encode()
        await prod.send_and_wait(card_topic, key=blocked.subject.encode(), value=value,
                                 headers=signed(hub_settings, topics.PERMIT_EVENTS, value))

    async def settled() -> bool:
        return await caught_up(hub_settings, "card")

    async with bootstrap.running_consumer(hub_settings, "card"):
        await eventually(settled, what="card to pass the bad input")

        listing = await _json(hub_settings, "dlq", "list", "card")
        assert (listing["topic"], listing["total"]) == (dlq, 3)
        assert listing["by_reason"] == {"handler_error": 2, "unknown_type": 1}
        assert all(m["origin"].startswith(f"{card_topic}:") for m in listing["messages"])
        assert not any(m["redriven"] for m in listing["messages"])
        ref = {(m["reason"], m["error_class"]): m["ref"] for m in listing["messages"]}
        blocked_ref = ref[("handler_error", "CheckViolationError")]

        shown = await _json(hub_settings, "dlq", "show", group, blocked_ref,
                            "--purpose", "INC-7 blocked permit")
        headers = dict(shown["headers"])
        assert headers["dlq.reason"] == "handler_error"
        assert headers["dlq.group"] == group
        assert "ops_test_block" in headers["dlq.error.message"]
        assert shown["key"] == blocked.subject == shown["value"]["subject"]
        assert "Blocked" not in json.dumps(shown)
        revealed = await _json(hub_settings, "dlq", "show", group, blocked_ref,
                               "--purpose", "INC-7 blocked permit", "--reveal")
        assert revealed["value"]["data"]["permit"]["holder"]["name"] == "Blocked Person"
        looks = await _sql(hub_settings, "SELECT subject, permit_no, revealed FROM hub_looks"
                           " WHERE command = 'dlq show' ORDER BY id")
        assert [tuple(r) for r in looks] == [
            (f"{dlq}:{blocked_ref}", blocked.subject, False),
            (f"{dlq}:{blocked_ref}", blocked.subject, True)]

        # A dry run plans all three and changes nothing: no message, no record, no table.
        ends = await end_offsets(hub_settings, [card_topic, dlq], OBSERVER)
        plan = await _json(hub_settings, "dlq", "redrive", "card", "--all", "--dry-run")
        assert sorted(p["result"] for p in plan) == ["planned"] * 3
        assert await end_offsets(hub_settings, [card_topic, dlq], OBSERVER) == ends
        assert await _sql(hub_settings, "SELECT * FROM hub_redrives") == []

        # The fix, then the redrive: the blocked permit is applied, once.
        await _sql(hub_settings, UNBLOCK, role="owner")
        [sent] = await _json(hub_settings, "dlq", "redrive", "card", blocked_ref)
        assert (sent["result"], sent["redrive_count"]) == ("sent", 1)
        await eventually(settled, what="the redriven message to be applied")
        row = await _sql(hub_settings, "SELECT sequence, applied_at FROM card_permits"
                         " WHERE permit_no = $1", blocked.subject)
        assert row[0]["sequence"] == 1
        resent = await _origin_record(hub_settings, card_topic, sent)
        assert resent.key == blocked.subject.encode()
        assert [k for k, _ in resent.headers if k.startswith("dlq.")] == [REDRIVE_COUNT]
        assert dict(resent.headers)[REDRIVE_COUNT] == b"1"

        # Already sent: skipped unless --again; sending it again does not change the view.
        [skipped] = await _json(hub_settings, "dlq", "redrive", "card", blocked_ref)
        assert skipped["result"] == "skipped"
        [again] = await _json(hub_settings, "dlq", "redrive", "card", blocked_ref, "--again")
        assert again["result"] == "sent"
        await eventually(settled, what="the duplicate to be passed")
        assert await _sql(hub_settings, "SELECT sequence, applied_at FROM card_permits"
                          " WHERE permit_no = $1", blocked.subject) == row

        # The NUL name keeps failing: each redrive comes back with a higher count, until
        # the count passes the limit and the runtime quarantines it instead.
        for count in range(1, REDRIVE_LIMIT + 2):
            done = await _json(hub_settings, "dlq", "redrive", "card", "--all",
                               "--reason", "handler_error")
            assert [(d["result"], d["redrive_count"]) for d in done
                    if d["result"] != "skipped"] == [("sent", count)]
            await eventually(settled, what=f"redrive {count} to fail again")

    listing = await _json(hub_settings, "dlq", "list", "card")
    counts = sorted(m["redrive_count"] for m in listing["messages"]
                    if m["error_class"] == "CharacterNotInRepertoireError")
    assert counts == list(range(REDRIVE_LIMIT + 1))
    quarantined = await _json(hub_settings, "dlq", "list", "card", "--quarantine")
    assert quarantined["topic"] == quarantine_topic(dlq)
    assert [m["redrive_count"] for m in quarantined["messages"]] == [REDRIVE_LIMIT + 1]
    assert quarantined["messages"][0]["reason"] == "handler_error"

    log = await _sql(hub_settings, "SELECT * FROM hub_redrives ORDER BY id")
    assert [r["result"] for r in log] == ["sent"] * (2 + REDRIVE_LIMIT + 1)
    assert {r["redriven_by"] for r in log} == {"ops-tester"}
    assert all(r["finished_at"] >= r["started_at"] and r["target_offset"] is not None
               for r in log)
    assert log[0]["origin_topic"] == card_topic
    assert sum(1 for m in listing["messages"] if m["redriven"]) == 1 + REDRIVE_LIMIT + 1


async def _origin_record(settings: Settings, topic: str, sent: dict[str, Any]) -> Any:
    partition = int(sent["origin"].rsplit(":", 2)[1])
    records = [r for r in await read_topic(settings, topic)
               if (r.partition, r.offset) == (partition, sent["target_offset"])]
    assert len(records) == 1
    return records[0]


async def test_dlq_commands_refuse_what_does_not_exist_and_change_nothing(
    hub_settings: Settings,
) -> None:
    """Unknown groups, partitions, offsets and malformed refs exit 2 with a message, and a
    refused redrive sends and records nothing."""
    card_topic = permit_topic(hub_settings, "card")
    async with bootstrap.producer(hub_settings, "foreign", principal=AUTHORITY) as prod:
        await prod.send_and_wait(card_topic, key=b"1" * 18, value=b"not json",
                                 headers=signed(hub_settings, topics.PERMIT_EVENTS, b"not json"))
    async with bootstrap.running_consumer(hub_settings, "card"):
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to catch up")
    [dead] = (await _json(hub_settings, "dlq", "list", "card"))["messages"]
    assert dead["reason"] == "undecodable"
    ends = await end_offsets(hub_settings, [card_topic], OBSERVER)

    cases = {
        ("dlq", "list", "no_such_group"): "no_such_group",
        ("dlq", "show", "card", "99:0", *WHY): "no partition 99",
        ("dlq", "show", "card", f"{dead['partition']}:999", *WHY): "no offset 999",
        ("dlq", "show", "card", "zero:one", *WHY): "not partition:offset",
        ("dlq", "redrive", "card", f"{dead['partition']}:999"): "nothing was redriven",
        ("dlq", "redrive", "card"): "--all",
        ("dlq", "redrive", "card", "0:0", "--all"): "--all",
        ("dlq", "redrive", "nobody", "--all", "--dry-run"): "nobody",
    }
    for args, message in cases.items():
        result = await invoke(hub_settings, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert await end_offsets(hub_settings, [card_topic], OBSERVER) == ends
    assert await _sql(hub_settings, "SELECT * FROM hub_redrives") == []
