"""Which failures are transient (retry, never dead-letter) and which are the message's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeVar

import asyncpg
from aiokafka import errors as kafka_errors

from hub.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)


class BadTarget(LookupError):
    """A group, agency, topic, partition or offset the operator named does not exist (exit 2)."""


class NotReady(RuntimeError):
    """Set-up the command needs is missing (a password file, a migrated schema): exit 1."""


class MessageRefused(ValueError):
    """A decoded message the runtime refuses while applying it: dead-lettered under `reason`.

    Any other non-transient error of a handler is dead-lettered as `handler_error`.
    """

    reason: ClassVar[str]


_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError: a server restarting or unreachable
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", pool closing under us
    asyncpg.InternalClientError,  # protocol state broken by a connection cut mid-operation
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed: an infrastructure fault, not the message's."""
    if isinstance(exc, asyncpg.exceptions.DataError):
        return False  # a value the message carried that the database cannot take
    if isinstance(exc, kafka_errors.KafkaError) and getattr(exc, "retriable", False):
        return True
    return isinstance(exc, _TRANSIENT)


class Backoff:
    """Exponential backoff with full jitter, capped, for retrying transient faults."""

    def __init__(self, initial: float = 0.1, cap: float = 10.0) -> None:
        self.initial = initial
        self.cap = cap
        self.attempt = 0

    def reset(self) -> None:
        """Start again from the shortest wait."""
        self.attempt = 0

    async def wait(self) -> None:
        """Sleep before the next attempt."""
        ceiling = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        await asyncio.sleep(random.uniform(ceiling / 2, ceiling))


async def retry_transient(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    on_retry: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Run `attempt` until it succeeds, retrying transient faults with backoff forever.

    Non-transient errors propagate at once: they belong to the caller to route.
    `on_retry` runs before each new attempt (e.g. to drop pooled connections).
    """
    backoff = Backoff()
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "transient fault, retrying",
                what=what,
                error_class=type(exc).__name__,
                error=str(exc)[:300],
                attempt=backoff.attempt + 1,
            )
            await backoff.wait()
            if on_retry is not None:
                await on_retry()
