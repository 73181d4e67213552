"""The local stack: a KRaft Kafka node and an embedded Postgres server run as plain processes."""

from hub.stack.kafka import KafkaNode, KafkaNodeError
from hub.stack.local import STACK_ERRORS, LocalStack
from hub.stack.ports import PortInUse
from hub.stack.postgres import (
    EmbeddedPostgres,
    PostgresServerError,
    ensure_databases,
    ensure_databases_sync,
)

__all__ = [
    "STACK_ERRORS",
    "EmbeddedPostgres",
    "KafkaNode",
    "KafkaNodeError",
    "LocalStack",
    "PortInUse",
    "PostgresServerError",
    "ensure_databases",
    "ensure_databases_sync",
]
