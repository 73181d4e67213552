"""An agency declares itself: what it reads and publishes, its view, its schema, its needs.

One `Agency` per agency package, found by the registry through the `permit_hub.agencies`
entry-point group. Declaring is separate from building: a declaration holds names, types
and functions, so reading it creates nothing (no key, no connection, no file). The
composition root calls `build` when it assembles the agency's consumer, and only then.

The runtime sees an agency only through this type; it never imports an agency package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pydantic_core
import typer
from pydantic_settings import BaseSettings

from hub.clock import Calendar
from hub.consumer import ConsumerSpec
from hub.delivery import BatchHandler
from hub.kafka import TopicPolicy, quarantine_topic
from hub.kafka_credentials import desk, front_door
from hub.projection import ViewTable
from hub.retention import Retention
from hub.settings import Settings
from hub.signing import TokenKey, Verifier
from schemas import CloudEvent, Codec, topics
from schemas.audiences import data_paths, narrow, project
from schemas.evidence import EvidenceHeadPublished, heads_topic
from schemas.permits import PermitRecord

RowFunction = Callable[[Any], tuple[Any, ...] | None]
"""Turns a permit event into the view's row (None: the event leaves the view unchanged)."""

Reads = Mapping[str, str]
"""JSON path → the type a consumer reads there (see `schemas.expectations`)."""


@dataclass(frozen=True)
class Channel:
    """A topic an agency owns: the event types on it, and what it is for."""

    topic: str
    """The topic's name before the settings' prefix."""
    event_types: tuple[type[CloudEvent[Any]], ...]
    description: str
    compacted: bool = False
    """Whether every event on it carries its subject's full state, so that the newest event
    per key (the subject) rebuilds every view: Kafka then keeps that one for ever and drops
    the superseded ones (`hub.kafka.TopicPolicy`). Otherwise records expire by age."""
    per_audience: bool = False
    """Whether each agency that reads it receives it on a topic of its own
    (`topics.audience_topic`), each event cut down to the paths that agency's expectations
    read (`schemas.audiences`): the channel's topic is then only the name the publisher's
    outbox writes to, and no Kafka topic. For what carries personal data more agencies
    than one read, each needing a different part (docs/privacy.md §2)."""
    front_door_reads: bool = False
    """With `per_audience`: the channel's own topic still carries every event in full, for
    the agency's front door alone (`<agency>-front-door`, no group) — the systems that
    submitted the requests the events answer, e.g. the e-SSC app's gateway that hands a
    holder their e-card and its QR token."""


@dataclass(frozen=True)
class Audience:
    """One agency reading a channel published per audience: its topic, and per event type
    the paths below `data` it receives (from its expectations)."""

    agency: str
    topic: str
    """The topic it reads, before the settings' prefix."""
    paths: Mapping[str, frozenset[str]]
    """Per event type (the CloudEvents `type`), the paths below `data` it receives; a type
    it declares no expectations for is not sent to it."""

    def project(self, value: bytes) -> bytes | None:
        """An outbox value as this audience receives it: None for an event type it does not
        read (it is not sent one); a value that is no JSON event goes unchanged (its readers
        dead-letter it, as they would have)."""
        document = _event_document(value)
        return value if document is None else self.cut(document)

    def cut(self, document: dict[str, Any]) -> bytes | None:
        """A parsed event as this audience receives it (None: a type it does not read)."""
        paths = self.paths.get(document["type"])
        return None if paths is None else pydantic_core.to_json(project(document, paths))


@dataclass(frozen=True)
class Fanout:
    """Where the rows of one outbox topic published per audience go (topics prefixed): each
    audience's topic with its cut of the row, and, when the channel's front door reads it in
    full, the channel's own topic with the row unchanged. Each row is parsed once, however
    many audiences it goes to (the relay's hot path)."""

    full: str | None
    audiences: tuple[tuple[str, Audience], ...]

    def __call__(self, value: bytes) -> list[tuple[str, bytes]]:
        """The records one outbox value becomes, as (topic, value), in the audiences' order."""
        copies = [(self.full, value)] if self.full is not None else []
        document = _event_document(value)
        for topic, audience in self.audiences:
            cut = value if document is None else audience.cut(document)
            if cut is not None:
                copies.append((topic, cut))
        return copies


