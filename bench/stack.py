"""The benchmark's own Kafka node (or cluster) and durable Postgres server, on free ports in
a temp dir.

The same approach as the integration tests' session stack (tests/integration/
stack_fixtures.py), without pytest, and with `durable=True`: fsync and synchronous commit
stay on, because the benchmark measures a real durable database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from hub.registry import installed
from hub.settings import SUPERUSER, Settings
from hub.stack.cluster import KafkaCluster, NodePorts
from hub.stack.kafka import KafkaNode
from hub.stack.local import kafka_cluster, kafka_node
from hub.stack.postgres import EmbeddedPostgres, ensure_databases_sync

REPO_ROOT = Path(__file__).resolve().parents[1]

# The local stack's and other engineers' fixed ports: never ours.
RESERVED_PORTS = frozenset({19092, 19093, 15432})


def kafka_libs_dir() -> Path:
    """The Kafka jars: $HUB_KAFKA_LIBS, else the repository's `.cache/kafka-libs`."""
    override = os.environ.get("HUB_KAFKA_LIBS")
    return Path(override) if override else REPO_ROOT / ".cache" / "kafka-libs"


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    while True:
        with contextlib.ExitStack() as stack:
            # All sockets stay bound until every port is picked, so the ports differ.
            sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            ports = [int(sock.getsockname()[1]) for sock in sockets]
        if not RESERVED_PORTS.intersection(ports):
            return ports


@dataclass
class BenchStack:
    """A Kafka node (or cluster) and a durable Postgres server owned by one benchmark run."""

    home: Path
    settings: Settings
    kafka: KafkaNode | KafkaCluster
    postgres: EmbeddedPostgres
    keep: bool = False
    _started: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, *, partitions: int, brokers: int = 1, keep: bool = False) -> BenchStack:
        """Pick free ports and a fresh temp dir; nothing is started yet. Several brokers
        are a cluster whose topics have up to three replicas, one fewer needed in sync."""
        home = Path(tempfile.mkdtemp(prefix="permithub-bench-"))
        *kafka_ports, pg_port = free_ports(3 * brokers + 1)
        nodes = [NodePorts(*kafka_ports[i:i + 3]) for i in range(0, len(kafka_ports), 3)]
        replicas = min(brokers, 3)
        settings = Settings(
            home=home,
            kafka_bootstrap=",".join(f"127.0.0.1:{n.clients}" for n in nodes),
            kafka_port=nodes[0].clients,
            kafka_controller_port=nodes[0].controller,
            replication_factor=replicas,
            min_insync_replicas=max(1, replicas - 1),
            # No database_url: the embedded server on pg_port, its superuser password read
            # from home's secrets.
            postgres_port=pg_port,
            topic_prefix="bench.",
            database_prefix="bench_",
            partitions=partitions,
            kafka_libs=kafka_libs_dir(),
        )
        return cls(
            home=home,
            settings=settings,
            kafka=(kafka_node(settings, home / "kafka") if brokers == 1
                   else kafka_cluster(settings, home / "kafka", nodes)),
            postgres=EmbeddedPostgres(home / "postgres", pg_port, durable=True,
                                      password_file=settings.secret_file(SUPERUSER)),
            keep=keep,
        )

    def start(self) -> None:
        """Start both servers and create the agency databases (tables come from init_all)."""
        # The JVM boots in the background while Postgres starts.
        self._started.append("kafka")
        self.kafka.start()
        self._started.append("postgres")
        self.postgres.start()
        self.postgres.wait_ready()
        self._track_commit_timestamps()
        names = [self.settings.database_name(agency) for agency in installed().names()]
        ensure_databases_sync(self.settings.server_url(), names)
        self.kafka.wait_ready()

    def _track_commit_timestamps(self) -> None:
        """Turn on track_commit_timestamp (needs a restart), for the live-latency phase.

        With it, pg_xact_commit_timestamp(xmin) tells when the transaction that wrote a
        row committed, in the authority's database and in each view's alike.
        """

        async def alter() -> None:
            conn = await asyncpg.connect(self.settings.server_url())
            try:
                await conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
            finally:
                await conn.close()

        asyncio.run(alter())
        self.postgres.stop()
        self.postgres.start()
        self.postgres.wait_ready()

    def server_roots(self) -> dict[str, int | list[int]]:
        """The servers' process trees for `CpuMonitor`: every Kafka node under one name."""
        roots: dict[str, int | list[int]] = {}
        pids = ([self.kafka.pid] if isinstance(self.kafka, KafkaNode)
                else self.kafka.pids)
        if any(pid is not None for pid in pids):
            roots["kafka"] = [pid for pid in pids if pid is not None]
        if self.postgres.pid is not None:
            roots["postgres"] = self.postgres.pid
        return roots

    def stop(self) -> None:
        """Stop what was started (Kafka first), then remove the temp dir unless kept."""
        try:
            if "kafka" in self._started:
                self.kafka.stop()
        finally:
            try:
                if "postgres" in self._started:
                    self.postgres.stop()
            finally:
                self._started.clear()
                if not self.keep:
                    shutil.rmtree(self.home, ignore_errors=True)

    def child_env(self, **overrides: str) -> dict[str, str]:
        """The environment of a child process: this stack's settings as HUB_* variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        s = self.settings
        env |= {
            "HUB_HOME": str(s.home),
            "HUB_KAFKA_BOOTSTRAP": s.bootstrap,
            "HUB_KAFKA_PORT": str(s.kafka_port),
            "HUB_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "HUB_DATABASE_URL": s.server_url(),
            "HUB_POSTGRES_PORT": str(s.postgres_port),
            "HUB_TOPIC_PREFIX": s.topic_prefix,
            "HUB_DATABASE_PREFIX": s.database_prefix,
            "HUB_PARTITIONS": str(s.partitions),
            "HUB_REPLICATION_FACTOR": str(s.replication_factor),
            "HUB_MIN_INSYNC_REPLICAS": str(s.min_insync_replicas),
            "HUB_BATCH_MAX_RECORDS": str(s.batch_max_records),
            "HUB_BATCH_TIMEOUT_MS": str(s.batch_timeout_ms),
            "HUB_LOG_FORMAT": "json",
            "HUB_LOG_LEVEL": os.environ.get("BENCH_CHILD_LOG_LEVEL", "WARNING"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        env |= overrides
        return env
