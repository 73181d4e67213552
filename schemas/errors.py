"""Describing a validation failure without the values that failed.

A pydantic `ValidationError`'s own text (`str(exc)`) shows each `input_value`, and many
messages echo the input too: our validators' (``'Germany' is not an ISO 3166-1 alpha-2
country code``), pydantic's own for a union tag (``Input tag '...' found using 'type'``).
That text reaches logs and the `dlq.error.message` header of a dead letter, where a
holder's name or passport number must never be. What is kept is what an operator needs to
fix the sender: where each error is and what kind it is, plus pydantic's message only when
none of the input's values occurs in it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.envelope import (
    SEQUENCE_OUT_OF_RANGE,
    SOURCE_MISMATCH,
    SPECVERSION_MISSING,
    SUBJECT_MISMATCH,
)

_LOC_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
"""A location part worth showing: a field name or a union tag (a known event type). Others
(a dict key a sender chose) are shown as `?`."""

_RULES = frozenset({SPECVERSION_MISSING, SOURCE_MISMATCH, SEQUENCE_OUT_OF_RANGE,
                    SUBJECT_MISMATCH})
"""The envelope's own errors: their messages name rules, never the values (they are
written so), and are kept as they are."""

_SKIPPED_LOC = frozenset({"function-after", "function-before", "function-wrap"})

_MAX_LEAVES = 10_000
"""Beyond this many input values the message is withheld rather than searched."""

_MIN_ECHO = 2
"""Input values shorter than this are not looked for in a message (a `5`, an `F`): too
common to mean an echo, and too short to identify anyone."""

_EVENT_NAME = re.compile(r"[A-Z][A-Za-z0-9]{0,63}")


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """Each error's location and kind, and its message when it echoes no input value."""
    return describe_errors(exc.errors(include_url=False), limit)


def describe_errors(errors: list[ErrorDetails], limit: int = 5) -> str:
    """`describe_validation_error` for errors already taken out of a ValidationError."""
    parts = [_describe_one(err) for err in errors[:limit]]
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def describe_type(value: object, namespaces: Iterable[str]) -> str:
    """A CloudEvents `type` no model claims, described for a log or a dead letter.

    The value is the sender's: it is shown only when it has the grammar of an event type
    in a namespace the reader knows (``cn.mohrss.workpermit.`` and an event name, which
    is what a newer producer's type looks like); anything else is given by its length and
    a digest, which finds it in the dead letter's body without repeating it.
    """
    if isinstance(value, str):
        namespace, _, name = value.rpartition(".")
        if f"{namespace}." in set(namespaces) and _EVENT_NAME.fullmatch(name):
            return f"the type {value} is not one this consumer reads"
    raw = value.encode(errors="replace") if isinstance(value, str) else repr(value).encode()
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return (f"the type is not one this consumer reads ({len(raw)} bytes, sha256 {digest}...;"
            " not shown: it is not an event type's name)")


def _describe_one(err: ErrorDetails) -> str:
    loc = [p for p in err["loc"] if p not in _SKIPPED_LOC]
    if err["type"] == "extra_forbidden" and loc:
        loc[-1] = "<an extra field>"  # the sender's key, not a field of ours
    where = ".".join(_loc_part(p) for p in loc) or "message"
    msg = err["msg"]
    if err["type"] not in _RULES and _echoes_input(msg, err.get("input")):
        return f"{where}: {err['type']}"
    return f"{where}: {msg} [{err['type']}]"


def _loc_part(part: str | int) -> str:
    if isinstance(part, int) or _LOC_PART.fullmatch(part):
        return str(part)
    return "?"


def _echoes_input(msg: str, value: Any) -> bool:
    """True when any scalar of the input (as text) occurs in the message, or the input is
    too large to tell."""
    seen = 0
    todo = [value]
    while todo:
        item = todo.pop()
        seen += 1
        if seen > _MAX_LEAVES:
            return True
        if isinstance(item, Mapping):
            todo.extend(item.values())  # keys are field names, which messages do name
        elif isinstance(item, list | tuple | set | frozenset):
            todo.extend(item)
        elif item is not None:
            text = (item.decode(errors="replace") if isinstance(item, bytes | bytearray)
                    else str(item))
            if len(text) >= _MIN_ECHO and text in msg:
                return True
    return False
