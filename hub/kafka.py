"""Kafka pieces the hub shares: client options, the idempotent producer, topics and their
retention policies, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import ConsumerRecord
from faststream.security import SASLScram512

from hub import tracing
from hub.delivery import Delivery
from hub.errors import ConfigurationFault, retry_transient
from hub.kafka_credentials import password
from hub.kafka_wire import raise_for
from hub.logging import get_logger
from hub.redaction import NoPersonalData, describe_error
from hub.settings import Settings
from hub.signing import SIGNATURE_HEADER, SigningKey
from schemas import CONTENT_TYPE, CloudEvent

log = get_logger(__name__)

Headers = list[tuple[str, bytes]]

RecordHeaders = list[tuple[str, bytes | None]]
"""The headers of a record read from Kafka: a header's value may be null."""

DLQ_PREFIX = "dlq."
"""Prefix of the headers a dead letter carries about its origin and failure."""

REDRIVE_COUNT = "dlq.redrive.count"
"""Header counting how often `hub dlq redrive` sent a message back to its origin topic."""

REDRIVE_LIMIT = 3
"""A dead letter redriven more often than this goes to quarantine: a loop guard."""

DEAD_LETTER_LIMIT = 1_000_000
"""Bytes of key, value and headers a dead letter may take. The producer refuses a record over
its max_request_size (1 MiB) and the broker one over message.max.bytes (1 MiB + 12), for good:
this leaves room for the record's and batch's framing. A longer value is truncated."""

TRUNCATED = "dlq.value.truncated"
"""Header of a dead letter whose value was cut to DEAD_LETTER_LIMIT; `dlq.value.size` and
`dlq.value.sha256` then name the original (whole in the agency's evidence log)."""

QUARANTINED = "dlq.quarantined"
"""Header of a dead letter sent to quarantine because it could not be dead-lettered: why."""


SASL_MECHANISM = "SCRAM-SHA-512"

KafkaOptions = dict[str, Any]
"""Keyword arguments of an aiokafka client: where the brokers are and how to log in. It holds
a password: pass it to a client, never to a log line or a message."""


def client_options(
    settings: Settings, principal: str, *, describe_only: bool = False
) -> KafkaOptions:
    """How every hub client connects to Kafka, as `principal` (see `hub.credentials`).

    `describe_only` leaves out the password and the TLS context, for a broker object that
    describes the hub and never connects (the AsyncAPI document's).
    """
    options: KafkaOptions = {"bootstrap_servers": settings.bootstrap}
    if settings.kafka_security_protocol == "plaintext":
        # Only by an explicit setting, for a trusted development cluster: no identity.
        return {**options, "security_protocol": "PLAINTEXT"}
    options |= {"security_protocol": "SASL_SSL", "sasl_mechanism": SASL_MECHANISM,
                "sasl_plain_username": principal}
    if describe_only:
        return options
    return options | {"sasl_plain_password": password(settings, principal),
                      "ssl_context": _ssl_context(settings.kafka_ca())}


def faststream_options(options: KafkaOptions) -> KafkaOptions:
    """Client options in the form a FastStream `KafkaBroker` takes them."""
    security = None
    if options["security_protocol"] == "SASL_SSL":
        security = SASLScram512(options["sasl_plain_username"],
                                options.get("sasl_plain_password", ""),
                                ssl_context=options.get("ssl_context"), use_ssl=True)
    return {"bootstrap_servers": options["bootstrap_servers"], "security": security}


def _ssl_context(ca_file: Path) -> Any:
    if not ca_file.is_file():
        raise FileNotFoundError(
            f"no Kafka CA certificate at {ca_file}: start the local stack (`hub stack up`) "
            "or set HUB_KAFKA_CA_FILE")
    # Verifies the broker's certificate chain and its host name (check_hostname).
    return create_ssl_context(cafile=str(ca_file))


