"""Which failures are transient (retry, never dead-letter), which are the message's, and
which are the process's configuration (stop with one line).

Narrowly: a connection fault (a server or the network away) is retried for as long as it
lasts; a fault of a healthy connection that may pass (deadlock, server out of resources) is
retried for a while, then the consumer narrows the batch down message by message; a refused
password or an unreadable secret is permanent, and stops the process naming what to fix.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeVar

import asyncpg
from aiokafka import errors as kafka_errors

from hub import metrics
from hub.logging import get_logger
from hub.redaction import NoPersonalData, describe_error

T = TypeVar("T")
log = get_logger(__name__)


class BadTarget(LookupError):
    """A group, agency, topic, partition or offset the operator named does not exist (exit 2)."""


class NotReady(NoPersonalData, RuntimeError):
    """Set-up the command needs is missing (a password file, a migrated schema): exit 1."""


class MessageRefused(NoPersonalData, ValueError):
    """A decoded message the runtime refuses while applying it: dead-lettered under `reason`.

    Any other non-transient error of a handler is dead-lettered as `handler_error`.
    """

    reason: ClassVar[str]


_CONNECTION: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe: a server restarting or unreachable
    asyncio.TimeoutError,
    socket.gaierror,  # a name server not answering, or a name not (yet) in it
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", pool closing under us
    asyncpg.InternalClientError,  # protocol state broken by a connection cut mid-operation
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
)

_NETWORK_ERRNOS = frozenset({
    errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.EHOSTUNREACH, errno.EHOSTDOWN,
    errno.ETIMEDOUT, errno.EADDRNOTAVAIL, errno.ENOBUFS,
})
"""The OSErrors of a socket that are the network's, not the process's set-up."""

_PASSING: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full, no memory
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
)
"""Faults of a healthy connection that may pass: retried, but only for a while (a message
that deadlocks or exhausts the server every time must not hold its group forever)."""


def is_connection_fault(exc: BaseException) -> bool:
    """True when the server or the network is away: nobody's message, retried for as long
    as it lasts (an outage is waited out, never dead-lettered)."""
    if isinstance(exc, kafka_errors.KafkaError) and getattr(exc, "retriable", False):
        return True
    if isinstance(exc, _CONNECTION):
        return True
    # Not every OSError: PermissionError, FileNotFoundError and the like are the process's
    # set-up and stay wrong however long one waits. asyncio reports a connection refused on
    # every address of a host as a bare OSError without errno ("Multiple exceptions: ...").
    return type(exc) is OSError and (exc.errno is None or exc.errno in _NETWORK_ERRNOS)


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed: an infrastructure fault, not the message's."""
    if isinstance(exc, asyncpg.exceptions.DataError):
        return False  # a value the message carried that the database cannot take
    return is_connection_fault(exc) or isinstance(exc, _PASSING)


class ConfigurationFault(NotReady):
    """A permanent fault of the process's set-up (a password the server refuses, a secret
    file it may not read): waiting cannot fix it, so the process stops with one line naming
    what to fix (exit 1, as `NotReady`)."""


_REFUSED_LOGIN = (kafka_errors.SaslAuthenticationFailed, kafka_errors.AuthenticationFailedError)


def configuration_fault(exc: BaseException) -> ConfigurationFault | None:
    """The configuration fault `exc` reveals, as one line without any secret; None if it
    is not one. Messages name the role, principal or file, never a password."""
    if isinstance(exc, ConfigurationFault):
        return exc
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        # Wrong password, unknown role, or a role not allowed to log in; the server's text
        # names the role only.
        return ConfigurationFault(f"Postgres refused the login: {_first_line(exc)}; check the"
                                  " role's password file (HUB_DATABASE_SECRETS_DIR) or run"
                                  " `hub init`")
    if isinstance(exc, _REFUSED_LOGIN):
        return ConfigurationFault(f"Kafka refused the login: {_first_line(exc)}; check the"
                                  " principal's password file (HUB_KAFKA_CREDENTIALS_DIR,"
                                  " HUB_KAFKA_PASSWORD_FILES) or run `hub init`")
    if isinstance(exc, PermissionError):
        return ConfigurationFault(f"this process may not read {exc.filename or 'a file it needs'}"
                                  f" ({exc.strerror or 'permission denied'}); give it read"
                                  " access (its owner, mode 0600)")
    return None


def raise_unless_transient(exc: Exception) -> None:
    """Raise what a retry loop must not swallow: a configuration fault as
    `ConfigurationFault` (one line, no trace), any other error that is not transient as is."""
    fault = configuration_fault(exc)
    if fault is not None:
        raise fault from None
    if not is_transient(exc):
        raise exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class RetriesExhausted(NoPersonalData, RuntimeError):
    """A transient fault outlasted the retry window: the caller narrows the work down (the
    consumer applies the batch message by message)."""


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
    within: float | None = None,
) -> T:
    """Run `attempt` until it succeeds, retrying transient faults with backoff.

    Non-transient errors propagate at once: they belong to the caller to route; a
    configuration fault (a refused password, an unreadable secret) propagates as
    `ConfigurationFault`, one line for the operator. With `within` (seconds), a transient
    fault still failing after that long raises `RetriesExhausted` (from it), unless it is a
    connection fault: an outage is waited out however long it lasts. `on_retry` runs before
    each new attempt (e.g. to drop pooled connections).
    """
    backoff = Backoff()
    deadline = None if within is None else time.monotonic() + within
    while True:
        try:
            return await attempt()
        except Exception as exc:
            raise_unless_transient(exc)
            if (deadline is not None and time.monotonic() > deadline
                    and not is_connection_fault(exc)):
                raise RetriesExhausted(f"{what}: still failing after {within:g}s") from exc
            metrics.RETRIES.labels(what).inc()
            log.warning(
                "transient fault, retrying",
                what=what,
                error_class=type(exc).__name__,
                error=describe_error(exc)[:300],
                attempt=backoff.attempt + 1,
            )
            await backoff.wait()
            if on_retry is not None:
                await on_retry()
