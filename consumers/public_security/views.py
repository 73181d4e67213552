"""The public security (entry-exit) view of permits: its table in the agency's own database."""

from __future__ import annotations

import asyncpg

from consumers.public_security.handlers import CheckedPermit
from hub.projection import ViewTable

DDL = """
CREATE TABLE IF NOT EXISTS ps_permits (
    permit_no       text PRIMARY KEY,
    sequence        integer NOT NULL,
    status          text NOT NULL,
    holder_name     text NOT NULL,
    nationality     char(2) NOT NULL,
    passport_no     text NOT NULL,
    passport_expiry date NOT NULL,
    employer_city   text NOT NULL,
    valid_from      date,
    valid_until     date,
    cancelled_on    date,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

PERMITS = ViewTable("ps_permits", CheckedPermit._fields)


class PublicSecurityView:
    """The public security (entry-exit)'s reads and writes of its own database, inside the batch transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
