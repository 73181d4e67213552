"""The Kafka ACL matrix (hub/acl.py): the committed document is current, and the rights it
derives from the declarations follow the rules of least privilege."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hub import acl
from hub.agency import Agency, Channel
from hub.kafka import quarantine_topic
from hub.kafka_credentials import ADMIN, OPS, desk, front_door, user
from hub.kafka_wire import Acl, Operation, ResourceType
from hub.ops.acls import DOCUMENT, main, render
from hub.registry import installed
from hub.settings import Settings
from schemas import topics

SETTINGS = Settings(topic_prefix="t.", kafka_security_protocol="sasl_ssl")
TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
READ, WRITE = Operation.READ, Operation.WRITE


@pytest.fixture(scope="module")
def matrix() -> set[Acl]:
    """The rights under a prefixed hub's settings."""
    return set(acl.matrix(SETTINGS, installed()))


def holders(matrix: set[Acl], kind: ResourceType, name: str, op: Operation) -> set[str]:
    """The principals (without `User:`) granted `op` on the resource."""
    return {a.principal.removeprefix("User:") for a in matrix
            if (a.resource_type, a.resource, a.operation) == (kind, name, op)}


def test_the_committed_document_is_up_to_date() -> None:
    """Regenerate with `python -m hub.ops.acls` after changing an agency's topics or group."""
    assert DOCUMENT.exists(), "run `python -m hub.ops.acls`"
    assert DOCUMENT.read_text() == render(), "out of date: run `python -m hub.ops.acls`"
    assert main(["--check"]) == 0


def test_only_the_authority_and_ops_redrive_write_the_permit_topics(matrix: set[Acl]) -> None:
    """The permit lifecycle has one author; ops may put a dead letter back where it came from.
    Each agency reads the lifecycle on a topic of its own, cut to what it reads, and no
    other's (docs/privacy.md §2); the topic the authority's outbox names is no Kafka topic."""
    permit_topic = SETTINGS.topic(topics.PERMIT_EVENTS)
    assert holders(matrix, TOPIC, permit_topic, READ) == set()
    assert holders(matrix, TOPIC, permit_topic, WRITE) == set()
    for agency in installed().consumers():
        mine = SETTINGS.topic(topics.audience_topic(topics.PERMIT_EVENTS, agency.name))
        assert holders(matrix, TOPIC, mine, WRITE) == {installed().authority().name, OPS}
        assert holders(matrix, TOPIC, mine, READ) == {agency.name, OPS}


def test_each_agency_reads_what_it_declares_with_its_own_group_only(matrix: set[Acl]) -> None:
    """An agency reads its declared topics, joins its own group, and writes its outcome topic
    and its group's dead-letter and quarantine topics: nothing else."""
    for agency in installed():
        mine = {a for a in matrix if a.principal == user(agency.name)}
        reads = {a.resource for a in mine if (a.resource_type, a.operation) == (TOPIC, READ)}
        writes = {a.resource for a in mine if (a.resource_type, a.operation) == (TOPIC, WRITE)}
        groups = {a.resource for a in mine if a.resource_type == GROUP}
        assert reads == {SETTINGS.topic(t) for t in agency.reads}
        expected = {SETTINGS.topic(c.topic) for c in (*agency.publications(), agency.heads)
                    if c}
        if agency.consumes:
            dead = agency.dead_letter_topic(SETTINGS)
            expected |= {dead, quarantine_topic(dead)}
        assert writes == expected
        assert groups == ({agency.group_id(SETTINGS)} if agency.consumes else set())


def test_dead_letters_are_read_by_ops_alone(matrix: set[Acl]) -> None:
    """They hold personal data: the agency writes its own, cannot read it back, and ops reads."""
    for agency in installed().consumers():
        dead = agency.dead_letter_topic(SETTINGS)
        for topic in (dead, quarantine_topic(dead)):
            assert holders(matrix, TOPIC, topic, READ) == {OPS}
            assert holders(matrix, TOPIC, topic, WRITE) == {agency.name}


