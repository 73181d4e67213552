"""The composition root: every process assembles its parts here, from one Settings.

Nothing is built at import time; tests call these with their own settings. The agencies
come from the registry (`hub.registry`), so this module names none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg

from hub import acl
from hub.agency import Agency, CommandContext, Lookup
from hub.clock import CalendarTask, Clock
from hub.consumer import ViewConsumer
from hub.credentials import ensure_secret
from hub.db import open_pool
from hub.errors import BadTarget, NotReady
from hub.evidence_heads import HeadPublisher
from hub.kafka import (
    Producer,
    check_login,
    client_options,
    ensure_topics,
    missing_topics,
    open_producer,
    protocol_client,
    publish,
)
from hub.kafka_credentials import ADMIN, desk, ensure_users
from hub.logging import get_logger
from hub.migrate import Migration, apply, drift, load, status
from hub.outbox import OutboxRelay
from hub.projection import fetch_one
from hub.registry import Registry, installed
from hub.roles import provision, seal_migration_record
from hub.settings import Role, Settings
from hub.signing import KeyStore, SigningKey, Verifier
from schemas import CloudEvent

log = get_logger(__name__)

RUNTIME_MIGRATIONS = "hub"
"""The package of the migrations every agency database gets: offsets, outbox, dispatch,
ops records."""


def migrations(agency: Agency) -> list[list[Migration]]:
    """The numbered schema steps of one agency's database: the runtime's, then its own."""
    return [load("hub", RUNTIME_MIGRATIONS), load(agency.name, agency.package)]


async def init_databases(settings: Settings, registry: Registry | None = None) -> None:
    """Create each agency's roles and database on the shared server (as its administrator)
    if missing, then migrate each as its owner role (`hub.roles`)."""
    agencies = list(registry or installed())
    shared = [a.name for a in agencies if not settings.has_own_server(a.name)]
    if shared:
        await provision(settings, shared)
    for agency in agencies:
        await _migrate(settings, agency)


async def _migrate(settings: Settings, agency: Agency) -> None:
    conn = await asyncpg.connect(settings.dsn(agency.name, role="owner"))
    try:
        applied = await apply(conn, migrations(agency), settings=settings)
        if not settings.has_own_server(agency.name):
            await seal_migration_record(conn, settings.role_name(agency.name, "app"))
    finally:
        await conn.close()
    if applied:
        log.info("schema migrated", agency=agency.name,
                 steps=[f"{m.source}/{m.version:04d}_{m.name}" for m in applied])


async def check_schema(settings: Settings, agency: Agency) -> None:
    """NotReady unless the agency's database, reached as its runtime role, holds exactly the
    migrations of this code: a running process never changes a schema."""
    steps = migrations(agency)
    conn = await _connect_app(settings, agency.name)
    try:
        problems = await drift(conn, steps)
        pending = [m for m, applied_at in await status(conn, steps) if applied_at is None]
    finally:
        await conn.close()
    if problems:
        raise NotReady(f"{agency.name}'s database does not match this code: {problems[0]}")
    if pending:
        raise NotReady(f"{agency.name}'s database lacks {len(pending)} schema step(s), the"
                       f" first {pending[0]}; run `hub init`")


async def _connect_app(settings: Settings, agency: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(settings.dsn(agency))
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InsufficientPrivilegeError) as error:
        # The server's text names the role, never the password.
        raise NotReady(f"Postgres refused {agency}'s runtime role ({error}); run `hub init`"
                       ) from None


async def init_all(settings: Settings, registry: Registry | None = None) -> None:
    """Kafka users, topics and ACLs, the agencies' own secrets, databases and signing keys:
    everything a hub process expects to exist. Kafka's part runs as the set-up principal,
    `admin`."""
    registry = registry or installed()
    await init_kafka_access(settings, registry)
    await ensure_topics(settings, registry.topic_policies(settings), ADMIN)
    init_secrets(settings, registry)  # before the migrations: a step may need them
    await init_databases(settings, registry)
    init_keys(settings, registry)


def init_secrets(settings: Settings, registry: Registry | None = None) -> None:
    """Each agency's own secrets that are missing (`Agency.secret_files`), generated; an
    existing file, perhaps a mounted secret, is only read."""
    for agency in registry or installed():
        for path in agency.secret_files(settings) if agency.secret_files else ():
            if not path.exists():
                ensure_secret(path)
                log.info("secret generated", agency=agency.name, file=str(path))


def init_keys(settings: Settings, registry: Registry | None = None) -> None:
    """A published signing key for every signer that has none yet: the event signers', and
    the token signers' (a token signer's key from before the registry is adopted)."""
    registry = registry or installed()
    store = key_store(settings)
    for signer in registry.signers():
        store.signing_key(signer)
    for token in registry.token_keys():
        if token.adopts and store.adopt(token.signer, token.purpose,
                                        settings.home / token.adopts):
            log.info("signing key adopted", signer=token.signer,
                     file=str(settings.home / token.adopts))
        store.signing_key(token.signer, token.purpose)


def key_store(settings: Settings) -> KeyStore:
    """The key registry and private keys under these settings."""
    return KeyStore.configured(settings)


def verifier(settings: Settings) -> Verifier:
    """A verifier of every installed signer's records, with each signer's rights."""
    return Verifier(key_store(settings), installed().signers())


def signing_key(settings: Settings, signer: str) -> SigningKey:
    """One signer's active key (made and published on first use)."""
    return key_store(settings).signing_key(signer)


