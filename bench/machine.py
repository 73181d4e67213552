"""What the benchmark ran on: CPU, cores, memory, disk, and the versions that matter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from hub.stack.postgres import POSTGRES_BIN_PATH


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kafka_version(libs_dir: Path) -> str:
    """The Kafka version, from the name of the broker jar (kafka_2.13-X.Y.Z.jar)."""
    for jar in sorted(libs_dir.glob("kafka_*.jar")):
        match = re.fullmatch(r"kafka_[\d.]+-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    return "unknown"


def postgres_version() -> str:
    """`postgres --version` of the embedded binaries."""
    out = _output([str(POSTGRES_BIN_PATH / "postgres"), "--version"])
    return out.rsplit(" ", 1)[-1] if out else "unknown"


def java_version() -> str:
    """The first line of `java -version`."""
    out = _output(["java", "-version"])
    return out.splitlines()[0] if out else "unknown"


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def code_state(repo: Path) -> dict[str, Any]:
    """The commit measured, and how many files of the hub's code differ from it."""
    head = _output(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(repo), "status", "--porcelain", "--",
                     "hub", "consumers", "schemas", "producers"])
    return {"commit": head or "unknown",
            "uncommitted_files": len([line for line in dirty.splitlines() if line.strip()])}


def describe(libs_dir: Path, data_dir: Path) -> dict[str, Any]:
    """The machine and software versions, as a JSON-ready dict."""
    memory = psutil.virtual_memory()
    disk = next(
        (p for p in sorted(psutil.disk_partitions(all=True), key=lambda p: -len(p.mountpoint))
         if str(data_dir.resolve()).startswith(p.mountpoint)),
        None,
    )
    return {
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(memory.total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "data_dir_fs": f"{disk.fstype} on {disk.device}" if disk else "unknown",
        "python": sys.version.split()[0],
        "kafka": kafka_version(libs_dir),
        "java": java_version(),
        "postgres": postgres_version(),
        "aiokafka": _package("aiokafka"),
        "asyncpg": _package("asyncpg"),
        "pydantic": _package("pydantic"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def durable_commit_ms(server_url: str, commits: int = 200) -> dict[str, float]:
    """Median and p99 of one tiny durable commit (a WAL fsync) on the bench server, in ms."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_fsync_probe (n bigint)")
        times = []
        for n in range(commits):
            start = time.perf_counter()
            await conn.execute("INSERT INTO bench_fsync_probe VALUES ($1)", n)
            times.append((time.perf_counter() - start) * 1000)
        await conn.execute("DROP TABLE bench_fsync_probe")
        settings = {
            r["name"]: r["setting"]
            for r in await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
                ["fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
                 "shared_buffers", "max_wal_size", "checkpoint_timeout"],
            )
        }
    finally:
        await conn.close()
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 3),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 3),
        "settings": settings,  # type: ignore[dict-item]
    }


class LoadSampler:
    """The machine's load over a whole run: the 1-minute load average every `interval`
    seconds, and the machine's busy CPU from start to end (psutil, all processes)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._cpu0: Any = None
        self._wall0 = 0.0

    async def _loop(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start sampling (on the running loop)."""
        self._cpu0 = psutil.cpu_times()
        self._wall0 = time.perf_counter()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, Any]:
        """Stop sampling; the load average's min/mean/max and the machine's busy cores."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.samples.append(os.getloadavg()[0])
        wall = time.perf_counter() - self._wall0
        now = psutil.cpu_times()
        idle = (now.idle - self._cpu0.idle) + (
            getattr(now, "iowait", 0.0) - getattr(self._cpu0, "iowait", 0.0))
        busy = max(0.0, sum(now) - sum(self._cpu0) - idle)
        return summarize_load(self.samples, wall, busy)


def summarize_load(samples: list[float], wall_s: float, busy_cpu_s: float) -> dict[str, Any]:
    """The load figures of a run from its load-average samples and busy CPU seconds."""
    return {
        "loadavg_1m": {"min": round(min(samples), 2), "mean": round(sum(samples) / len(samples), 2),
                       "max": round(max(samples), 2)} if samples else {},
        "wall_s": round(wall_s, 1),
        "machine_busy_cpu_s": round(busy_cpu_s, 1),
        "machine_busy_cores": round(busy_cpu_s / wall_s, 2) if wall_s else 0.0,
    }


def others_cpu(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Other processes' CPU (outside the benchmark's) over the measured phases, from each
    phase's CpuMonitor result: CPU seconds, the phases' wall seconds, and the mean cores."""
    other = sum(p.get("other_s", 0.0) for p in phases)
    wall = sum(p.get("wall_s", 0.0) for p in phases)
    return {"other_cpu_s": round(other, 1), "measured_wall_s": round(wall, 1),
            "other_cores": round(other / wall, 2) if wall else 0.0, "phases": len(phases)}


class PhaseClock:
    """Wall seconds per phase of a run: `lap(name)` adds the time since the previous lap to
    that phase (a phase met several times, such as the fills, adds up)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Close the current span under `name`."""
        now = time.perf_counter()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self._last, 1)
        self._last = now