def test_a_front_door_writes_its_agencys_request_topic_only(matrix: set[Acl]) -> None:
    """A request topic is written by its agency's front door (and ops' redrive, if a group
    reads it); a front door holds nothing else but IdempotentWrite."""
    for agency in installed():
        if agency.requests is None:
            continue
        door = front_door(agency.name)
        request_topic = SETTINGS.topic(agency.requests.topic)
        c = agency.publishes
        full = ({(TOPIC, SETTINGS.topic(c.topic), READ)}
                if c is not None and c.front_door_reads else set())
        assert {(a.resource_type, a.resource, a.operation) for a in matrix
                if a.principal == user(door)} == {
            (TOPIC, request_topic, WRITE), (CLUSTER, "kafka-cluster", Operation.IDEMPOTENT_WRITE),
            *full}
        assert holders(matrix, TOPIC, request_topic, WRITE) <= {door, OPS}


def test_ops_writes_only_where_a_dead_letter_came_from(matrix: set[Acl]) -> None:
    """`hub dlq redrive` sends a dead letter back to its origin, one of the topics its group
    reads; ops can write no other topic (no outcome nobody reads, no dead-letter topic)."""
    origins = {SETTINGS.topic(t) for a in installed().consumers() for t in a.reads}
    written = {a.resource for a in matrix
               if a.principal == user(OPS) and (a.resource_type, a.operation) == (TOPIC, WRITE)}
    assert written == origins


def test_every_writer_holds_idempotent_write_and_admin_holds_no_rule(matrix: set[Acl]) -> None:
    """Every producer of the hub is idempotent; the set-up principal is a super user instead."""
    writers = {a.principal for a in matrix if a.operation == WRITE}
    idempotent = {a.principal for a in matrix if a.resource_type == CLUSTER}
    assert writers == idempotent
    assert not [a for a in matrix if a.principal == user(ADMIN)]
    assert {a.resource_type for a in matrix} == {TOPIC, GROUP, CLUSTER}


def _with_desk() -> Agency:
    """Social insurance as it would declare a desk for its reviewers' decisions (the test
    does not depend on which agencies declare one today)."""
    base = installed().get("social_insurance")
    if base.decisions is not None:
        return base
    decision = base.requests.event_types[0] if base.requests else None
    assert decision is not None
    channel = Channel("socialinsurance.desk-test.v1", (decision,), "a test desk's decisions")
    return replace(base, decisions=channel, reads=(*base.reads, channel.topic))


def test_a_desk_writes_its_agencys_decisions_topic_only() -> None:
    """An agency's officers record decisions through its desk: the desk's principal writes
    that agency's decisions topic and holds nothing else but IdempotentWrite; only the agency
    (and ops' redrive, as for every topic a group reads) reads it; the desk signs the
    decision types alone."""
    agency = _with_desk()
    assert agency.decisions is not None
    rules = acl.matrix(SETTINGS, [agency])
    officers = desk(agency.name)
    topic = SETTINGS.topic(agency.decisions.topic)
    assert officers in acl.principals([agency])
    assert {(a.resource_type, a.resource, a.operation) for a in rules
            if a.principal == user(officers)} == {
        (TOPIC, topic, WRITE), (CLUSTER, "kafka-cluster", Operation.IDEMPOTENT_WRITE)}
    assert holders(set(rules), TOPIC, topic, WRITE) == {officers, OPS}
    assert holders(set(rules), TOPIC, topic, READ) == {agency.name, OPS}
    assert agency.signers()[officers] == {t.EVENT_TYPE for t in agency.decisions.event_types}
    assert topic in agency.owned_topics(SETTINGS)


def test_an_agency_must_read_its_own_decisions() -> None:
    """A decisions topic its own consumer does not read would take decisions no one applies."""
    agency = _with_desk()
    assert agency.decisions is not None
    with pytest.raises(ValueError, match="must read its decisions"):
        replace(agency, reads=tuple(t for t in agency.reads if t != agency.decisions.topic))