async def init_kafka_access(settings: Settings, registry: Registry | None = None) -> None:
    """Every principal's SCRAM credential, and the ACL matrix of these settings, applied
    (nothing to do on a PLAINTEXT cluster, which has no identities)."""
    if settings.kafka_security_protocol == "plaintext":
        return
    registry = registry or installed()
    async with protocol_client(settings, ADMIN) as client:
        made = await ensure_users(client, settings, acl.principals(registry))
        if made:
            log.info("kafka users created", principals=made)
        await acl.apply(client, settings, acl.matrix(settings, registry))


async def check_agency_topics(settings: Settings, agency: str) -> None:
    """Fail unless Kafka takes the agency's login and every topic it reads or writes exists
    and is granted to it (`hub init` makes all three; an agency's principal may create
    nothing)."""
    await check_login(settings, agency)
    needs = installed().get(agency).kafka_needs(settings)
    missing = await missing_topics(settings, [*needs.read, *needs.write], agency)
    if missing:
        raise BadTarget(f"agency {agency!r} cannot see topics {missing}: run `hub init` "
                        "(as the set-up principal) first")


def producer(
    settings: Settings, client_id: str, *, principal: str, linger_ms: int = 0
) -> contextlib.AbstractAsyncContextManager[Producer]:
    """A started idempotent producer acting as `principal`, stopped (and flushed) on exit."""
    return open_producer(settings, client_id, principal=principal, linger_ms=linger_ms)


def pool(
    settings: Settings, agency: str, *, max_size: int = 4, role: Role = "app"
) -> contextlib.AbstractAsyncContextManager[asyncpg.Pool]:
    """A pool on one agency's database, as its runtime role unless `owner` is asked for;
    closed on exit."""
    return open_pool(settings.dsn(agency, role=role), max_size=max_size)


@contextlib.asynccontextmanager
async def running_consumer(
    settings: Settings, agency: str, *, client_id: str | None = None
) -> AsyncIterator[ViewConsumer]:
    """One member of an agency's consumer group, consuming in the background until exit."""
    spec = installed().get(agency).consumer_spec(settings, verifier(settings))
    async with (
        pool(settings, agency) as p,
        producer(settings, f"{spec.group_id}-dlq", principal=agency) as prod,
    ):
        runtime = ViewConsumer(
            spec,
            kafka=client_options(settings, agency),
            pool=p,
            producer=prod,
            max_records=settings.batch_max_records,
            timeout_ms=settings.batch_timeout_ms,
            client_id=client_id,
            retry_window_s=settings.retry_window_s,
        )
        task = asyncio.create_task(runtime.run(), name=f"consumer-{agency}")
        try:
            yield runtime
        finally:
            runtime.stop()
            await _finish(task)


@contextlib.asynccontextmanager
async def running_relay(settings: Settings, agency: str) -> AsyncIterator[OutboxRelay]:
    """The outbox relay of one agency's database, relaying in the background until exit."""
    async with producer(settings, f"{settings.topic(agency)}-relay", principal=agency) as prod:
        store = key_store(settings)
        relay = OutboxRelay(settings.dsn(agency), prod, lambda: store.signing_key(agency),
                            fanout=installed().audiences(settings, agency), name=agency)
        task = asyncio.create_task(relay.run(), name=f"relay-{agency}")
        try:
            yield relay
        finally:
            relay.stop()
            await _finish(task)


