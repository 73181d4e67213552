-- Retention (hub/retention.py, hub/ops/retention.py, docs/privacy.md §5).

-- The permits this agency erased from its view: a tombstone per permit with the sequence it
-- had. The projection (hub/projection.py) applies a row only above that sequence, in the
-- live consumer and in a replay's shadow alike, so neither the compacted permit topic (it
-- keeps each permit's newest event for ever) nor a redriven dead letter brings an erased
-- permit back. No personal value: the permit number, its end day and when.
CREATE TABLE hub_erasures (
    subject   text        PRIMARY KEY,
    sequence  integer     NOT NULL,
    ended_on  date        NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id    bigint      NOT NULL
);

-- Every `hub retention apply`, dry run or executed: when, as of when, who, why, the
-- periods and what it counted or did per table. Append-only, like the evidence log.
CREATE TABLE hub_retention_runs (
    id       bigserial   PRIMARY KEY,
    run_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    as_of    timestamptz NOT NULL,
    run_by   text        NOT NULL,
    purpose  text,
    executed boolean     NOT NULL,
    policy   jsonb       NOT NULL,
    counts   jsonb       NOT NULL
);
CREATE FUNCTION hub_retention_runs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the record of retention runs is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER hub_retention_runs_append_only BEFORE UPDATE OR DELETE ON hub_retention_runs
    FOR EACH ROW EXECUTE FUNCTION hub_retention_runs_append_only();
CREATE TRIGGER hub_retention_runs_no_truncate BEFORE TRUNCATE ON hub_retention_runs
    FOR EACH STATEMENT EXECUTE FUNCTION hub_retention_runs_append_only();

-- The evidence log's values can be erased: the chain hashes each row's digest (SHA-256 of
-- the value), never the value, so a row whose value is gone still verifies its place.
ALTER TABLE hub_evidence ALTER COLUMN value DROP NOT NULL;
ALTER TABLE hub_evidence ADD COLUMN value_erased_at timestamptz;
ALTER TABLE hub_evidence ADD CONSTRAINT hub_evidence_value_or_erased
    CHECK ((value IS NULL) = (value_erased_at IS NOT NULL));

-- Still append-only, with exactly one change allowed, and only to the table's owner (the
-- role `hub retention apply` connects as, never the runtime role): a value, once, set to
-- NULL with the time it was erased, every other column as it was.
CREATE OR REPLACE FUNCTION hub_evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.value IS NOT NULL AND NEW.value IS NULL AND NEW.value_erased_at IS NOT NULL
       AND to_jsonb(NEW) - 'value' - 'value_erased_at'
           = to_jsonb(OLD) - 'value' - 'value_erased_at'
       AND pg_has_role(current_user,
                       (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the evidence log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
