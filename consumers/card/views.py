"""The Social Security Card service view of permits: its table in the agency's own database."""

from __future__ import annotations

import asyncpg

from consumers.card.handlers import CardPermit
from hub.projection import ViewTable

DDL = """
CREATE TABLE IF NOT EXISTS card_permits (
    permit_no     text PRIMARY KEY,
    sequence      integer NOT NULL,
    status        text NOT NULL,
    standard      text NOT NULL,
    holder_name   text NOT NULL,
    nationality   char(2) NOT NULL,
    category      char(1) NOT NULL,
    employer_name text NOT NULL,
    position      text NOT NULL,
    valid_from    date,
    valid_until   date,
    last_event    text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

PERMITS = ViewTable("card_permits", CardPermit._fields)


class CardView:
    """The Social Security Card service's reads and writes of its own database, inside the batch transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
