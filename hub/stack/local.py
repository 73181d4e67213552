"""The local stack: one Kafka node and one Postgres server under the hub's home directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub.kafka import client_options
from hub.kafka_credentials import ADMIN, CredentialsMissing, ensure_password
from hub.settings import SUPERUSER, Settings
from hub.stack.cluster import KafkaCluster, NodePorts
from hub.stack.kafka import KafkaNode, KafkaNodeError, NodeSecurity
from hub.stack.ports import PortInUse
from hub.stack.postgres import EmbeddedPostgres, PostgresServerError, ensure_databases_sync

__all__ = ["STACK_ERRORS", "LocalStack", "kafka_cluster", "kafka_node", "redact_url"]

# What `up`/`down` raise for problems a user can act on (ports, missing jars, logs).
STACK_ERRORS: tuple[type[Exception], ...] = (
    KafkaNodeError, PostgresServerError, PortInUse, CredentialsMissing)


def kafka_node(settings: Settings, data_dir: Path) -> KafkaNode:
    """The local Kafka node these settings describe: its ports, and SASL_SSL with the
    stack's own CA and the admin's credential unless the settings ask for PLAINTEXT."""
    return KafkaNode(
        libs_dir=settings.kafka_libs,
        data_dir=data_dir,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        client_options=lambda: client_options(settings, ADMIN),
        security=_node_security(settings),
    )


def kafka_cluster(
    settings: Settings, data_dir: Path, ports: list[NodePorts] | None = None
) -> KafkaCluster:
    """The local Kafka cluster these settings describe: `kafka_brokers` nodes on their
    ports (`Settings.kafka_node_ports`) unless `ports` are given, with the same security
    as one node."""
    if ports is None:
        ports = [NodePorts(*settings.kafka_node_ports(n))
                 for n in range(1, settings.kafka_brokers + 1)]
    return KafkaCluster(settings.kafka_libs, data_dir, ports,
                        client_options=lambda: client_options(settings, ADMIN),
                        security=_node_security(settings))


def _node_security(settings: Settings) -> NodeSecurity | None:
    """SASL_SSL with the stack's own CA and the admin's credential, unless the settings ask
    for PLAINTEXT (None)."""
    if settings.kafka_security_protocol != "sasl_ssl":
        return None
    return NodeSecurity(
        tls_dir=settings.kafka_tls_dir.resolve(),
        admin=ADMIN,
        admin_password=lambda: ensure_password(settings, ADMIN)[0],
    )


class LocalStack:
    """The Kafka node (or cluster, `kafka_brokers` > 1) and Postgres server a Settings
    describes, started and stopped together.

    Their state lives under settings.home; the Kafka jars are read from settings.kafka_libs,
    so a new home needs no new `make setup`. A part whose setting points elsewhere
    (kafka_bootstrap, database_url) is not managed here; on an external Postgres only the
    agency databases are created.
    """

    def __init__(self, settings: Settings, databases: Sequence[str] = ()) -> None:
        self.settings = settings
        self.databases = list(databases)
        """The agency databases to create on the shared server (`hub init` creates them
        too, so a stack started without names still serves every agency)."""
        # Absolute, because the paths end up in server.properties and pid files that other
        # processes (and the JVM, whose working directory differs) read.
        self.home = settings.home.resolve()
        self.stack_dir = self.home / "stack"
        self.libs_dir = settings.kafka_libs.resolve()
        self.kafka: KafkaNode | KafkaCluster | None = None
        self.postgres: EmbeddedPostgres | None = None
        if settings.kafka_bootstrap is None and settings.kafka_brokers == 1:
            self.kafka = kafka_node(settings, self.stack_dir / "kafka")
        elif settings.kafka_bootstrap is None:
            # A directory of its own: a node formatted standalone cannot join a quorum.
            self.kafka = kafka_cluster(settings, self.stack_dir / "kafka-cluster")
        if settings.database_url is None:
            self.postgres = EmbeddedPostgres(
                self.stack_dir / "postgres", settings.postgres_port,
                password_file=settings.secret_file(SUPERUSER),
            )

    def database_names(self) -> list[str]:
        """The agency databases this stack provides."""
        return list(self.databases)

    def up(self) -> None:
        """Start what is not running yet, wait until both answer, create the databases."""
        self._check_before_start()
        if self.kafka is not None:
            # The JVM boots in the background while Postgres starts.
            self.kafka.start()
        if self.postgres is not None:
            self.postgres.start()
            self.postgres.wait_ready()
        self._ensure_databases()
        if self.kafka is not None:
            self.kafka.wait_ready()

    def _check_before_start(self) -> None:
        # Every port, and the Postgres data dir's authentication, is checked before anything
        # starts, so a refused Postgres does not leave a freshly started Kafka behind; a part
        # already running here re-attaches.
        if self.kafka is not None and not self.kafka.is_running():
            self.kafka.check_ports()
        if self.postgres is not None:
            self.postgres.check_auth()
            if not self.postgres.is_running():
                self.postgres.check_port()

    def _ensure_databases(self) -> None:
        url = self.settings.server_url()
        try:
            ensure_databases_sync(url, self.database_names())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise PostgresServerError(
                f"Could not create the agency databases on {redact_url(url)}: {error}"
            ) from error

    def down(self) -> None:
        """Stop the Kafka node, then the Postgres server (only the parts managed here)."""
        # Kafka first: the hub's consumers commit to it and would otherwise log errors.
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def status(self) -> dict[str, Any]:
        """Whether each part runs, with pid and address, as a JSON-ready dict."""
        return {
            "home": str(self.home),
            "kafka": self._kafka_status(),
            "postgres": self._postgres_status(),
        }

    def _kafka_status(self) -> dict[str, Any]:
        security = {
            "security_protocol": self.settings.kafka_security_protocol,
            "ca_file": str(self.settings.kafka_ca()),
            "credentials": str(self.settings.kafka_password_file(ADMIN).parent),
        }
        if self.kafka is None:
            return {"managed": False, "running": None, "bootstrap": self.settings.bootstrap,
                    **security}
        if isinstance(self.kafka, KafkaNode):
            return {**security, "managed": True, "bootstrap": self.kafka.bootstrap,
                    "data_dir": str(self.kafka.data_dir), **_node_status(self.kafka)}
        return {
            **security,
            "managed": True,
            "running": self.kafka.is_running(),
            # For the one-line status: every node's, in node order.
            "pid": " ".join(str(pid or "-") for pid in self.kafka.pids),
            "bootstrap": self.kafka.bootstrap,
            "data_dir": str(self.kafka.data_dir),
            "nodes": [_node_status(node) for node in self.kafka.nodes],
        }

    def _postgres_status(self) -> dict[str, Any]:
        databases = self.database_names()
        if self.postgres is None:
            url = redact_url(self.settings.server_url())
            return {"managed": False, "running": None, "url": url, "databases": databases}
        return {
            "managed": True,
            "running": self.postgres.is_running(),
            "pid": self.postgres.pid,
            "port": self.postgres.port,
            "url": self.postgres.url,
            "databases": databases,
            "data_dir": str(self.postgres.data_dir),
            "log": str(self.postgres.log_file),
        }


def _node_status(node: KafkaNode) -> dict[str, Any]:
    status = {
        "running": node.is_running(),
        "pid": node.pid,
        "port": node.port,
        "controller_port": node.controller_port,
        "log": str(node.server_log),
    }
    if node.member is None:
        return status
    return {"node_id": node.node_id, **status, "replication_port": node.member.replication_port}


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***`, for messages and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
