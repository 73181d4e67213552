"""CPU seconds per process tree while a phase runs, to show where the two cores go."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import psutil


def _tree(pid: int, *, children: bool) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)] if children else [root]
    except psutil.NoSuchProcess:
        return []


def _cpu(process: psutil.Process) -> float | None:
    try:
        t = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(t.user + t.system)


class CpuMonitor:
    """Samples the CPU time of named process trees every `interval` seconds.

    The Postgres tree is the postmaster and all its backends (including the ones serving
    the measured consumers), the Kafka trees are the broker JVMs (one per node, counted
    under one name).

    A process first seen after the start counts from zero; one that exits between two
    samples loses at most one interval of CPU (the long-lived processes measured here do
    not exit mid-phase). `machine_busy_s` is the whole machine's non-idle CPU, so
    `other_s` is what processes outside the benchmark used (other engineers' work).
    """

    def __init__(self, roots: Mapping[str, int | Sequence[int]], interval: float = 0.5,
                 alone: tuple[str, ...] = ()) -> None:
        self.roots = {name: (pids,) if isinstance(pids, int) else tuple(pids)
                      for name, pids in roots.items()}
        # Roots counted without their children (the bench process: its children are the
        # measured components, counted under their own names).
        self.alone = set(alone)
        self.interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._wall0 = 0.0
        self._wall = 0.0
        self._machine0: Any = None
        self._machine_busy = 0.0

    def add(self, name: str, pid: int) -> None:
        """Also follow this process tree (counted from its start) under `name`."""
        self.roots[name] = (pid,)
        self._sample(new_from_zero=True)

    def _sample(self, *, new_from_zero: bool) -> None:
        for name, pids in self.roots.items():
            for process in (p for pid in pids
                            for p in _tree(pid, children=name not in self.alone)):
                value = _cpu(process)
                if value is None:
                    continue
                key = (name, process.pid)
                if key not in self._first:
                    self._first[key] = 0.0 if new_from_zero else value
                self._last[key] = value

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample(new_from_zero=True)

    async def __aenter__(self) -> CpuMonitor:
        self._wall0 = time.perf_counter()
        self._machine0 = psutil.cpu_times()
        self._sample(new_from_zero=False)
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample(new_from_zero=True)
        self._wall = time.perf_counter() - self._wall0
        now = psutil.cpu_times()
        idle = (now.idle - self._machine0.idle) + (
            getattr(now, "iowait", 0.0) - getattr(self._machine0, "iowait", 0.0)
        )
        total = sum(now) - sum(self._machine0)
        self._machine_busy = max(0.0, total - idle)

    def result(self) -> dict[str, Any]:
        """CPU seconds per tree, the wall time, and the machine's busy and other CPU."""
        per: dict[str, float] = {}
        for (name, _pid), first in self._first.items():
            per[name] = per.get(name, 0.0) + self._last[(name, _pid)] - first
        ours = sum(per.values())
        return {
            "wall_s": round(self._wall, 2),
            "cpu_s": {k: round(v, 2) for k, v in per.items()},
            "machine_busy_s": round(self._machine_busy, 2),
            "other_s": round(max(0.0, self._machine_busy - ours), 2),
            "cores": psutil.cpu_count(),
        }