async def check_login(settings: Settings, principal: str) -> None:
    """`ConfigurationFault` when Kafka refuses the principal's password; nothing when it logs
    in, or when no broker answers now (a client's start retries that).

    aiokafka's bootstrap logs a refused login and raises only "Unable to bootstrap", the
    error of a broker that is down, so a client retries a wrong password for ever; one
    connection of our own tells the two apart.
    """
    options = client_options(settings, principal)
    if options["security_protocol"] != "SASL_SSL":
        return
    host, port, _ = collect_hosts(settings.bootstrap, randomize=False)[0]
    login = {k: options[k] for k in ("security_protocol", "ssl_context", "sasl_mechanism",
                                      "sasl_plain_username", "sasl_plain_password")}
    try:
        conn = await create_conn(host, port, client_id="hub-login-check",
                                 request_timeout_ms=10_000, **login)
    except (SaslAuthenticationFailed, AuthenticationFailedError):
        raise ConfigurationFault(
            f"Kafka refused principal {principal!r}'s password, read from"
            f" {settings.kafka_password_file(principal)}: put the right one there (`hub init`"
            " registers the local stack's) or set HUB_KAFKA_PASSWORD_FILES") from None
    except (OSError, KafkaError, TimeoutError):
        return
    conn.close()


@contextlib.asynccontextmanager
async def protocol_client(settings: Settings, principal: str) -> AsyncIterator[AIOKafkaClient]:
    """A bootstrapped low-level client for the admin requests of `hub.kafka_wire`."""
    client = AIOKafkaClient(**client_options(settings, principal), client_id="hub-admin")
    await retry_transient("start kafka client", client.bootstrap)
    try:
        yield client
    finally:
        await client.close()


class Producer:
    """An idempotent producer (`acks=all`): Kafka drops the duplicates its own retries make."""

    def __init__(
        self, options: KafkaOptions, *, client_id: str, linger_ms: int = 0,
        max_request_size: int = 1024 * 1024,
    ) -> None:
        self.max_request_size = max_request_size
        self._producer = AIOKafkaProducer(
            **options,
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            max_request_size=max_request_size,
            request_timeout_ms=30_000,
        )

    def record_size(self, key: bytes | None, value: bytes, headers: Headers) -> int:
        """The bytes one record takes in a request, as the producer counts them against
        `max_request_size` (a larger one is refused before it is sent)."""
        return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))

    async def start(self) -> None:
        """Connect, retrying while the broker is not yet reachable."""
        await retry_transient("start kafka producer", self._producer.start)

    async def stop(self) -> None:
        """Flush what is buffered and disconnect."""
        await self._producer.stop()

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one message; the returned future resolves when Kafka has acknowledged it."""
        fut: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key, headers=list(headers or ())
        )
        return fut

    async def send_and_wait(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> Any:
        """Send one message and wait for Kafka's acknowledgement."""
        return await (await self.send(topic, key=key, value=value, headers=headers))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the consumer could not process, with why and where it came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: RecordHeaders
    reason: str
    error_class: str
    error_message: str
    event_id: str | None = None
    event_type: str | None = None

    @classmethod
    def of(cls, rec: ConsumerRecord, reason: str, exc: BaseException) -> DeadLetter:
        """A dead letter for a raw record that failed before it became an event."""
        return cls(
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            timestamp_ms=rec.timestamp,
            key=rec.key,
            value=rec.value or b"",
            headers=list(rec.headers or ()),
            reason=reason,
            error_class=type(exc).__name__,
            error_message=describe_error(exc),
        )

    @classmethod
    def of_delivery(cls, d: Delivery, reason: str, exc: BaseException) -> DeadLetter:
        """A dead letter for a decoded event its handler could not apply."""
        return cls(
            topic=d.topic,
            partition=d.partition,
            offset=d.offset,
            timestamp_ms=d.timestamp_ms,
            key=d.event.subject.encode(),
            # The exact bytes and every header, so the producer's signature still proves
            # the record when an operator redrives it.
            value=d.value or d.event.to_json(),
            headers=list(d.headers),
            reason=reason,
            error_class=type(exc).__name__,
            error_message=describe_error(exc),
            event_id=str(d.event.id),
            event_type=d.event.type,
        )

    @property
    def redrive_count(self) -> int:
        """How often this message was redriven before it failed again (0 if never)."""
        return redrive_count(self.headers)


def redrive_count(headers: RecordHeaders) -> int:
    """The `dlq.redrive.count` a record carries (0 if none). A mangled counter (null, not a
    short decimal number) counts as over the limit: it must not reopen the loop."""
    raw = next((v for k, v in headers if k == REDRIVE_COUNT), b"0")
    if raw is None or not 0 < len(raw) <= 9 or not raw.isdigit():
        return REDRIVE_LIMIT + 1
    return int(raw)


