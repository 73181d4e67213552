"""Live end-to-end latency: from the authority's commit to the commit in all three views.

Set-up (not measured): the work-permit outbox relay and the three agency consumers run as
child processes (`python -m bench.component ...`), as they would in production, and the
authority creates the permits the measured commands will act on; then every view catches
up.

Measured window: rate x seconds commands on a fixed schedule (command i starts at
t0 + i/rate whether or not earlier ones have returned: an open loop, so a slow system
cannot slow the load down), cycling apply -> issue -> change -> extend. Every command is
one authority transaction that writes exactly one event, and every measured command acts
on a permit that no other measured command touches: apply creates a new permit
(sequence 1); issue acts on a permit pre-created at the letter stage (sequence 2); change
and extend act on pre-created active permits (sequence 3). Each measured event is
therefore the last one of its permit, and each view row of that permit ends the run
holding exactly that event. The sequence is checked: a row at another sequence is
reported, not counted.

Nothing is polled during the window. After the views have caught up, one query per
database reads, for every measured permit:

- in the authority's database, `pg_xact_commit_timestamp(xmin)` of the permit row: when
  the command's transaction committed;
- in each view, `pg_xact_commit_timestamp(xmin)` of the view row (when the consumer's
  batch transaction committed) and `applied_at` (clock_timestamp() in the merge
  statement, a little before that commit).

track_commit_timestamp is on in the bench server for this (see bench/stack.py). Both
ends are the same server's clock, so `latency = max over the views of the view commit -
the authority commit`. The brief's client-side measure is reported beside it:
latest `applied_at` - time.time() right after the authority's command returned.

The permit lifecycle is published per audience: the relay sends each event once per
agency, to that agency's own topic (`topics.audience_topic`, cut down to what it reads),
all copies in the same signed batch, and each view follows its own topic. The Kafka
CreateTime of each copy (set by the relay's producer when it sent the record) splits the
latency into the relay's part (commit → the last of the event's copies sent) and the
consumers' part (that → the last view's commit); the spread of the copies' CreateTimes
(last - first) is reported beside it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.child import Child, spawn
from bench.cpu import CpuMonitor
from bench.stack import BenchStack
from hub import bootstrap
from hub.db import stored_offsets
from hub.kafka import client_options, end_offsets
from hub.kafka_credentials import OPS
from hub.ops.lag import caught_up
from hub.registry import installed
from producers.work_permit import Authority
from schemas import topics
from schemas.permits import Category, Employer, Holder, PermitRecord

AGENCIES = tuple(a.name for a in installed().consumers())
KINDS = ("apply", "issue", "change", "extend")
TODAY = date(2026, 1, 5)
ISSUE_DAY = TODAY + timedelta(days=20)
COUNTRIES = ("DE", "JP", "ES", "CA", "US", "GB", "FR", "KR", "NG", "BR", "IN", "AU")


@dataclass
class Command:
    """One measured authority command and its clock readings."""

    kind: str
    permit: PermitRecord | None  # the pre-created permit it acts on (None for apply)
    target: float = 0.0  # scheduled start, perf_counter
    launched: float = 0.0  # actual start, perf_counter
    returned: float = 0.0  # when the command returned, perf_counter
    before: float = 0.0  # time.time() just before the command
    after: float = 0.0  # time.time() right after it returned (committed)
    permit_no: str = ""
    error: str | None = None


class _Faker:
    """Valid holders and employers for new permits (passports valid far beyond the runs)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def holder(self) -> Holder:
        rng = self.rng
        return Holder(
            name=f"Bench Holder {rng.randrange(10**9)}",
            sex=rng.choice(("F", "M")),
            date_of_birth=date(1970, 1, 1) + timedelta(days=rng.randrange(12000)),
            nationality=rng.choice(COUNTRIES),
            passport_no=f"B{rng.randrange(10**8):08d}",
            passport_expiry=date(2036, 1, 1) + timedelta(days=rng.randrange(1000)),
        )

    def employer(self) -> Employer:
        rng = self.rng
        return Employer(
            name=f"Bench Employer {rng.randrange(5000)} Co., Ltd.",
            credit_code=f"9111{rng.randrange(10**13):013d}X",
            province="Beijing",
            city="Beijing",
        )


def _apply(auth: Authority, faker: _Faker) -> Callable[[], Awaitable[PermitRecord]]:
    holder, employer = faker.holder(), faker.employer()
    return lambda: auth.apply(
        holder=holder, employer=employer, category=Category.B, position="Engineer",
        approved_months=12, today=TODAY,
    )


def _issue(auth: Authority, permit: PermitRecord) -> Callable[[], Awaitable[PermitRecord]]:
    return lambda: auth.issue(permit.permit_no, valid_from=ISSUE_DAY, today=ISSUE_DAY)


