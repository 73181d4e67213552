"""Kafka's authentication and the ACL matrix, on the real broker.

Every principal of the hub tries every topic and group operation the hub uses (produce,
fetch, describe a topic; commit and read a group's offsets), and exactly what the matrix
grants (`hub.acl.matrix`, applied by `hub init`) succeeds: everything else is refused with
an authorization error. kcat (librdkafka) logs in over SASL_SSL as one more client. Clients
without credentials, or over PLAINTEXT, get nothing at all.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import OffsetAndMetadata

from hub import acl
from hub.bootstrap import init_kafka_access
from hub.kafka import client_options, protocol_client
from hub.kafka_credentials import ADMIN, OPS, user
from hub.kafka_wire import (
    Acl,
    Operation,
    ResourceType,
    create_acls,
    delete_acls,
    describe_acls,
    wait_until,
)
from hub.registry import installed
from hub.settings import Settings
from schemas import topics
from tests.integration.stack_fixtures import kcat_login

pytestmark = pytest.mark.integration

Read, Write, Describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
DENIED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError)
TIMEOUT_MS = 8000


@dataclass(frozen=True)
class Matrix:
    """What the broker should allow under one test's settings."""

    acls: frozenset[Acl]

    def allows(self, principal: str, kind: ResourceType, name: str, op: Operation) -> bool:
        """Whether `principal` may do `op` on the resource (Read and Write imply Describe)."""
        if principal == ADMIN:
            return True  # a super user
        held = {a.operation for a in self.acls
                if (a.principal, a.resource_type, a.resource) == (user(principal), kind, name)}
        return op in held or (op == Describe and bool(held & {Read, Write}))


def _principals() -> list[str]:
    return acl.principals(installed())


def _matrix(settings: Settings) -> Matrix:
    return Matrix(frozenset(acl.matrix(settings, installed())))


def _groups(settings: Settings) -> list[str]:
    return [a.group_id(settings) for a in installed().consumers()]


async def _fill(settings: Settings, names: list[str]) -> None:
    """One record in partition 0 of each topic (as admin), so an allowed fetch of that
    partition returns at once."""
    producer = AIOKafkaProducer(**client_options(settings, ADMIN))
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(t, b"x", key=b"k", partition=0)
                               for t in names])
    finally:
        await producer.stop()


async def _outcome(attempt: Callable[[], Awaitable[Any]]) -> bool:
    """True if the operation succeeded, False if refused for want of rights; retried while
    the broker answers with a retriable error (the offsets topic of a fresh cluster is made
    on the first coordinator lookup)."""
    for _ in range(50):
        try:
            await attempt()
        except DENIED:
            return False
        except KafkaError as exc:
            if not exc.retriable:
                raise
            await asyncio.sleep(0.2)
        else:
            return True
    raise AssertionError("still retriable errors after 10 s")


@asynccontextmanager
async def _started(client: Any, stop: str = "stop") -> Any:
    await client.start()
    try:
        yield client
    finally:
        await getattr(client, stop)()


async def _produce(settings: Settings, principal: str, names: list[str]) -> dict[str, bool]:
    # A producer per topic: a refused batch must not leave the next send in doubt.
    return {t: await _outcome(partial(_produce_one, settings, principal, t)) for t in names}


async def _produce_one(settings: Settings, principal: str, topic: str) -> None:
    producer = AIOKafkaProducer(**client_options(settings, principal),
                                request_timeout_ms=TIMEOUT_MS, enable_idempotence=True)
    async with _started(producer):
        await producer.send_and_wait(topic, b"probe", key=b"k", partition=0)


async def _fetch(settings: Settings, principal: str, names: list[str]) -> dict[str, bool]:
    return {t: await _outcome(partial(_fetch_one, settings, principal, t)) for t in names}


async def _fetch_one(settings: Settings, principal: str, topic: str) -> None:
    """Subscribe without a group, as `hub dlq` and `hub replay` read, until a record comes."""
    reader = AIOKafkaConsumer(topic, **client_options(settings, principal),
                              enable_auto_commit=False, auto_offset_reset="earliest",
                              request_timeout_ms=TIMEOUT_MS)
    try:
        await reader.start()
        async with asyncio.timeout(TIMEOUT_MS / 1000):
            while not await reader.getmany(timeout_ms=500):
                pass
    finally:
        await reader.stop()


async def _describe(settings: Settings, principal: str, names: list[str]) -> dict[str, bool]:
    admin = AIOKafkaAdminClient(**client_options(settings, principal),
                                request_timeout_ms=TIMEOUT_MS)
    async with _started(admin, "close"):
        described = await admin.describe_topics(names)
    codes = {t["topic"]: t["error_code"] for t in described}
    assert set(codes.values()) <= {0, TopicAuthorizationFailedError.errno}, codes
    return {t: codes[t] == 0 for t in names}


async def _group_offsets(settings: Settings, principal: str, groups: list[str]) -> dict[str, bool]:
    admin = AIOKafkaAdminClient(**client_options(settings, principal),
                                request_timeout_ms=TIMEOUT_MS)
    async with _started(admin, "close"):
        return {g: await _outcome(partial(admin.list_consumer_group_offsets, g))
                for g in groups}


async def _commit(settings: Settings, principal: str, group: str, topic: str) -> bool:
    """Commit an offset for `group` on `topic`: what a group member does after a batch."""
    member = AIOKafkaConsumer(**client_options(settings, principal), group_id=group,
                              enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS)
    async with _started(member):
        tp = TopicPartition(topic, 0)
        member.assign([tp])
        return await _outcome(lambda: member.commit({tp: OffsetAndMetadata(0, "")}))


