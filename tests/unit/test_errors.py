"""Which failures are retried (transient) and which are dead-lettered (hub/errors.py)."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import errors as kafka_errors

from hub.errors import is_transient
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
