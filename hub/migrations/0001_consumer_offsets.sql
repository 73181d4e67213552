-- Baseline (hub steps 0001-0004): the hub's tables as the code before numbered migrations
-- created them at every start. `IF NOT EXISTS` is kept in these baseline steps only, so that
-- a database made by that code adopts the baseline without error: the step finds its
-- tables already there, changes nothing and is recorded. Every later step is plain DDL.

-- Consumed offsets, written in the same transaction as the view change they produced.
CREATE TABLE IF NOT EXISTS hub_consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
