"""What the benchmark ran on: CPU, cores, memory, disk, and the versions that matter."""

from __future__ import annotations

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