def _event_document(value: bytes) -> dict[str, Any] | None:
    """The parsed event, or None for a value that is no JSON object with a `type`."""
    try:
        document = pydantic_core.from_json(value)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        return None
    return document


@dataclass(frozen=True)
class PermitView:
    """The agency's synchronized view of the permits: its table and how an event becomes a row.

    `hub replay` rebuilds it, `hub reconcile` compares it with the authority, both through
    these fields alone. A row that needs the agency's secrets (social insurance keeps its
    holders by keyed person key) is made by a function `bind` builds from the settings, when
    the consumer or the replay is assembled, never at declaration.
    """

    table: ViewTable
    row: RowFunction | None = None
    bind: Callable[[Settings], RowFunction] | None = None

    def __post_init__(self) -> None:
        if (self.row is None) == (self.bind is None):
            raise ValueError(f"permit view {self.table.name}: give a row function or a bind")

    def row_for(self, settings: Settings) -> RowFunction:
        """The row function under these settings (loading the secrets it needs now)."""
        if self.bind is not None:
            return self.bind(settings)
        assert self.row is not None
        return self.row


class PermitRecords(Protocol):
    """The permits as their authority holds them: the truth every view is compared with."""

    async def get(self, permit_no: str) -> tuple[PermitRecord, int] | None:
        """One permit's record and sequence, if it exists."""

    async def all(self) -> dict[str, tuple[PermitRecord, int]]:
        """Every permit by number, with its sequence."""


Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]
"""One permit's row in a permit view, by permit number (None: not held)."""


@dataclass(frozen=True)
class CommandContext:
    """What the composition root gives an agency's operator commands: the agencies' names
    (for choices and completion) and read access to any agency's permit view."""

    agencies: tuple[str, ...]
    """Agencies that keep a permit view."""
    permit_lookup: Callable[[Settings, str], AbstractAsyncContextManager[Lookup]]
    """Opens one agency's permit view (by agency name) for lookups."""
    submit_decisions: Callable[[Settings, str, Iterable[CloudEvent[Any]]], Awaitable[int]]
    """Publishes officers' decisions to an agency's decisions topic (by agency name) as
    its desk (`Agency.decisions`)."""


Commands = Callable[[CommandContext], Sequence[tuple[str, typer.Typer]]]
"""An agency's operator commands as (name, typer app) pairs, mounted under `hub NAME`."""


@dataclass(frozen=True)
class KafkaNeeds:
    """What an agency's processes do on Kafka: the rights its principal needs, no more."""

    group: str | None
    """The consumer group it joins (None: it consumes nothing)."""
    read: tuple[str, ...]
    write: tuple[str, ...]
    """Its outcome topic, and the dead-letter and quarantine topics of its group."""
    idempotent_write: bool
    """Whether its producer needs the cluster's IdempotentWrite right."""


