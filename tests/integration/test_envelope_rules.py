"""The envelope rules on the real broker, from a foreign client: kcat (librdkafka, no Python)
publishes records that break them, as a misbehaving Java or Go agency system would. Each
is dead-lettered with its reason, the view does not change, a true later event is still
applied, and `hub replay` leaves the same records out of the rebuilt view."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from consumers.card.handlers import card_permit
from demo.synthetic import stream
from hub import bootstrap
from hub.ops.lag import caught_up
from hub.ops.replay import run_replay
from hub.settings import Settings
from schemas import CONTENT_TYPE, CloudEvent, topics
from schemas.envelope import MAX_SEQUENCE
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
from tests.integration.stack_fixtures import kcat_login

pytestmark = pytest.mark.integration


Violation = tuple[str | None, dict[str, Any]]
"""A record to publish: its Kafka key (None: no key) and its JSON body."""


def _violations(true_next: CloudEvent[Any], other_permit: str) -> dict[str, Violation]:
    """By the reason each must get, a copy of `true_next` that breaks one rule."""
    subject = true_next.subject

    def variant(**changes: Any) -> dict[str, Any]:
        return {**json.loads(true_next.to_json()), **changes}

    return {
        "source_mismatch": (subject, variant(source="/cn/somebody/else")),
        "subject_mismatch": (other_permit, variant(subject=other_permit)),
        "sequence_out_of_range": (subject, variant(sequence=MAX_SEQUENCE + 1)),
        # The measured forgery: the largest 32-bit sequence used to hide every later event.
        "sequence_jump": (subject, variant(sequence=MAX_SEQUENCE)),
    }


async def _kcat_produce(kcat: str, settings: Settings, key: str | None, path: Path,
                        *, check: bool = True) -> int:
    """One file as one message; Java's partitioner (murmur2), so a key lands where ours do.
    Signed with the authority's key: what is tested is the contract, not the signature."""
    value = await asyncio.to_thread(path.read_bytes)
    jws = dict(signed(settings, topics.PERMIT_EVENTS, value))["jws"].decode()
    args = [kcat, "-P", *kcat_login(settings, AUTHORITY),
            "-t", permit_topic(settings, "card"),
            "-X", "partitioner=murmur2_random", "-H", f"content-type={CONTENT_TYPE}",
            "-H", f"jws={jws}"]
    args += ["-k", key] if key is not None else []
    done = await asyncio.to_thread(subprocess.run, [*args, str(path)], check=check,
                                   timeout=60, capture_output=True)
    return done.returncode


async def test_kcat_records_breaking_the_envelope_rules_are_dead_lettered_and_left_out(
    kcat: str, hub_settings: Settings, tmp_path: Path
) -> None:
    """Source, subject, 32-bit sequence and a sequence jump: four dead letters with their
    reasons and no personal data in them; a keyless record refused by the broker (the permit
    topic is compacted); an unchanged view, the true next event applied after the forged
    maximal sequence, and a replay that leaves the same four out."""
    events = list(stream(8, seed=21))
    victim = next(e.subject for e in events
                  if sum(x.subject == e.subject for x in events) >= 3)
    true_next = [e for e in events if e.subject == victim][-1]
    before = [e for e in events if e is not true_next]
    other = next(e.subject for e in events if e.subject != victim)
    await publish(hub_settings, before)

    async with bootstrap.running_consumer(hub_settings, "card") as consumer:
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to apply the stream")
        held = await view_rows(hub_settings, "card")
        assert held == expected_rows(before, card_permit)

        bad = _violations(true_next, other)
        for reason, (key, body) in bad.items():
            path = tmp_path / f"{reason}.json"
            path.write_text(json.dumps(body))
            await _kcat_produce(kcat, hub_settings, key, path)
        # A keyless record never reaches a consumer: the permit topic is compacted, and
        # the broker refuses a record without a key there (a request topic's keyless record
        # is dead-lettered as `key_missing`: test_hostile_input.py).
        keyless = tmp_path / "keyless.json"
        keyless.write_text(json.dumps(_violations(true_next, other)["source_mismatch"][1]
                                      | {"source": true_next.source}))
        assert await _kcat_produce(kcat, hub_settings, None, keyless, check=False) != 0
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to pass kcat's")
        assert await view_rows(hub_settings, "card") == held, "no view changes"
        assert consumer.stats.dead_lettered == len(bad)

        await publish(hub_settings, [true_next])
        await eventually(lambda: caught_up(hub_settings, "card"), what="the true next event")
        want = expected_rows(events, card_permit)
        assert await view_rows(hub_settings, "card") == want
        assert want[victim]["sequence"] == true_next.sequence

        replayed = await run_replay(hub_settings, "card")
        assert replayed.status == "switched", replayed
        assert replayed.skipped == len(bad)
        assert await view_rows(hub_settings, "card") == want

    dead = await read_topic(hub_settings, topics.dead_letter_topic(hub_settings.topic("card")))
    headers = [{k: v.decode() for k, v in r.headers} for r in dead]
    assert sorted(h["dlq.reason"] for h in headers) == sorted(bad)
    for h in headers:
        assert h["dlq.origin.topic"] == permit_topic(hub_settings, "card")
        assert victim not in h["dlq.error.message"]
        assert other not in h["dlq.error.message"]
    by_reason = {h["dlq.reason"]: h for h in headers}
    assert by_reason["sequence_jump"]["dlq.error.class"] == "SequenceJump"
    assert "data.permit.permit_no" in by_reason["subject_mismatch"]["dlq.error.message"]