def _change(auth: Authority, permit: PermitRecord, n: int) -> Callable[[], Awaitable[PermitRecord]]:
    return lambda: auth.change(permit.permit_no, position=f"Bench Position {n}")


def _extend(auth: Authority, permit: PermitRecord) -> Callable[[], Awaitable[PermitRecord]]:
    assert permit.valid_until is not None
    until = permit.valid_until
    return lambda: auth.extend(permit.permit_no, new_valid_until=until + timedelta(days=365),
                               today=until - timedelta(days=60))


async def _bounded(
    calls: list[Callable[[], Awaitable[PermitRecord]]], limit: int
) -> list[PermitRecord]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[PermitRecord]]) -> PermitRecord:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max (nearest rank) and mean of `values`, rounded to 0.1."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
        return ordered[index]

    return {
        "p50": round(rank(0.50), 1),
        "p95": round(rank(0.95), 1),
        "p99": round(rank(0.99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
    }


class LivePhase:
    """The live-latency phase against a running bench stack."""

    def __init__(self, stack: BenchStack, *, rate: float, seconds: float, pool_size: int,
                 log_dir: Path, say: Callable[[str], None]) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.rate = rate
        self.seconds = seconds
        self.pool_size = pool_size
        self.log_dir = log_dir
        self.say = say
        self.children: dict[str, Child] = {}
        self.topic = self.settings.topic(topics.PERMIT_EVENTS)
        """What the authority's outbox writes to: no Kafka topic, the relay fans it out."""
        self.audience_topics = {
            a: self.settings.topic(installed().get(a).read_topic(topics.PERMIT_EVENTS))
            for a in AGENCIES}
        """Per agency, the permit audience topic its view follows."""
        self._faker = _Faker(seed=11)
        self._auth: Authority  # set in run(), on the authority's pool

    async def run(self) -> dict[str, Any]:
        """Start the components, pre-create, drive the window, measure, stop."""
        try:
            await self._start_components()
            async with bootstrap.pool(self.settings, "workpermit", max_size=self.pool_size) as p:
                self._auth = Authority(p, topic=self.topic)
                commands = await self._prepare(self._auth)
                start_offsets = await end_offsets(
                    self.settings, list(self.audience_topics.values()), OPS)
                monitor = CpuMonitor(self._cpu_roots(), alone=("bench driver",))
                async with monitor:
                    await self._drive(commands)
                await self._auth.waker.flush()
                drained_s = await self._wait_caught_up(wait_s=900)
            results = await self._measure(commands, start_offsets)
            results["cpu"] = cpu = monitor.result()
            # CPU the whole pipeline spent per command: what bounds the rate on 2 cores.
            completed = max(results["completed"], 1)
            results["cpu_ms_per_command"] = {
                name: round(seconds / completed * 1000, 2)
                for name, seconds in cpu["cpu_s"].items()
            }
            results["cpu_ms_per_command"]["total"] = round(
                sum(cpu["cpu_s"].values()) / completed * 1000, 2)
            results["drain_after_window_s"] = round(drained_s, 2)
        finally:
            components = await self._stop_components()
        results["components"] = components
        return results

    # components ------------------------------------------------------------------------

    async def _start_components(self) -> None:
        env = self.stack.child_env()
        for name in ("relay", *AGENCIES):
            self.children[name] = await spawn(f"live-{name}", "bench.component", [name], env,
                                              self.log_dir)

    async def _stop_components(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, child in self.children.items():
            try:
                out[name] = await child.stop(wait_s=30)
            except Exception as exc:
                child.kill()
                out[name] = {"error": str(exc)[:500]}
        self.children.clear()
        return out

    def _cpu_roots(self) -> dict[str, int | list[int]]:
        roots: dict[str, int | list[int]] = {
            f"{name}": child.pid for name, child in self.children.items()}
        roots["bench driver"] = os.getpid()
        return roots | self.stack.server_roots()

    async def _wait_caught_up(self, wait_s: float) -> float:
        """Wait until the outbox is empty and every view has applied its topics' end.

        Light on the system, since the last events may still be on their way: the outbox
        and the stored offsets are read with plain SQL; Kafka is asked for its log-end
        offsets once the outbox is empty (nothing else produces to the views' topics
        here), and `hub.ops.lag.caught_up` confirms at the end.
        """
        start = time.perf_counter()
        deadline = start + wait_s

        def check_deadline() -> None:
            for name, child in self.children.items():
                if child.process.returncode is not None:
                    raise RuntimeError(f"{name} exited early.\n{child.log_tail()}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"views not caught up after {wait_s} s")

        async with bootstrap.pool(self.settings, "workpermit", max_size=1) as p:
            while await p.fetchval("SELECT count(*) FROM hub_outbox"):
                check_deadline()
                await asyncio.sleep(0.2)
        declared = {a: installed().get(a) for a in AGENCIES}
        read = {a: {self.settings.topic(t) for t in d.reads} for a, d in declared.items()}
        names = sorted(set().union(*read.values()))
        ends = {(tp.topic, tp.partition): end
                for tp, end in (await end_offsets(self.settings, names, OPS)).items()}
        for agency, agency_topics in read.items():
            wanted = {k: v for k, v in ends.items() if k[0] in agency_topics and v > 0}
            group = declared[agency].group_id(self.settings)
            async with bootstrap.pool(self.settings, agency, max_size=1) as p:
                while True:
                    stored = await stored_offsets(p, group)
                    if all(stored.get(k, 0) >= v for k, v in wanted.items()):
                        break
                    check_deadline()
                    await asyncio.sleep(0.2)
            if not await caught_up(self.settings, agency):
                raise RuntimeError(f"{agency} is behind its topics after catching up")
        return time.perf_counter() - start

    # set-up ----------------------------------------------------------------------------

    async def _prepare(self, auth: Authority) -> list[Command]:
        total = int(self.rate * self.seconds)
        kinds = [KINDS[i % len(KINDS)] for i in range(total)]
        n_letter = kinds.count("issue")
        n_active = kinds.count("change") + kinds.count("extend")
        faker = self._faker
        self.say(f"  pre-creating {n_letter} letter-stage and {n_active} active permits "
                 f"({n_letter + 2 * n_active} authority commands, not measured)")
        started = time.perf_counter()
        limit = self.pool_size
        letters = await _bounded([_apply(auth, faker) for _ in range(n_letter + n_active)], limit)
        active = await _bounded([_issue(auth, p) for p in letters[n_letter:]], limit)
        waited = await self._wait_caught_up(wait_s=600)
        prep_s = time.perf_counter() - started
        self.say(f"  pre-created in {prep_s:.1f} s (views caught up {waited:.1f} s after)")
        letter_iter, active_iter = iter(letters[:n_letter]), iter(active)
        commands = []
        for kind in kinds:
            if kind == "apply":
                commands.append(Command(kind, None))
            elif kind == "issue":
                commands.append(Command(kind, next(letter_iter)))
            else:
                commands.append(Command(kind, next(active_iter)))
        return commands

    # the window ------------------------------------------------------------------------

    async def _drive(self, commands: list[Command]) -> None:
        auth_calls = [self._call(c, i) for i, c in enumerate(commands)]
        self.say(f"  driving {len(commands)} commands at {self.rate:g}/s for {self.seconds:g} s")
        tasks: list[asyncio.Task[None]] = []
        t0 = time.perf_counter() + 0.2
        interval = 1.0 / self.rate
        for i, (command, call) in enumerate(zip(commands, auth_calls, strict=True)):
            command.target = t0 + i * interval
            delay = command.target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._timed(command, call)))
        await asyncio.gather(*tasks)

    def _call(self, command: Command, n: int) -> Callable[[], Awaitable[PermitRecord]]:
        auth = self._auth
        if command.kind == "apply":
            return _apply(auth, self._faker)
        assert command.permit is not None
        if command.kind == "issue":
            return _issue(auth, command.permit)
        if command.kind == "change":
            return _change(auth, command.permit, n)
        return _extend(auth, command.permit)

    @staticmethod
    async def _timed(command: Command, call: Callable[[], Awaitable[PermitRecord]]) -> None:
        command.launched = time.perf_counter()
        command.before = time.time()
        try:
            record = await call()
        except Exception as exc:
            command.error = f"{type(exc).__name__}: {exc}"[:300]
            return
        command.after = time.time()
        command.returned = time.perf_counter()
        command.permit_no = record.permit_no

    # measurement -----------------------------------------------------------------------

    async def _measure(
        self, commands: list[Command], start_offsets: dict[TopicPartition, int]
    ) -> dict[str, Any]:
        done = [c for c in commands if c.error is None]
        numbers = [c.permit_no for c in done]
        # The authority's side: the sequence each measured permit ended at, and the commit
        # time of the transaction that wrote that (its only measured) version.
        async with bootstrap.pool(self.settings, "workpermit", max_size=1) as p:
            rows = await p.fetch(
                "SELECT permit_no, sequence,"
                " extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed"
                " FROM permits WHERE permit_no = ANY($1::text[])",
                numbers,
            )
        expected = {r["permit_no"]: r["sequence"] for r in rows}
        authority_commit = {r["permit_no"]: r["committed"] for r in rows}
        # Each view's side: applied_at (clock_timestamp() in the merge) and the commit time
        # of the view transaction that wrote the row, if the row is at that sequence.
        views: dict[str, dict[str, tuple[float, float]]] = {}
        mismatched: dict[str, int] = {}
        for agency in AGENCIES:
            table = installed().view(agency).table.name
            async with bootstrap.pool(self.settings, agency, max_size=1) as p:
                rows = await p.fetch(
                    "SELECT permit_no, sequence,"
                    " extract(epoch FROM applied_at)::float8 AS applied,"
                    " extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed"
                    f" FROM {table} WHERE permit_no = ANY($1::text[])",
                    numbers,
                )
            views[agency] = {}
            mismatched[agency] = 0
            for r in rows:
                if r["sequence"] == expected.get(r["permit_no"]):
                    views[agency][r["permit_no"]] = (r["applied"], r["committed"])
                else:
                    mismatched[agency] += 1
        kafka_ts = await self._kafka_timestamps(start_offsets)

        commit_to_commit: list[float] = []
        per_view: dict[str, list[float]] = {a: [] for a in AGENCIES}
        client_to_applied: list[float] = []
        to_kafka: list[float] = []
        kafka_to_view: list[float] = []
        copies_spread: list[float] = []
        missing = no_commit_ts = 0
        for c in done:
            seen = [views[a].get(c.permit_no) for a in AGENCIES]
            if any(v is None for v in seen):
                missing += 1
                continue
            got = [v for v in seen if v is not None]
            # The brief's client-side measure: time.time() after the command returned, to
            # the latest applied_at of the three views.
            client_to_applied.append((max(v[0] for v in got) - c.after) * 1000)
            start = authority_commit.get(c.permit_no)
            if start is None or any(v[1] is None for v in got):
                no_commit_ts += 1
                continue
            last = max(v[1] for v in got)
            commit_to_commit.append((last - start) * 1000)
            for agency, v in zip(AGENCIES, got, strict=True):
                per_view[agency].append((v[1] - start) * 1000)
            # The event's copies, one per audience topic: the relay's part ends when it had
            # sent the last of them.
            copies = kafka_ts.get((c.permit_no, expected[c.permit_no]), {})
            if len(copies) == len(self.audience_topics):
                ts = max(copies.values())
                to_kafka.append((ts - start) * 1000)
                kafka_to_view.append((last - ts) * 1000)
                copies_spread.append((ts - min(copies.values())) * 1000)

        first_target = min(c.target for c in commands)
        last_return = max((c.returned for c in done), default=first_target)
        slips = [(c.launched - c.target) * 1000 for c in commands]
        return {
            "scheduled_rate": self.rate,
            "seconds": self.seconds,
            "commands": len(commands),
            "completed": len(done),
            "failed": len(commands) - len(done),
            "first_errors": sorted({c.error for c in commands if c.error})[:3],
            "achieved_rate": round(len(done) / (last_return - first_target), 1),
            "measured": len(commit_to_commit),
            "missing_in_a_view": missing,
            "without_commit_timestamp": no_commit_ts,
            "sequence_mismatch": mismatched,
            "authority_pool": self.pool_size,
            "batch_max_records": self.settings.batch_max_records,
            "latency_ms": percentiles(commit_to_commit),
            "latency_ms_per_view": {a: percentiles(v) for a, v in per_view.items()},
            "client_after_to_applied_at_ms": percentiles(client_to_applied),
            "commit_to_kafka_ms": percentiles(to_kafka),
            "kafka_to_last_view_ms": percentiles(kafka_to_view),
            "relay_copies_spread_ms": percentiles(copies_spread),
            "command_ms": percentiles([(c.after - c.before) * 1000 for c in done]),
            "schedule_slip_ms": percentiles(slips),
        }

    async def _kafka_timestamps(
        self, start: dict[TopicPartition, int]
    ) -> dict[tuple[str, int], dict[str, float]]:
        """(permit, sequence) → per audience topic, its copy's CreateTime (set by the
        relay's producer), s."""
        reader = AIOKafkaConsumer(**client_options(self.settings, OPS),
                                  enable_auto_commit=False)
        await reader.start()
        out: dict[tuple[str, int], dict[str, float]] = {}
        try:
            tps = list(start)
            reader.assign(tps)
            for tp, offset in start.items():
                reader.seek(tp, offset)
            ends = await reader.end_offsets(tps)
            pending = {tp for tp in tps if start[tp] < ends[tp]}
            while pending:
                for tp, records in (await reader.getmany(timeout_ms=500)).items():
                    for r in records:
                        seq = json.loads(r.value)["sequence"]
                        copies = out.setdefault((r.key.decode(), seq), {})
                        copies[tp.topic] = r.timestamp / 1000
                    if records and records[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
        finally:
            await reader.stop()
        return out


async def run_live(stack: BenchStack, *, rate: float, seconds: float, pool_size: int,
                   log_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the live phase; see the module docstring."""
    phase = LivePhase(stack, rate=rate, seconds=seconds, pool_size=pool_size, log_dir=log_dir,
                      say=say)
    return await phase.run()

