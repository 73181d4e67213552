"""Child process: one long-running hub component for the live-latency phase.

    python -m bench.component relay | card | public_security | social_insurance

Runs the hub's own `running_relay` or `running_consumer` until SIGTERM, then prints its
counters, CPU time and peak RSS as the result line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import Any

from bench.child import cpu_seconds, emit, install_stop_signal, peak_rss_mb
from hub.bootstrap import running_consumer, running_relay
from hub.logging import configure_logging
from hub.settings import Settings


async def _until(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run(component: str) -> dict[str, Any]:
    """Run the component until stopped; return its counters."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    stop = asyncio.Event()
    install_stop_signal(stop)
    result: dict[str, Any] = {"component": component}
    if component == "relay":
        async with running_relay(settings, "workpermit") as relay:
            await _until(stop, relay.done)
        result["published"] = relay.published
    else:
        client_id = f"bench-live-{component}"
        async with running_consumer(settings, component, client_id=client_id) as consumer:
            await _until(stop, consumer.done)
        stats = dataclasses.asdict(consumer.stats)
        stats.pop("last_commit_monotonic", None)
        result["stats"] = stats
    result["cpu_s"] = round(cpu_seconds(), 2)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    """Entry point: `python -m bench.component NAME`."""
    emit(asyncio.run(run(sys.argv[1])))


if __name__ == "__main__":
    main()
