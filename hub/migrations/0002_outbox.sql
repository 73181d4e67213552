-- Baseline: `IF NOT EXISTS` lets a database made before numbered migrations adopt this
-- step unchanged (see 0001_consumer_offsets.sql).

-- The transactional outbox: rows the relay publishes to Kafka, deleted once acknowledged.
CREATE TABLE IF NOT EXISTS hub_outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
