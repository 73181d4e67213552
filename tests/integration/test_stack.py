"""The local stack's Kafka node and Postgres server, as started by the session fixtures."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from hub.kafka import client_options
from hub.kafka_credentials import ADMIN
from hub.registry import installed
from hub.settings import Settings
from hub.stack.kafka import KafkaNode
from hub.stack.local import LocalStack, kafka_node
from hub.stack.postgres import EmbeddedPostgres
from tests.integration.stack_fixtures import RunningStack, free_ports

pytestmark = pytest.mark.integration

CONSUME_TIMEOUT_S = 20
# What each of the three local-stack ports is for, in `free_ports(3)` order.
_PART = ("Kafka broker", "Kafka controller", "Postgres server")


async def _create_topic(settings: Settings, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings, ADMIN))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**client_options(settings, ADMIN), acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume(settings: Settings, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, **client_options(settings, ADMIN), auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        async with asyncio.timeout(CONSUME_TIMEOUT_S):
            while len(received) < count:
                batches = await consumer.getmany(timeout_ms=500)
                received += [record.value for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return received


def _unique_topic(settings: Settings, name: str) -> str:
    return settings.topic(f"{name}-{secrets.token_hex(3)}")


async def test_broker_creates_writes_and_reads_a_topic(stack_settings: Settings) -> None:
    """A topic created on the broker takes messages and gives them back in order."""
    topic = _unique_topic(stack_settings, "stack-roundtrip")
    values = [f"message {n}".encode() for n in range(5)]

    await _create_topic(stack_settings, topic)
    await _produce(stack_settings, topic, values)

    assert await _consume(stack_settings, topic, len(values)) == values


async def test_broker_does_not_auto_create_topics(stack_settings: Settings) -> None:
    """Writing to a topic nobody created fails, and the topic still does not exist."""
    topic = _unique_topic(stack_settings, "nobody")
    producer = AIOKafkaProducer(**client_options(stack_settings, ADMIN), request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()

    admin = AIOKafkaAdminClient(**client_options(stack_settings, ADMIN))
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_postgres_has_every_agency_database(stack_settings: Settings) -> None:
    """Postgres answers, and each agency's own database exists and accepts its runtime
    role."""
    for agency in installed().names():
        connection = await asyncpg.connect(stack_settings.dsn(agency))
        try:
            name = await connection.fetchval("SELECT current_database()")
        finally:
            await connection.close()
        assert name == stack_settings.database_name(agency)


def test_nodes_reattach_from_another_handle(running_stack: RunningStack) -> None:
    """New handles on the same data directories see the running servers and their pids."""
    kafka = running_stack.kafka
    postgres = running_stack.postgres
    kafka_again = kafka_node(running_stack.settings, kafka.data_dir)
    postgres_again = EmbeddedPostgres(
        postgres.data_dir, postgres.port, password_file=postgres.password_file)

    assert kafka_again.is_running()
    assert kafka_again.pid == kafka.pid is not None
    assert postgres_again.is_running()
    assert postgres_again.pid == postgres.pid is not None


async def test_kafka_keeps_messages_across_a_clean_restart(
    kafka_node: KafkaNode, stack_settings: Settings
) -> None:
    """A node stopped cleanly and started on the same data still holds a topic's messages."""
    topic = _unique_topic(stack_settings, "stack-restart")
    values = [f"kept {n}".encode() for n in range(10)]
    await _create_topic(stack_settings, topic, partitions=3)
    await _produce(stack_settings, topic, values)
    old_pid = kafka_node.pid

    # An orderly shutdown on a loaded 2-core machine can take longer than stop()'s default
    # grace before SIGKILL, which would leave no marker.
    await asyncio.to_thread(kafka_node.stop, 120)
    assert not kafka_node.is_running()
    # Kafka writes this marker only at the end of an orderly shutdown.
    assert (kafka_node.log_dir / ".kafka_cleanshutdown").exists()
    await asyncio.to_thread(kafka_node.start)
    # A restart on a loaded 2-core machine can take longer than a cold start.
    await asyncio.to_thread(kafka_node.wait_ready, 180)

    assert kafka_node.pid not in (None, old_pid)
    assert sorted(await _consume(stack_settings, topic, len(values))) == sorted(values)


def test_stack_up_on_its_own_running_servers_reattaches(running_stack: RunningStack) -> None:
    """`up` over servers this home already runs finds them by pid file: their ports being
    taken (by themselves) is no error, and nothing is restarted."""
    kafka = running_stack.kafka
    postgres = running_stack.postgres
    managed = running_stack.settings.model_copy(
        update={"kafka_bootstrap": None, "database_url": None}
    )
    stack = LocalStack(managed)
    # The session's servers live in the fixture's directories, not under home/stack.
    stack.kafka = kafka_node(managed, kafka.data_dir)
    stack.postgres = EmbeddedPostgres(
        postgres.data_dir, postgres.port, password_file=postgres.password_file)
    pids = (kafka.pid, postgres.pid)

    stack.up()

    assert (stack.kafka.pid, stack.postgres.pid) == pids
    assert None not in pids


@pytest.mark.parametrize(
    ("taken", "setting"),
    [(0, "HUB_KAFKA_PORT"), (1, "HUB_KAFKA_CONTROLLER_PORT"), (2, "HUB_POSTGRES_PORT")],
)
def test_stack_up_on_a_taken_port_names_the_setting(
    tmp_path: Path, taken: int, setting: str
) -> None:
    """`hub stack up` with one port held by another program exits 2 with one line naming
    the setting to change, no traceback, and starts nothing."""
    ports = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_HOME": str(tmp_path),
        "HUB_KAFKA_PORT": str(ports[0]),
        "HUB_KAFKA_CONTROLLER_PORT": str(ports[1]),
        "HUB_POSTGRES_PORT": str(ports[2]),
    }
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", ports[taken]))
        other_program.listen()
        done = subprocess.run(
            [sys.executable, "-m", "hub", "stack", "up"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Port {ports[taken]} for the {_PART[taken]} is already in use by another program; "
        f"set {setting} to a free port."
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "stack" / "kafka" / "kafka.pid").exists()
    assert not (tmp_path / "stack" / "postgres").exists()
