"""The check behind "logs and dead letters carry no personal data": the demo's people's
names, passport numbers and dates of birth (from the demo's own data), and SSNs, searched
for in anything collected (text, bytes, nested headers and dicts)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from demo.story import LEGACY_HOLDER, PEOPLE
from schemas import Holder


@dataclass(frozen=True)
class Needle:
    """One personal value to look for, and whose and what it is (for the failure message)."""

    what: str
    value: str
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, what: str, value: str) -> Needle:
        """Found case-insensitively as a whole word: `Anna` is not found in `Annals`."""
        return cls(what, value,
                   re.compile(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", re.I))


def demo_holders() -> list[Holder]:
    """Every holder the demo story registers."""
    return [p.holder for p in PEOPLE] + [LEGACY_HOLDER.holder]


def needles(holders: Iterable[Holder], ssns: Iterable[str] = ()) -> list[Needle]:
    """What must never appear: each holder's full name and each part of it (a log line
    may show a surname alone), passport number and date of birth (ISO and compact), and
    each SSN."""
    found = []
    for h in holders:
        found.append(Needle.of(f"name of {h.name}", h.name))
        found += [Needle.of(f"part of the name of {h.name}", part)
                  for part in re.split(r"[\s-]+", h.name) if len(part) >= 4]
        found.append(Needle.of(f"passport of {h.name}", h.passport_no))
        found.append(Needle.of(f"date of birth of {h.name}", h.date_of_birth.isoformat()))
        found.append(Needle.of(f"date of birth of {h.name}",
                               h.date_of_birth.strftime("%Y%m%d")))
    found += [Needle.of("an SSN", ssn) for ssn in ssns]
    return found


def texts(collected: object, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a nested structure (dict keys and values, lists, tuples, bytes as
    UTF-8), with where it was."""
    if isinstance(collected, str):
        yield where, collected
    elif isinstance(collected, bytes | bytearray):
        yield where, bytes(collected).decode(errors="replace")
    elif isinstance(collected, Mapping):
        for k, v in collected.items():
            yield from texts(k, f"{where}.<key>")
            yield from texts(v, f"{where}.{k}")
    elif isinstance(collected, Iterable):
        for i, v in enumerate(collected):
            yield from texts(v, f"{where}[{i}]")
    elif collected is not None:
        yield where, str(collected)


def personal_data_in(collected: object, search: Iterable[Needle]) -> list[str]:
    """Each place a needle occurs, as `where: what (value)`; empty when there is none."""
    search = list(search)
    return [f"{where}: {n.what} ({n.value!r}) in {text[:200]!r}"
            for where, text in texts(collected) for n in search if n.pattern.search(text)]
