"""The local multi-node cluster's layout: what each node is configured and formatted with,
where clients find it, and which node the quorum follows. Nothing is started here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.settings import Settings
from hub.stack.cluster import QUORUM_STATE, KafkaCluster, NodePorts
from hub.stack.kafka import KafkaNode, KafkaNodeError, NodeSecurity
from hub.stack.local import LocalStack, kafka_cluster
from hub.stack.tls import NODE_COMMON_NAME

PORTS = [NodePorts(1001, 1002, 1003), NodePorts(2001, 2002, 2003), NodePorts(3001, 3002, 3003)]


def _cluster(tmp_path: Path, ports: list[NodePorts] = PORTS) -> KafkaCluster:
    return KafkaCluster(tmp_path, tmp_path / "cluster", ports, client_options=dict,
                        security=NodeSecurity(tmp_path / "tls", "admin", lambda: "s3cret"))


def _props(node: KafkaNode) -> dict[str, str]:
    return dict(line.split("=", 1) for line in node._server_properties().splitlines())


def test_each_node_is_a_voter_and_replicates_over_mutual_tls(tmp_path: Path) -> None:
    """Every node names all three controllers; peers fetch replicas on a listener of their
    own that takes only the node certificate, so no broker needs a SCRAM password; the
    internal topics get three replicas and need two."""
    cluster = _cluster(tmp_path)
    props = _props(cluster.node(2))
    assert props["node.id"] == "2"
    assert props["controller.quorum.bootstrap.servers"] == (
        "127.0.0.1:1002,127.0.0.1:2002,127.0.0.1:3002")
    assert props["listeners"] == (
        "CLIENTS://127.0.0.1:2001,CONTROLLER://127.0.0.1:2002,REPLICATION://127.0.0.1:2003")
    assert props["inter.broker.listener.name"] == "REPLICATION"
    assert props["listener.security.protocol.map"] == (
        "CLIENTS:SASL_SSL,CONTROLLER:SSL,REPLICATION:SSL")
    assert props["listener.name.replication.ssl.client.auth"] == "required"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["super.users"] == f"User:admin;User:CN={NODE_COMMON_NAME}"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert "s3cret" not in cluster.node(2)._server_properties()
    assert cluster.bootstrap == "127.0.0.1:1001,127.0.0.1:2001,127.0.0.1:3001"


def test_a_standalone_node_keeps_its_single_voter_quorum(tmp_path: Path) -> None:
    """One node formats itself `--standalone` with no replication listener, as before."""
    node = KafkaNode(tmp_path, tmp_path / "kafka", 1, 2, client_options=dict)
    props = _props(node)
    assert props["node.id"] == "1"
    assert props["inter.broker.listener.name"] == "CLIENTS"
    assert props["listeners"] == "CLIENTS://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
    assert props["offsets.topic.replication.factor"] == "1"
    assert node._quorum_arguments()[0] == "--standalone"


def test_every_node_is_formatted_with_the_same_cluster_and_voters(tmp_path: Path) -> None:
    """`--initial-controllers` names each voter with its controller port and directory id,
    identically on every node, under one cluster id."""
    cluster = _cluster(tmp_path)
    arguments = [node._quorum_arguments() for node in cluster.nodes]
    assert all(a == arguments[0] for a in arguments)
    flag, voters, t, cluster_id = arguments[0]
    assert (flag, t, cluster_id) == ("--initial-controllers", "-t", cluster.quorum.cluster_id)
    ids = [v.directory_id for v in cluster.quorum.voters]
    assert voters == ",".join(f"{n}@127.0.0.1:{n}002:{d}" for n, d in enumerate(ids, 1))
    assert len(set(ids)) == 3


def test_the_quorum_is_recorded_on_start_and_reused(tmp_path: Path) -> None:
    """A cluster built again (another `hub stack` command) formats a node with the recorded
    ids; a different node count is refused, naming the directory."""
    first = _cluster(tmp_path)
    first.record_quorum()
    again = _cluster(tmp_path)
    assert again.quorum == first.quorum
    with pytest.raises(KafkaNodeError, match="has 3 nodes, not 2"):
        _cluster(tmp_path, PORTS[:2])


def test_the_active_controller_is_the_newest_leader_the_running_nodes_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead node's stale quorum state is ignored; the highest epoch names the leader."""
    cluster = _cluster(tmp_path)
    states = {1: (1, 3), 2: (3, 5), 3: (3, 5)}  # node: (leader, epoch)
    for node_id, (leader, epoch) in states.items():
        path = cluster.node(node_id).log_dir / QUORUM_STATE
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"leaderId": leader, "leaderEpoch": epoch}))
    monkeypatch.setattr(KafkaNode, "is_running", lambda node: True)
    assert cluster.active_controller().node_id == 3
    assert cluster.quorum_leader()[1] == 5
    monkeypatch.setattr(KafkaNode, "is_running", lambda node: node.node_id == 1)
    assert cluster.active_controller().node_id == 1


def test_settings_name_every_local_node(tmp_path: Path) -> None:
    """With `kafka_brokers` 3 the local stack is a cluster on ports ten apart, and clients
    bootstrap from every node, so one dead node does not keep a new client out."""
    settings = Settings(home=tmp_path, kafka_brokers=3, kafka_port=19092,
                        kafka_controller_port=19093, kafka_replication_port=19094)
    assert settings.bootstrap == "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"
    assert settings.kafka_node_ports(3) == (19112, 19113, 19114)
    stack = LocalStack(settings)
    assert isinstance(stack.kafka, KafkaCluster)
    assert [n.port for n in stack.kafka.nodes] == [19092, 19102, 19112]
    assert stack.status()["kafka"]["nodes"][2]["replication_port"] == 19114
    assert kafka_cluster(settings, tmp_path / "c").bootstrap == settings.bootstrap
    assert Settings(home=tmp_path).bootstrap == "127.0.0.1:19092"
