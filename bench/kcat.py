"""kcat's consume rate of one topic: the librdkafka ceiling beside the hub's rebuild.

kcat (C, librdkafka) reads the whole topic once as a simple consumer (no group, every
partition from the beginning, `-e`: exit at the end of every partition), over TLS and
SCRAM-SHA-512 as the ops principal like every hub client, printing one byte per record
(`-f .`) so that output costs next to nothing. The values are not
decoded or checked: it is the rate of the wire and of a client in C.

`events_per_s` = records / time from the first byte kcat printed to its exit (connecting,
the TLS handshake and the SCRAM login come before and are reported as `startup_s`).

The executable: $BENCH_KCAT, else `.cache/kcat/kcat` (what `make setup` writes when the
system's librdkafka is older than 2.6.1, which cannot log in to Kafka 4 with SCRAM) beside
the repository or beside the Kafka jars, else `kcat` on the PATH if its librdkafka is new
enough.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.stack import REPO_ROOT, kafka_libs_dir
from hub.kafka_credentials import OPS, password
from hub.settings import Settings

MIN_LIBRDKAFKA = (2, 6, 1)


def librdkafka_version(kcat: str) -> tuple[int, ...]:
    """The librdkafka version `kcat -V` reports, (0,) if none."""
    try:
        out = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=False,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return (0,)
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    return tuple(int(n) for n in found.groups()) if found else (0,)


def find_kcat() -> str | None:
    """A kcat that can log in to Kafka 4 with SCRAM, or None."""
    candidates = [os.environ.get("BENCH_KCAT", ""),
                  str(REPO_ROOT / ".cache" / "kcat" / "kcat"),
                  str(kafka_libs_dir().parent / "kcat" / "kcat"),
                  shutil.which("kcat") or ""]
    for path in filter(None, candidates):
        if Path(path).is_file() and librdkafka_version(path) >= MIN_LIBRDKAFKA:
            return path
    return None


def kcat_login(settings: Settings, principal: str = OPS) -> list[str]:
    """kcat's options to reach the broker as `principal` over SASL_SSL; the password goes in
    a 0600 properties file (`-F`), never on the command line."""
    secret = settings.home / "kcat" / f"{principal}.properties"
    if not secret.exists():
        secret.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"sasl.password={password(settings, principal)}\n")
    return ["-b", settings.bootstrap, "-X", "security.protocol=SASL_SSL",
            "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"ssl.ca.location={settings.kafka_ca()}",
            "-X", f"sasl.username={principal}", "-F", str(secret)]


async def consume_rate(settings: Settings, topic: str, expected: int,
                       wait_s: float = 600) -> dict[str, Any]:
    """Consume `topic` once with kcat; its rate, or {"skipped": why} without a usable kcat."""
    kcat = find_kcat()
    if kcat is None:
        return {"skipped": "no kcat with librdkafka >= 2.6.1 (make setup installs one)"}
    command = [kcat, "-C", *kcat_login(settings), "-t", topic, "-o", "beginning", "-e",
               "-q", "-f", "."]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    first: float | None = None
    count = 0

    async def read() -> None:
        nonlocal first, count
        assert process.stdout is not None
        while chunk := await process.stdout.read(1 << 16):
            if first is None:
                first = time.perf_counter()
            count += len(chunk)

    try:
        _, stderr, _ = await asyncio.wait_for(
            asyncio.gather(read(), process.stderr.read(), process.wait()), wait_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return {"skipped": f"kcat did not finish in {wait_s} s", "records": count}
    end = time.perf_counter()
    if process.returncode != 0 or first is None:
        return {"skipped": f"kcat exited {process.returncode}: "
                           f"{stderr.decode(errors='replace')[-500:]}", "records": count}
    return {
        "kcat": kcat,
        "librdkafka": ".".join(map(str, librdkafka_version(kcat))),
        "topic": topic,
        "records": count,
        "complete": count == expected,
        "startup_s": round(first - started, 3),
        "wall_s": round(end - first, 3),
        "events_per_s": round(count / max(end - first, 1e-9), 1),
    }
