"""The agencies this hub connects, found through the `permit_hub.agencies` entry points.

An agency lives in any installed distribution that declares, in its `pyproject.toml`,

    [project.entry-points."permit_hub.agencies"]
    housing_fund = "housing_fund:AGENCY"

where `AGENCY` is a `hub.agency.Agency`. Loading an entry point imports the package and
reads the declaration; nothing is built. The registry checks the topology once, as a
whole: names unique, each topic owned by one agency, every topic read is owned by someone.
It adds to each consuming agency the chain-heads topics of every other publishing agency
(`Agency.with_peers`, `hub.evidence`), and gives each agency reading a channel published per
audience a topic of its own, carrying only what it reads (`Agency.with_audiences`,
`schemas.audiences`).

Only the composition root (`hub.bootstrap`) and the operator commands use the registry; the
runtime never does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points

from hub.agency import Agency, Channel, Fanout, PermitView
from hub.errors import BadTarget
from hub.kafka import TopicPolicy
from hub.settings import Settings
from hub.signing import EVENTS, TokenKey

ENTRY_POINT_GROUP = "permit_hub.agencies"


class TopologyError(ValueError):
    """The declared agencies do not fit together (a duplicate name or topic, an orphan read)."""


class Registry:
    """The hub's agencies by name, checked to fit together."""

    def __init__(self, agencies: Iterable[Agency]) -> None:
        self._by_name: dict[str, Agency] = {}
        declared = list(agencies)
        # A channel published per audience gets one topic per agency that reads it, and
        # each such agency reads its own (schemas.audiences).
        try:
            publishers = [a.with_audiences(declared) for a in declared]
        except ValueError as exc:
            raise TopologyError(str(exc)) from None
        for publisher in publishers:
            publishers = [a.as_audience_of(publisher) for a in publishers]
        # Every consuming agency records the chain heads of every other publishing one.
        for agency in (a.with_peers(publishers) for a in publishers):
            if agency.name in self._by_name:
                raise TopologyError(f"two agencies are named {agency.name!r}")
            self._by_name[agency.name] = agency
        self._check()

    def _check(self) -> None:
        owner: dict[str, str] = {}
        for a in self:
            for channel in a.channels():
                if channel.topic in owner:
                    raise TopologyError(
                        f"topic {channel.topic} is declared by {owner[channel.topic]!r} "
                        f"and {a.name!r}")
                owner[channel.topic] = a.name
        truths = [a.name for a in self if a.records is not None]
        if len(truths) > 1:
            raise TopologyError(f"more than one agency holds the permits' records: {truths}")
        for a in self:
            orphans = [t for t in a.reads if t not in owner]
            if orphans:
                raise TopologyError(f"agency {a.name!r} reads {orphans}, which no agency owns")

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> tuple[str, ...]:
        """Every agency's name, in declaration order."""
        return tuple(self._by_name)

    def consumers(self) -> list[Agency]:
        """The agencies that run a consumer group."""
        return [a for a in self if a.consumes]

    def with_views(self) -> list[Agency]:
        """The agencies that keep a permit view."""
        return [a for a in self if a.view is not None]

    def authority(self) -> Agency:
        """The agency whose permit records every view is compared with."""
        for a in self:
            if a.records is not None:
                return a
        raise BadTarget("no installed agency holds the permits' records")

    def get(self, name: str) -> Agency:
        """The agency of this name; BadTarget (naming the known ones) otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise BadTarget(f"no agency {name!r}; known: {', '.join(self.names())}") from None

    def view(self, name: str) -> PermitView:
        """The permit view of the agency of this name; BadTarget if it keeps none."""
        agency = self.get(name)
        if agency.view is None:
            raise BadTarget(f"agency {name!r} keeps no permit view")
        return agency.view

    def consumer(self, settings: Settings, name: str) -> Agency:
        """The consuming agency named by its name or its (prefixed) group id."""
        for a in self.consumers():
            if name in (a.name, a.group_id(settings)):
                return a
        known = ", ".join(a.name for a in self.consumers())
        raise BadTarget(f"no consumer group {name!r}; known agencies: {known}")

    def signers(self) -> dict[str, frozenset[str]]:
        """Every signer and the event types it may emit (the verifiers' rights table)."""
        return {s: types for a in self for s, types in a.signers().items()}

    def token_keys(self) -> list[TokenKey]:
        """Every signer of tokens outside Kafka, with its purpose (the QR code's signer)."""
        keys = [k for a in self for k in a.token_keys]
        events = self.signers()
        taken = [k.signer for k in keys if k.signer in events]
        if taken or len({k.signer for k in keys}) != len(keys):
            raise ValueError(f"token signers {taken or [k.signer for k in keys]} are named "
                             "twice: a signer's keys have one purpose")
        return keys

    def key_purposes(self) -> dict[str, str]:
        """Every signer `hub keys` manages, with what its keys sign (`events` for records)."""
        return {**dict.fromkeys(self.signers(), EVENTS),
                **{k.signer: k.purpose for k in self.token_keys()}}

    def audiences(self, settings: Settings, name: str) -> dict[str, Fanout]:
        """For the relay of agency `name`: per topic its outbox writes to (prefixed), where
        its rows go; empty when it publishes per topic."""
        agency = self.get(name)
        c = agency.publishes
        if c is None or not c.per_audience:
            return {}
        return {settings.topic(c.topic): Fanout(
            settings.topic(c.topic) if c.front_door_reads else None,
            tuple((settings.topic(a.topic), a) for a in agency.audiences))}

    def channels(self) -> list[Channel]:
        """Every topic the agencies own with what it carries, publications first."""
        return [c for a in self for c in a.channels()]

    def topics(self, settings: Settings) -> list[str]:
        """Every topic the hub uses under these settings, dead-letter topics included."""
        return list(self.topic_policies(settings))

    def topic_policies(self, settings: Settings) -> dict[str, TopicPolicy]:
        """Every topic the hub uses, with how long Kafka keeps its records."""
        return {t: p for a in self for t, p in a.topic_policies(settings).items()}


@functools.cache
def installed() -> Registry:
    """The agencies of every installed distribution (loaded once per process)."""
    found = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    wrong = [type(a).__name__ for a in found if not isinstance(a, Agency)]
    if wrong:
        raise TopologyError(f"entry points of {ENTRY_POINT_GROUP} must be Agency, got {wrong}")
    # Entry points come in no promised order: publishers only first, then by name.
    return Registry(sorted(found, key=lambda a: (a.consumes, a.name)))
