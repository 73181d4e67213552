"""Pytest fixtures that run one Kafka node (or a three-node cluster, for the tests marked
`cluster`) and one Postgres server for the whole test session.

Import them into a conftest with `from tests.integration.stack_fixtures import *`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.kcat import kcat_login  # kcat's login: one place, the bench's and the tests'
from hub.kafka_credentials import password
from hub.registry import installed
from hub.roles import provision
from hub.settings import SUPERUSER, Settings
from hub.stack.cluster import KafkaCluster, NodePorts
from hub.stack.kafka import KafkaNode
from hub.stack.local import kafka_cluster as local_kafka_cluster
from hub.stack.local import kafka_node as local_kafka_node
from hub.stack.postgres import EmbeddedPostgres

__all__ = [
    "RunningStack",
    "free_ports",
    "java_client_config",
    "kafka_cluster",
    "kafka_libs_dir",
    "kafka_node",
    "kcat",
    "kcat_login",
    "running_cluster",
    "running_stack",
    "stack_settings",
]

KCAT_MISSING = "kcat is not on PATH: install it with `sudo apt-get install kcat` or `make setup`."
KCAT_TOO_OLD = ("kcat's librdkafka is older than 2.6.1 and cannot log in to Kafka 4 with SCRAM: "
                "run `make setup` (it writes .cache/kcat/kcat, see stack/kcat_runtime.py).")
KCAT_WRAPPER = Path(__file__).resolve().parents[2] / ".cache" / "kcat" / "kcat"
"""The system's kcat on a newer librdkafka, where `make setup` found the system's too old."""


@dataclass(frozen=True)
class RunningStack:
    """The session's Settings and the server processes they point at."""

    settings: Settings
    kafka: KafkaNode | KafkaCluster
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
        # Named outright, so a test that gives itself another home keeps the login.
        kafka_ca_file=home / "tls" / "ca.crt",
        kafka_credentials_dir=home / "secrets" / "kafka",
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


def _running(stack: RunningStack) -> Iterator[RunningStack]:
    try:
        _start(stack)
        yield stack
    finally:
        _stop(stack)


def _session_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.home / "postgres", settings.postgres_port, durable=False,
                            password_file=settings.secret_file(SUPERUSER))


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A Kafka node and a non-durable Postgres on free ports, with the agency databases and
    their roles."""
    home = tmp_path_factory.mktemp("hub-home")
    kafka_port, controller_port, pg_port = free_ports(3)
    settings = _session_settings(home, kafka_port, controller_port, pg_port)
    yield from _running(RunningStack(settings, local_kafka_node(settings, home / "kafka"),
                                     _session_postgres(settings)))


CLUSTER_NODES = 3


@pytest.fixture(scope="session")
def running_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Three KRaft nodes (a three-voter quorum, each node a broker) and a non-durable
    Postgres on free ports; the hub's topics get three replicas and need two in sync."""
    home = tmp_path_factory.mktemp("hub-cluster")
    *kafka_ports, pg_port = free_ports(3 * CLUSTER_NODES + 1)
    nodes = [NodePorts(*kafka_ports[i:i + 3]) for i in range(0, len(kafka_ports), 3)]
    settings = _session_settings(home, nodes[0].clients, nodes[0].controller, pg_port)
    settings = settings.model_copy(update={
        "kafka_bootstrap": ",".join(f"127.0.0.1:{n.clients}" for n in nodes),
        "replication_factor": CLUSTER_NODES,
        "min_insync_replicas": CLUSTER_NODES - 1,
    })
    cluster = local_kafka_cluster(settings, home / "kafka", nodes)
    yield from _running(RunningStack(settings, cluster, _session_postgres(settings)))


@pytest.fixture(scope="session")
def kcat() -> str:
    """The kcat executable (one whose librdkafka speaks SCRAM to Kafka 4); without it the
    test fails under CI (`CI` set), else is skipped."""
    path = str(KCAT_WRAPPER) if KCAT_WRAPPER.exists() else shutil.which("kcat")
    problem = KCAT_MISSING if path is None else None
    if path is not None and _librdkafka_version(path) < (2, 6, 1):
        problem = KCAT_TOO_OLD
    if problem is not None:
        # CI must run every test, so a missing tool there is a broken machine, not an extra.
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    assert path is not None
    return path


def _librdkafka_version(kcat: str) -> tuple[int, ...]:
    out = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=False, timeout=30)
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    return tuple(int(n) for n in found.groups()) if found else (0,)


def java_client_config(settings: Settings, principal: str) -> Path:
    """A 0600 client properties file for Kafka's own tools (`--command-config`), logging in
    as `principal` over SASL_SSL with the stack's CA as a PEM trust store."""
    path = settings.home / "java-clients" / f"{principal}.properties"
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{principal}" password="{password(settings, principal)}";')
        lines = ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512",
                 f"sasl.jaas.config={jaas}", "ssl.truststore.type=PEM",
                 f"ssl.truststore.location={settings.kafka_ca()}"]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def stack_settings(running_stack: RunningStack) -> Settings:
    """Settings that point at the session's Kafka node and Postgres server."""
    return running_stack.settings


@pytest.fixture
def kafka_node(running_stack: RunningStack) -> Iterator[KafkaNode]:
    """The session's Kafka node, restarted after the test if the test left it stopped."""
    node = running_stack.kafka
    assert isinstance(node, KafkaNode)
    yield node
    if not node.is_running():
        # Later tests share this broker, so one that stops or kills it must not break them.
        node.start()
        node.wait_ready(180)


@pytest.fixture
def kafka_cluster(running_cluster: RunningStack) -> Iterator[KafkaCluster]:
    """The cluster session's nodes; a node the test stopped or killed is started again
    after it, and the test after waits until every broker is registered."""
    cluster = running_cluster.kafka
    assert isinstance(cluster, KafkaCluster)
    yield cluster
    if not all(node.is_running() for node in cluster.nodes):
        cluster.start()
        cluster.wait_ready(180)
