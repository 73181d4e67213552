"""The done-when of issue 10, item 3: the demo story and the bad-input cases, on the real
broker and database, leave none of the demo people's names, passport numbers, dates of
birth or SSNs in any log line or any dead-letter (or quarantine) header."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiokafka.structs import ConsumerRecord

from demo.procedures import synced
from demo.story import LEGACY_HOLDER, PEOPLE, tell
from demo.synthetic import stream
from hub import bootstrap
from hub.kafka import quarantine_topic
from hub.logging import configure_logging
from hub.registry import installed
from hub.settings import Settings
from hub.signing import SIGNATURE_HEADER
from schemas import CONTENT_TYPE, topics
from tests.integration.hub_fixtures import read_topic, signed, writer_of
from tests.privacy import demo_holders, needles, personal_data_in

pytestmark = pytest.mark.integration

ANNA, KENJI, MARIA = (p.holder for p in PEOPLE[:3])


@pytest.fixture
def hub_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The hub's logging as a service configures it (JSON, INFO), the standard library's
    loggers at INFO too; every rendered line lands on the captured stderr."""
    configure_logging("json", "INFO")
    logging.getLogger().setLevel(logging.INFO)
    capsys.readouterr()
    yield capsys
    structlog.reset_defaults()
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for h in [h for h in root.handlers if getattr(h, "_hub_logging", False)]:
        root.removeHandler(h)


def _forged_signature(kid: str) -> bytes:
    """A detached JWS naming `kid` (a sender's text) with a signature that proves nothing."""
    header = base64.urlsafe_b64encode(json.dumps({"alg": "EdDSA", "kid": kid}).encode())
    return header.rstrip(b"=") + b".." + base64.urlsafe_b64encode(b"\0" * 64).rstrip(b"=")


SI_PERMITS = topics.audience_topic(topics.PERMIT_EVENTS, "social_insurance")
"""The permit topic whose records carry the most of a person (name, passport, birth date)."""


def _bad_input(settings: Settings, issued: dict[str, Any], request: dict[str, Any]
               ) -> list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
    """(topic, key, value, headers) of each kind of bad input, built from the story's own
    records so that each carries a demo person's data."""
    permits, requests = SI_PERMITS, topics.CARD_REQUESTS
    subject = issued["subject"].encode()

    def changed(body: dict[str, Any], path: tuple[str, ...], value: Any) -> bytes:
        body = json.loads(json.dumps(body))
        inner = body
        for step in path[:-1]:
            inner = inner[step]
        inner[path[-1]] = value
        return json.dumps(body).encode()

    holder = ("data", "permit", "holder")
    lone = json.loads(next(e for e in stream(1, seed=7, base=810_000_000_000_000_000)
                           if e.sequence == 1).to_json())
    lone["data"]["permit"]["holder"] = KENJI.model_dump(mode="json") | {
        "name": f"{KENJI.name}\u0000"}  # Postgres cannot store NUL: a handler error
    cases = [
        (permits, subject, b"\xff not JSON: " + ANNA.name.encode()),
        (permits, subject, changed(issued, (*holder, "nationality"), ANNA.name)),
        (permits, subject, changed(issued, (*holder, "date_of_birth"), ANNA.name)),
        (permits, subject, changed(issued, ("type",), ANNA.name)),
        (permits, subject, changed(issued, ("type",), ANNA.passport_no)),
        (permits, b"999999999999999999", json.dumps(issued).encode()),
        (permits, lone["subject"].encode(), json.dumps(lone).encode()),
        (requests, request["subject"].encode(),
         changed(request, ("subject",), "156000000000000999")),
        (requests, request["subject"].encode(), changed(request, ("data", "request_id"),
                                                         MARIA.passport_no)),
    ]
    out = [(t, k, v, signed(settings, t, v)) for t, k, v in cases]
    forged = json.dumps(issued).encode()
    out.append((permits, subject, forged, [("content-type", CONTENT_TYPE.encode()),
                                           (SIGNATURE_HEADER, _forged_signature(ANNA.name))]))
    return out


