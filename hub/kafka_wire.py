"""The admin requests aiokafka's admin client does not offer: ACLs and SCRAM credentials.

aiokafka 0.14 ships the wire structs of DescribeAcls, CreateAcls and DeleteAcls (v0, v1) but
no admin method for them, and nothing for the SCRAM credential APIs (KIP-554). The structs
of those two are written here from Kafka's message definitions
(clients/src/main/resources/common/message/{Describe,Alter}UserScramCredentials*.json, v0,
flexible). Every request goes through one `aiokafka.client.AIOKafkaClient`, built from
`hub.kafka.client_options`, to any broker (brokers forward what the controller decides).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    for_code,
)
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

__all__ = [
    "CLUSTER",
    "Acl",
    "Operation",
    "ResourceType",
    "ScramUpsert",
    "alter_scram",
    "create_acls",
    "delete_acls",
    "describe_acls",
    "describe_scram_users",
    "raise_for",
    "wait_until",
]

CLUSTER = "kafka-cluster"
"""The one name of the cluster resource."""

_ANY = 1
_LITERAL = 3
_ALLOW = 3
SCRAM_SHA_512 = 2
"""The mechanism's code in the SCRAM credential APIs (ScramMechanism.SCRAM_SHA_512)."""


class ResourceType(enum.IntEnum):
    """Kafka's resource types (org.apache.kafka.common.resource.ResourceType) the hub uses."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(enum.IntEnum):
    """Kafka's ACL operations (org.apache.kafka.common.acl.AclOperation) the hub grants."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule on a literal resource, for every host: the only kind the hub writes."""

    principal: str
    """`User:<name>`."""
    resource_type: ResourceType
    resource: str
    operation: Operation

    def as_tuple(self) -> tuple[str, str, str, str]:
        """(principal, resource type, resource, operation) by name, for JSON and messages."""
        return (self.principal, self.resource_type.name, self.resource, self.operation.name)


@dataclass(frozen=True)
class ScramUpsert:
    """One user's SCRAM-SHA-512 credential, already salted (the password never travels)."""

    user: str
    iterations: int
    salt: bytes
    salted_password: bytes


# ACLs ----------------------------------------------------------------------------------


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def build(self, request_struct_class: type[Any]) -> Any:
        # Every literal ALLOW rule on any resource, for any principal and host.
        return request_struct_class(_ANY, None, _LITERAL, None, None, _ANY, _ALLOW)


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 30

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class([
            (a.resource_type, a.resource, _LITERAL, a.principal, "*", a.operation, _ALLOW)
            for a in self._acls
        ])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class([
            (a.resource_type, a.resource, _LITERAL, a.principal, "*", a.operation, _ALLOW)
            for a in self._acls
        ])


async def describe_acls(client: AIOKafkaClient, node_id: int | None = None) -> set[Acl]:
    """Every literal ALLOW rule for all hosts on topics, groups and the cluster, as one
    broker (`node_id`; any one if None) holds them."""
    response = await _send(client, _DescribeAcls(), node_id)
    raise_for(response.error_code, response.error_message, "describe ACLs")
    found: set[Acl] = set()
    for resource_type, name, _pattern, acls in response.resources:
        if resource_type not in ResourceType._value2member_map_:
            continue
        for principal, host, operation, _permission in acls:
            if host == "*" and operation in Operation._value2member_map_:
                found.add(Acl(principal, ResourceType(resource_type), name,
                              Operation(operation)))
    return found


async def create_acls(client: AIOKafkaClient, acls: list[Acl]) -> None:
    """Create these ALLOW rules (an existing one is left as it is)."""
    if not acls:
        return
    response = await _send(client, _CreateAcls(acls))
    for acl, (code, message) in zip(acls, response.creation_responses, strict=True):
        raise_for(code, message, f"create ACL {acl.as_tuple()}")


async def delete_acls(client: AIOKafkaClient, acls: list[Acl]) -> None:
    """Delete these ALLOW rules (exact matches only)."""
    if not acls:
        return
    response = await _send(client, _DeleteAcls(acls))
    for acl, (code, message, _matching) in zip(acls, response.filter_responses, strict=True):
        raise_for(code, message, f"delete ACL {acl.as_tuple()}")


