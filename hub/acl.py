"""Least privilege on Kafka: the ACL matrix, derived from the agencies' declarations, and
how `hub init` makes the broker hold exactly it.

Who may do what (every right is an ALLOW on a literal name; Read and Write imply Describe):

- each agency, as itself: Read on the topics it declares (`reads`) with its own consumer
  group (Read on that group); Write on its outcome topic and on its group's dead-letter and
  quarantine topics, which it cannot read back; IdempotentWrite on the cluster. So only the
  permits' authority writes the permit topic.
- `<agency>-front-door`, for an agency that takes requests: Write on that agency's request
  topic, IdempotentWrite; Read on its outcome topic when that is published per audience
  and kept in full for the front door (`Channel.front_door_reads`: an outcome carrying a
  credential the requester's app must get and no reading agency verifies), with no group.
- `<agency>-desk`, for an agency whose officers record decisions (`Agency.decisions`): Write
  on that agency's decisions topic, IdempotentWrite; nothing else (it reads no outcome).
- `ops`: Read on every dead-letter and quarantine topic (they hold personal data, and no one
  else reads them) and on every topic a group reads (`hub lag` reads the oldest unapplied
  record, `hub replay` the permit topic); Describe on every agency's group (`hub lag`'s
  committed offsets). Write only where `hub dlq redrive` puts a dead letter back: the
  topics some group reads, each one a possible origin; IdempotentWrite. That makes ops the
  one principal besides the authority that can append to the permit topic, which redrive
  needs for a dead letter that came from it; it cannot write an outcome topic no group
  reads, a request topic no group reads, or any dead-letter topic. DescribeConfigs on every
  hub topic, for `hub topics describe` (a topic's retention policy, no record).
- `admin` holds no ACL: it is a super user (`super.users`), as the node itself is.

`hub init` applies the matrix of its settings: it creates the rules that are missing and
deletes the hub's rules that are no longer in it. The hub's rules are the literal ALLOW
rules on topics and groups whose name starts with the topic prefix, and the cluster
IdempotentWrite rules of the matrix's principals; a hub sharing a broker with others must
therefore have its own prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.client import AIOKafkaClient

from hub.agency import Agency
from hub.kafka import quarantine_topic
from hub.kafka_credentials import ADMIN, OPS, desk, front_door, user
from hub.kafka_wire import (
    CLUSTER,
    Acl,
    Operation,
    ResourceType,
    create_acls,
    delete_acls,
    describe_acls,
    on_every_broker,
    wait_until,
)
from hub.logging import get_logger
from hub.settings import Settings

__all__ = ["apply", "as_json", "managed_by", "matrix", "principals"]

log = get_logger(__name__)

Read, Write, Describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
Topic, Group = ResourceType.TOPIC, ResourceType.GROUP


def principals(agencies: Iterable[Agency]) -> list[str]:
    """Every principal of the hub: admin, ops, each agency, each front door and desk."""
    found = [ADMIN, OPS]
    for a in agencies:
        found.append(a.name)
        if a.requests is not None:
            found.append(front_door(a.name))
        if a.decisions is not None:
            found.append(desk(a.name))
    return found


def matrix(settings: Settings, agencies: Iterable[Agency]) -> list[Acl]:
    """Every right the hub's principals hold under these settings, sorted."""
    agencies = list(agencies)
    acls: set[Acl] = set()
    for a in agencies:
        acls |= _agency(settings, a)
    acls |= _ops(settings, agencies)
    return sorted(acls)


def _agency(settings: Settings, agency: Agency) -> set[Acl]:
    needs = agency.kafka_needs(settings)
    who = user(agency.name)
    acls = {Acl(who, Topic, t, Read) for t in needs.read}
    acls |= {Acl(who, Topic, t, Write) for t in needs.write}
    if needs.group is not None:
        acls.add(Acl(who, Group, needs.group, Read))
    if needs.idempotent_write:
        acls.add(_idempotent(who))
    if agency.requests is not None:
        door = user(front_door(agency.name))
        acls |= {Acl(door, Topic, settings.topic(agency.requests.topic), Write),
                 _idempotent(door)}
        c = agency.publishes
        if c is not None and c.per_audience and c.front_door_reads:
            acls.add(Acl(door, Topic, settings.topic(c.topic), Read))
    if agency.decisions is not None:
        officers = user(desk(agency.name))
        acls |= {Acl(officers, Topic, settings.topic(agency.decisions.topic), Write),
                 _idempotent(officers)}
    return acls