def quarantine_topic(dead_letter_topic: str) -> str:
    """Where a group's dead letters go once they were redriven more than REDRIVE_LIMIT times."""
    return f"{dead_letter_topic}.quarantine"


def dead_letter_destination(d: DeadLetter, dead_letter_topic: str) -> str:
    """The group's dead-letter topic, or its quarantine for a message that keeps failing."""
    if d.redrive_count > REDRIVE_LIMIT:
        return quarantine_topic(dead_letter_topic)
    return dead_letter_topic


def dead_letter_headers(d: DeadLetter, group_id: str, now: datetime) -> RecordHeaders:
    """The original headers plus the failure and origin, as `dlq.*` headers."""
    kept = [(k, v) for k, v in d.headers if not k.startswith(DLQ_PREFIX)]
    redrives = next((v for k, v in d.headers if k == REDRIVE_COUNT), None)
    extra = {
        "reason": d.reason,
        "error.class": d.error_class,
        "error.message": d.error_message[:2000],
        "origin.topic": d.topic,
        "origin.partition": str(d.partition),
        "origin.offset": str(d.offset),
        "origin.timestamp": str(d.timestamp_ms),
        "group": group_id,
        "time": now.isoformat(),
    }
    # `replace`: an error's text may hold a lone surrogate, which must not stop the letter.
    headers = kept + [(DLQ_PREFIX + k, v.encode(errors="replace")) for k, v in extra.items()]
    if any(k == REDRIVE_COUNT for k, _ in d.headers):
        headers.append((REDRIVE_COUNT, redrives))
    return headers


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """What is sent for a dead letter: where, and the key, value and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: RecordHeaders


class DeadLetterTooLarge(NoPersonalData, ValueError):
    """A dead letter whose key and headers alone exceed DEAD_LETTER_LIMIT."""


def dead_letter_record(
    d: DeadLetter, dead_letter_topic: str, group_id: str, now: datetime
) -> DeadLetterRecord:
    """The record a dead letter is sent as: every header, the value cut to fit the limit."""
    headers = dead_letter_headers(d, group_id, now)
    return DeadLetterRecord(dead_letter_destination(d, dead_letter_topic), d.key,
                            *_fit(d.key, d.value, headers))


def quarantine_record(
    d: DeadLetter, dead_letter_topic: str, group_id: str, now: datetime, exc: BaseException
) -> DeadLetterRecord:
    """The record for a dead letter that could not be built or sent: to quarantine, with
    why, the `dlq.*` headers only and no key (either may be what did not fit); its
    `dlq.origin.*` headers still name the original record."""
    bare = DeadLetter(d.topic, d.partition, d.offset, d.timestamp_ms, None, d.value, [],
                      d.reason, d.error_class, d.error_message, d.event_id, d.event_type)
    why = f"{type(exc).__name__}: {describe_error(exc)}"[:500].encode(errors="replace")
    headers = [*dead_letter_headers(bare, group_id, now), (QUARANTINED, why)]
    return DeadLetterRecord(quarantine_topic(dead_letter_topic), None,
                            *_fit(None, d.value, headers))


def _fit(
    key: bytes | None, value: bytes, headers: RecordHeaders
) -> tuple[bytes, RecordHeaders]:
    """The value and headers within DEAD_LETTER_LIMIT: the value truncated if need be, with
    its original size and SHA-256 in headers."""
    if _size(key, value, headers) <= DEAD_LETTER_LIMIT:
        return value, headers
    headers = [*headers, (TRUNCATED, b"true"), ("dlq.value.size", str(len(value)).encode()),
               ("dlq.value.sha256", hashlib.sha256(value).hexdigest().encode())]
    room = DEAD_LETTER_LIMIT - _size(key, b"", headers)
    if room < 0:
        raise DeadLetterTooLarge(f"key and headers take {DEAD_LETTER_LIMIT - room} bytes, over "
                                 f"the dead-letter limit of {DEAD_LETTER_LIMIT}")
    return value[:room], headers


def _size(key: bytes | None, value: bytes, headers: RecordHeaders) -> int:
    # Each header also costs its two length varints (at most 5 bytes each).
    return (len(key or b"") + len(value)
            + sum(len(k.encode()) + len(v or b"") + 10 for k, v in headers))


TopicPolicy = Literal["compacted", "retained", "dead-letters"]
"""How long Kafka keeps a topic's records (`topic_config`):

