"""Every record a Kafka client can legally produce is applied or dead-lettered with a reason,
and a consumer never exits because of one (issue 9, items 1 and 6).

Driven by a foreign client (kcat: each codec, null and binary keys, null and binary header
values) and by raw record bytes from aiokafka (a value near the broker's limit, deep nesting,
required CloudEvents attributes missing, wrong types, headers too large for any dead
letter). For each: the expected dead letter or application, the consumer alive (a valid
event sent after is applied), no view changed by a bad record, and `hub dlq list` reading
every dead letter back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from demo.synthetic import stream
from hub import bootstrap
from hub.kafka import QUARANTINED, TRUNCATED, quarantine_topic
from hub.ops.lag import caught_up
from hub.settings import Settings
from schemas import CloudEvent, topics
from tests.integration.hub_fixtures import (
    AUTHORITY,
    eventually,
    publish,
    read_topic,
    signed,
    view_rows,
    writer_of,
)
from tests.integration.stack_fixtures import kcat_login
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")
REQUESTS = topics.CARD_REQUESTS
"""A topic card reads that is not compacted: where a keyless record reaches a consumer."""
REQUEST = json.dumps(json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "examples"
     / "ECardRegistrationRequested.json").read_bytes()), separators=(",", ":")).encode()
"""A valid request its front door may sign, on one line (kcat splits its input at newlines):
only its missing key is wrong."""


def _events(count: int, base: int) -> list[CloudEvent[Any]]:
    """The first event of `count` permits of their own (each applies on its own)."""
    return [next(stream(1, seed=3, base=base + i)) for i in range(count)]


CARD_PERMITS = topics.audience_topic(topics.PERMIT_EVENTS, "card")
"""Where the card service receives the permit lifecycle (before the prefix)."""


async def _kcat(kcat: str, settings: Settings, *options: str | bytes, value: bytes,
                topic: str = CARD_PERMITS, check: bool = True) -> int:
    """Produce one record with kcat to a topic (the card's permit topic unless said), as the
    principal that writes it; kcat's exit status."""
    done = await asyncio.to_thread(
        subprocess.run, [kcat, "-P", *kcat_login(settings, writer_of(topic)),
                         "-t", settings.topic(topic), *options],
        input=value, check=check, timeout=60, capture_output=True)
    return done.returncode


def _headers(settings: Settings, value: bytes,
             topic: str = CARD_PERMITS) -> list[str | bytes]:
    """kcat's -H options carrying the signature of the topic's writer over `value`."""
    return [o for k, v in signed(settings, topic, value)
            for o in ("-H", f"{k}={v.decode()}")]


async def _settle(settings: Settings, applied: list[CloudEvent[Any]]) -> None:
    """Wait until card has consumed everything, then check its view holds exactly `applied`
    (no bad record changed it) and that the consumer is still running."""
    await eventually(lambda: caught_up(settings, "card"), what="card to consume everything")
    rows = await view_rows(settings, "card")
    assert {k: r["sequence"] for k, r in rows.items()} == {
        e.subject: e.sequence for e in applied}


async def _dlq(settings: Settings, *args: str) -> dict[str, Any]:
    result = await invoke(settings, "dlq", "list", "card", *args, "--json")
    assert result.exit_code == 0, result.output
    listing: dict[str, Any] = json.loads(result.stdout)
    return listing


async def test_a_foreign_client_s_codecs_keys_and_headers_never_stop_a_consumer(
    kcat: str, hub_settings: Settings
) -> None:
    """Valid events in every codec apply; a null key, a binary key and a null redrive
    counter are dead-lettered (the last to quarantine); null and binary header values on a
    valid event change nothing; the event sent last still applies."""
    settings = hub_settings
    valid = _events(len(CODECS) + 2, 710_000_000_000_000_000)
    async with bootstrap.running_consumer(settings, "card") as consumer:
        for codec, event in zip(CODECS, valid, strict=False):
            value = event.to_json()
            await _kcat(kcat, settings, "-z", codec, "-k", event.subject,
                        *_headers(settings, value), value=value)
        loose = valid[len(CODECS)]
        value = loose.to_json()
        # No -k: a null key. The permit topic is compacted, so the broker itself refuses a
        # keyless record there; on a request topic (not compacted) it reaches the consumer.
        assert await _kcat(kcat, settings, "-z", "lz4", *_headers(settings, value),
                           value=value, check=False) != 0
        await _kcat(kcat, settings, "-z", "lz4", *_headers(settings, REQUEST, REQUESTS),
                    value=REQUEST, topic=REQUESTS)
        # A binary key (-K splits key from value at the tab).
        await _kcat(kcat, settings, "-K", "\t", *_headers(settings, value),
                    value=b"\xff\xfe\x01\x80\t" + value)
        # Binary header values beside the signature: applied, they are not the hub's.
        await _kcat(kcat, settings, "-k", loose.subject, *_headers(settings, value),
                    "-H", b"trace=\xff\xfe\x9b[2J", value=value)
        # A null redrive counter on a keyless record: mangled, so quarantined, never int(None).
        await _kcat(kcat, settings, *_headers(settings, REQUEST, REQUESTS), "-H",
                    "dlq.redrive.count", value=REQUEST, topic=REQUESTS)
        await _settle(settings, valid[:len(CODECS) + 1])
        await publish(settings, [valid[-1]])
        await _settle(settings, valid)
        assert not consumer.done.is_set()

    listing = await _dlq(settings)
    assert listing["by_reason"] == {"key_missing": 1, "key_mismatch": 1}
    quarantined = await _dlq(settings, "--quarantine")
    assert quarantined["by_reason"] == {"key_missing": 1}
    [null] = await read_topic(settings, quarantine_topic(f"{settings.topic('card')}.dlq"))
    assert ("dlq.redrive.count", None) in null.headers


def _body(event: CloudEvent[Any], **changes: Any) -> dict[str, Any]:
    body = json.loads(event.to_json())
    for name, change in changes.items():
        if change is None:
            del body[name]
        else:
            body[name] = change
    return body


async def test_raw_record_bytes_are_dead_lettered_with_their_reason_and_read_back(
    hub_settings: Settings,
) -> None:
    """A value near the broker's limit (truncated in the DLQ, digest and size kept), deep
    nesting, each required CloudEvents attribute missing, wrong types, and headers too large
    for any dead letter (quarantined): each dead-lettered with its reason, nothing applied,
    and the valid event sent after them applied."""
    settings = hub_settings
    topic = settings.topic(CARD_PERMITS)
    first, last = _events(2, 720_000_000_000_000_000)
    key = first.subject.encode()
    bad: list[tuple[bytes, str]] = [
        (json.dumps({**_body(first), "data": {"pad": "x" * 1_040_000}}).encode(),
         "schema_violation"),
        (first.to_json()[:-1] + b', "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
         "undecodable"),
        *[(json.dumps(_body(first, **{name: None})).encode(), "schema_violation")
          for name in ("specversion", "id", "source", "type")],
        (json.dumps(_body(first, sequence="one", id=5)).encode(), "schema_violation"),
        (json.dumps([_body(first)]).encode(), "schema_violation"),
    ]
    async with (
        bootstrap.running_consumer(settings, "card") as consumer,
        bootstrap.producer(settings, "foreign", principal=AUTHORITY) as prod,
    ):
        for value, _ in bad:
            await prod.send_and_wait(topic, key=key, value=value,
                                     headers=signed(settings, topics.PERMIT_EVENTS, value))
        # Unsigned, with a header no dead letter has room for: quarantined with why.
        await prod.send_and_wait(topic, key=key, value=first.to_json(),
                                 headers=[("pad", b"h" * 1_000_000)])
        await _settle(settings, [])
        await publish(settings, [last])
        await _settle(settings, [last])
        assert not consumer.done.is_set()

    dead = await read_topic(settings, f"{settings.topic('card')}.dlq")
    assert [dict(r.headers)["dlq.reason"].decode() for r in dead] == [r for _, r in bad]
    big = dict(dead[0].headers)
    assert big[TRUNCATED] == b"true"
    assert big["dlq.value.size"] == str(len(bad[0][0])).encode()
    assert big["dlq.value.sha256"] == hashlib.sha256(bad[0][0]).hexdigest().encode()
    assert bad[0][0].startswith(dead[0].value)
    messages = [dict(r.headers)["dlq.error.message"].decode() for r in dead[2:6]]
    for name, message in zip(("specversion", "id", "source", "type"), messages, strict=True):
        assert name in message

    [stuck] = await read_topic(settings, quarantine_topic(f"{settings.topic('card')}.dlq"))
    assert dict(stuck.headers)["dlq.reason"] == b"unauthenticated"
    assert dict(stuck.headers)[QUARANTINED].startswith(b"DeadLetterTooLarge")

    listing = await _dlq(settings)
    assert listing["total"] == len(bad)
    assert [m["reason"] for m in listing["messages"]] == [r for _, r in bad]
    assert listing["messages"][0]["truncated"]
    paged = await _dlq(settings, "--limit", "2")
    assert [m["ref"] for m in paged["messages"]] == [m["ref"] for m in listing["messages"][:2]]
    later = await _dlq(settings, "--since", "2999-01-01T00:00:00")
    assert later["total"] == 0
    shown = await invoke(settings, "dlq", "show", "card", listing["messages"][1]["ref"],
                         "--purpose", "T-1 hostile input", "--reveal")
    assert shown.exit_code == 0, shown.output
    refused = await invoke(settings, "dlq", "redrive", "card", listing["messages"][0]["ref"],
                           "--json")
    assert refused.exit_code == 1
    assert "truncated" in json.loads(refused.stdout)[0]["error"]
