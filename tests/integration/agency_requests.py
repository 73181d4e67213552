"""Helpers for the agencies' request/outcome tests: a front door that publishes requests,
and a reader of the outcome topics, on the session's real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from hub import bootstrap
from hub.ops.lag import caught_up
from hub.projection import fetch_all
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import Authority, authority
from schemas import CloudEvent, Codec
from schemas.permits import Category, Employer, Holder, PermitRecord
from tests.integration.hub_fixtures import eventually, read_topic, signed, writer_of

HANSA = Employer(name="Hansa Automotive Systems (Shanghai) Co., Ltd.",
                 credit_code="91310115MA1K4XYW8B", province="Shanghai", city="Shanghai")


def holder(n: int, nationality: str = "DE", **overrides: Any) -> Holder:
    """A distinct foreigner for each `n`."""
    fields: dict[str, Any] = {
        "name": f"Foreigner {n}", "sex": "F", "date_of_birth": date(1985, 1, 1 + n % 28),
        "nationality": nationality, "passport_no": f"P{n:08d}",
        "passport_expiry": date(2034, 1, 1),
    }
    return Holder.model_validate(fields | overrides)


async def issued_permit(
    auth: Authority, who: Holder, *, entry: date, months: int = 24,
    employer: Employer = HANSA,
) -> PermitRecord:
    """A permit applied for three weeks before entry and issued on the entry date."""
    letter = await auth.apply(holder=who, employer=employer, category=Category.B,
                              position="Engineer", approved_months=months,
                              today=entry - timedelta(days=21))
    return await auth.issue(letter.permit_no, valid_from=entry, today=entry)


async def send(settings: Settings, topic: str, events: Iterable[CloudEvent[Any]]) -> None:
    """Publish events as a front door would: keyed by subject, structured-mode CloudEvents."""
    await send_raw(settings, topic, [(e.subject.encode(), e.to_json()) for e in events])


async def send_raw(settings: Settings, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
    """Publish raw key/value pairs (for malformed input), as and signed by whoever may
    write the topic."""
    async with bootstrap.producer(settings, "test-front-door", principal=writer_of(topic)) as prod:
        futures = [await prod.send(settings.topic(topic), key=k, value=v,
                                   headers=signed(settings, topic, v))
                   for k, v in messages]
        await asyncio.gather(*futures)


async def outcomes(settings: Settings, topic: str, codec: Codec) -> list[CloudEvent[Any]]:
    """Every event on an outcome topic, decoded."""
    return [codec.decode(r.value) for r in await read_topic(settings, settings.topic(topic))]


async def wait_for(
    settings: Settings,
    topic: str,
    codec: Codec,
    done: Callable[[list[CloudEvent[Any]]], bool],
    *,
    what: str,
    within: float = 90.0,
) -> list[CloudEvent[Any]]:
    """The events on `topic` once `done(events)` holds."""
    seen: list[CloudEvent[Any]] = []

    async def check() -> bool:
        seen[:] = await outcomes(settings, topic, codec)
        return done(seen)

    async def explain() -> str:
        return "; ".join(f"{e.type.rsplit('.', 1)[-1]}({e.subject})" for e in seen)

    await eventually(check, timeout=within, what=what, explain=explain)
    return seen


def by_request(events: Iterable[CloudEvent[Any]], field: str) -> dict[str, list[CloudEvent[Any]]]:
    """Outcome events grouped by their application or request id."""
    grouped: dict[str, list[CloudEvent[Any]]] = {}
    for e in events:
        key = getattr(e.data, field, None)
        if key is not None:
            grouped.setdefault(key, []).append(e)
    return grouped


async def synced(settings: Settings, agency: str, auth: Authority) -> None:
    """Wait until the agency's view holds every permit at the authority's sequence."""
    table = installed().view(agency).table

    async def check() -> bool:
        truth = await auth.all()
        async with bootstrap.pool(settings, agency, max_size=1) as p:
            rows = await fetch_all(p, table)
        return all(no in rows and rows[no]["sequence"] == seq for no, (_, seq) in truth.items())

    await eventually(check, what=f"{agency} to hold every permit")


async def rows(settings: Settings, agency: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query on an agency's own database."""
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        return [dict(r) for r in await p.fetch(sql, *args)]


async def settled(settings: Settings, agency: str) -> None:
    """Wait until the agency consumed everything on its topics and relayed every outcome."""

    async def check() -> bool:
        if not await caught_up(settings, agency):
            return False
        return not await rows(settings, agency, "SELECT id FROM hub_outbox LIMIT 1")

    await eventually(check, what=f"{agency} to settle")


@contextlib.asynccontextmanager
async def agency_running(settings: Settings, agency: str) -> AsyncIterator[Authority]:
    """The authority with its relay, and one agency's consumer with its outcome relay."""
    async with (
        bootstrap.running_relay(settings, "workpermit"),
        bootstrap.running_relay(settings, agency),
        bootstrap.running_consumer(settings, agency),
        authority(settings) as auth,
    ):
        yield auth
