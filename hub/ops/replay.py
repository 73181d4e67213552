"""`hub replay VIEW`: rebuild an agency's permit view from the permit topic, beside the live
one, and switch to it atomically while the live consumer keeps running.

How it works
------------

1. **Shadow build.** `<table>__shadow` is created `LIKE <table> INCLUDING ALL`. A plain
   aiokafka consumer without a group reads the permit topic from the start positions
   (`--from`); each record is decoded with the permit codec, turned into a row by the
   agency's own row function (the one its router projects permit events with) and merged
   with the same `ViewTable.upsert_latest` (sequence guard). Each shadow batch and the
   replay's per-partition next offset (`hub_replay_offsets`) are written in one
   transaction, so `--resume ID` continues exactly where the last commit left off, and an
   interrupted replay has touched nothing but its shadow. Every replay is a row of
   `hub_replays` (who, when, range, status, result). A record the agency's evidence log
   holds as verified and applied at that position, with the same digest and JWS, is not
   verified with Ed25519 again (its key must still be published and not revoked); every
   other record is (`hub.evidence.proofs`). Records the live consumer would
   dead-letter (refused by `accept`, row function raising, a sequence jump) are skipped and
   counted.

2. **Switch** (only for an unbounded replay, after it has caught up with the log end). In
   ONE transaction:
   a. lock the live group's offset rows of the permit topic `FOR UPDATE` (rows missing
      are first inserted at the log start, which is where the consumer would begin).
      The live consumer locks those rows at the start of every batch and writes the view
      and its offsets in that same transaction, so from here until our commit no live
      batch of permit events can commit, and every one that committed before is counted
      in the offsets L we read;
   b. where the shadow's next offset S_p < L_p, read partition p from S_p up to L_p from
      Kafka (bounded by a timeout, else rollback: nothing changed) and merge it into the
      shadow in this transaction. Now the shadow holds the fold of every event below
      F_p = max(S_p, L_p) on each partition;
   c. rename `<table>` → `<table>__replaced_<id>` (kept for inspection) and
      `<table>__shadow` → `<table>`. Renames are transactional: readers see the old table
      until commit and the complete new one after it, never a half-built view;
   d. compare the shadow with the live view, and with the authority's permits where this
      host can read them (`Comparison`): a shadow that lacks a permit either holds, or a
      group offset below the log start (records deleted before the live view applied
      them), is a loss. It is refused — rollback, nothing switched, exit 1, status
      `refused` (with the refusal and the comparison in `hub_replays.result`) — unless
      `--accept-loss` (then recorded there too); a refused replay resumes with
      `--resume ID --accept-loss`;
   e. the group's stored offsets are left at L (see below), the replay's at F, except an
      offset outside the partition's log (`hub.consumer.OutsideLog`: below its start, or
      above its end after the topic was recreated), which moves to the log start: the
      stopped partition resumes there, its handlers see every record the log still holds,
      each once (`hub_handled_events`), and the view's sequence guard makes the rows a
      no-op; commit.

Time and the permit topic. That topic is compacted (`Channel.compacted`): Kafka keeps the
newest event of every permit for ever and drops superseded ones once they are older than
`HUB_COMPACTION_LAG_MS`. Every view's row function reads only the event's own full record,
so the newest event per permit rebuilds the same rows as the whole history; a view's first
version of a permit has no sequence-jump bound, so a replay starting at a high sequence is
applied. What compaction does take away are the superseded events themselves: a replay
never runs handlers, so that is no loss to it, but a consumer group reading the topic from
the start later (a new agency) runs its handlers on the newest event per permit only.
Compaction keeps each remaining record's offset, bytes and headers, so the evidence log's
proofs (by position, digest and JWS) and a batch signature's inclusion path still hold for
every record a replay reads; the removed ones are simply not read. A topic whose old
records were deleted by retention (a hub from before compaction, or DeleteRecords) makes
a shadow that lacks permits: (d) refuses it.

Why no event is lost or applied twice across the switch: every event below L_p was
applied by the live consumer to the old table and, by (b), is in the shadow; no event at
or above L_p can have been applied to the old table (L is locked). After commit the live
consumer continues each partition at L_p, on the new table. Events in [L_p, F_p) — those
the shadow read ahead of a lagging live consumer — are then offered to the new table a
second time, and the sequence guard makes that a no-op: `upsert_latest` keeps the row of
the highest sequence per permit, a max that is idempotent and order-free, so the new table
ends as the fold of the whole log, each event's effect counted once. We deliberately do
not move the group to F_p: permit events also drive the agencies' handlers (notices,
suspensions, residence cancellations), which the replay does not run; skipping
[L_p, F_p) would lose their outcomes. With the group at L_p each handler still sees each
event exactly once (its `hub_handled_events` are untouched).

A replay bounded by `--to` stops there and never switches (its shadow does not reach the
live offsets); it is left as `<table>__shadow` with status `built` for inspection. A
replay from a later start than `earliest` does switch, but then the new view only knows
the permits whose events it read: that is what was asked for.

One replay of a view runs at a time (a session advisory lock). A new replay of a view
drops the shadow an earlier unfinished replay left, and marks that one `abandoned`.

A replay creates, drops and renames tables, so it connects as the agency's owner role (the
one `hub init` migrates with), never as the runtime role. Tables the owner creates are
granted to the runtime role by default privileges (`hub.roles`), so the live consumer
writes to the switched-in table as it did to the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from hub.agency import Agency, PermitView
from hub.bootstrap import verifier
from hub.commands import emit_json, run
from hub.consumer import OutsideLog
from hub.db import Connection, lock_offsets, open_pool
from hub.delivery import Refusal, accept
from hub.errors import BadTarget, NotReady
from hub.evidence import proofs
from hub.kafka import client_options, partitions_of
from hub.kafka_credentials import OPS
from hub.logging import get_logger
from hub.ops.views import records_of
from hub.projection import ViewTable
from hub.registry import installed
from hub.settings import Settings
from hub.signing import Verifier
from schemas import PERMIT_EVENT_TYPES, topics

log = get_logger(__name__)

SWITCH_GAP = 2000
"""The build phase ends when the shadow is at most this many events behind the log end;
the rest is applied inside the switch transaction."""
SWITCH_CATCHUP_TIMEOUT_S = 30.0
"""How long the switch may read Kafka while it holds the live group's offsets."""
SWITCH_LOCK_TIMEOUT = "10s"
"""How long the switch waits for the live group's offset rows and the table's readers."""
BATCH = 1000


