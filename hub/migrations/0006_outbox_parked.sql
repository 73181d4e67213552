-- Outbox rows the relay could not send (too large for the producer, or refused by Kafka
-- for the record itself), moved out of hub_outbox with the error so the relay goes on with
-- the next rows. A row keeps its outbox id: `hub outbox retry` puts it back under that id,
-- so it is sent before the later rows of its subject, which the relay holds in hub_outbox
-- meanwhile (per-subject order, hub/outbox.py).
CREATE TABLE hub_outbox_parked (
    id          bigint      PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    error_class text        NOT NULL,
    error       text        NOT NULL
);

-- The relay asks, for every batch, whether a subject has a row parked.
CREATE INDEX hub_outbox_parked_subject ON hub_outbox_parked (topic, key);
