"""Dead-letter headers, the redrive counter and where a dead letter goes (hub/kafka.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from hub.delivery import Delivery, KeyMissing
from hub.kafka import (
    DEAD_LETTER_LIMIT,
    QUARANTINED,
    REDRIVE_COUNT,
    REDRIVE_LIMIT,
    TRUNCATED,
    DeadLetter,
    DeadLetterTooLarge,
    dead_letter_destination,
    dead_letter_headers,
    dead_letter_record,
    quarantine_record,
    quarantine_topic,
)
from tests.factories import issued_event

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DLT = "hub.card.dlq"


def dead_letter(
    headers: list[tuple[str, bytes | None]] | None = None, **fields: object
) -> DeadLetter:
    """A decode failure at card.requests 2:41, with these original headers."""
    values: dict[str, object] = {
        "topic": "card.requests", "partition": 2, "offset": 41, "timestamp_ms": 1767225600000,
        "key": b"156000000000000001", "value": b"{ not json", "headers": headers or [],
        "reason": "undecodable", "error_class": "DecodeError", "error_message": "not JSON",
    }
    return DeadLetter(**(values | fields))  # type: ignore[arg-type]


def as_dict(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    names = [k for k, _ in headers]
    assert len(names) == len(set(names)), f"a header is repeated: {names}"
    return dict(headers)


def test_the_failure_and_origin_are_added_as_dlq_headers() -> None:
    """reason, error class and message, origin topic/partition/offset/timestamp, group, time."""
    headers = as_dict(dead_letter_headers(dead_letter(), "hub.card", NOW))
    assert headers == {
        "dlq.reason": b"undecodable", "dlq.error.class": b"DecodeError",
        "dlq.error.message": b"not JSON", "dlq.origin.topic": b"card.requests",
        "dlq.origin.partition": b"2", "dlq.origin.offset": b"41",
        "dlq.origin.timestamp": b"1767225600000", "dlq.group": b"hub.card",
        "dlq.time": b"2026-03-02T01:00:00+00:00",
    }


def test_the_original_headers_are_kept_first_and_in_order() -> None:
    """Headers the producer set travel with the dead letter, before the dlq.* ones."""
    original = [("content-type", b"application/cloudevents+json"), ("traceparent", b"00-ab")]
    headers = dead_letter_headers(dead_letter(original), "hub.card", NOW)
    assert headers[:2] == original
    assert all(k.startswith("dlq.") for k, _ in headers[2:])


def test_a_second_failure_replaces_the_first_ones_dlq_headers_but_keeps_the_count() -> None:
    """A redriven message that fails again: one fresh set of dlq.* headers, same count."""
    first = dead_letter_headers(dead_letter([("content-type", b"x")]), "hub.card", NOW)
    again = dead_letter([*first, (REDRIVE_COUNT, b"2")], reason="handler_error",
                        error_class="CardConflict", error_message="another SSN")
    headers = as_dict(dead_letter_headers(again, "hub.card", NOW))
    assert headers["dlq.reason"] == b"handler_error"
    assert headers["dlq.error.class"] == b"CardConflict"
    assert headers[REDRIVE_COUNT] == b"2"
    assert headers["content-type"] == b"x"


def test_a_long_error_message_is_cut_to_2000_characters() -> None:
    """However long the exception's text, the header carries its first 2000 characters."""
    headers = as_dict(dead_letter_headers(dead_letter(error_message="é" * 5000), "g", NOW))
    assert headers["dlq.error.message"].decode() == "é" * 2000


@pytest.mark.parametrize(("headers", "count"), [
    ([], 0),
    ([(REDRIVE_COUNT, b"0")], 0),
    ([(REDRIVE_COUNT, b"3")], 3),
    ([("other", b"9"), (REDRIVE_COUNT, b"1")], 1),
], ids=["never", "zero", "three", "among-others"])
def test_the_redrive_count_is_read_from_its_header(
    headers: list[tuple[str, bytes]], count: int
) -> None:
    """No header means never redriven; otherwise its number."""
    assert dead_letter(headers).redrive_count == count


@pytest.mark.parametrize("raw", [b"", b"three", b"\xff", b"1.5"])
def test_a_mangled_redrive_count_counts_as_over_the_limit(raw: bytes) -> None:
    """A counter that cannot be read must not reopen the redrive loop: it quarantines."""
    d = dead_letter([(REDRIVE_COUNT, raw)])
    assert d.redrive_count == REDRIVE_LIMIT + 1
    assert dead_letter_destination(d, DLT) == quarantine_topic(DLT)


@given(st.integers(min_value=0, max_value=50))
def test_a_message_redriven_more_than_the_limit_goes_to_quarantine(count: int) -> None:
    """Up to REDRIVE_LIMIT redrives it returns to the group's DLQ; beyond, to quarantine."""
    d = dead_letter([(REDRIVE_COUNT, str(count).encode())])
    expected = DLT if count <= REDRIVE_LIMIT else f"{DLT}.quarantine"
    assert dead_letter_destination(d, DLT) == expected


