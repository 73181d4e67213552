"""Child processes of the benchmark: each prints one result line on stdout when done.

A measured consumer runs in a process of its own so that its peak RSS is that consumer's
memory and nothing else, and so that it has an interpreter and event loop to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stack import REPO_ROOT

RESULT_TAG = "BENCH-RESULT "


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: VmHWM of /proc/self/status.

    Not ru_maxrss: Linux carries the parent's peak over into a child started with
    vfork+exec (as subprocess does), so a child's ru_maxrss is at least the parent's RSS.
    VmHWM belongs to the process's own address space, created by exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(result: dict[str, Any]) -> None:
    """Hand the result to the parent: one tagged JSON line on stdout."""
    sys.stdout.write(RESULT_TAG + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


class ChildFailed(RuntimeError):
    """A child process exited without a result."""


@dataclass
class Child:
    """A running child process of the benchmark."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    async def result(self, wait_s: float | None = None) -> dict[str, Any]:
        """Wait for the child to exit and return its result line."""
        try:
            stdout, _ = await asyncio.wait_for(self.process.communicate(), wait_s)
        except TimeoutError:
            self.kill()
            await self.process.wait()
            raise ChildFailed(
                f"{self.name} did not finish in {wait_s} s.\n{self.log_tail()}"
            ) from None
        for line in stdout.decode(errors="replace").splitlines():
            if line.startswith(RESULT_TAG):
                result: dict[str, Any] = json.loads(line[len(RESULT_TAG):])
                return result
        raise ChildFailed(
            f"{self.name} exited with code {self.process.returncode} and no result.\n"
            f"{self.log_tail()}"
        )

    async def stop(self, wait_s: float = 30) -> dict[str, Any]:
        """Ask the child to finish (SIGTERM) and return its result."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        return await self.result(wait_s)

    def kill(self) -> None:
        """SIGKILL this child (only this pid), if it still runs."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the child's stderr log."""
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return f"--- {self.log_path} ---\n" + "\n".join(tail)


async def spawn(
    name: str, module: str, args: list[str], env: dict[str, str], log_dir: Path
) -> Child:
    """Start `python -m module args…` with `env`; its stderr goes to a log file."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=REPO_ROOT,
        )
    return Child(name, process, log_path)


def install_stop_signal(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT (the parent stops long-running children this way)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
