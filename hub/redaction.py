"""Keeping personal data out of log lines, dead-letter headers and error texts.

Personal data here: a holder's name, passport number and expiry, date of birth, sex and
family; an SSN; a permit QR token; the name an e-card request carries. An employer, a
permit number and an event id are not. Three tools, used on every path that writes text
about a message:

- `redact` masks a value under a personal key (`PERSONAL_KEYS`), at any depth of dicts,
  lists, tuples, pydantic models and dataclasses, and scrubs every string it passes;
- `scrub_text` masks, in free text, what has a shape precise enough to find without
  touching ordinary log text (`_SSN`, `_PASSPORT`); a name has no such shape, so names
  are kept out by keys and by `describe_error`;
- `describe_error` is the one description of an exception that goes into a log line or a
  dead letter: a validation error's locations and kinds (`schemas.errors`), the message of
  an error class that promises none (`NoPersonalData`) or of an infrastructure fault, and
  otherwise the class alone. `str(exc)` of anything else may echo a value (a pydantic
  `input_value`, Postgres's ``invalid input syntax for type date: "..."``).

`format_exception` renders tracebacks for the log without locals and with each message
described by `describe_error`.
"""

from __future__ import annotations

import dataclasses
import re
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import asyncpg
from aiokafka import errors as kafka_errors
from pydantic import BaseModel, ValidationError

from schemas import DecodeError
from schemas.errors import describe_validation_error

REDACTED = "[redacted]"

PERSONAL_KEYS = frozenset({
    # names of persons (an employer's name is masked too: the key cannot tell them apart)
    "name", "names", "holder_name", "full_name", "given_name", "given_names", "surname",
    "family_name", "person",
    # the passport and what identifies a person with it
    "passport", "passport_no", "passport_number", "passport_expiry", "date_of_birth",
    "birth_date", "dob", "sex", "gender",
    # whole records of persons
    "holder", "holders", "family", "family_members", "member", "members", "spouse",
    "children",
    # numbers and tokens that stand for a person
    "ssn", "ssns", "social_security_number", "token", "qr", "qr_token", "permit_token",
})
"""Keys whose values are masked wherever they occur. `event`, `type`, `topic`, `subject`,
`permit_no` and the like stay: they are what a log line is about, and none is personal."""

_SSN = r"F[0-9A-HJKMNP-TV-Z]{16}"
"""The hub's SSN (as the social insurance agency's `new_ssn` makes it): F and 16 Crockford base32
characters. Nothing else the hub writes has 17 upper-case characters starting with F."""

_PASSPORT = r"[A-Z](?=[A-Z0-9]{7,8}(?![A-Za-z0-9]))(?=(?:[A-Z]*[0-9]){5})[A-Z0-9]{7,8}"
"""A passport-like token: 8 or 9 upper-case letters and digits, a letter first, at least 5
digits (ICAO 9303 document numbers, as every passport of the demo). Ordinary log text has
no such token: e-card ids (ESSC + 16), permit numbers (18 digits), credit codes (18), SQLSTATEs
(5 digits) and hex digests are longer, shorter or lower-case."""

_PERSONAL_TEXT = re.compile(rf"(?<![A-Za-z0-9])(?:{_SSN}|{_PASSPORT})(?![A-Za-z0-9])")

_MAX_DEPTH = 8
"""Deeper than this a value is masked whole: nothing logged is nested that far, and a
cycle must not recurse forever."""


def scrub_text(text: str) -> str:
    """`text` with SSN- and passport-like tokens masked."""
    if not _PERSONAL_TEXT.search(text):  # the common case: one scan, no copy
        return text
    return _PERSONAL_TEXT.sub(REDACTED, text)


def redact(value: Any, depth: int = 0) -> Any:
    """`value` with every personal key's value masked at any depth, and strings scrubbed.

    Containers are copied, never changed in place: the caller's objects are its own.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: REDACTED if _personal(k) else redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, BaseModel):
        return redact(dict(value), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return redact(fields, depth + 1)
    if isinstance(value, BaseException):
        return describe_error(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"  # a record's body: not shown, whatever it holds
    return scrub_text(str(value))


def _personal(key: object) -> bool:
    return isinstance(key, str) and key.lower() in PERSONAL_KEYS


class NoPersonalData:
    """Mixin for an exception class whose messages never carry personal data, so
    `describe_error` shows them: messages that name rules, fields, topics, offsets,
    permit numbers or key ids, never a value a person is known by."""


_INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    OSError,  # the network: an address and the system's words
    TimeoutError,
    kafka_errors.KafkaError,  # the broker's error code and its description
)
"""Faults of the infrastructure, not of a message: their text names hosts and codes."""

_MAX_MESSAGE = 500

_PG_OBJECTS = (("table", "table_name"), ("column", "column_name"),
               ("constraint", "constraint_name"))
"""What a Postgres error names of the schema: identifiers, never a row's values."""


def describe_error(exc: BaseException) -> str:
    """What went wrong, without personal data: the text a log line or dead letter keeps."""
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)[:_MAX_MESSAGE]
    if isinstance(exc, asyncpg.PostgresError):
        # The server's text may quote a value ('invalid input syntax ... "Anna"'); its
        # code, the class (`error_class`) and the schema objects it names say what failed.
        names = [f"{what} {getattr(exc, attr)}" for what, attr in _PG_OBJECTS
                 if getattr(exc, attr, None)]
        where = f" ({', '.join(names)})" if names else ""
        return (f"SQLSTATE {exc.sqlstate}{where}: the server's message is withheld (it may"
                " quote values)")
    if isinstance(exc, (NoPersonalData, DecodeError, *_INFRASTRUCTURE)):
        return scrub_text(str(exc).strip()[:_MAX_MESSAGE]) or type(exc).__name__
    return "its message is withheld (not an error the hub knows to be free of personal data)"


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def format_exception(exc_info: ExcInfo) -> str:
    """A traceback for the log: frames and source lines, no locals, and each exception of
    the chain given by `describe_error` instead of its own text."""
    chain: list[tuple[BaseException, str]] = []
    exc: BaseException | None = exc_info[1]
    link = ""
    while exc is not None and len(chain) < 10 and all(exc is not e for e, _ in chain):
        chain.append((exc, link))
        if exc.__cause__ is not None:
            exc, link = exc.__cause__, _CAUSE
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc, link = exc.__context__, _CONTEXT
        else:
            exc = None
    parts = []
    for exc, link in reversed(chain):
        frames = "".join(traceback.format_tb(exc.__traceback__))
        head = "Traceback (most recent call last):\n" if frames else ""
        parts.append(f"{head}{frames}{type(exc).__name__}: {describe_error(exc)}\n{link}")
    return "".join(parts).rstrip("\n")
