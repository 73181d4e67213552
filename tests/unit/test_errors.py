"""Which failures are retried (transient) and which are dead-lettered (hub/errors.py)."""

from __future__ import annotations

import errno

import asyncpg
import pytest
from aiokafka import errors as kafka_errors

from hub.errors import (
    ConfigurationFault,
    RetriesExhausted,
    configuration_fault,
    is_connection_fault,
    is_transient,
    retry_transient,
)
from producers.work_permit.domain import PermitRuleViolation
from schemas import DecodeError, DecodeFailure


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError("refused"),
    ConnectionResetError("reset"),
    OSError("network unreachable"),
    TimeoutError(),
    asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
    asyncpg.exceptions.CannotConnectNowError("starting up"),
    asyncpg.exceptions.AdminShutdownError("shutting down"),
    asyncpg.exceptions.TooManyConnectionsError("too many"),
    asyncpg.exceptions.DiskFullError("disk full"),
    asyncpg.exceptions.SerializationError("could not serialize"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InternalClientError("protocol state"),
    kafka_errors.KafkaConnectionError("no broker"),
    kafka_errors.KafkaTimeoutError("timed out"),
    kafka_errors.NodeNotReadyError("not ready"),
    kafka_errors.RequestTimedOutError(),
    kafka_errors.NotLeaderForPartitionError(),
], ids=lambda e: type(e).__name__)
def test_infrastructure_faults_are_transient(exc: BaseException) -> None:
    """A server restarting, unreachable, overloaded or in conflict: retry, never dead-letter."""
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.DataError("invalid input for query argument $1"),
    asyncpg.exceptions.NumericValueOutOfRangeError("out of range"),
    asyncpg.exceptions.InvalidTextRepresentationError("bad uuid"),
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.CheckViolationError("check"),
    asyncpg.exceptions.UndefinedTableError("no table"),
    kafka_errors.RecordTooLargeError(),
    kafka_errors.TopicAuthorizationFailedError(),
    PermissionError(errno.EACCES, "Permission denied", "/keys/private/card/k1.pem"),
    FileNotFoundError(errno.ENOENT, "No such file", "/secrets/card.password"),
    IsADirectoryError(errno.EISDIR, "Is a directory"),
    OSError(errno.EMFILE, "Too many open files"),
    MemoryError(),
    asyncpg.InvalidPasswordError("password authentication failed for user x"),
    kafka_errors.SaslAuthenticationFailed("Authentication failed during authentication"),
    ValueError("bad value"),
    KeyError("missing"),
    AssertionError("invariant"),
    PermitRuleViolation("not allowed"),
    DecodeError(DecodeFailure.SCHEMA, "data.name: field required"),
], ids=lambda e: type(e).__name__)
def test_the_messages_own_faults_are_not_transient(exc: BaseException) -> None:
    """A value the database refuses, a rule broken, a bug: retrying cannot help."""
    assert not is_transient(exc)


def test_a_retriable_kafka_error_not_listed_by_name_is_still_transient() -> None:
    """Kafka's own `retriable` flag decides for the broker errors not listed."""
    assert kafka_errors.LeaderNotAvailableError.retriable
    assert is_transient(kafka_errors.LeaderNotAvailableError())


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError("refused"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 99] ..."),
    asyncpg.exceptions.CannotConnectNowError("starting up"),
    kafka_errors.KafkaConnectionError("no broker"),
], ids=lambda e: f"{type(e).__name__}-{getattr(e, 'errno', None)}")
def test_connection_faults_are_waited_out(exc: BaseException) -> None:
    """A server or the network away: transient, and a connection fault (never time-boxed)."""
    assert is_connection_fault(exc)
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.DeadlockDetectedError("deadlock"),
    asyncpg.exceptions.OutOfMemoryError("out of memory"),
    asyncpg.exceptions.TooManyConnectionsError("too many"),
], ids=lambda e: type(e).__name__)
def test_faults_of_a_healthy_connection_are_transient_but_not_connection_faults(
    exc: BaseException,
) -> None:
    """A deadlock or a server out of resources may pass, but may also be the message's every
    time: retried for the window only."""
    assert is_transient(exc)
    assert not is_connection_fault(exc)


@pytest.mark.parametrize(("exc", "names"), [
    (asyncpg.InvalidPasswordError('password authentication failed for user "hub_card_app"'),
     ["Postgres", "hub_card_app", "password file"]),
    (asyncpg.InvalidAuthorizationSpecificationError('role "x" does not exist'),
     ["Postgres", "role"]),
    (kafka_errors.SaslAuthenticationFailed("Authentication failed during authentication due"
                                           " to invalid credentials with SASL mechanism"),
     ["Kafka", "password file"]),
    (PermissionError(errno.EACCES, "Permission denied", "/keys/private/card/k1.pem"),
     ["/keys/private/card/k1.pem", "read access"]),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "")
def test_a_permanent_configuration_fault_is_one_line_naming_what_to_fix(
    exc: BaseException, names: list[str]
) -> None:
    """A refused password or an unreadable secret is a ConfigurationFault: one line, naming
    the role, principal's file or file to fix."""
    fault = configuration_fault(exc)
    assert isinstance(fault, ConfigurationFault)
    assert "\n" not in str(fault)
    for name in names:
        assert name in str(fault)


def test_other_errors_are_no_configuration_fault() -> None:
    """A connection cut or a message's fault is not the process's set-up."""
    assert configuration_fault(ConnectionResetError("reset")) is None
    assert configuration_fault(ValueError("bad value")) is None


async def test_retry_raises_a_configuration_fault_at_once() -> None:
    """A refused password is not retried: the caller gets the one-line fault on the first
    attempt."""
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        raise asyncpg.InvalidPasswordError("password authentication failed for user x")

    with pytest.raises(ConfigurationFault):
        await retry_transient("connect", attempt)
    assert attempts == 1


async def test_retry_gives_up_a_passing_fault_after_its_window() -> None:
    """A deadlock every time outlasts the window: RetriesExhausted, from the last fault."""

    async def attempt() -> None:
        raise asyncpg.exceptions.DeadlockDetectedError("deadlock")

    with pytest.raises(RetriesExhausted) as raised:
        await retry_transient("apply batch", attempt, within=0.3)
    assert isinstance(raised.value.__cause__, asyncpg.exceptions.DeadlockDetectedError)


async def test_retry_waits_out_a_connection_fault_beyond_its_window() -> None:
    """An outage is nobody's message: retried past the window until the server is back."""
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionRefusedError("refused")
        return "applied"

    assert await retry_transient("apply batch", attempt, within=0.01) == "applied"
