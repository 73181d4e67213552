"""What an operator command masks of a person unless `--reveal` is given.

The personal values are named by the key that holds them in the events, the views and the
documents the commands print (`holder.name`, `passport_no`, `ssn`, …): the same keys as
the log redaction's (`hub.redaction.PERSONAL_KEYS`), adjusted in `PERSONAL_KEYS` for what
output can do that a log line cannot (see a field's path). Everything else stays visible,
permit numbers and statuses first: an operator needs them to work a case, and a permit
number alone is what the looks are recorded under.

A name is masked to its initials with its shape (`A••• S•••••`), so an operator can tell
two people apart without reading either name; any other personal value becomes
`[redacted]`. A value whose shape is unknown (a dead letter that is not JSON) is masked
whole: it might hold anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from hub import redaction

__all__ = ["PERSONAL_KEYS", "REDACTED", "is_personal", "mask", "redact", "redact_error",
           "shown_fields"]

WALKED_INTO: Final = frozenset({"holder", "holders", "person", "member", "members"})
"""Personal keys of a log line (`hub.redaction.PERSONAL_KEYS`) whose objects output walks
into instead of masking whole: their fields are masked one by one, a name to its initials."""

PERSONAL_KEYS: Final = (redaction.PERSONAL_KEYS - WALKED_INTO) | {
    "residence_permit_no",  # an identity document's number, as a passport's
    "card_no",              # the SSC's number, which stands for the SSN
    "holder_key",           # a keyed hash of the passport: it finds the person again
}
"""The keys whose values are personal data wherever they appear: the log's (one list for
logs and output alike), less the objects walked into, plus the document numbers and person
keys a log line never carries. `name` is a company's, and shown, under `COMPANY_KEYS`."""

NAME_KEYS: Final = frozenset({"name", "holder_name"})
"""The personal keys masked to initials rather than to `[redacted]`."""

COMPANY_KEYS: Final = frozenset({"employer"})
"""Objects whose `name` is a company's, not a person's: shown."""

REDACTED: Final = redaction.REDACTED


def is_personal(path: str) -> bool:
    """Whether the field at a dotted path (`holder.name`, `passport_no`) holds personal data."""
    parts = path.split(".")
    if parts[-1] not in PERSONAL_KEYS:
        return False
    return not (parts[-1] == "name" and len(parts) > 1 and parts[-2] in COMPANY_KEYS)


def mask(path: str, value: Any) -> Any:
    """The masked form of the value at `path` (None stays None: absence is no secret)."""
    if value is None:
        return None
    if path.split(".")[-1] in NAME_KEYS and isinstance(value, str):
        return " ".join(w[:1] + "•" * (len(w) - 1) for w in value.split())
    return REDACTED


def redact(value: Any, *, reveal: bool = False, path: str = "") -> Any:
    """`value` (JSON-like: mappings, lists, scalars) with every personal value masked; as it
    is when `reveal`. A field change (`{"field": "holder.name", "old": …, "new": …}`, in
    PermitChanged and in drifts) masks its old and new values when the field is personal."""
    if reveal:
        return value
    if path and is_personal(path):
        return mask(path, value)
    if isinstance(value, Mapping):
        changed = value.get("field")
        hidden = changed if isinstance(changed, str) and is_personal(changed) else None
        return {k: mask(hidden, v) if hidden and k in _CHANGE_VALUES else
                redact(v, path=_join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, path=path) for v in value]
    return value


_CHANGE_VALUES = frozenset({"old", "new", "authority", "view"})
"""The keys of a field change (schemas.permits.FieldChange, hub.ops.views.Drift) that hold
the changed field's values."""


_QUOTED_VALUES: Final = (
    # Postgres quotes the failing row or key in its DETAIL line (asyncpg puts it in str()).
    (re.compile(r"^DETAIL:.*$", re.MULTILINE), "DETAIL:  " + REDACTED),
    # pydantic quotes the input that failed validation.
    (re.compile(r"input_value=.*?, input_type="), f"input_value={REDACTED}, input_type="),
)
"""Where an error's text, written by a library, may quote the values it failed on."""


def redact_error(text: str | None, *, reveal: bool = False) -> str | None:
    """An error message (a dead letter's `dlq.error.message`) with the values the known
    libraries quote in it masked; as it is when `reveal`. Best effort: an error's text is
    free-form, so the failing field's name stays and a value quoted elsewhere would too."""
    if reveal or text is None:
        return text
    for pattern, replacement in _QUOTED_VALUES:
        text = pattern.sub(replacement, text)
    return text


def shown_fields(value: Any, path: str = "") -> list[str]:
    """The dotted paths of the fields `value` shows (a list counts as one field): what a
    look records instead of the values."""
    if isinstance(value, Mapping):
        return [f for k, v in value.items() for f in shown_fields(v, _join(path, str(k)))]
    return [path] if path else []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
