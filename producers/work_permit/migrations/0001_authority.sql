-- Baseline: the authority's tables as the code before numbered migrations created them at
-- every start. `IF NOT EXISTS` is kept in this baseline step only, so that a database made
-- by that code adopts it without error: the step finds them there, changes nothing and is
-- recorded. Every later step is plain DDL.

CREATE SEQUENCE IF NOT EXISTS permit_no_seq START 156000000000000001;
CREATE TABLE IF NOT EXISTS permits (
    permit_no  text        PRIMARY KEY,
    sequence   integer     NOT NULL,
    status     text        NOT NULL,
    record     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