@contextlib.asynccontextmanager
async def running_agency(
    settings: Settings, agency: str, *, clock: Clock | None = None
) -> AsyncIterator[list[asyncio.Event]]:
    """Everything one agency runs: its consumer group (if it consumes), its outbox relay and
    its chain-head publisher (if it publishes), and its calendar (if it keeps one) when given
    a `clock`: `hub run` gives the real day, a test its own; without one no calendar runs, so
    a story or test told on dates of its choosing is not overtaken by today's date. Yields
    the events set when one of them ends by itself."""
    declared = installed().get(agency)
    async with contextlib.AsyncExitStack() as stack:
        done: list[asyncio.Event] = []
        if declared.consumes:
            done.append((await stack.enter_async_context(
                running_consumer(settings, agency))).done)
        if declared.publishes is not None:
            done.append((await stack.enter_async_context(running_relay(settings, agency))).done)
            done.append((await stack.enter_async_context(
                running_head_publisher(settings, declared))).done)
        if declared.calendar is not None and clock is not None:
            done.append((await stack.enter_async_context(
                running_calendar(settings, declared, clock))).done)
        yield done


@contextlib.asynccontextmanager
async def running_calendar(
    settings: Settings, agency: Agency, clock: Clock
) -> AsyncIterator[CalendarTask]:
    """The agency's calendar (`hub.clock`), ticking every `clock_interval_s` until exit."""
    assert agency.calendar is not None
    async with pool(settings, agency.name, max_size=1) as p:
        task = CalendarTask(p, agency.calendar(settings), clock, agency=agency.name,
                            interval=settings.clock_interval_s)
        running = asyncio.create_task(task.run(), name=f"calendar-{agency.name}")
        try:
            yield task
        finally:
            task.stop()
            await _finish(running)


@contextlib.asynccontextmanager
async def running_head_publisher(
    settings: Settings, agency: Agency
) -> AsyncIterator[HeadPublisher]:
    """The agency's chain-head publisher (`hub.evidence_heads`), until exit."""
    assert agency.heads is not None
    async with pool(settings, agency.name, max_size=1) as p:
        publisher = HeadPublisher(p, agency.name, settings.topic(agency.heads.topic),
                                  interval=settings.evidence_head_interval_s)
        task = asyncio.create_task(publisher.run(), name=f"heads-{agency.name}")
        try:
            yield publisher
        finally:
            publisher.stop()
            await _finish(task)


@contextlib.asynccontextmanager
async def permit_lookup(settings: Settings, agency: str) -> AsyncIterator[Lookup]:
    """Read access to one agency's permit view, by permit number (for verifiers)."""
    declared = installed().get(agency)
    if declared.view is None:
        raise BadTarget(f"agency {agency!r} keeps no permit view")
    table = declared.view.table
    async with pool(settings, agency, max_size=1) as p:

        async def lookup(permit_no: str) -> dict[str, Any] | None:
            return await fetch_one(p, table, permit_no)

        yield lookup


async def submit_decisions(
    settings: Settings, agency: str, events: Iterable[CloudEvent[Any]]
) -> int:
    """Publish officers' decisions to the agency's decisions topic (`Agency.decisions`) as
    its desk (`<agency>-desk`): logged in and signed as the desk, which may write that topic
    and sign those types alone. Returns how many; BadTarget for an agency that takes no
    decisions, or an event type its desk may not sign."""
    declared = installed().get(agency)
    if declared.decisions is None:
        raise BadTarget(f"agency {agency!r} takes no decisions from its officers")
    events = list(events)
    allowed = {t.EVENT_TYPE for t in declared.decisions.event_types}
    stray = sorted({e.type for e in events} - allowed)
    if stray:
        raise BadTarget(f"{agency}'s desk publishes {sorted(allowed)}, not {stray}")
    return await publish(settings, declared.decisions.topic, events,
                         signer=signing_key(settings, desk(agency)))


def command_context() -> CommandContext:
    """What agencies' operator commands are given: the viewed agencies, a lookup, and the
    officers' desk."""
    return CommandContext(
        agencies=tuple(a.name for a in installed().with_views()),
        permit_lookup=permit_lookup,
        submit_decisions=submit_decisions,
    )


async def _finish(task: asyncio.Task[None], grace: float = 15.0) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
