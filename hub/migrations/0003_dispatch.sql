-- Baseline: `IF NOT EXISTS` lets a database made before numbered migrations adopt this
-- step unchanged (see 0001_consumer_offsets.sql).

-- Handled event ids (idempotency) and the last sequence this agency gave each subject.
CREATE TABLE IF NOT EXISTS hub_handled_events (
    event_id   uuid        PRIMARY KEY,
    event_type text        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS hub_subject_sequences (
    source  text    NOT NULL,
    subject text    NOT NULL,
    last    integer NOT NULL,
    PRIMARY KEY (source, subject)
);