class ReplayFailed(RuntimeError):
    """The replay could not finish (busy, interrupted, Kafka too slow at the switch): exit 1."""


class _Refused(Exception):
    """The comparison found a loss: roll the switch back."""


_PERMIT_TYPES = frozenset(t.EVENT_TYPE for t in PERMIT_EVENT_TYPES)
RESUMABLE = ("running", "interrupted", "refused")
"""Statuses of hub_replays a replay resumes from (a refused one, with `--accept-loss`)."""


def _viewed(settings: Settings, name: str) -> tuple[Agency, PermitView]:
    """The agency (by name or group id) and its permit view; BadTarget if it keeps none."""
    agency = installed().consumer(settings, name)
    return agency, _permit_view(agency)


def _permit_view(agency: Agency) -> PermitView:
    if agency.view is None:
        raise BadTarget(f"agency {agency.name!r} keeps no permit view; nothing was replayed")
    return agency.view


def _view_names() -> list[str]:
    return [a.name for a in installed().with_views()]


# ranges --------------------------------------------------------------------------------


def parse_bound(text: str, *, allow_earliest: bool) -> str | datetime | dict[int, int]:
    """`earliest`, an ISO datetime (naive = UTC), or `P:OFFSET,...`; BadTarget otherwise."""
    text = text.strip()
    if text == "earliest" and allow_earliest:
        return "earliest"
    if ":" in text and all(part.count(":") == 1 and "-" not in part for part in text.split(",")):
        try:
            pairs = [part.split(":") for part in text.split(",")]
            out = {int(p): int(o) for p, o in pairs}
        except ValueError:
            raise BadTarget(f"{text!r} is not P:OFFSET,...; nothing was replayed") from None
        if any(o < 0 for o in out.values()):
            raise BadTarget(f"{text!r}: offsets are never negative; nothing was replayed")
        return out
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        words = "earliest, a datetime or P:OFFSET,..." if allow_earliest else \
            "a datetime or P:OFFSET,..."
        raise BadTarget(f"{text!r} is not {words}; nothing was replayed") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise BadTarget(f"{text!r} is in the future; nothing was replayed")
    return when


@dataclass
class PartitionPlan:
    """One partition of the replay: where it starts, where a bounded one ends, how far."""

    partition: int
    start: int
    end: int
    """The --to bound, or the log end when the plan was made (unbounded)."""
    next: int

    @property
    def remaining(self) -> int:
        """Events (offsets) still to read up to `end`."""
        return max(0, self.end - self.next)


