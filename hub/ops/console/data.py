"""What the console's pages show, read with the ops commands' own functions: lag
(`hub.ops.lag`), dead letters (`hub.ops.dlq`, `hub.ops.redrive`), replays (`hub_replays`,
written by `hub.ops.replay`) and one permit side by side (`hub.ops.views`).

Anything that shows a person's data records the look first (`hub.ops.looks.record_in`),
exactly as the command line does, and masks unless the look reveals.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.db import open_pool
from hub.errors import BadTarget, retry_transient
from hub.kafka import client_options, partitions_of
from hub.kafka_credentials import OPS
from hub.looks import Look, Seen
from hub.ops.dlq import dlq_topic_of, read_one, scan
from hub.ops.lag import lag_report
from hub.ops.looks import record_in
from hub.ops.redrive import Redrive, redrive, redrive_log
from hub.ops.views import authority_fields, compare, records_of
from hub.projection import fetch_one
from hub.registry import installed
from hub.reveal import redact, shown_fields
from hub.settings import Settings

PERMIT_NO = re.compile(r"[0-9]{18}")
"""A permit number (schemas.permits.PermitNo): anything else is refused before a look."""
LISTED = 500
"""Dead letters a group's page lists at most (the command line pages the rest)."""


@dataclass(frozen=True)
class GroupLag:
    """One consumer group's lag, summed over its partitions, and its dead letters."""

    agency: str
    group: str
    partitions: int
    lag: int
    oldest_age_s: float | None
    dead_letters: int = 0


async def overview(settings: Settings) -> list[GroupLag]:
    """Per consuming agency: its group's lag and oldest unprocessed age, its dead letters."""
    now = datetime.now(UTC)
    rows = await lag_report(settings)
    dlqs = {a.name: dlq_topic_of(settings, a.name)[1] for a in installed().consumers()}
    counts = await _held(settings, list(dlqs.values()))
    out = []
    for agency in installed().consumers():
        mine = [r for r in rows if r.agency == agency.name]
        ages = [a for a in (r.age_seconds(now) for r in mine) if a is not None]
        out.append(GroupLag(agency.name, agency.group_id(settings), len(mine),
                            sum(r.lag for r in mine), max(ages) if ages else None,
                            counts.get(dlqs[agency.name], 0)))
    return out


async def _held(settings: Settings, topic_names: list[str]) -> dict[str, int]:
    """How many records each topic holds, from its partitions' start and end offsets: exact
    for a dead-letter topic (deleted by retention, never compacted, written without
    transactions, so no offset is a marker), and read without fetching one record."""
    reader = AIOKafkaConsumer(**client_options(settings, OPS), enable_auto_commit=False,
                              client_id="hub-console")
    await retry_transient("start console offsets reader", reader.start)
    try:
        tps = [TopicPartition(t, p) for t in topic_names
               for p in await _partitions_or_none(reader, t)]
        if not tps:
            return {}
        starts, ends = await reader.beginning_offsets(tps), await reader.end_offsets(tps)
    finally:
        await reader.stop()
    held: Counter[str] = Counter()
    for tp in tps:
        held[tp.topic] += ends[tp] - starts[tp]
    return dict(held)


async def _partitions_or_none(reader: AIOKafkaConsumer, topic: str) -> list[int]:
    try:
        return await partitions_of(reader, topic)
    except LookupError:  # a group whose DLQ was never created holds none
        return []


async def replays(settings: Settings) -> list[dict[str, Any]]:
    """The newest replays of every agency's view (`hub replay`), newest first."""
    out: list[dict[str, Any]] = []
    for agency in installed().with_views():
        async with open_pool(settings.dsn(agency.name), max_size=1) as pool:
            if await pool.fetchval("SELECT to_regclass('hub_replays')") is None:
                continue
            rows = await pool.fetch(
                "SELECT id, view, requested_by, started_at, finished_at, status, range"
                " FROM hub_replays ORDER BY id DESC LIMIT 20")
        out += [{"agency": agency.name, **dict(r)} for r in rows]
    return sorted(out, key=lambda r: r["started_at"], reverse=True)


