"""The benchmark's CPU monitor counts several process trees under one name (a cluster's
Kafka nodes)."""

from __future__ import annotations

import asyncio
import sys

from bench.cpu import CpuMonitor

BURN = ("import time\nend = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\ntime.sleep(5)")


async def test_every_pid_of_a_name_is_counted() -> None:
    """Two processes burning 0.3 s of CPU each under one name: the name has both."""
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", BURN)
             for _ in range(2)]
    try:
        async with CpuMonitor({"kafka": [p.pid for p in procs]}, interval=0.1) as monitor:
            await asyncio.sleep(2.0)
    finally:
        for p in procs:
            p.kill()
            await p.wait()
    assert monitor.result()["cpu_s"]["kafka"] >= 0.5
