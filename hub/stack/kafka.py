"""A KRaft Kafka node (broker and controller in one JVM) run from the official jars: alone,
or as one member of a local multi-node cluster (`hub.stack.cluster`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hub.stack.ports import ensure_port_free
from hub.stack.tls import NodeTls, ensure_node_tls, node_principal

__all__ = ["ClusterMember", "KafkaNode", "KafkaNodeError", "NodeSecurity", "Quorum", "Voter",
           "new_cluster_id"]

# The official start script's 1G. A test session's broker keeps every test's topics (each
# test has a prefix of its own: some 25 topics of 6 partitions) and ran out of a 512m heap
# after ~120 such tests. A fixed -Xms avoids heap resizing pauses during benchmarks.
JVM_OPTS: tuple[str, ...] = (
    "-Xmx1g",
    "-Xms1g",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
# The storage tool is a short-lived command; a small heap starts faster.
TOOL_JVM_OPTS: tuple[str, ...] = ("-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")

# Loggers that print one line per partition, segment, thread or metadata change at INFO,
# and the full config dumps (AbstractConfig); WARN still shows unknown-config warnings.
NOISY_LOGGERS: tuple[str, ...] = (
    "kafka.controller",
    "kafka.coordinator",
    "kafka.log",
    "kafka.request.logger",
    "kafka.server.metadata",
    "kafka.cluster",
    "state.change.logger",
    "org.apache.kafka.controller",
    "org.apache.kafka.coordinator",
    "org.apache.kafka.image",
    "org.apache.kafka.metadata",
    "org.apache.kafka.raft",
    "org.apache.kafka.snapshot",
    "org.apache.kafka.storage",
    "org.apache.kafka.server",
    "org.apache.kafka.clients",
    "org.apache.kafka.common.utils.AppInfoParser",
    "kafka.server.ReplicaFetcherManager",
    "kafka.server.ReplicaAlterLogDirsManager",
    "kafka.server.ReplicaManager",
    # Inner classes: log4j's hierarchy splits on dots only, so `$` names are given whole.
    "kafka.server.ClientQuotaManager$ThrottledChannelReaper",
    "kafka.server.ReplicaManager$LogDirFailureHandler",
    "kafka.server.NodeToControllerRequestThread",
    "kafka.server.NodeToControllerChannelManagerImpl",
    "kafka.network",
    "org.apache.kafka.queue",
    "org.apache.kafka.common",
)


EXIT_GRACE_S = 1.0
"""How long a broker must stay gone before start-up counts as failed: one look at a process
in the middle of an exec is not an exit."""


class KafkaNodeError(RuntimeError):
    """The local Kafka node could not be configured, started, reached or stopped."""


@dataclass(frozen=True)
class NodeSecurity:
    """What a node that serves SASL_SSL needs: its TLS directory and its set-up principal."""

    tls_dir: Path
    admin: str
    """The super user whose SCRAM credential the storage is formatted with."""
    admin_password: Callable[[], str]
    """The admin's password (made on first use by the caller)."""


@dataclass(frozen=True)
class Voter:
    """One controller of a multi-node quorum, as `format --initial-controllers` names it
    (KIP-853): node id, controller endpoint, and the id of its metadata log directory."""

    node_id: int
    controller_port: int
    directory_id: str

    def __str__(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.controller_port}:{self.directory_id}"


@dataclass(frozen=True)
class Quorum:
    """What every node of one cluster is formatted with: the cluster id and the voters."""

    cluster_id: str
    voters: tuple[Voter, ...]

    @property
    def bootstrap_servers(self) -> str:
        """The controllers' endpoints (`controller.quorum.bootstrap.servers`)."""
        return ",".join(f"127.0.0.1:{v.controller_port}" for v in self.voters)


@dataclass(frozen=True)
class ClusterMember:
    """A node's place in a multi-node cluster: its id, the port its peers fetch replicas
    from, and the quorum it belongs to."""

    node_id: int
    replication_port: int
    quorum: Quorum