@dataclass(frozen=True)
class Agency:
    """Everything the hub needs to know of one agency, and nothing built yet."""

    name: str
    """Its name: its database (`database_prefix + name`), its consumer group, its settings."""
    title: str
    package: str
    """The Python package holding its `migrations/NNNN_name.sql` files."""
    publishes: Channel | None = None
    """Its outbox's topic: its outcomes (for the authority, the permit lifecycle)."""
    requests: Channel | None = None
    """The topic its front doors submit requests to, when it takes requests."""
    decisions: Channel | None = None
    """The topic its officers' desk (`<name>-desk`) publishes decisions taken by people to
    (a reviewer's decision on a referred request, the closing of a case): its own consumer
    reads it, and no one else writes it. Each decision names the officer, when and why."""
    reads: tuple[str, ...] = ()
    """The topics its consumer group reads (before the prefix); empty: it consumes nothing."""
    accepts: tuple[type[CloudEvent[Any]], ...] = ()
    """The event types its codec decodes; another type on a topic it reads is a dead letter."""
    view: PermitView | None = None
    records: Callable[[asyncpg.Pool], PermitRecords] | None = None
    """For the permits' authority: its records, read from a pool on its database."""
    build: Callable[[Settings], BatchHandler] | None = None
    """Assembles its handlers (loads policies and keys); called by the composition root."""
    expectations: Mapping[str, Reads] = field(default_factory=dict)
    """Per event type, the JSON paths its handlers read: its consumer-driven contract."""
    settings: type[BaseSettings] | None = None
    """Its own settings (read from `HUB_<NAME>_*`), shown by `hub agencies`."""
    commands: Commands | None = None
    token_keys: tuple[TokenKey, ...] = ()
    """Signers of tokens it issues outside Kafka (e.g. signed QR codes), whose keys
    `hub init` makes and `hub keys` rotates and revokes, never verifying a record."""
    secret_files: Callable[[Settings], Sequence[Path]] | None = None
    """Where its own secrets are under these settings (e.g. social insurance's person-key
    pepper): `hub init` generates each file that is missing (32 random bytes, base64url,
    0600 in a 0700 directory) before it migrates, since a step may need them."""
    audiences: tuple[Audience, ...] = ()
    """Who reads its per-audience channel, each on its own topic: filled in by the registry
    from the readers' declarations (`with_audiences`), never declared."""
    calendar: Calendar | None = None
    """What falls due at it on a day (for the authority: permits past their end expire),
    run by `hub run` at every tick of its clock (`hub.clock`); it must be idempotent."""
    retention: Retention | None = None
    """How long it keeps its view's ended permits, its expiring rows, and the rows that go
    with an erased permit (`hub retention`); None: its view is never erased."""

    def __post_init__(self) -> None:
        if bool(self.reads) != (self.build is not None):
            raise ValueError(f"agency {self.name!r}: a consumer needs both topics and a build")
        if self.reads and not self.accepts:
            raise ValueError(f"agency {self.name!r} reads topics but accepts no event type")
        if self.decisions is not None and self.decisions.topic not in self.reads:
            raise ValueError(f"agency {self.name!r}: its own consumer must read its decisions"
                             f" topic {self.decisions.topic}")

    @property
    def heads(self) -> Channel | None:
        """Where it publishes its evidence log's chain heads (`hub.evidence`): every agency
        that publishes does, through the same outbox and relay."""
        if self.publishes is None:
            return None
        return Channel(heads_topic(self.name), (EvidenceHeadPublished,),
                       f"the chain heads of {self.title}'s evidence log, for the other"
                       " agencies to record")

    def channels(self) -> list[Channel]:
        """The topics it owns: its publications (one per audience for a channel published
        per audience), its chain heads, its requests, its officers' decisions."""
        return [*self.publications(), *(c for c in (self.heads, self.requests, self.decisions)
                                        if c is not None)]

    def publications(self) -> list[Channel]:
        """The topics its outbox's relay publishes its outcomes on."""
        c = self.publishes
        if c is None:
            return []
        if not c.per_audience:
            return [c]
        full = [replace(c, per_audience=False, description=f"{c.description} In full, for"
                        f" {self.name}'s front door alone.")] if c.front_door_reads else []
        return full + [replace(c, topic=a.topic, per_audience=False,
                        event_types=tuple(narrow(t, a.paths[t.EVENT_TYPE], a.agency)
                                          for t in c.event_types if t.EVENT_TYPE in a.paths),
                        description=f"{c.description} As {a.agency} receives it: the types"
                                    " and fields its consumer reads (docs/privacy.md).")
                for a in self.audiences]

    def with_audiences(self, readers: Sequence[Agency]) -> Agency:
        """This publisher with the audiences of its per-audience channel (`readers` are all
        the declared agencies; those reading the channel become its audiences)."""
        c = self.publishes
        if c is None or not c.per_audience:
            return self
        audiences = []
        for reader in readers:
            if c.topic not in reader.reads:
                continue
            paths = {t.EVENT_TYPE: data_paths(reader.expectations[t.__name__])
                     for t in c.event_types if t.__name__ in reader.expectations}
            audiences.append(Audience(reader.name, topics.audience_topic(c.topic, reader.name),
                                      paths))
        return replace(self, audiences=tuple(audiences))

    def as_audience_of(self, publisher: Agency) -> Agency:
        """This reader receiving `publisher`'s per-audience channel on its own topic, and
        decoding each of its types narrowed to what it receives."""
        mine = [a for a in publisher.audiences if a.agency == self.name]
        if not mine or publisher.publishes is None:
            return self
        audience, channel = mine[0], publisher.publishes
        narrowed = {t.EVENT_TYPE: narrow(t, audience.paths[t.EVENT_TYPE], self.name)
                    for t in channel.event_types if t.EVENT_TYPE in audience.paths}
        return replace(
            self,
            reads=tuple(audience.topic if t == channel.topic else t for t in self.reads),
            accepts=tuple(dict.fromkeys(narrowed.get(t.EVENT_TYPE, t) for t in self.accepts)))

    def read_topic(self, topic: str) -> str:
        """The topic it actually reads for `topic` (its audience topic, for a channel
        published per audience), before the prefix."""
        if topic in self.reads:
            return topic
        audience = topics.audience_topic(topic, self.name)
        if audience in self.reads:
            return audience
        raise ValueError(f"agency {self.name!r} does not read {topic}")

    def with_peers(self, peers: Sequence[Agency]) -> Agency:
        """This declaration reading, besides its own topics, the chain heads of `peers`
        (the registry gives every consuming agency those of every other publishing one)."""
        extra = tuple(p.heads.topic for p in peers
                      if p.heads is not None and p.name != self.name
                      and p.heads.topic not in self.reads)
        if not self.consumes or not extra:
            return self
        head: tuple[type[CloudEvent[Any]], ...] = (EvidenceHeadPublished,)
        accepts = self.accepts if EvidenceHeadPublished in self.accepts else (
            *self.accepts, *head)
        return replace(self, reads=(*self.reads, *extra), accepts=accepts)

    @property
    def consumes(self) -> bool:
        """Whether it runs a consumer group."""
        return self.build is not None

    def group_id(self, settings: Settings) -> str:
        """Its consumer group's id under these settings."""
        return settings.topic(self.name)

    def dead_letter_topic(self, settings: Settings) -> str:
        """Where its group puts what it cannot process."""
        return topics.dead_letter_topic(self.group_id(settings))

    def codec(self) -> Codec:
        """The decoder of what it accepts."""
        return Codec(self.accepts)

    def consumer_spec(self, settings: Settings, verifier: Verifier) -> ConsumerSpec:
        """Its consumer group, with its handlers built now (this may load keys and files)."""
        if self.build is None:
            raise ValueError(f"agency {self.name!r} consumes nothing")
        return ConsumerSpec(
            group_id=self.group_id(settings),
            topics=tuple(settings.topic(t) for t in self.reads),
            codec=self.codec(),
            apply=self.build(settings),
            dead_letter_topic=self.dead_letter_topic(settings),
            verifier=verifier,
        )

    def owned_topics(self, settings: Settings) -> list[str]:
        """The topics this agency brings to the hub: its channels and its dead letters."""
        return list(self.topic_policies(settings))

    def topic_policies(self, settings: Settings) -> dict[str, TopicPolicy]:
        """Its topics, each with how long Kafka keeps its records."""
        owned: dict[str, TopicPolicy] = {
            settings.topic(c.topic): "compacted" if c.compacted else "retained"
            for c in self.channels()}
        if self.consumes:
            dead = self.dead_letter_topic(settings)
            owned |= dict.fromkeys((dead, quarantine_topic(dead)), "dead-letters")
        return owned

    def signers(self) -> dict[str, frozenset[str]]:
        """Who signs for this agency, and the event types each may emit: the agency itself
        for its outcomes, its front doors (`<name>-front-door`) for its requests, its
        officers' desk (`<name>-desk`) for their decisions."""
        out = {}
        if self.publishes is not None:
            out[self.name] = frozenset(t.EVENT_TYPE for c in (self.publishes, self.heads) if c
                                       for t in c.event_types)
        if self.requests is not None:
            out[front_door(self.name)] = frozenset(
                t.EVENT_TYPE for t in self.requests.event_types)
        if self.decisions is not None:
            out[desk(self.name)] = frozenset(t.EVENT_TYPE for t in self.decisions.event_types)
        return out

    def kafka_needs(self, settings: Settings) -> KafkaNeeds:
        """The groups, topics and operations its processes use."""
        write = [settings.topic(c.topic) for c in (*self.publications(), self.heads) if c]
        if self.consumes:
            dead = self.dead_letter_topic(settings)
            write += [dead, quarantine_topic(dead)]
        return KafkaNeeds(
            group=self.group_id(settings) if self.consumes else None,
            read=tuple(settings.topic(t) for t in self.reads),
            write=tuple(write),
            idempotent_write=bool(write),
        )