@dataclass
class Comparison:
    """The shadow against the live view (and the authority) just before the switch."""

    live: int
    """Permits the live view holds."""
    shadow: int
    """Permits the rebuilt view holds."""
    lost: int
    """Permits the live view holds and the rebuilt one lacks."""
    authority: int | None = None
    """Permits the authority holds (None: its database cannot be read from here)."""
    authority_missing: int | None = None
    """Of those, how many the rebuilt view lacks."""
    outside: list[OutsideLog] = field(default_factory=list)
    """Partitions whose group offset is outside the log, moved to the log start."""

    def refusal(self) -> str | None:
        """Why switching would lose permits or records, or None when it would not."""
        why = []
        if self.lost:
            why.append(f"the rebuilt view lacks {self.lost} of the live view's {self.live}"
                       f" permit(s) (it holds {self.shadow})")
        if self.authority_missing:
            why.append(f"it lacks {self.authority_missing} of the authority's"
                       f" {self.authority} permit(s)")
        gone = [o for o in self.outside if o.stored < o.log_start]
        if gone:
            why.append("the live view never applied records since deleted from " + ", ".join(
                f"{o.topic}:{o.partition} (offsets {o.stored}..{o.log_start - 1})" for o in gone))
        return "; ".join(why) or None


@dataclass
class Replay:
    """A replay's plan and, once run, its outcome."""

    view: str
    table: str
    topic: str
    group_id: str
    bounded: bool
    partitions: list[PartitionPlan]
    id: int | None = None
    status: str = "planned"
    events: int = 0
    skipped: int = 0
    shadow: str = ""
    replaced: str | None = None
    live_offsets: dict[int, int] = field(default_factory=dict)
    range: dict[str, Any] = field(default_factory=dict)
    accept_loss: bool = False
    """Switch even when the comparison finds a loss (`--accept-loss`)."""
    comparison: Comparison | None = None
    refused: str | None = None

    @property
    def planned_events(self) -> int:
        """Offsets between each partition's next position and its end."""
        return sum(p.remaining for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (`--json`, `hub_replays.result`)."""
        out = asdict(self)
        out["planned_events"] = self.planned_events
        out["live_offsets"] = {str(k): v for k, v in self.live_offsets.items()}
        return out


async def _resolve(
    reader: AIOKafkaConsumer, topic: str, bound: str | datetime | dict[int, int],
    parts: list[int], starts: dict[int, int], ends: dict[int, int], *, what: str,
) -> dict[int, int]:
    if bound == "earliest":
        return dict(starts)
    if isinstance(bound, datetime):
        found = await reader.offsets_for_times(
            {TopicPartition(topic, p): int(bound.timestamp() * 1000) for p in parts})
        return {tp.partition: (ends[tp.partition] if o is None else o.offset)
                for tp, o in found.items()}
    assert isinstance(bound, dict)
    unknown = sorted(set(bound) - set(parts))
    if unknown:
        raise BadTarget(f"{topic} has no partition {unknown[0]} (it has {len(parts)});"
                        " nothing was replayed")
    for p, o in bound.items():
        if not starts[p] <= o <= ends[p]:
            raise BadTarget(f"{what} offset {p}:{o} is outside {topic}:{p}, which holds"
                            f" offsets {starts[p]}..{ends[p]}; nothing was replayed")
    default = starts if what == "--from" else ends
    return {p: bound.get(p, default[p]) for p in parts}


def _reader(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**client_options(settings, OPS), enable_auto_commit=False,
                            auto_offset_reset="earliest", isolation_level="read_committed",
                            client_id="hub-ops-replay", max_partition_fetch_bytes=4 << 20)


async def plan(settings: Settings, view: str, start: str, to: str | None) -> Replay:
    """The replay of `view` from `start` (to `to`), as a plan; BadTarget if anything named
    does not exist. Touches no database."""
    agency, permits = _viewed(settings, view)
    table = permits.table
    first = parse_bound(start, allow_earliest=True)
    last = parse_bound(to, allow_earliest=False) if to is not None else None
    topic = settings.topic(agency.read_topic(topics.PERMIT_EVENTS))
    reader = _reader(settings)
    await reader.start()
    try:
        try:
            parts = await partitions_of(reader, topic)
        except LookupError as exc:
            raise BadTarget(f"{exc}; nothing was replayed") from None
        tps = [TopicPartition(topic, p) for p in parts]
        starts = {tp.partition: o for tp, o in (await reader.beginning_offsets(tps)).items()}
        ends = {tp.partition: o for tp, o in (await reader.end_offsets(tps)).items()}
        begin = await _resolve(reader, topic, first, parts, starts, ends, what="--from")
        finish = (await _resolve(reader, topic, last, parts, starts, ends, what="--to")
                  if last is not None else ends)
    finally:
        await reader.stop()
    for p in parts:
        if finish[p] < begin[p]:
            raise BadTarget(f"--to {p}:{finish[p]} is before --from {p}:{begin[p]};"
                            " nothing was replayed")
    return Replay(
        view=agency.name, table=table.name, topic=topic, group_id=agency.group_id(settings),
        bounded=last is not None, shadow=f"{table.name}__shadow",
        partitions=[PartitionPlan(p, begin[p], finish[p], begin[p]) for p in parts],
        range={"from": start, "to": to, "start": {str(p): begin[p] for p in parts},
               "end": {str(p): finish[p] for p in parts} if last is not None else None},
    )


# running -------------------------------------------------------------------------------

Progress = Callable[[int, int], None]


async def run_replay(
    settings: Settings,
    view: str,
    start: str = "earliest",
    to: str | None = None,
    *,
    rate: float | None = None,
    dry_run: bool = False,
    resume: int | None = None,
    limit: int | None = None,
    accept_loss: bool = False,
    on_progress: Progress | None = None,
) -> Replay:
    """Plan, build the shadow and (unless bounded) switch it in, as the agency's owner role;
    see the module docstring. A switch that would lose permits or records is refused
    (status `refused`) unless `accept_loss`.

    `limit` stops the build after about that many events and leaves the replay
    `interrupted` and resumable (the hook tests and cautious operators use).
    """
    if rate is not None and rate <= 0:
        raise BadTarget("--rate must be a positive number of events per second")
    agency = _viewed(settings, view)[0].name
    if resume is not None:
        return await _resume(settings, agency, resume, rate=rate, dry_run=dry_run,
                             limit=limit, accept_loss=accept_loss, on_progress=on_progress)
    r = await plan(settings, agency, start, to)
    r.accept_loss = accept_loss
    if dry_run:
        return r
    async with (
        open_pool(settings.dsn(agency, role="owner"), max_size=1) as pool,
        pool.acquire() as conn,
    ):
        await _lock_view(conn, r.table)
        async with conn.transaction():
            await conn.execute(
                "UPDATE hub_replays SET status = 'abandoned', finished_at = clock_timestamp()"
                " WHERE view = $1 AND status = ANY($2)", r.view, [*RESUMABLE, "built"])
            r.id = await conn.fetchval(
                "INSERT INTO hub_replays (view, requested_by, range, status)"
                " VALUES ($1, $2, $3::jsonb, 'running') RETURNING id",
                r.view, getpass.getuser(), json.dumps(r.range))
            await conn.execute(f"DROP TABLE IF EXISTS {r.shadow}")
            await conn.execute(f"CREATE TABLE {r.shadow} (LIKE {r.table} INCLUDING ALL)")
            await conn.executemany(
                "INSERT INTO hub_replay_offsets (replay_id, topic, partition, next_offset)"
                " VALUES ($1, $2, $3, $4)",
                [(r.id, r.topic, p.partition, p.next) for p in r.partitions])
        r.status = "running"
        await _run(settings, conn, r, rate=rate, limit=limit, on_progress=on_progress)
    return r


async def _resume(
    settings: Settings, agency: str, replay_id: int, *, rate: float | None, dry_run: bool,
    limit: int | None, accept_loss: bool, on_progress: Progress | None,
) -> Replay:
    async with (
        open_pool(settings.dsn(agency, role="owner"), max_size=1) as pool,
        pool.acquire() as conn,
    ):
        if await conn.fetchval("SELECT to_regclass('hub_replays')") is None:
            raise BadTarget(f"no replay {replay_id} of {agency}; nothing was replayed")
        row = await conn.fetchrow("SELECT * FROM hub_replays WHERE id = $1", replay_id)
        if row is None or row["view"] != agency:
            raise BadTarget(f"no replay {replay_id} of {agency}; nothing was replayed")
        if row["status"] not in RESUMABLE:
            raise BadTarget(f"replay {replay_id} is {row['status']}, not resumable;"
                            " nothing was replayed")
        rng = json.loads(row["range"])
        r = await plan(settings, agency, rng["from"], rng["to"])
        r.id, r.range, r.status = replay_id, rng, row["status"]
        r.accept_loss = accept_loss
        if await conn.fetchval("SELECT to_regclass($1)", r.shadow) is None:
            raise BadTarget(f"replay {replay_id}'s shadow {r.shadow} is gone; start a new"
                            " replay")
        stored = {rec["partition"]: rec["next_offset"] for rec in await conn.fetch(
            "SELECT partition, next_offset FROM hub_replay_offsets WHERE replay_id = $1"
            " AND topic = $2", replay_id, r.topic)}
        for p in r.partitions:
            p.start = int(rng["start"][str(p.partition)])
            p.next = stored.get(p.partition, p.start)
            if r.bounded:
                p.end = int(rng["end"][str(p.partition)])
        if dry_run:
            return r
        await _lock_view(conn, r.table)
        await conn.execute("UPDATE hub_replays SET status = 'running' WHERE id = $1", r.id)
        r.status = "running"
        await _run(settings, conn, r, rate=rate, limit=limit, on_progress=on_progress)
    return r


async def _lock_view(conn: Connection, table: str) -> None:
    got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"hub replay {table}")
    if not got:
        raise ReplayFailed(f"another replay of {table} is running")


async def _run(
    settings: Settings, conn: Connection, r: Replay, *, rate: float | None,
    limit: int | None, on_progress: Progress | None,
) -> None:
    """Build, then switch (unbounded) or leave the shadow (bounded); record the outcome."""
    reader = _reader(settings)
    try:
        # Inside the try: a replay cancelled while the reader logs in (a TLS and SCRAM
        # handshake) is recorded as interrupted, not left `running`.
        await reader.start()
        tps = [TopicPartition(r.topic, p.partition) for p in r.partitions]
        reader.assign(tps)
        for p in r.partitions:
            reader.seek(TopicPartition(r.topic, p.partition), p.next)
        builder = _Builder(conn, r, reader, verifier(settings), settings=settings, rate=rate,
                           limit=limit, on_progress=on_progress)
        finished = await builder.build()
        if not finished:
            r.status = "interrupted"
        elif r.bounded:
            r.status = "built"
        else:
            await _switch(settings, conn, r, builder)
            if r.status == "switched":
                return
        await _record(conn, r)
    except BaseException as exc:
        r.status = "interrupted" if isinstance(exc, asyncio.CancelledError | ReplayFailed) \
            else "failed"
        with contextlib.suppress(Exception):
            await asyncio.shield(_record(conn, r))
        raise
    finally:
        await reader.stop()


async def _record(conn: Connection, r: Replay) -> None:
    done = r.status in ("built", "switched", "failed")
    await conn.execute(
        "UPDATE hub_replays SET status = $2, result = $3::jsonb,"
        " finished_at = CASE WHEN $4 THEN clock_timestamp() END WHERE id = $1",
        r.id, r.status, json.dumps(r.as_dict()), done)


class _Builder:
    """Reads the topic into the shadow, a transaction per batch with its progress."""

    def __init__(
        self, conn: Connection, r: Replay, reader: AIOKafkaConsumer, checker: Verifier, *,
        settings: Settings, rate: float | None, limit: int | None,
        on_progress: Progress | None,
    ) -> None:
        self.conn, self.r, self.reader = conn, r, reader
        self.rate, self.limit, self.on_progress = rate, limit, on_progress
        agency = installed().get(r.view)
        permits = _permit_view(agency)
        self.codec = agency.codec()
        self.verifier = checker
        self.row_of = permits.row_for(settings)  # an agency's secrets (a pepper) load here
        self.shadow = ViewTable(r.shadow, permits.table.columns)
        self.by_partition = {p.partition: p for p in r.partitions}
        self.started = time.monotonic()
        self.read_since_start = 0
        self.total = r.planned_events

    async def position(self, partition: int) -> int:
        """The reader's next offset on a partition."""
        return int(await self.reader.position(TopicPartition(self.r.topic, partition)))

    async def build(self) -> bool:
        """Read to the plan's ends (bounded) or close to the log end; False if `limit` hit."""
        while True:
            if not await self._read_until({p.partition: p.end for p in self.r.partitions}):
                return False
            if self.r.bounded:
                return True
            ends = await self.reader.end_offsets(
                [TopicPartition(self.r.topic, p.partition) for p in self.r.partitions])
            gap = sum(max(0, o - self.by_partition[tp.partition].next) for tp, o in ends.items())
            if gap <= SWITCH_GAP:
                return True
            for tp, o in ends.items():
                self.by_partition[tp.partition].end = o
            self.total = self.r.events + gap

    async def _read_until(self, targets: dict[int, int]) -> bool:
        while True:
            behind = [p for p, t in targets.items()
                      if self.by_partition[p].next < t and await self.position(p) < t]
            if not behind:
                return True
            if self.limit is not None and self.r.events >= self.limit:
                return False
            size = BATCH if self.rate is None else max(1, min(BATCH, int(self.rate)))
            if self.limit is not None:
                size = max(1, min(size, self.limit - self.r.events))
            batch = await self.reader.getmany(timeout_ms=200, max_records=size)
            await self.apply(self.conn, batch, targets if self.r.bounded else None)
            await self._throttle()

    async def apply(
        self, conn: Connection, batch: dict[TopicPartition, list[ConsumerRecord]],
        bounds: dict[int, int] | None,
    ) -> None:
        """Merge one fetched batch into the shadow and store its progress, in one transaction."""
        rows: list[tuple[Any, ...]] = []
        advance: dict[int, int] = {}
        read = skipped = 0
        known = await proofs(conn, self.r.topic, {
            tp.partition: (records[0].offset, records[-1].offset)
            for tp, records in batch.items() if records})
        for tp, records in batch.items():
            for rec in records:
                if bounds is not None and rec.offset >= bounds[tp.partition]:
                    advance[tp.partition] = bounds[tp.partition]
                    break
                advance[tp.partition] = rec.offset + 1
                read += 1
                row = self._row(rec, known.get((rec.topic, rec.partition, rec.offset)))
                if row is None:
                    skipped += 1
                else:
                    rows.append(row)
        if not advance:
            return
        async with conn.transaction():
            # A jump the live consumer dead-letters is left out here: the same rule, one view.
            skipped += await self.shadow.upsert_latest(conn, rows, skip_jumps=True)
            await self._store(conn, advance)
        for p, o in advance.items():
            self.by_partition[p].next = max(self.by_partition[p].next, o)
        self.r.events += read
        self.r.skipped += skipped
        self.read_since_start += read
        if self.on_progress is not None:
            self.on_progress(self.r.events, max(self.total, self.r.events))

    async def _store(self, conn: Connection, advance: dict[int, int]) -> None:
        await conn.executemany(
            "UPDATE hub_replay_offsets SET next_offset = GREATEST(next_offset, $4)"
            " WHERE replay_id = $1 AND topic = $2 AND partition = $3",
            [(self.r.id, self.r.topic, p, o) for p, o in advance.items()])

    def _row(self, rec: ConsumerRecord, proven: tuple[bytes, str] | None
             ) -> tuple[Any, ...] | None:
        """The shadow row of a record, or None for one the live consumer dead-letters.
        `proven`: the evidence log's proof that this agency verified and applied the exact
        record before (its signature is then not verified again; its key's status is)."""
        accepted = accept(rec, self.codec, self.verifier, proven)
        if isinstance(accepted, Refusal) or accepted.event.type not in _PERMIT_TYPES:
            return None
        try:
            return self.row_of(accepted.event)
        except Exception:  # the live consumer dead-letters it: no row there either
            return None

    async def _throttle(self) -> None:
        if self.rate is None:
            return
        ahead = self.read_since_start / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)

    async def catch_up(self, conn: Connection, targets: dict[int, int]) -> None:
        """Inside the switch: read each partition from the shadow's offset up to its target."""
        deadline = time.monotonic() + SWITCH_CATCHUP_TIMEOUT_S
        for p, t in targets.items():
            if self.by_partition[p].next < t:
                self.reader.seek(TopicPartition(self.r.topic, p), self.by_partition[p].next)
        while True:
            behind = [p for p, t in targets.items()
                      if self.by_partition[p].next < t and await self.position(p) < t]
            if not behind:
                break
            if time.monotonic() > deadline:
                raise ReplayFailed("the switch could not read the live offsets from Kafka in"
                                   f" {SWITCH_CATCHUP_TIMEOUT_S:.0f}s; nothing was switched")
            batch = await self.reader.getmany(
                *[TopicPartition(self.r.topic, p) for p in behind], timeout_ms=200,
                max_records=BATCH)
            await self.apply(conn, batch, targets)
        # Offsets with no data record below the target (transaction markers) count as read.
        tail = {p: t for p, t in targets.items() if self.by_partition[p].next < t}
        if tail:
            await self._store(conn, tail)
            for p, t in tail.items():
                self.by_partition[p].next = t