class KafkaNode:
    """One KRaft Kafka process (process.roles=broker,controller) with its own data directory.

    All state lives in `data_dir` (config, log dirs, pid file, logs), so a node built from
    the same arguments in another process re-attaches to a running broker via its pid file.
    """

    def __init__(
        self, libs_dir: Path, data_dir: Path, port: int, controller_port: int, *,
        client_options: Callable[[], dict[str, Any]], security: NodeSecurity | None = None,
        member: ClusterMember | None = None,
    ) -> None:
        self.libs_dir = libs_dir.resolve()
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self.client_options = client_options
        """The set-up principal's client options (`hub.kafka.client_options`): the
        readiness probe connects with them."""
        self.security = security
        """None: clients get PLAINTEXT without authorizer (a trusted development node)."""
        self.member = member
        """None: a standalone node, its own single-voter quorum with no replica to fetch."""
        # Kept only in the process that spawned the JVM, to reap it (no zombie).
        self._popen: subprocess.Popen[bytes] | None = None

    # Paths -----------------------------------------------------------------------------

    @property
    def properties_file(self) -> Path:
        """The broker's server.properties."""
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        """The log4j2 configuration the JVM is started with."""
        return self.data_dir / "log4j2.properties"

    @property
    def log_dir(self) -> Path:
        """Kafka's partition data (log.dirs)."""
        return self.data_dir / "data"

    @property
    def server_log(self) -> Path:
        """The broker's own log, written by log4j2."""
        return self.data_dir / "logs" / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's stdout and stderr (crashes before log4j2 is up land here)."""
        return self.data_dir / "logs" / "console.log"

    @property
    def pid_file(self) -> Path:
        """Where the running JVM's pid is recorded, for other processes to find it."""
        return self.data_dir / "kafka.pid"

    @property
    def mode_file(self) -> Path:
        """Records whether the storage was formatted for SASL_SSL (with the admin's
        credential) or for PLAINTEXT; the other mode cannot start on it."""
        return self.data_dir / "security-mode"

    @property
    def mode(self) -> str:
        """`sasl_ssl` or `plaintext`: what clients get from this node."""
        return "plaintext" if self.security is None else "sasl_ssl"

    @property
    def bootstrap(self) -> str:
        """host:port that clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def node_id(self) -> int:
        """The node's id (`node.id`): its broker id in metadata and its voter id."""
        return 1 if self.member is None else self.member.node_id

    @property
    def replicas(self) -> int:
        """How many brokers the cluster has, so how many replicas a partition can have."""
        return 1 if self.member is None else len(self.member.quorum.voters)

    # Configuration ---------------------------------------------------------------------

    def configure(self) -> None:
        """Write server.properties and the log4j2 configuration into the data directory."""
        self._check_libs()
        self.server_log.parent.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._server_properties())
        self.log4j_file.write_text(self._log4j_properties())

    def _check_libs(self) -> None:
        if not self.libs_dir.is_dir() or not any(self.libs_dir.glob("*.jar")):
            raise KafkaNodeError(
                f"The Kafka jars are missing from {self.libs_dir}; run `make setup` first "
                "or point HUB_KAFKA_LIBS at them."
            )

    def _server_properties(self) -> str:
        listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in self._listeners())
        # A write the internal topics acknowledge survives one node lost (of three).
        replicas, min_isr = str(self.replicas), str(max(1, self.replicas - 1))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            # `format --standalone` reads the controller from the advertised CONTROLLER
            # listener, so both listeners are advertised.
            "controller.quorum.bootstrap.servers": (
                f"127.0.0.1:{self.controller_port}" if self.member is None
                else self.member.quorum.bootstrap_servers),
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "CLIENTS" if self.member is None else "REPLICATION",
            "controller.listener.names": "CONTROLLER",
            **self._security_properties(),
            "log.dirs": str(self.log_dir),
            # Topics are created explicitly by `hub topics create`; a typo must fail loudly.
            "auto.create.topics.enable": "false",
            # Internal topics get every broker as a replica (one node: no more than one).
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            # Consumers of a fresh group start at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # Defaults assume a server; on 2 cores extra threads only add context switches.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "2",
            "num.replica.fetchers": "1",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "group.coordinator.threads": "1",
            "share.coordinator.threads": "1",
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _listeners(self) -> list[tuple[str, int]]:
        """Each listener's name and port: a cluster member also has one its peers fetch
        replicas from."""
        listeners = [("CLIENTS", self.port), ("CONTROLLER", self.controller_port)]
        if self.member is not None:
            listeners.append(("REPLICATION", self.member.replication_port))
        return listeners

    def _security_properties(self) -> dict[str, str]:
        names = [name for name, _ in self._listeners()]
        if self.security is None:
            return {"listener.security.protocol.map":
                    ",".join(f"{name}:PLAINTEXT" for name in names)}
        tls = NodeTls(self.security.tls_dir)
        protocols = {"CLIENTS": "SASL_SSL", "CONTROLLER": "SSL", "REPLICATION": "SSL"}
        return {
            # Clients get SASL_SSL only: SCRAM-SHA-512 identities over TLS. The controller
            # listener (127.0.0.1) takes only the nodes, by mutual TLS with the node
            # certificate, so there is no ANONYMOUS super user: a local process without a
            # certificate from the stack's CA gets nothing from the controller either. A
            # cluster's replication listener is the same: its peers fetch replicas there
            # as the node principal, so no broker holds a SCRAM password of its own.
            "listener.security.protocol.map":
                ",".join(f"{name}:{protocols[name]}" for name in names),
            **{f"listener.name.{name.lower()}.ssl.client.auth": "required"
               for name in names if protocols[name] == "SSL"},
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            # A single node opens no inter-broker connection (no replica to fetch for, and
            # the hub uses no transactions, whose markers would travel that way), so the
            # broker needs no credential of its own on this listener.
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.clients.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            # PEM stores (KIP-651): the key and chain in one file, the CA in another.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tls.node_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca_cert),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            # The set-up principal, and the node on its controller and replication
            # listeners (registration, heartbeats and replica fetches need ClusterAction).
            "super.users": f"User:{self.security.admin};{node_principal()}",
        }

    def _log4j_properties(self) -> str:
        log = self.server_log
        lines = [
            "status = warn",
            "name = permithub-kafka",
            "appender.file.type = RollingFile",
            "appender.file.name = FILE",
            f"appender.file.fileName = {log}",
            f"appender.file.filePattern = {log}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
        ]
        for index, name in enumerate(NOISY_LOGGERS):
            lines += [f"logger.n{index}.name = {name}", f"logger.n{index}.level = WARN"]
        return "\n".join(lines) + "\n"

    # Storage ---------------------------------------------------------------------------

    def is_formatted(self) -> bool:
        """Whether the log directory already holds a formatted KRaft storage."""
        return (self.log_dir / "meta.properties").exists()

    def format(self) -> None:
        """Format the storage with a random cluster id (only the first time; later a no-op),
        with the admin's SCRAM credential when the node serves SASL_SSL."""
        if self.is_formatted():
            self._check_mode()
            return
        if not self.properties_file.exists():
            self.configure()
        arguments = [
            "kafka.tools.StorageTool",
            "format",
            *self._quorum_arguments(),
            "--ignore-formatted",
            "-c",
            str(self.properties_file),
        ]
        secret = ""
        if self.security is not None:
            # KRaft stores SCRAM credentials in its metadata log; the admin's must be there
            # before the first start, since only an authenticated admin can add users.
            secret = self.security.admin_password()
            arguments += ["--add-scram",
                          f"SCRAM-SHA-512=[name={self.security.admin},password={secret}]"]
        result = self._run_tool(arguments)
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}"
            raise KafkaNodeError(
                f"Formatting Kafka storage in {self.log_dir} failed:\n"
                f"{output.replace(secret, '***') if secret else output}"
            )
        self.mode_file.write_text(self.mode + "\n")

    def _quorum_arguments(self) -> list[str]:
        """A standalone node is the single voter of a quorum of its own; a member is
        formatted with its cluster's id and every voter, as each of its peers is."""
        if self.member is None:
            return ["--standalone", "-t", new_cluster_id()]
        quorum = self.member.quorum
        return ["--initial-controllers", ",".join(str(v) for v in quorum.voters),
                "-t", quorum.cluster_id]

    def _run_tool(self, arguments: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a Kafka tool class with its arguments in an @argfile (0600, removed after):
        the java launcher expands it itself (JDK 9+), so a password given to the tool never
        appears in the process list."""
        argfile = self.data_dir / "tool.args"
        argfile.unlink(missing_ok=True)
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            # One argument per line; the hub's passwords are URL-safe, so nothing to quote.
            out.write("\n".join(arguments) + "\n")
        command = ["java", *TOOL_JVM_OPTS, f"-Dlog4j2.configurationFile={self.log4j_file}",
                   "-cp", self._classpath(), f"@{argfile}"]
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)

    def _check_mode(self) -> None:
        # Storage formatted without the admin's credential cannot serve SASL_SSL (no one
        # could log in to add it), and the other way round the node would keep refusing.
        try:
            formatted = self.mode_file.read_text().strip()
        except FileNotFoundError:
            formatted = "plaintext"  # formatted by a hub from before SASL_SSL
        if formatted != self.mode:
            raise KafkaNodeError(
                f"The Kafka storage in {self.log_dir} was formatted for {formatted} clients, "
                f"but HUB_KAFKA_SECURITY_PROTOCOL is {self.mode}. Set it back, or stop the "
                f"stack and remove {self.data_dir} to start over with empty topics."
            )

    def _classpath(self) -> str:
        return f"{self.libs_dir}/*"

    # Process ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The pid of this node's running JVM, or None when it is not running."""
        process = self._process()
        return process.pid if process is not None else None

    def is_running(self) -> bool:
        """Whether this node's JVM is alive (found via the pid file, so from any process)."""
        return self._process() is not None

    def _process(self) -> psutil.Process | None:
        pid = self._read_pid()
        if pid is None:
            return None
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            # A recycled pid must not be taken for our broker: match the config path.
            cmdline = process.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        if "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline:
            return process
        return None

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def start(self) -> None:
        """Spawn the broker JVM detached from this process; a no-op if it already runs."""
        if self.is_running():
            self._check_running_port()
            return
        self.check_ports()
        if self.security is not None:
            ensure_node_tls(self.security.tls_dir)
        # Rewritten on every start so the files always match this object's ports.
        self.configure()
        self.format()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        with self.console_log.open("ab") as console:
            # A new session: Ctrl+C in the terminal that ran `hub stack up` must not stop it.
            self._popen = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.data_dir,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")

    def check_ports(self) -> None:
        """Raise PortInUse if another program holds the broker's or controller's port."""
        ensure_port_free(self.port, "Kafka broker", "HUB_KAFKA_PORT")
        ensure_port_free(self.controller_port, "Kafka controller", "HUB_KAFKA_CONTROLLER_PORT")
        if self.member is not None:
            ensure_port_free(self.member.replication_port, "Kafka replication listener",
                             "HUB_KAFKA_REPLICATION_PORT")

    def _check_running_port(self) -> None:
        # A broker started earlier with other ports keeps them; say so instead of timing out.
        expected = f"listeners=CLIENTS://127.0.0.1:{self.port},"
        if expected not in self.properties_file.read_text():
            raise KafkaNodeError(
                f"The Kafka node in {self.data_dir} already runs with other ports "
                f"(see {self.properties_file}); stop it first with `hub stack down`."
            )

    def _command(self) -> list[str]:
        return [
            "java",
            *JVM_OPTS,
            f"-Dkafka.logs.dir={self.server_log.parent}",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        ]

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the broker answers a metadata request; raise with its log tail if not."""
        deadline = time.monotonic() + timeout
        gone_since: float | None = None
        while True:
            if not self._exited():
                gone_since = None
            elif gone_since is None:
                gone_since = time.monotonic()
            elif time.monotonic() - gone_since > EXIT_GRACE_S:
                raise KafkaNodeError(f"Kafka exited during start-up.\n{self.log_tail()}")
            if _port_open(self.port) and _answers_metadata(self._probe_options(),
                                                           self.replicas):
                return
            if time.monotonic() > deadline:
                raise KafkaNodeError(
                    f"Kafka did not answer on {self.bootstrap} within {timeout:.0f} s.\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)

    def _exited(self) -> bool:
        """Whether the JVM is gone: by its exit status when this object started it (a
        process can look like something else for an instant while the java launcher
        re-executes itself, so its command line alone is no proof), else by the pid file."""
        if self._popen is not None:
            return self._popen.poll() is not None
        return not self.is_running()

    def _probe_options(self) -> dict[str, Any]:
        return {**self.client_options(), "bootstrap_servers": self.bootstrap}

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker cleanly (SIGTERM), SIGKILL it after `timeout` s, wait for exit."""
        process = self._process()
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGTERM)
            if not _wait_gone(process, timeout):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
                _wait_gone(process, 10)
        self._forget()

    def kill(self) -> None:
        """SIGKILL the broker without a clean shutdown (for crash tests), and wait for exit."""
        process = self._process()
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
            _wait_gone(process, 10)
        self._forget()

    def _forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        if self._popen is not None:
            # Reap our own child so it does not linger as a zombie.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1)
            self._popen = None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the broker log and of the JVM console, for error messages."""
        parts = []
        for path in (self.server_log, self.console_log):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                if tail:
                    parts.append(f"--- {path} ---\n" + "\n".join(tail))
        text = "\n".join(parts) or f"(no log output in {self.server_log.parent})"
        if "StaticLoggerBinder" in text:
            # slf4j-api 1.7 (Kafka's) found no 1.x binding, so the broker logged nothing.
            text += (
                "\n(Kafka's logging is off: the jars need org.apache.logging.log4j:"
                "log4j-slf4j-impl, the binding for slf4j 1.7, not log4j-slf4j2-impl.)"
            )
        return text


def new_cluster_id() -> str:
    """A random KRaft cluster id: URL-safe base64 of 16 bytes, unpadded, not starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own Uuid.randomUuid() rejects ids starting with '-' (they parse as options).
        if not cluster_id.startswith("-"):
            return cluster_id


def _port_open(port: int) -> bool:
    # A plain TCP probe first keeps aiokafka from logging a connection error per attempt.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_gone(process: psutil.Process, timeout: float) -> bool:
    try:
        # psutil reaps the process if it is our child and polls otherwise.
        process.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def _answers_metadata(options: dict[str, Any], brokers: int) -> bool:
    # A thread of its own gives the probe a fresh event loop, so wait_ready() also works
    # when called from async code (where asyncio.run would refuse to nest).
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _describe_cluster(options, brokers)).result()


async def _describe_cluster(options: dict[str, Any], brokers: int) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**options, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()
    # The broker registers with its controller after its listener opens; until then the
    # metadata names no broker and topic creation would fail. A topic with a replica on
    # every broker also needs every broker registered.
    return len(cluster.get("brokers") or ()) >= brokers
