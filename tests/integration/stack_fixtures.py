"""Pytest fixtures that run one Kafka node and one Postgres server for the whole test session.

Import them into a conftest with `from tests.integration.stack_fixtures import *`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.registry import installed
from hub.roles import provision
from hub.settings import SUPERUSER, Settings
from hub.stack.kafka import KafkaNode
from hub.stack.postgres import EmbeddedPostgres

__all__ = [
    "RunningStack",
    "free_ports",
    "kafka_libs_dir",
    "kafka_node",
    "kcat",
    "running_stack",
    "stack_settings",
]

KCAT_MISSING = "kcat is not on PATH: install it with `sudo apt-get install kcat` or `make setup`."


@dataclass(frozen=True)
class RunningStack:
    """The session's Settings and the two server processes they point at."""

    settings: Settings
    kafka: KafkaNode
    postgres: EmbeddedPostgres


def kafka_libs_dir() -> Path:
    """The Kafka jars: $HUB_KAFKA_LIBS, else the repository's `.cache/kafka-libs`."""
    return Settings().kafka_libs


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    with contextlib.ExitStack() as stack:
        # All sockets stay bound until every port is picked, so the ports differ.
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _session_settings(home: Path, kafka_port: int, controller_port: int, pg_port: int) -> Settings:
    # A random tag keeps topics, groups and databases apart from any other hub on the
    # same servers (and from earlier sessions). No database_url: the server is the embedded
    # one on pg_port, whose superuser password is read from home's secrets, as for
    # `hub stack up` (commands started by tests get it as HUB_DATABASE_URL).
    tag = secrets.token_hex(4)
    return Settings(
        home=home,
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        postgres_port=pg_port,
        topic_prefix=f"t{tag}.",
        database_prefix=f"t{tag}_",
    )


def _start(stack: RunningStack) -> None:
    # The JVM boots in the background while Postgres starts.
    stack.kafka.start()
    stack.postgres.start()
    stack.postgres.wait_ready()
    # Databases and roles, as `hub init` makes them; in a thread of its own, for its loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, provision(stack.settings, installed().names())).result()
    stack.kafka.wait_ready()


def _stop(stack: RunningStack) -> None:
    try:
        stack.kafka.stop()
    finally:
        # Postgres is stopped even if Kafka's stop raised.
        stack.postgres.stop()


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A Kafka node and a non-durable Postgres on free ports, with the agency databases and
    their roles."""
    home = tmp_path_factory.mktemp("hub-home")
    kafka_port, controller_port, pg_port = free_ports(3)
    settings = _session_settings(home, kafka_port, controller_port, pg_port)
    stack = RunningStack(
        settings=settings,
        kafka=KafkaNode(kafka_libs_dir(), home / "kafka", kafka_port, controller_port),
        postgres=EmbeddedPostgres(home / "postgres", pg_port, durable=False,
                                  password_file=settings.secret_file(SUPERUSER)),
    )
    try:
        _start(stack)
        yield stack
    finally:
        _stop(stack)


@pytest.fixture(scope="session")
def kcat() -> str:
    """The kcat executable; without it the test fails under CI (`CI` set), else is skipped."""
    path = shutil.which("kcat")
    if path is None:
        # CI must run every test, so a missing tool there is a broken machine, not an extra.
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(KCAT_MISSING, pytrace=False)
        pytest.skip(KCAT_MISSING)
    return path


@pytest.fixture(scope="session")
def stack_settings(running_stack: RunningStack) -> Settings:
    """Settings that point at the session's Kafka node and Postgres server."""
    return running_stack.settings


@pytest.fixture
def kafka_node(running_stack: RunningStack) -> Iterator[KafkaNode]:
    """The session's Kafka node, restarted after the test if the test left it stopped."""
    node = running_stack.kafka
    yield node
    if not node.is_running():
        # Later tests share this broker, so one that stops or kills it must not break them.
        node.start()
        node.wait_ready(180)