async def _switch(settings: Settings, conn: Connection, r: Replay, builder: _Builder) -> None:
    """Step 2 of the module docstring, in one transaction; `r.status` is `switched`, or
    `refused` with nothing changed but the shadow's progress kept."""
    assert r.id is not None
    replaced = f"{r.table}__replaced_{r.id}"
    parts = [p.partition for p in r.partitions]
    authority = await _authority_permits(settings)
    before = [(p.partition, p.next) for p in r.partitions], r.events, r.skipped
    try:
        await _switch_once(conn, r, builder, replaced, parts, authority)
    except asyncpg.LockNotAvailableError:
        raise ReplayFailed(f"{r.table} or its group's offsets stayed locked longer than"
                           f" {SWITCH_LOCK_TIMEOUT}; nothing was switched, resume to retry"
                           ) from None
    except _Refused as exc:
        # The catch-up inside the rolled-back transaction is undone: so is its count.
        nexts, r.events, r.skipped = before
        for partition, offset in nexts:
            builder.by_partition[partition].next = offset
        r.status, r.refused = "refused", str(exc)
        log.warning("replay refused: switching would lose permits or records",
                    view=r.view, replay=r.id, reason=r.refused)


async def _authority_permits(settings: Settings) -> list[str] | None:
    """The permit numbers the authority holds, or None when its database cannot be read
    from this host (its own server, no password file here): the comparison says so."""
    try:
        async with records_of(settings, installed().authority()) as records:
            return list(await records.all())
    except (NotReady, OSError, asyncpg.PostgresError) as exc:
        log.warning("the authority's permits are not compared", error_class=type(exc).__name__)
        return None