async def _send_bad_input(settings: Settings) -> int:
    """Send the bad input on the permit and e-card request topics; return how many."""
    permit_records = await read_topic(settings, settings.topic(SI_PERMITS))
    request_records = await read_topic(settings, settings.topic(topics.CARD_REQUESTS))
    issued = next(b for b in map(_body, permit_records)
                  if b["type"].endswith("PermitIssued")
                  and b["data"]["permit"]["holder"]["name"] == ANNA.name)
    request = next(b for b in map(_body, request_records)
                   if b["data"].get("name") == MARIA.name)
    bad = _bad_input(settings, issued, request)
    for topic, key, value, headers in bad:
        async with bootstrap.producer(settings, "bad-client",
                                      principal=writer_of(topic)) as prod:
            await prod.send_and_wait(settings.topic(topic), key=key, value=value,
                                     headers=headers)
    return len(bad)


def _body(rec: ConsumerRecord) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(rec.value)
    return body


async def _dead_letters(settings: Settings) -> list[ConsumerRecord]:
    """Every record of every group's dead-letter topic and of its quarantine, if any."""
    found = []
    for agency in installed().consumers():
        dlq = topics.dead_letter_topic(settings.topic(agency.name))
        found += await read_topic(settings, dlq)
        with contextlib.suppress(LookupError):  # no quarantine topic: nothing quarantined
            found += await read_topic(settings, quarantine_topic(dlq))
    return found


async def _ssns(settings: Settings) -> list[str]:
    """The SSNs social insurance gave the demo's people (they exist only once it ran)."""
    async with bootstrap.pool(settings, "social_insurance", max_size=1) as p:
        return [r["ssn"] for r in await p.fetch("SELECT ssn FROM si_registrations")]


async def test_the_demo_story_and_bad_input_leave_no_personal_data_in_logs_or_dead_letters(
    hub_settings: Settings, hub_logging: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """Every rendered log line (structlog's and the standard library's) and every header
    and key of every dead letter is free of the demo people's names, passport numbers,
    dates of birth and SSNs; the dead letters' bodies keep them (for redrive), which shows
    the search finds what is there."""
    settings = hub_settings.model_copy(update={"evidence_head_interval_s": 1.0})
    told = await tell(settings, tmp_path)
    assert not told.found, told.found[:3]
    sent = await _send_bad_input(settings)
    async with contextlib.AsyncExitStack() as running:
        for agency in installed().names():
            await running.enter_async_context(bootstrap.running_agency(settings, agency))
        await synced(settings)

    lines = hub_logging.readouterr().err.splitlines()
    dead = await _dead_letters(settings)
    ssns = await _ssns(settings)
    search = needles(demo_holders(), ssns)

    # Not vacuous: the story logged, dead-lettered every bad record, and gave SSNs.
    assert len(lines) > 20
    # (The hub's module loggers keep the renderer of the first configuration that used them
    # in this process, JSON or console; both run the same redaction processors.)
    assert any("dead-lettered" in line for line in lines)
    assert any('"logger": "aiokafka' in line for line in lines)  # the stdlib path, too
    assert len(dead) >= sent
    reasons = {dict(r.headers)["dlq.reason"].decode() for r in dead}
    assert {"undecodable", "schema_violation", "unknown_type", "key_mismatch",
            "handler_error", "subject_mismatch", "unauthenticated"} <= reasons
    assert len(ssns) >= 3
    assert LEGACY_HOLDER.holder.name in told.cases  # the story's own output names them
    # The reminder the story shows is one Anna can act on: it names her last day to apply.
    anna_end = told.people["anna"].valid_until
    assert anna_end is not None
    assert f"until {anna_end - timedelta(days=30)}" in told.book.reminder, told.book.reminder
    assert personal_data_in([r.value for r in dead], search)  # bodies are kept whole

    assert personal_data_in(lines, search) == []
    assert personal_data_in([(r.key, r.headers) for r in dead], search) == []
