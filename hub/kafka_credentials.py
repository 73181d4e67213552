"""Kafka principals and their SCRAM passwords: one file per principal, never logged.

Every hub process talks to Kafka as one principal, chosen by the composition root from what
the process runs: `admin` sets up (users, topics, ACLs), `ops` runs the operator commands,
each agency runs its consumer group and outbox relay under its own name, the systems that
submit an agency's requests are `<agency>-front-door`, and the desk through which its
officers record their decisions is `<agency>-desk`. A password lives in its own 0600 file
(`Settings.kafka_password_file`) in a 0700 directory; this module creates the missing ones
for the local stack and registers them with the broker as SCRAM-SHA-512 credentials.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from hub.kafka_wire import (
    ScramUpsert,
    alter_scram,
    describe_scram_users,
    on_every_broker,
    wait_until,
)
from hub.logging import get_logger
from hub.settings import Settings

__all__ = [
    "ADMIN",
    "OPS",
    "CredentialsMissing",
    "desk",
    "ensure_password",
    "ensure_users",
    "front_door",
    "password",
    "user",
]

log = get_logger(__name__)

ADMIN = "admin"
"""The set-up principal (`hub init`, `hub topics create`): a super user of the cluster."""

OPS = "ops"
"""The principal of the operator commands: lag, dlq, replay, reconcile."""

SCRAM_ITERATIONS = 8192
"""PBKDF2 rounds of a new credential: twice Kafka's minimum for SCRAM-SHA-512 (4096)."""


class CredentialsMissing(RuntimeError):
    """A principal's password file is absent or empty (the message names the file only)."""


def front_door(agency: str) -> str:
    """The principal of the systems that submit requests to this agency."""
    return f"{agency}-front-door"


def desk(agency: str) -> str:
    """The principal of the agency's officers' desk: the system through which its officers
    record decisions taken by people (a reviewer's decision, the closing of a case)."""
    return f"{agency}-desk"


def user(principal: str) -> str:
    """The principal as ACLs name it."""
    return f"User:{principal}"


def password(settings: Settings, principal: str) -> str:
    """The principal's SCRAM password, read from its file."""
    path = settings.kafka_password_file(principal)
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = ""
    if not secret:
        raise CredentialsMissing(
            f"no Kafka password for principal {principal!r} in {path}: run `hub init` "
            "(local stack) or set HUB_KAFKA_CREDENTIALS_DIR / HUB_KAFKA_PASSWORD_FILES")
    return secret


def ensure_password(settings: Settings, principal: str) -> tuple[str, bool]:
    """The principal's password, and whether it was made now (a random one, in a new file)."""
    path = settings.kafka_password_file(principal)
    if path.exists():
        return password(settings, principal), False
    secret = secrets.token_urlsafe(32)
    _write_secret(path, secret)
    return secret, True


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: two processes making the same principal's file must not both win.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")


def scram_upsert(name: str, secret: str) -> ScramUpsert:
    """A SCRAM-SHA-512 credential for `name` (RFC 5802 SaltedPassword: PBKDF2-HMAC-SHA512)."""
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, SCRAM_ITERATIONS)
    return ScramUpsert(name, SCRAM_ITERATIONS, salt, salted)


async def ensure_users(
    client: AIOKafkaClient, settings: Settings, principals: Iterable[str]
) -> list[str]:
    """Give each principal a SCRAM credential on the broker if it has none; return the names
    registered now. A missing password file is made; a user the broker knows whose file is
    missing here is left alone (its password lives elsewhere), with a warning."""
    known = await describe_scram_users(client)
    upserts: list[ScramUpsert] = []
    for principal in principals:
        if principal in known and not settings.kafka_password_file(principal).exists():
            log.warning("kafka user has no password file here", principal=principal,
                        file=str(settings.kafka_password_file(principal)))
            continue
        if principal in known:
            continue
        secret, _made = ensure_password(settings, principal)
        upserts.append(scram_upsert(principal, secret))
    await alter_scram(client, upserts)
    made = [u.user for u in upserts]
    await _wait_visible(client, made)
    return made


async def _wait_visible(client: AIOKafkaClient, names: list[str]) -> None:
    # A credential reaches each broker through the metadata log a moment after the
    # controller accepted it; a client that logs in to a broker before then is refused.
    async def holds(node: int) -> bool:
        return set(names) <= await describe_scram_users(client, node)

    async def visible() -> bool:
        return await on_every_broker(client, holds)

    await wait_until(visible, f"SCRAM users {names} on the broker")
