"""The hub's AsyncAPI 3.0 document, generated from the agencies' declarations:
`python -m hub.ops.asyncapi [--check]`.

A FastStream `KafkaBroker` that is never started describes the whole hub, from the registry
of installed agencies (nothing is built: no key, no connection):

- one subscriber per consumer group and topic, from each agency's declaration (its group
  id, the topics it reads, and the event types it accepts from that topic);
- one publisher per topic an agency owns: its outcomes (for the authority, the permit
  lifecycle), its front doors' requests, its officers' decisions, and each group's dead
  letters.

FastStream renders the channels, operations, messages and Kafka channel bindings; `_enrich`
adds what FastStream 0.7 leaves out: the Kafka operation binding with each subscriber's
group id, the message key (the CloudEvent subject), the CloudEvents content type and the
dead-letter headers, and drops the `correlation_id` header FastStream assumes and the hub
does not send. The document is JSON (YAML would need PyYAML, which the hub does not use
otherwise); `tests/contract/test_asyncapi.py` fails when `docs/asyncapi.json` is out of date.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import Field

from hub.kafka import client_options, faststream_options
from hub.kafka_credentials import OPS
from hub.ops._documents import write_or_check
from hub.registry import Registry, installed
from hub.settings import Settings
from schemas.codec import DecodeFailure
from schemas.envelope import CONTENT_TYPE, CloudEvent

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
BINDING_VERSION = "0.4.0"  # the Kafka bindings version FastStream writes on channels


DEAD_LETTER_HEADERS: dict[str, str] = {
    "dlq.reason": "why: " + ", ".join([*(f.value for f in DecodeFailure), "key_missing",
                                        "key_mismatch", "sequence_jump", "handler_error"]),
    "dlq.error.class": "the exception's class",
    "dlq.error.message": "the exception's message (at most 2000 characters)",
    "dlq.origin.topic": "where the message was read",
    "dlq.origin.partition": "its partition",
    "dlq.origin.offset": "its offset",
    "dlq.origin.timestamp": "its Kafka timestamp, ms since the epoch",
    "dlq.group": "the consumer group that gave up on it",
    "dlq.time": "when, ISO 8601",
    "dlq.value.truncated": "present (`true`) when the value was cut to fit the topic",
    "dlq.value.size": "with dlq.value.truncated: the original value's size in bytes",
    "dlq.value.sha256": "with dlq.value.truncated: the original value's SHA-256, hex",
    "dlq.quarantined": "on the quarantine topic: why the dead letter could not be sent",
}
"""What `hub.kafka.dead_letter_headers` adds to the original headers."""


@dataclass(frozen=True)
class _Described:
    broker: KafkaBroker
    groups: dict[str, str]  # subscriber title → group id
    dead_letters: frozenset[str]  # publisher titles of dead-letter topics


def describe(settings: Settings, registry: Registry | None = None) -> _Described:
    """The broker that describes the hub under these settings (never connected)."""
    registry = registry or installed()
    broker = KafkaBroker(
        # Never connected: the options describe the security scheme, without a password.
        **faststream_options(client_options(settings, OPS, describe_only=True)),
        description="The local stack's broker (`hub stack up`); HUB_KAFKA_BOOTSTRAP names a "
        "real cluster. Clients log in with SCRAM-SHA-512 over TLS, one principal per process, "
        "and hold only the rights of docs/acl-matrix.json. Every message is a CloudEvents 1.0 "
        "JSON event in structured mode.",
    )
    channels = registry.channels()
    carried = {settings.topic(c.topic): c.event_types for c in channels}
    groups: dict[str, str] = {}
    dead_letters: set[str] = set()
    for agency in registry.consumers():
        group, dead = agency.group_id(settings), agency.dead_letter_topic(settings)
        for topic in (settings.topic(t) for t in agency.reads):
            types = tuple(t for t in agency.accepts if t in carried.get(topic, agency.accepts))
            title = f"{topic}:{group}"
            groups[title] = group
            broker.subscriber(
                topic, group_id=group, title=title,
                description=f"The consumer group `{group}` ({agency.title}) accepts "
                f"{', '.join(t.__name__ for t in types)}; what it cannot process goes to "
                f"`{dead}`.",
            )(_receiver(types))
        title = f"{dead}:publish"
        dead_letters.add(title)
        broker.publisher(
            dead, title=title, schema=bytes,
            description=f"Messages the `{group}` group could not process: the "
            "original key, value and headers, plus `dlq.*` headers saying why and where from.",
        )
    for p in channels:
        sources = sorted({t.SOURCE for t in p.event_types})
        broker.publisher(
            settings.topic(p.topic), title=f"{settings.topic(p.topic)}:publish",
            schema=_union(p.event_types),
            description=f"{p.description} Sources: {', '.join(sources)}.",
        )
    return _Described(broker, groups, frozenset(dead_letters))


def _union(types: Sequence[type[CloudEvent[Any]]]) -> Any:
    if len(types) == 1:
        return types[0]
    return Annotated[Union[tuple(types)], Field(discriminator="type")]  # noqa: UP007


def _receiver(types: Sequence[type[CloudEvent[Any]]]) -> Callable[..., Coroutine[Any, Any, None]]:
    async def receive(event: Any) -> None:  # describes the message; never called
        raise NotImplementedError

    receive.__annotations__ = {"event": _union(types), "return": None}
    return receive


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as JSON data."""
    settings = Settings(
        topic_prefix="", kafka_bootstrap=None,
        kafka_port=Settings.model_fields["kafka_port"].default,
        kafka_security_protocol="sasl_ssl",
    )
    described = describe(settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = AsyncAPI(
            described.broker, title="Permit Hub", version=_version(), schema_version="3.0.0",
            description="Foreigner's work permits between the work-permit authority, the "
            "Social Security Card service, public security and the social insurance agency.",
        ).to_specification()
    overwritten = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if overwritten:  # FastStream keeps one of two same-named channels: say so, never lose one
        raise RuntimeError("; ".join(overwritten))
    doc: dict[str, Any] = spec.to_jsonable()
    _enrich(doc, described)
    return doc


def _version() -> str:
    try:
        return metadata.version("permit-hub")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _enrich(doc: dict[str, Any], described: _Described) -> None:
    for key, operation in doc.get("operations", {}).items():
        group = described.groups.get(key)
        if operation.get("action") == "receive" and group is not None:
            operation["bindings"] = {"kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": BINDING_VERSION,
            }}
    dead = {f"{t}:Message" for t in described.dead_letters}
    for name, message in doc.get("components", {}).get("messages", {}).items():
        message.pop("correlationId", None)
        if name in dead:
            key = "the original message's key"
            message["contentType"] = "application/octet-stream"
            message["headers"] = _headers(DEAD_LETTER_HEADERS)
        else:
            key = "the CloudEvent's subject (the permit number, or the request's subject)"
            message["contentType"] = CONTENT_TYPE
            message["headers"] = _headers({"content-type": CONTENT_TYPE}, const=True)
        message["bindings"] = {"kafka": {"key": {"type": "string", "description": key},
                                         "bindingVersion": BINDING_VERSION}}


def _headers(headers: dict[str, str], *, const: bool = False) -> dict[str, Any]:
    properties = {k: {"type": "string", "const": v} if const else {"type": "string",
                                                                      "description": v}
                  for k, v in headers.items()}
    return {"type": "object", "properties": properties}


def render() -> str:
    """The document as committed text."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/asyncapi.json, or with --check fail if it is out of date."""
    return write_or_check(DOCUMENT, render, module="hub.ops.asyncapi", doc=__doc__, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