def _ops(settings: Settings, agencies: list[Agency]) -> set[Acl]:
    who = user(OPS)
    acls = {Acl(who, Topic, t, Operation.DESCRIBE_CONFIGS)
            for a in agencies for t in a.owned_topics(settings)}
    for a in agencies:
        if not a.consumes:
            continue
        dead = a.dead_letter_topic(settings)
        origins = a.kafka_needs(settings).read
        acls |= {Acl(who, Topic, t, Read) for t in (dead, quarantine_topic(dead), *origins)}
        acls |= {Acl(who, Topic, t, Write) for t in origins}
        acls.add(Acl(who, Group, a.group_id(settings), Describe))
    if any(acl.operation == Write for acl in acls):
        acls.add(_idempotent(who))
    return acls


def _idempotent(who: str) -> Acl:
    return Acl(who, ResourceType.CLUSTER, CLUSTER, Operation.IDEMPOTENT_WRITE)


def managed_by(settings: Settings, wanted: Iterable[Acl]) -> Any:
    """Whether an existing rule is the hub's to delete when its matrix no longer has it."""
    owners = {acl.principal for acl in wanted}

    def managed(acl: Acl) -> bool:
        if acl.resource_type in (Topic, Group):
            return acl.resource.startswith(settings.topic_prefix)
        return acl.principal in owners and acl.operation == Operation.IDEMPOTENT_WRITE

    return managed


async def apply(
    client: AIOKafkaClient, settings: Settings, wanted: list[Acl]
) -> tuple[list[Acl], list[Acl]]:
    """Make the broker hold `wanted` and none of the hub's other rules; return (created,
    deleted), once the broker enforces both."""
    present = await describe_acls(client)
    managed = managed_by(settings, wanted)
    create = sorted(set(wanted) - present)
    delete = sorted(a for a in present - set(wanted) if managed(a))
    await create_acls(client, create)
    await delete_acls(client, delete)
    await _wait_enforced(client, set(wanted), set(delete))
    if create or delete:
        log.info("kafka ACLs applied", created=len(create), deleted=len(delete),
                 total=len(wanted))
    return create, delete


async def _wait_enforced(client: AIOKafkaClient, wanted: set[Acl], gone: set[Acl]) -> None:
    # Each broker learns ACLs from the metadata log a moment after the controller wrote
    # them (a broker just restarted, only once it has replayed the log); its DescribeAcls
    # answers from the same authorizer that checks requests. So every broker is asked: a
    # consumer may be sent to any of them, and treats a refusal as a configuration fault.
    async def holds(node: int) -> bool:
        present = await describe_acls(client, node)
        return wanted <= present and not gone & present

    async def enforced() -> bool:
        return await on_every_broker(client, holds)

    await wait_until(enforced, "the ACLs in force")


def as_json(settings: Settings, agencies: Iterable[Agency], super_users: list[str]) -> Any:
    """The matrix as the document `python -m hub.ops.acls` writes: per principal, its
    operations on each topic and group, and on the cluster."""
    agencies = list(agencies)
    rights: dict[str, dict[str, Any]] = {
        user(p): {"topics": {}, "groups": {}, "cluster": []}
        for p in principals(agencies) if p != ADMIN}
    for acl in matrix(settings, agencies):
        held = rights[acl.principal]
        operation = acl.operation.name
        if acl.resource_type == ResourceType.CLUSTER:
            held["cluster"].append(operation)
        else:
            kind = "topics" if acl.resource_type == Topic else "groups"
            held[kind].setdefault(acl.resource, []).append(operation)
    return {"super_users": super_users, "principals": rights}
