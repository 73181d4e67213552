"""A local Kafka cluster: N KRaft nodes from the same jars, each broker and controller, so
the controller quorum has N voters and a partition can have N replicas.

Every node is a `KafkaNode` of its own (own data directory, pid file, ports); what they
share is the `Quorum` they are formatted with, kept in `quorum.json` beside their
directories so a node formatted later (its directory removed) joins the same cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.stack.kafka import (
    ClusterMember,
    KafkaNode,
    KafkaNodeError,
    NodeSecurity,
    Quorum,
    Voter,
    new_cluster_id,
)

__all__ = ["KafkaCluster", "NodePorts"]

QUORUM_STATE = Path("__cluster_metadata-0") / "quorum-state"
"""Where each controller records the quorum's leader and epoch, under its log directory."""


@dataclass(frozen=True)
class NodePorts:
    """The three ports of one cluster node: clients, controller, replication."""

    clients: int
    controller: int
    replication: int


class KafkaCluster:
    """N KRaft nodes, each broker and controller (combined nodes, as on one machine)."""

    def __init__(
        self, libs_dir: Path, data_dir: Path, ports: Sequence[NodePorts], *,
        client_options: Callable[[], dict[str, Any]], security: NodeSecurity | None = None,
    ) -> None:
        if len(ports) < 2:
            raise ValueError("a cluster has at least two nodes; one node is a KafkaNode")
        self.data_dir = data_dir.resolve()
        quorum = self._quorum(ports)
        self.nodes = [
            KafkaNode(libs_dir, self.data_dir / f"node-{voter.node_id}", p.clients,
                      p.controller, client_options=client_options, security=security,
                      member=ClusterMember(voter.node_id, p.replication, quorum))
            for voter, p in zip(quorum.voters, ports, strict=True)
        ]
        self.quorum = quorum

    @property
    def quorum_file(self) -> Path:
        """The cluster id and voters every node is formatted with."""
        return self.data_dir / "quorum.json"

    def _quorum(self, ports: Sequence[NodePorts]) -> Quorum:
        """The recorded quorum, or a new one (recorded on the first start). Directory ids
        are Kafka Uuids, like the cluster id."""
        if self.quorum_file.exists():
            recorded = json.loads(self.quorum_file.read_text())
            if len(recorded["directory_ids"]) != len(ports):
                raise KafkaNodeError(
                    f"The Kafka cluster in {self.data_dir} has "
                    f"{len(recorded['directory_ids'])} nodes, not {len(ports)}: stop it and "
                    f"remove {self.data_dir} to start over with empty topics.")
            cluster_id, directory_ids = recorded["cluster_id"], recorded["directory_ids"]
        else:
            cluster_id, directory_ids = new_cluster_id(), [new_cluster_id() for _ in ports]
        voters = tuple(Voter(n, p.controller, d)
                       for n, (p, d) in enumerate(zip(ports, directory_ids, strict=True), 1))
        return Quorum(cluster_id, voters)

    @property
    def bootstrap(self) -> str:
        """Every node's client address: a client reaches the cluster while any node lives."""
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        """The node with this id (as metadata and the quorum name it)."""
        return next(node for node in self.nodes if node.node_id == node_id)

    def check_ports(self) -> None:
        """Raise PortInUse if another program holds a port of a node not running yet."""
        for node in self.nodes:
            if not node.is_running():
                node.check_ports()

    def is_running(self) -> bool:
        """Whether any node's JVM is alive."""
        return any(node.is_running() for node in self.nodes)

    @property
    def pids(self) -> list[int | None]:
        """Each node's JVM pid (None for a node not running), in node order."""
        return [node.pid for node in self.nodes]

    def start(self) -> None:
        """Start every node not running yet; none waits for the others (a quorum of N needs
        a majority up before any node answers)."""
        self.record_quorum()
        for node in self.nodes:
            node.start()

    def record_quorum(self) -> None:
        """Write the quorum file unless it exists (before any node is formatted with it)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.quorum_file.exists():
            self.quorum_file.write_text(json.dumps({
                "cluster_id": self.quorum.cluster_id,
                "directory_ids": [v.directory_id for v in self.quorum.voters],
            }) + "\n")

    def wait_ready(self, timeout: float = 180) -> None:
        """Block until every node answers with every broker registered (the JVMs start
        together, so on two cores they take longer than one alone)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 30) -> None:
        """Stop every node cleanly, all at once: stopped one by one, the last would wait out
        its timeout for a quorum that has lost its majority."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(timeout), self.nodes))

    def active_controller(self) -> KafkaNode:
        """The node that leads the controller quorum now."""
        return self.quorum_leader()[0]

    def quorum_leader(self) -> tuple[KafkaNode, int]:
        """The quorum's leader and its epoch: the newest the running nodes' quorum state
        files name (each voter rewrites its file on every election it sees)."""
        states = [json.loads(path.read_text()) for node in self.nodes if node.is_running()
                  if (path := node.log_dir / QUORUM_STATE).exists()]
        led = [s for s in states if s.get("leaderId", -1) >= 0]
        if not led:
            raise KafkaNodeError(f"No running node of {self.data_dir} knows a quorum leader.")
        newest = max(led, key=lambda s: int(s["leaderEpoch"]))
        return self.node(newest["leaderId"]), int(newest["leaderEpoch"])