def _readable(matrix: Matrix, principal: str, names: list[str]) -> str:
    """A topic the principal may read (the first topic when it may read none)."""
    return next((t for t in names if matrix.allows(principal, ResourceType.TOPIC, t, Read)),
                names[0])


async def test_each_principal_holds_exactly_its_rights(hub_settings: Settings) -> None:
    """For every principal, topic and group: produce, fetch and describe a topic; read and
    commit a group's offsets. The broker allows exactly the matrix and refuses the rest with
    an authorization error."""
    settings, matrix = hub_settings, _matrix(hub_settings)
    names, groups = installed().topics(settings), _groups(settings)
    await _fill(settings, names)
    topic_ops = {Write: _produce, Read: _fetch, Describe: _describe}
    wrong: list[str] = []
    for principal in _principals():
        for op, attempt in topic_ops.items():
            for topic, ok in (await attempt(settings, principal, names)).items():
                if ok != matrix.allows(principal, ResourceType.TOPIC, topic, op):
                    wrong.append(f"{principal} {op.name} {topic}: {'allowed' if ok else 'refused'}")
        for group, ok in (await _group_offsets(settings, principal, groups)).items():
            if ok != matrix.allows(principal, ResourceType.GROUP, group, Describe):
                wrong.append(f"{principal} DESCRIBE group {group}: {ok}")
        topic = _readable(matrix, principal, names)
        for group in groups:
            ok = await _commit(settings, principal, group, topic)
            expected = (matrix.allows(principal, ResourceType.GROUP, group, Read)
                        and matrix.allows(principal, ResourceType.TOPIC, topic, Read))
            if ok != expected:
                wrong.append(f"{principal} commit {group} on {topic}: {ok}")
    assert wrong == []


def _kcat_ok(kcat: str, *args: str) -> tuple[bool, str]:
    done = subprocess.run([kcat, *args], capture_output=True, text=True, timeout=60, check=False,
                          input="probe\n")
    return done.returncode == 0 and "authorization failed" not in done.stderr.lower(), done.stderr


async def test_kcat_over_sasl_ssl_meets_the_same_matrix(
    hub_settings: Settings, kcat: str
) -> None:
    """kcat logs in as each principal: it may produce to the card's permit topic and read
    the card group's dead letters exactly when the matrix says so."""
    settings, matrix = hub_settings, _matrix(hub_settings)
    permit_topic = settings.topic(topics.audience_topic(topics.PERMIT_EVENTS, "card"))
    dead = installed().consumers()[0].dead_letter_topic(settings)
    await _fill(settings, [dead])
    wrong = []
    for principal in _principals():
        login = kcat_login(settings, principal)
        wrote, err = await asyncio.to_thread(_kcat_ok, kcat, "-P", *login, "-t", permit_topic,
                                             "-k", "probe")
        if wrote != matrix.allows(principal, ResourceType.TOPIC, permit_topic, Write):
            wrong.append(f"{principal} produce {permit_topic}: {wrote} {err[-300:]}")
        read, err = await asyncio.to_thread(_kcat_ok, kcat, "-C", *login, "-t", dead,
                                            "-o", "beginning", "-e", "-q")
        if read != matrix.allows(principal, ResourceType.TOPIC, dead, Read):
            wrong.append(f"{principal} consume {dead}: {read} {err[-300:]}")
    assert wrong == []


def _plain_options(settings: Settings) -> Iterator[tuple[str, dict[str, Any]]]:
    # The admin's options: its credential exists from the first start, before any `hub init`.
    valid = client_options(settings, ADMIN)
    yield "PLAINTEXT", {"security_protocol": "PLAINTEXT"}
    yield "SSL without SASL", {"security_protocol": "SSL", "ssl_context": valid["ssl_context"]}
    yield "a wrong password", {**valid, "sasl_plain_password": "wrong"}
    yield "an unknown user", {**valid, "sasl_plain_username": "nobody"}


async def test_clients_without_valid_credentials_get_nothing(
    stack_settings: Settings, kcat: str
) -> None:
    """A plain aiokafka client, one over TLS without SASL, one with a wrong password or user,
    and kcat without credentials cannot even read the cluster's metadata."""
    for what, options in _plain_options(stack_settings):
        admin = AIOKafkaAdminClient(**{**options, "bootstrap_servers": stack_settings.bootstrap},
                                    request_timeout_ms=3000)
        with pytest.raises(KafkaConnectionError):
            await admin.start()
        await admin.close()
        assert what
    done = await asyncio.to_thread(
        subprocess.run, [kcat, "-b", stack_settings.bootstrap, "-L", "-m", "5"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "Metadata for" not in done.stdout


async def test_hub_init_removes_the_hubs_rights_that_left_the_matrix(
    hub_settings: Settings,
) -> None:
    """A right under the hub's prefix that the matrix does not hold (an agency that stopped
    reading a topic) is deleted by `hub init`; one outside the prefix is not the hub's."""
    settings = hub_settings
    stale = Acl(user(OPS), ResourceType.GROUP, settings.topic("gone-group"), Read)
    foreign = Acl(user(OPS), ResourceType.GROUP, f"other-{settings.topic_prefix}group", Read)
    async with protocol_client(settings, ADMIN) as client:
        await create_acls(client, [stale, foreign])

        async def created() -> bool:
            return {stale, foreign} <= await describe_acls(client)

        await wait_until(created, "the planted rules")
        await init_kafka_access(settings)
        present = await describe_acls(client)
        assert stale not in present
        assert foreign in present
        assert set(acl.matrix(settings, installed())) <= present
        await delete_acls(client, [foreign])
