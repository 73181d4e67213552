"""What the ops commands share: naming a consumer group, and refusing what does not exist."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.consumer import ConsumerSpec
    from hub.settings import Settings


class BadTarget(LookupError):
    """A group, topic, partition or offset the operator named does not exist (exit 2)."""


def spec_of(settings: Settings, name: str) -> tuple[str, ConsumerSpec]:
    """The agency and consumer spec named by an agency name or a (prefixed) group id."""
    from hub import bootstrap  # imported here so `hub --help` does not load every agency

    for agency, package in bootstrap.CONSUMER_AGENCIES.items():
        spec: ConsumerSpec = package.consumer_spec(settings)
        if name in (agency, spec.group_id):
            return agency, spec
    known = ", ".join(bootstrap.CONSUMER_AGENCIES)
    raise BadTarget(f"no consumer group {name!r}; known agencies: {known}")


def specs_of(settings: Settings, names: list[str] | None) -> list[tuple[str, ConsumerSpec]]:
    """The named groups, or every agency's group when none is named."""
    from hub import bootstrap

    return [spec_of(settings, n) for n in (names or list(bootstrap.CONSUMER_AGENCIES))]


def json_default(value: object) -> Any:
    """JSON for the values ops output carries (dates, times, bytes)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)