# SCRAM credentials -----------------------------------------------------------------------


class _DescribeScramResponse(Response):  # type: ignore[misc]
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        ("results", CompactArray(
            ("user", CompactString("utf-8")),
            ("error_code", Int16),
            ("error_message", CompactString("utf-8")),
            ("credential_infos", CompactArray(
                ("mechanism", Int8),
                ("iterations", Int32),
                ("tags", TaggedFields),
            )),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class _DescribeScramStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = _DescribeScramResponse
    SCHEMA = Schema(
        ("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _DescribeScram(Request[_DescribeScramStruct]):  # type: ignore[misc]
    API_KEY = 50

    def build(self, request_struct_class: type[Any]) -> Any:
        # A null user list asks for every user that has a credential.
        return request_struct_class(None, {})


class _AlterScramResponse(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(
            ("user", CompactString("utf-8")),
            ("error_code", Int16),
            ("error_message", CompactString("utf-8")),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class _AlterScramStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        ("deletions", CompactArray(
            ("name", CompactString("utf-8")),
            ("mechanism", Int8),
            ("tags", TaggedFields),
        )),
        ("upsertions", CompactArray(
            ("name", CompactString("utf-8")),
            ("mechanism", Int8),
            ("iterations", Int32),
            ("salt", CompactBytes),
            ("salted_password", CompactBytes),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class _AlterScram(Request[_AlterScramStruct]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, upserts: list[ScramUpsert]) -> None:
        self._upserts = upserts

    def build(self, request_struct_class: type[Any]) -> Any:
        rows: list[tuple[Any, ...]] = [
            (u.user, SCRAM_SHA_512, u.iterations, u.salt, u.salted_password, {})
            for u in self._upserts]
        return request_struct_class([], rows, {})


async def describe_scram_users(client: AIOKafkaClient, node_id: int | None = None) -> set[str]:
    """The users that have a SCRAM-SHA-512 credential, as one broker (`node_id`; any one if
    None) holds them."""
    response = await _send(client, _DescribeScram(), node_id)
    raise_for(response.error_code, response.error_message, "describe SCRAM users")
    return {user for user, code, _message, infos, _tags in response.results
            if code == 0 and any(m == SCRAM_SHA_512 for m, _i, _t in infos)}


async def alter_scram(client: AIOKafkaClient, upserts: list[ScramUpsert]) -> None:
    """Create or replace these users' SCRAM-SHA-512 credentials."""
    if not upserts:
        return
    response = await _send(client, _AlterScram(upserts))
    for user, code, message, _tags in response.results:
        # The message is the broker's; it names the user, never the credential.
        raise_for(code, message, f"set the SCRAM credential of {user!r}")


# Plumbing -----------------------------------------------------------------------------------

PROPAGATION_S = 30
"""How long a change of users or ACLs may take to reach the broker from the controller."""


async def wait_until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; TimeoutError naming `what` after PROPAGATION_S."""
    try:
        async with asyncio.timeout(PROPAGATION_S):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"timed out after {PROPAGATION_S} s waiting for {what}") from None



def broker_ids(client: AIOKafkaClient) -> list[int]:
    """Every broker the client's metadata knows."""
    return sorted(b.nodeId for b in client.cluster.brokers())


async def on_every_broker(
    client: AIOKafkaClient, holds: Callable[[int], Awaitable[bool]]
) -> bool:
    """Whether `holds` is true of every broker that answers (one that cannot be reached
    now serves no client either, and is left out); refreshes the broker list first."""
    await client.force_metadata_update()
    for node in broker_ids(client):
        try:
            if not await holds(node):
                return False
        except (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError):
            continue
    return True


async def _send(client: AIOKafkaClient, request: Any, node_id: int | None = None) -> Any:
    return await client.send(client.get_random_node() if node_id is None else node_id, request)


def raise_for(code: int, message: str | None, what: str) -> None:
    """Raise Kafka's error of a response's code (0: fine), saying what was refused."""
    if code:
        error = for_code(code)
        raise error(f"could not {what}: {message or error.__name__}")