async def dead_letters(settings: Settings, group: str) -> tuple[str, list[dict[str, Any]]]:
    """A group's DLQ topic and its dead letters as `hub dlq list` shows them (no body)."""
    agency, topic = dlq_topic_of(settings, group)
    sent = {f"{r['dlq_partition']}:{r['dlq_offset']}" for r in await redrive_log(settings, group)
            if r["result"] == "sent" and r["dlq_topic"] == topic}
    listed = [{**m.summary(), "redriven": m.ref in sent}
              async for m in scan(settings, topic, limit=LISTED)]
    return agency.name, listed


def reasons(listed: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Dead letters per reason, most first."""
    return Counter(m["reason"] or "(none)" for m in listed).most_common()


async def dead_letter(settings: Settings, group: str, ref: str, look: Look) -> dict[str, Any]:
    """One dead letter as `hub dlq show` shows it, the look recorded first."""
    agency, topic = dlq_topic_of(settings, group)
    message = await read_one(settings, topic, ref)
    await record_in(settings, look, {agency.name: [message.seen()]})
    return message.detail(reveal=look.revealed)


async def redrive_one(
    settings: Settings, group: str, ref: str, look: Look, *, again: bool = False
) -> Redrive:
    """Send one dead letter back to its origin as `hub dlq redrive` does (one already sent
    is skipped unless `again`), recorded in `hub_redrives` (by the operator) and, with its
    purpose, as a look at the message."""
    agency, topic = dlq_topic_of(settings, group)
    message = await read_one(settings, topic, ref)
    await record_in(settings, look, {agency.name: [
        Seen(f"{topic}:{ref}", message.permit_no(), ())]})
    [done] = await redrive(settings, group, [ref], again=again,
                           redriven_by=f"{look.looked_by} (console: {look.operator})")
    return done


@dataclass(frozen=True)
class Column:
    """What one side (the authority or an agency) holds of a permit."""

    agency: str
    compared: dict[str, Any] | None
    """The fields every view must agree on (`hub.ops.views.authority_fields`); None: not held."""
    others: dict[str, Any] = field(default_factory=dict)
    """Everything else this side holds of the permit."""
    differs: frozenset[str] = frozenset()
    """The compared fields that differ from the authority (`missing`: not held at all)."""


async def side_by_side(settings: Settings, permit_no: str, look: Look) -> list[Column]:
    """The authority's and each agency's hold of one permit, differences from the authority
    marked; the look is recorded in every agency's database first, as `hub views show`."""
    if not PERMIT_NO.fullmatch(permit_no):
        raise BadTarget("a permit number is 18 digits")
    registry = installed()
    truth = registry.authority()
    async with records_of(settings, truth) as records:
        found = await records.get(permit_no)
    columns = [_authority(truth.name, found)]
    for agency in registry.with_views():
        assert agency.view is not None
        async with open_pool(settings.dsn(agency.name), max_size=1) as p:
            row = await fetch_one(p, agency.view.table, permit_no)
        columns.append(_agency(agency.name, permit_no, found, row))
    await record_in(settings, look, {c.agency: [Seen(permit_no, permit_no, _shown(c))]
                                     for c in columns})
    return [_masked(c, reveal=look.revealed) for c in columns]


def _authority(name: str, found: Any) -> Column:
    if found is None:
        return Column(name, None)
    record, sequence = found
    compared = authority_fields(record, sequence)
    dumped = record.model_dump(mode="json")
    dumped.pop("holder", None)
    return Column(name, compared, {**dumped, "holder": record.holder.model_dump(mode="json")})


def _agency(name: str, permit_no: str, found: Any, row: dict[str, Any] | None) -> Column:
    if row is None:
        return Column(name, None, differs=frozenset({"missing"}) if found else frozenset())
    if found is None:  # the authority holds no such permit: nothing to compare with
        return Column(name, {}, row, frozenset({"unknown"}))
    compared_names = authority_fields(*found).keys()
    drifts = compare(name, {permit_no: found}, {permit_no: row})
    return Column(name, {k: row.get(k) for k in compared_names},
                  {k: v for k, v in row.items() if k not in compared_names},
                  frozenset(d.field for d in drifts))


def _shown(column: Column) -> list[str]:
    return [*shown_fields(column.compared or {}), *shown_fields(column.others)]


def _masked(column: Column, *, reveal: bool) -> Column:
    return Column(column.agency,
                  None if column.compared is None else redact(column.compared, reveal=reveal),
                  redact(column.others, reveal=reveal), column.differs)
