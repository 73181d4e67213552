-- Baseline: before numbered migrations `hub replay` and `hub dlq redrive` created these
-- tables the first time they ran, so a database may or may not have them; `IF NOT EXISTS`
-- lets both kinds adopt this step (see 0001_consumer_offsets.sql).

-- Every replay of a view, and how far its shadow has read each partition.
CREATE TABLE IF NOT EXISTS hub_replays (
    id           bigserial   PRIMARY KEY,
    view         text        NOT NULL,
    requested_by text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    range        jsonb       NOT NULL,
    status       text        NOT NULL CHECK (status IN
                   ('running', 'interrupted', 'built', 'switched', 'failed', 'abandoned')),
    finished_at  timestamptz,
    result       jsonb
);
CREATE TABLE IF NOT EXISTS hub_replay_offsets (
    replay_id   bigint  NOT NULL REFERENCES hub_replays (id),
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (replay_id, topic, partition)
);

-- Who redrove which dead letter, when, where to, and how it went.
CREATE TABLE IF NOT EXISTS hub_redrives (
    id               bigserial   PRIMARY KEY,
    redriven_by      text        NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    group_id         text        NOT NULL,
    dlq_topic        text        NOT NULL,
    dlq_partition    integer     NOT NULL,
    dlq_offset       bigint      NOT NULL,
    reason           text,
    event_type       text,
    origin_topic     text        NOT NULL,
    origin_partition integer     NOT NULL,
    origin_offset    bigint      NOT NULL,
    redrive_count    integer     NOT NULL,
    result           text        NOT NULL CHECK (result IN ('pending', 'sent', 'failed')),
    target_offset    bigint,
    error            text
);