def test_a_raw_record_keeps_its_bytes_and_headers() -> None:
    """DeadLetter.of: a record that never became an event is kept exactly as it came."""
    rec = ConsumerRecord("card.requests", 1, 7, 1767225600000, 0, b"k", b"\x00 raw", None, 1,
                         6, [("traceparent", b"00-ab")])
    d = DeadLetter.of(rec, "key_missing", KeyMissing("bad byte"))
    assert (d.topic, d.partition, d.offset, d.key, d.value) == (
        "card.requests", 1, 7, b"k", b"\x00 raw")
    assert d.headers == [("traceparent", b"00-ab")]
    assert (d.error_class, d.error_message, d.event_id) == ("KeyMissing", "bad byte", None)


def test_an_event_that_failed_its_handler_keeps_its_bytes_headers_and_redrive_count() -> None:
    """DeadLetter.of_delivery: keyed by subject, the record's exact bytes and every header
    (its signature must still prove it when redriven), the count carried over."""
    event = issued_event()
    raw = event.to_json() + b" "
    sent = ((REDRIVE_COUNT, b"2"), ("content-type", b"application/cloudevents+json"),
            ("jws", b"sig"))
    d = DeadLetter.of_delivery(Delivery("permits", 0, 12, 1767225600000, event, sent, raw),
                               "handler_error", RuntimeError("boom"))
    assert (d.key, d.value) == (event.subject.encode(), raw)
    assert (d.event_id, d.event_type) == (str(event.id), event.type)
    assert d.redrive_count == 2
    assert d.headers == list(sent)


@pytest.mark.parametrize("raw", [None, b"9" * 5000])
def test_a_null_or_huge_redrive_count_counts_as_over_the_limit(raw: bytes | None) -> None:
    """A null header value, or more digits than int() takes, quarantines instead of raising."""
    assert dead_letter([(REDRIVE_COUNT, raw)]).redrive_count == REDRIVE_LIMIT + 1


def test_null_header_values_travel_with_the_dead_letter() -> None:
    """A header whose value is null is kept as null, and a null counter stays as it was."""
    headers = dead_letter_headers(dead_letter([("trace", None), (REDRIVE_COUNT, None)]), "g",
                                  NOW)
    assert ("trace", None) in headers
    assert (REDRIVE_COUNT, None) in headers


def test_a_dead_letter_within_the_limit_is_sent_whole() -> None:
    """Key, value and every header as they came, to the group's DLQ."""
    rec = dead_letter_record(dead_letter([("jws", b"sig")]), DLT, "g", NOW)
    assert (rec.topic, rec.key, rec.value) == (DLT, b"156000000000000001", b"{ not json")
    assert TRUNCATED not in dict(rec.headers)


def test_a_dead_letter_over_the_limit_keeps_its_headers_digest_size_and_a_truncated_body() -> None:
    """A value near the broker's limit plus the dlq.* headers is cut to fit, and says so."""
    value = b"x" * 1_048_000
    rec = dead_letter_record(dead_letter([("jws", b"s" * 300)], value=value), DLT, "g", NOW)
    headers = dict(rec.headers)
    assert headers["jws"] == b"s" * 300
    assert headers["dlq.reason"] == b"undecodable"
    assert headers[TRUNCATED] == b"true"
    assert headers["dlq.value.size"] == str(len(value)).encode()
    assert headers["dlq.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert value.startswith(rec.value)
    size = len(rec.key or b"") + len(rec.value) + sum(len(k) + len(v or b"") + 10
                                                     for k, v in rec.headers)
    assert size <= DEAD_LETTER_LIMIT


def test_a_dead_letter_whose_headers_alone_are_too_large_is_refused() -> None:
    """Truncating the value cannot help: building it raises, so the runtime quarantines it."""
    with pytest.raises(DeadLetterTooLarge):
        dead_letter_record(dead_letter([("big", b"h" * DEAD_LETTER_LIMIT)]), DLT, "g", NOW)


def test_the_quarantine_record_drops_key_and_original_headers_and_says_why() -> None:
    """What could not be dead-lettered goes to quarantine with its reason and origin."""
    d = dead_letter([("big", b"h" * DEAD_LETTER_LIMIT)], key=b"k" * DEAD_LETTER_LIMIT)
    rec = quarantine_record(d, DLT, "g", NOW, DeadLetterTooLarge("too large"))
    headers = dict(rec.headers)
    assert (rec.topic, rec.key, rec.value) == (quarantine_topic(DLT), None, b"{ not json")
    assert "big" not in headers
    assert headers[QUARANTINED] == b"DeadLetterTooLarge: too large"
    assert (headers["dlq.reason"], headers["dlq.origin.offset"]) == (b"undecodable", b"41")