async def _switch_once(
    conn: Connection, r: Replay, builder: _Builder, replaced: str, parts: list[int],
    authority: list[str] | None,
) -> None:
    async with conn.transaction():
        # Bounds how long the live consumer (and readers) can wait on the switch.
        await conn.execute(f"SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT}'")
        tps = [TopicPartition(r.topic, p) for p in parts]
        starts = await builder.reader.beginning_offsets(tps)
        ends = await builder.reader.end_offsets(tps)
        # A partition the group never stored starts at the log start: make its row exist so
        # it can be locked (the consumer would seek there itself).
        await conn.executemany(
            "INSERT INTO hub_consumer_offsets (group_id, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(r.group_id, r.topic, tp.partition, o) for tp, o in starts.items()])
        locked = await lock_offsets(conn, r.group_id, [(r.topic, p) for p in parts])
        outside = [o for tp in tps if (o := OutsideLog.check(
            tp, locked[(r.topic, tp.partition)], starts[tp], ends[tp])) is not None]
        moved = {o.partition: o.log_start for o in outside}
        live = {p: moved.get(p, o) for (_, p), o in locked.items()}
        r.live_offsets = live
        await builder.catch_up(conn, {p: o for p, o in live.items()
                                      if builder.by_partition[p].next < o})
        # A permit erased while the shadow was built (`hub retention apply`, which holds the
        # same offset rows while it erases) may have reached the shadow before its tombstone.
        key = installed().view(r.view).table.key
        await conn.execute(
            f"DELETE FROM {r.shadow} s USING hub_erasures e"
            f" WHERE e.subject = s.{key}::text AND e.sequence >= s.sequence")
        r.comparison = await _compare(conn, r, authority, outside)
        refusal = r.comparison.refusal()
        if refusal is not None and not r.accept_loss:
            raise _Refused(refusal)
        await conn.executemany(
            "UPDATE hub_consumer_offsets SET next_offset = $4"
            " WHERE group_id = $1 AND topic = $2 AND partition = $3",
            [(r.group_id, r.topic, p, o) for p, o in moved.items()])
        await conn.execute(f"ALTER TABLE {r.table} RENAME TO {replaced}")
        await conn.execute(f"ALTER TABLE {r.shadow} RENAME TO {r.table}")
        r.replaced, r.status = replaced, "switched"
        await _record(conn, r)


async def _compare(
    conn: Connection, r: Replay, authority: list[str] | None, outside: list[OutsideLog]
) -> Comparison:
    key = installed().view(r.view).table.columns[0]
    row = await conn.fetchrow(
        f"SELECT (SELECT count(*) FROM {r.table}) AS live,"
        f" (SELECT count(*) FROM {r.shadow}) AS shadow,"
        f" (SELECT count(*) FROM {r.table} l WHERE NOT EXISTS"
        f"   (SELECT 1 FROM {r.shadow} s WHERE s.{key} = l.{key})) AS lost,"
        f" (SELECT count(*) FROM unnest($1::text[]) a(k) WHERE NOT EXISTS"
        f"   (SELECT 1 FROM {r.shadow} s WHERE s.{key} = a.k)"
        # An erased permit is missing by design (`hub.retention`), not a loss.
        f"   AND NOT EXISTS (SELECT 1 FROM hub_erasures e WHERE e.subject = a.k))"
        f" AS authority_missing",
        authority or [])
    assert row is not None
    return Comparison(
        live=row["live"], shadow=row["shadow"], lost=row["lost"],
        authority=None if authority is None else len(authority),
        authority_missing=None if authority is None else row["authority_missing"],
        outside=outside)


# the command ---------------------------------------------------------------------------


def replay(
    view: Annotated[str, typer.Argument(
        help="an agency with a permit view (`hub agencies`)", autocompletion=_view_names)],
    start: Annotated[str, typer.Option(
        "--from", help="earliest | an ISO datetime (UTC if naive) | P:OFFSET,...")] = "earliest",
    to: Annotated[str | None, typer.Option(
        "--to", help="ISO datetime | P:OFFSET,...: a bounded replay leaves its shadow for"
        " inspection and never switches")] = None,
    rate: Annotated[float | None, typer.Option(help="at most N events per second")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print the plan (partitions, offsets, events); change nothing")] = False,
    resume: Annotated[int | None, typer.Option(
        "--resume", help="continue the interrupted replay with this id")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", help="stop after about N events, leaving the replay resumable")] = None,
    accept_loss: Annotated[bool, typer.Option(
        "--accept-loss", help="switch even when the rebuilt view lacks permits the live view"
        " or the authority holds, or records the live view never applied are gone from the"
        " topic (recorded in hub_replays)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Rebuild an agency's permit view from the permit topic into a shadow table beside the
    live one, then switch to it atomically while the live consumer keeps running. Connects
    as the agency's owner role (it creates and renames tables).

    Before switching it compares the rebuilt view with the live one (and the authority's
    permits, where it can read them) and refuses a loss unless `--accept-loss`.

    Exit codes: 0 switched, built (bounded) or planned (dry run); 1 refused (nothing
    switched), interrupted, failed or another replay of the view running; 2 a view, offset,
    time or replay id that does not exist (nothing changed).
    """
    progress = None if as_json or dry_run or not sys.stderr.isatty() else _RichProgress()

    async def work(s: Settings) -> Replay:
        try:
            return await run_replay(s, view, start, to, rate=rate, dry_run=dry_run, resume=resume,
                                    limit=limit, accept_loss=accept_loss, on_progress=progress)
        finally:
            if progress is not None:
                progress.stop()

    try:
        r = run(work)
    except ReplayFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        emit_json(r.as_dict())
    else:
        _print(r, dry_run)
    raise typer.Exit(0 if r.status in ("planned", "built", "switched") or dry_run else 1)


def _print(r: Replay, dry_run: bool) -> None:
    head = "plan" if dry_run else f"replay {r.id}: {r.status}"
    typer.echo(f"{head} of {r.table} from {r.topic}"
               f" ({'bounded by --to, no switch' if r.bounded else 'switch when caught up'})")
    typer.echo(f"{'P':>3} {'START':>10} {'NEXT':>10} {'END':>10} {'EVENTS':>8}")
    for p in r.partitions:
        typer.echo(f"{p.partition:>3} {p.start:>10} {p.next:>10} {p.end:>10}"
                   f" {p.remaining:>8}")
    if dry_run:
        typer.echo(f"{r.planned_events} event(s) to read; nothing was changed")
        return
    typer.echo(f"{r.events} event(s) read, {r.skipped} skipped (dead-lettered by the live"
               " consumer)")
    if r.comparison is not None:
        c = r.comparison
        held = "not readable from here" if c.authority is None else \
            f"{c.authority}, {c.authority_missing} lacking"
        typer.echo(f"permits: live {c.live}, rebuilt {c.shadow}, {c.lost} lost;"
                   f" authority {held}")
    if r.status == "switched":
        typer.echo(f"{r.table} is the rebuilt view; the old one is kept as {r.replaced}")
    elif r.status == "refused":
        typer.echo(f"refused, nothing was switched: {r.refused}. {r.shadow} is left for"
                   f" inspection; switch anyway with: hub replay {r.view} --resume {r.id}"
                   " --accept-loss")
    elif r.status == "built":
        typer.echo(f"{r.shadow} is left for inspection (a bounded replay does not switch)")
    else:
        typer.echo(f"resume with: hub replay {r.view} --resume {r.id}")


class _RichProgress:
    """A progress bar on the terminal's stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress as Bar

        self.bar = Bar(console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("replaying", total=None)
        self.bar.start()

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def stop(self) -> None:
        self.bar.stop()