- `compacted`: the newest record of every key, for ever. Only for a topic whose every event
  carries its subject's full state (`Channel.compacted`: the permit events), so the newest
  event per permit rebuilds every view (`hub replay`).
- `retained`: every record for `topic_retention_ms`, then gone (outcomes, requests, heads).
- `dead-letters`: every record for `dead_letter_retention_ms`: they hold personal data.
"""

MANAGED_CONFIGS = frozenset({"min.insync.replicas", "message.timestamp.type", "cleanup.policy",
                             "retention.ms", "min.compaction.lag.ms"})
"""The topic configs the hub sets; any other one an operator set on a topic is left alone."""

_DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs' source of a value set on the topic itself (not a broker default)."""
_UNKNOWN_TOPIC = 3


def topic_config(settings: Settings, policy: TopicPolicy) -> dict[str, str]:
    """The configs `hub init` gives a topic of this policy, and brings an existing one to."""
    config = {
        "min.insync.replicas": str(settings.min_insync_replicas),
        # The broker stamps each record on append: a record's time is the hub's clock,
        # never a client's claim (a counter's scan time is checked against it).
        "message.timestamp.type": "LogAppendTime",
    }
    if policy == "compacted":
        # A superseded event stays at least the lag, so a live consumer's handlers (which
        # act on every event, not only the newest) read it before compaction removes it.
        return config | {"cleanup.policy": "compact",
                         "min.compaction.lag.ms": str(settings.compaction_lag_ms)}
    keep = (settings.dead_letter_retention_ms if policy == "dead-letters"
            else settings.topic_retention_ms)
    return config | {"cleanup.policy": "delete", "retention.ms": str(keep)}


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """A topic's configs as the broker reports them: every value in force, and which of
    them were set on the topic itself."""

    values: dict[str, str]
    dynamic: dict[str, str]

    def differs(self, wanted: Mapping[str, str]) -> list[str]:
        """The managed configs not as wanted: a value that differs, or a managed one set on
        the topic that its policy does not use (retention on a compacted topic)."""
        wrong = {k for k, v in wanted.items() if self.values.get(k) != v}
        wrong |= {k for k in self.dynamic if k in MANAGED_CONFIGS and k not in wanted}
        return sorted(wrong)

    def updated(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """The topic's whole set of own configs with the managed ones as wanted. AlterConfigs
        (the one aiokafka sends) replaces that whole set: the others are sent back as they
        are, so an operator's own setting survives `hub init`."""
        kept = {k: v for k, v in self.dynamic.items() if k not in MANAGED_CONFIGS}
        return kept | dict(wanted)


async def ensure_topics(
    settings: Settings, policies: Mapping[str, TopicPolicy], principal: str
) -> dict[str, list[str]]:
    """Create the topics that do not exist yet, and bring the configs of those that do to
    their policy, as `principal`; return the names `created` and `updated`."""
    wanted = {name: topic_config(settings, policy) for name, policy in policies.items()}
    admin = AIOKafkaAdminClient(**client_options(settings, principal), client_id="hub-admin")
    await retry_transient("start kafka admin", admin.start)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        new = [NewTopic(n, settings.partitions, settings.replication_factor,
                        topic_configs=wanted[n]) for n in missing]
        if new:
            # Another process may have created them between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            await _wait_for_metadata(admin, missing)
        present = await _describe_configs(admin, [n for n in wanted if n in existing])
        stale = {n: c for n, c in present.items() if c is not None and c.differs(wanted[n])}
        if stale:
            await _alter_configs(admin, {n: c.updated(wanted[n]) for n, c in stale.items()})
        log.info("topics ready", created=missing, updated=sorted(stale), total=len(wanted))
        return {"created": missing, "updated": sorted(stale)}
    finally:
        await admin.close()


async def topic_configs(
    settings: Settings, names: Iterable[str], principal: str
) -> dict[str, TopicConfig | None]:
    """Each topic's configs as the broker holds them (None: no such topic), read as
    `principal` (which needs DescribeConfigs on them)."""
    admin = AIOKafkaAdminClient(**client_options(settings, principal), client_id="hub-check")
    await retry_transient("start kafka admin", admin.start)
    try:
        return await _describe_configs(admin, list(names))
    finally:
        await admin.close()


async def _describe_configs(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, TopicConfig | None]:
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    found: dict[str, TopicConfig | None] = {}
    for response in await admin.describe_configs(resources):
        for code, message, _type, name, entries, *_ in response.resources:
            if code == _UNKNOWN_TOPIC:
                found[name] = None
                continue
            raise_for(code, message, f"describe the configs of {name}")
            values = {e[0]: e[1] for e in entries}
            dynamic = {e[0]: e[1] for e in entries if e[3] == _DYNAMIC_TOPIC_CONFIG}
            found[name] = TopicConfig(values, dynamic)
    return found


async def _alter_configs(admin: AIOKafkaAdminClient, configs: Mapping[str, dict[str, str]]
                         ) -> None:
    resources = [ConfigResource(ConfigResourceType.TOPIC, n, c) for n, c in configs.items()]
    for response in await admin.alter_configs(resources):
        for code, message, _type, name, *_ in response.resources:
            raise_for(code, message, f"alter the configs of {name}")


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    for _ in range(100):
        if set(names) <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topics not visible after creation: {names}")


async def missing_topics(settings: Settings, names: Iterable[str], principal: str) -> list[str]:
    """The topics of `names` that `principal` cannot see: absent, or not granted to it."""
    admin = AIOKafkaAdminClient(**client_options(settings, principal), client_id="hub-check")
    await retry_transient("start kafka admin", admin.start)
    try:
        # Metadata lists only the topics the principal may describe.
        visible = set(await admin.list_topics())
    finally:
        await admin.close()
    return [n for n in names if n not in visible]


@contextlib.asynccontextmanager
async def open_producer(
    settings: Settings, client_id: str, *, principal: str, linger_ms: int = 0
) -> AsyncIterator[Producer]:
    """A started idempotent producer acting as `principal`, stopped (and flushed) on exit."""
    p = Producer(client_options(settings, principal), client_id=client_id, linger_ms=linger_ms,
                 max_request_size=settings.kafka_max_request_bytes)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def publish(
    settings: Settings, topic: str, events: Iterable[CloudEvent[Any]], *, signer: SigningKey,
    client_id: str | None = None,
) -> int:
    """Publish events to a topic (prefixed here) as a front door does: keyed by subject, in
    structured CloudEvents mode, signed; wait for every acknowledgement, return how many."""
    # The signer is the principal too: a front door logs in and signs as itself.
    async with open_producer(settings, client_id or signer.signer, principal=signer.signer,
                             linger_ms=5) as prod:
        futures = []
        for e in events:
            if e.traceparent is None:
                # A submission starts a trace (or joins the caller's) that its outcomes carry.
                with tracing.span(f"submit {e.type}", kind=tracing.SpanKind.PRODUCER,
                                  attributes={"cloudevents.event_id": str(e.id),
                                              "cloudevents.event_type": e.type}) as trace:
                    e = e.model_copy(update=trace.as_event_fields())
            value = e.to_json()
            headers = [("content-type", CONTENT_TYPE.encode()),
                       (SIGNATURE_HEADER, signer.sign(value))]
            futures.append(await prod.send(settings.topic(topic), key=e.subject.encode(),
                                           value=value, headers=headers))
        await asyncio.gather(*futures)
    return len(futures)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The partition numbers of a topic, refreshing metadata if the client has none yet."""
    known = consumer.partitions_for_topic(topic)
    if not known:
        await consumer._client.force_metadata_update()
        known = consumer.partitions_for_topic(topic)
    if not known:
        raise LookupError(f"topic {topic!r} does not exist")
    return sorted(known)


async def end_offsets(
    settings: Settings, topic_names: Iterable[str], principal: str
) -> dict[TopicPartition, int]:
    """The log-end offset of every partition of these topics, read as `principal`."""
    consumer = AIOKafkaConsumer(**client_options(settings, principal), enable_auto_commit=False)
    await retry_transient("start offsets reader", consumer.start)
    try:
        tps = [TopicPartition(t, p) for t in topic_names for p in await partitions_of(consumer, t)]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()
