"""Synthetic permit lifecycles: valid event streams for tests and the benchmark.

Each permit goes letter → issue → a random walk of extensions, changes, and at most one
cancellation or expiry, every event carrying the full record and the next sequence, as the
authority would publish them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from producers.work_permit import domain
from producers.work_permit.store import EVENT_OF
from schemas.envelope import CloudEvent
from schemas.permits import CancellationReason, Category, Employer, Holder, PermitRecord

_COUNTRIES = ("DE", "JP", "ES", "CA", "US", "GB", "FR", "KR", "NG", "BR", "IN", "AU", "IT", "MX")
_START = date(2025, 1, 6)


def _holder(rng: random.Random) -> Holder:
    return Holder(
        name=f"Foreigner {rng.randrange(10**9)}",
        sex=rng.choice(("F", "M")),
        date_of_birth=date(1965, 1, 1) + timedelta(days=rng.randrange(13000)),
        nationality=rng.choice(_COUNTRIES),
        passport_no=f"X{rng.randrange(10**8):08d}",
        passport_expiry=date(2035, 1, 1) + timedelta(days=rng.randrange(2000)),
    )


def _employer(rng: random.Random) -> Employer:
    return Employer(
        name=f"Employer {rng.randrange(5000)} Co., Ltd.",
        credit_code=f"9111{rng.randrange(10**13):013d}X",
        province="Beijing",
        city="Beijing",
    )


def lifecycle(permit_no: str, rng: random.Random, max_events: int = 6) -> list[CloudEvent[Any]]:
    """One permit's events in order, sequence 1..n."""
    today = _START + timedelta(days=rng.randrange(200))
    payloads: list[Any] = [domain.notification_letter(
        permit_no=permit_no, letter_no=f"NL{permit_no}", holder=_holder(rng),
        employer=_employer(rng), category=rng.choice(list(Category)),
        position="Engineer", approved_months=rng.choice((6, 12, 24)), today=today,
    )]
    payloads.append(domain.issue(payloads[-1].permit, valid_from=today + timedelta(days=20),
                                 today=today + timedelta(days=20)))
    while len(payloads) < max_events:
        record: PermitRecord = payloads[-1].permit
        step = _next_step(record, rng)
        if step is None:
            break
        payloads.append(step)
    return [
        EVENT_OF[type(p)].create(subject=permit_no, sequence=i, data=p)
        for i, p in enumerate(payloads, start=1)
    ]


def _next_step(record: PermitRecord, rng: random.Random) -> Any:
    if record.status.value != "active":
        return None
    assert record.valid_until is not None
    roll = rng.random()
    if roll < 0.35 and record.holder.passport_expiry > record.valid_until + timedelta(days=30):
        today = record.valid_until - timedelta(days=rng.randrange(30, 91))
        return domain.extend(record, new_valid_until=min(
            record.valid_until + timedelta(days=365), record.holder.passport_expiry), today=today)
    if roll < 0.7:
        return domain.change(record, position=f"Position {rng.randrange(10**6)}")
    if roll < 0.85:
        return domain.cancel(record, reason=rng.choice(list(CancellationReason)),
                             today=record.valid_until - timedelta(days=10))
    return domain.expire(record, today=record.valid_until + timedelta(days=1))


def permit_number(i: int, base: int = 900_000_000_000_000_000) -> str:
    """The i-th synthetic permit number (18 digits, apart from the authority's range)."""
    return f"{base + i:018d}"


def stream(permits: int, *, seed: int = 7, max_events: int = 6,
           base: int = 900_000_000_000_000_000) -> Iterator[CloudEvent[Any]]:
    """Events of `permits` lifecycles, interleaved across permits but in order per permit."""
    rng = random.Random(seed)
    pending = [lifecycle(permit_number(i, base), rng, max_events) for i in range(permits)]
    cursors = [0] * permits
    live = list(range(permits))
    while live:
        k = rng.randrange(len(live))
        i = live[k]
        yield pending[i][cursors[i]]
        cursors[i] += 1
        if cursors[i] == len(pending[i]):
            live[k] = live[-1]
            live.pop()
