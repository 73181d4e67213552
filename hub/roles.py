"""Each agency's two Postgres roles, on its own database only (least privilege).

- `<prefix><agency>_owner` owns the database, its schema `public` and every table in it;
  `hub init` runs the migrations as this role, and so do the ops commands that change
  tables (`hub replay`).
- `<prefix><agency>_app` is what `hub run` and the other commands connect as: CONNECT and
  TEMPORARY (the projection's staging tables) on its own database, SELECT, INSERT, UPDATE
  and DELETE on its tables, USAGE, SELECT and UPDATE on its sequences, nothing else. Default
  privileges give it the same on the tables and sequences later migrations create.

No one else may connect to an agency database (CONNECT is revoked from PUBLIC). Passwords
are generated into 0600 files under `HUB_HOME/secrets/postgres/` and reach the server only
as SCRAM verifiers, so neither a server log nor a failed statement can show one. An agency
given its own URL (`HUB_DATABASE_URLS`) is left alone: its server manages its roles.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub.credentials import ensure_secret
from hub.db import Connection
from hub.migrate import LOCK as MIGRATE_LOCK
from hub.settings import Settings

__all__ = ["AgencyRoles", "provision", "scram_verifier", "seal_migration_record"]

# Role and grant changes of several `hub init` at once could fail with "tuple concurrently
# updated"; one session lock on the maintenance database serialises them.
PROVISION_LOCK = "SELECT pg_advisory_lock(hashtext('permit-hub roles'))"
SCRAM_ITERATIONS = 4096
"""Postgres's own default (scram_iterations)."""
ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
DML = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_USE = "USAGE, SELECT, UPDATE"
APPEND_ONLY = "hub_looks"
"""The table the runtime role may only insert into and read (its trigger also refuses a
change; the revoke makes the refusal the server's, whoever later drops the trigger)."""


@dataclass(frozen=True)
class AgencyRoles:
    """One agency's database on the shared server and its two roles."""

    database: str
    owner: str
    app: str

    @classmethod
    def of(cls, settings: Settings, agency: str) -> AgencyRoles:
        """The names the settings give this agency's database and roles."""
        return cls(settings.database_name(agency), settings.role_name(agency, "owner"),
                   settings.role_name(agency, "app"))


async def provision(settings: Settings, agencies: Sequence[str]) -> None:
    """Create, or bring up to date, each agency's roles, database and grants on the shared
    server, as its administrator (`Settings.server_url`)."""
    url = settings.server_url()
    admin = await asyncpg.connect(url, timeout=10)
    try:
        await admin.execute(PROVISION_LOCK)
        for agency in agencies:
            roles = AgencyRoles.of(settings, agency)
            for role in (roles.owner, roles.app):
                await _ensure_role(admin, role, ensure_secret(settings.secret_file(role)))
            await _ensure_database(admin, roles)
            await _grant_inside(_on_database(url, roles.database), roles)
    finally:
        await admin.close()


async def _ensure_role(admin: Connection, role: str, password: str) -> None:
    """Create the role, or reset its rights and password to ours (the file is the truth)."""
    exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    await admin.execute(f"{verb} ROLE {ident(role)} {ROLE_OPTIONS}"
                        f" PASSWORD {literal(scram_verifier(password))}")


async def _ensure_database(admin: Connection, roles: AgencyRoles) -> None:
    """The database, owned by the owner role, open to the runtime role and no one else."""
    database, owner, app = ident(roles.database), ident(roles.owner), ident(roles.app)
    # `hub stack up` or an earlier release may have made it already, owned by the admin.
    with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        await admin.execute(f"CREATE DATABASE {database} OWNER {owner}")
    await admin.execute(f"ALTER DATABASE {database} OWNER TO {owner}")
    await admin.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
    await admin.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {app}")


async def _grant_inside(url: str, roles: AgencyRoles) -> None:
    """Inside the database: the owner owns everything, the runtime role gets DML."""
    owner, app = ident(roles.owner), ident(roles.app)
    conn = await asyncpg.connect(url, timeout=10)
    try:
        async with conn.transaction():
            await _own_schema(conn, roles.owner)
            await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
                               f" GRANT USAGE ON SCHEMA public TO {app}")
            await conn.execute(_adopt_sql(roles.owner))
            await conn.execute(
                f"GRANT {DML} ON ALL TABLES IN SCHEMA public TO {app};"
                f" GRANT {SEQUENCE_USE} ON ALL SEQUENCES IN SCHEMA public TO {app};"
                f" ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
                f" GRANT {DML} ON TABLES TO {app};"
                f" ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
                f" GRANT {SEQUENCE_USE} ON SEQUENCES TO {app}")
    finally:
        await conn.close()


async def _own_schema(conn: Connection, owner: str) -> None:
    # Since Postgres 15 `public` belongs to pg_database_owner, which follows the database;
    # before, it belonged to the bootstrap superuser and must be handed over.
    held = await conn.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace"
                               " WHERE nspname = 'public'")
    if held not in ("pg_database_owner", owner):
        await conn.execute(f"ALTER SCHEMA public OWNER TO {ident(owner)}")


def _adopt_sql(owner: str) -> str:
    """Hands the owner the relations an earlier release or a superuser created (a sequence
    owned by a column moves with its table)."""
    return f"""
DO $adopt$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS name,
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                 WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
           FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace
             AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
             AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = {literal(owner)})
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I', r.kind, r.name, {literal(owner)});
  END LOOP;
END
$adopt$"""


async def seal_migration_record(conn: Connection, app_role: str) -> None:
    """As the owner, after migrating: the runtime role may read which steps the database
    has (`hub run` checks them) but never forge or erase one, and may add to the record of
    looks at personal data (`hub.looks`) but never change or erase a look."""
    async with conn.transaction():
        await conn.execute(MIGRATE_LOCK)
        await conn.execute("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON hub_schema_migrations"
                           f" FROM {ident(app_role)}")
        await conn.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {APPEND_ONLY}"
                           f" FROM {ident(app_role)}")


def scram_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for `password` (RFC 5803 / 7677 form)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return (f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{_b64(salt)}"
            f"${_b64(stored_key)}:{_b64(server_key)}")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _on_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def ident(name: str) -> str:
    """`name` quoted as an SQL identifier (role and database names take no parameters)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """`text` quoted as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
