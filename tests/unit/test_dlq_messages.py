"""What `hub dlq list|show|redrive` make of any stored dead letter (hub/ops/dlq.py)."""

from __future__ import annotations

import json

import pytest

from hub.kafka import REDRIVE_COUNT, REDRIVE_LIMIT, TRUNCATED
from hub.ops.dlq import DeadLetterMessage, printable
from hub.ops.redrive import redriven_headers

DLQ_HEADERS: list[tuple[str, bytes | None]] = [
    ("dlq.reason", b"undecodable"), ("dlq.origin.topic", b"card.requests"),
    ("dlq.origin.partition", b"2"), ("dlq.origin.offset", b"41"),
]


def message(value: bytes = b"{}", key: bytes | None = b"k",
            headers: list[tuple[str, bytes | None]] | None = None) -> DeadLetterMessage:
    """A dead letter at 0:7 of the card group's DLQ."""
    return DeadLetterMessage("hub.card.dlq", 0, 7, 1767225600000, key, value,
                             [*DLQ_HEADERS, *(headers or [])])


@pytest.mark.parametrize("depth", [150, 5_000, 1_000_000])
def test_deeply_nested_json_is_listed_and_shown_never_a_recursion_error(depth: int) -> None:
    """A value nested deeper than any parser's limit is shown as text, not parsed."""
    m = message(b'{"type": "x", "a": ' + b"[" * depth + b"]" * depth + b"}")
    assert m.summary()["reason"] == "undecodable"
    shown = m.detail()["value"]
    json.dumps(shown)
    assert isinstance(shown, str if depth > 150 else dict)


def test_null_and_binary_headers_and_keys_are_shown() -> None:
    """A null header value is None, binary bytes are replaced, a null key is None."""
    m = message(key=None, headers=[("trace", None), ("bin", b"\xff\xfe\x00"),
                                   (REDRIVE_COUNT, None)])
    detail = m.detail()
    assert detail["key"] is None
    assert ["trace", None] in detail["headers"]
    assert ["bin", "\ufffd\ufffd\\x00"] in detail["headers"]
    assert m.redrive_count == REDRIVE_LIMIT + 1
    assert m.origin == ("card.requests", 2, 41)


def test_terminal_control_characters_are_escaped_in_keys_headers_and_values() -> None:
    """An escape sequence, a carriage return or a bidi override never reaches the terminal raw."""
    hostile = "\x1b[2J\r\n\u202e\x9b"
    m = message(value=hostile.encode(), key=hostile.encode(),
                headers=[(hostile, hostile.encode())])
    detail = m.detail()
    for text in (detail["key"], *detail["headers"][-1], detail["value"]):
        assert not any(c in text for c in "\x1b\r\n\u202e\x9b"), text
    assert detail["key"] == "\\x1b[2J\\r\\n\\u202e\\x9b"
    assert printable("Zhang Wei, 张伟\tok") == "Zhang Wei, 张伟\\tok"


def test_a_huge_origin_number_makes_the_origin_unreadable_not_a_crash() -> None:
    """More digits than int() takes: no origin, so it is never redriven."""
    m = DeadLetterMessage("t", 0, 0, 0, None, b"", [("dlq.origin.topic", b"t"),
                                                    ("dlq.origin.partition", b"9" * 5000),
                                                    ("dlq.origin.offset", b"1")])
    assert m.origin is None


def test_a_truncated_dead_letter_says_so() -> None:
    """The DLQ's truncation header is read back: redrive refuses such a dead letter."""
    assert message(headers=[(TRUNCATED, b"true")]).truncated
    assert not message().truncated


def test_a_redriven_message_keeps_null_headers_and_counts_one_more() -> None:
    """The redrive headers: original ones (null values too), no dlq.*, the count +1."""
    m = message(headers=[("trace", None), (REDRIVE_COUNT, b"1")])
    assert redriven_headers(m) == [("trace", None), (REDRIVE_COUNT, b"2")]
