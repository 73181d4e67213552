"""The social insurance view of permits: its table in the agency's own database."""

from __future__ import annotations

import asyncpg

from consumers.social_insurance.handlers import InsuredPermit
from hub.projection import ViewTable

DDL = """
CREATE TABLE IF NOT EXISTS si_permits (
    permit_no            text PRIMARY KEY,
    sequence             integer NOT NULL,
    status               text NOT NULL,
    holder_name          text NOT NULL,
    nationality          char(2) NOT NULL,
    employer_credit_code text NOT NULL,
    employer_name        text NOT NULL,
    issued_on            date,
    valid_from           date,
    valid_until          date,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

PERMITS = ViewTable("si_permits", InsuredPermit._fields)


class SocialInsuranceView:
    """The social insurance's reads and writes of its own database, inside the batch transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
