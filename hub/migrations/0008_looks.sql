-- Every look an operator command took at personal data held in this agency's database
-- (hub/looks.py): who, why, with which command, at what, and whether the personal values
-- were shown in clear. A look at several agencies' data is one row in each of their
-- databases, sharing `run_id`. `hub audit PERMIT_NO` reads them back, oldest first: the
-- person's data tracker (docs/privacy.md §4).
CREATE TABLE hub_looks (
    id          bigserial   PRIMARY KEY,
    run_id      uuid        NOT NULL,
    looked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    looked_by   text        NOT NULL,
    operator    text,
    command     text        NOT NULL,
    subject     text        NOT NULL,
    permit_no   text,
    purpose     text        NOT NULL CHECK (length(btrim(purpose)) >= 4),
    revealed    boolean     NOT NULL,
    fields      text[]      NOT NULL
);
CREATE INDEX hub_looks_permit ON hub_looks (permit_no, looked_at);

-- The evidence looks recorded so far are looks like any other: their subject was a permit
-- number; `hub evidence show` showed each row's metadata (hub.ops.evidence.SHOWN),
-- `hub evidence export` wrote the rows whole, records included (EXPORTED).
INSERT INTO hub_looks (run_id, looked_at, looked_by, command, subject, permit_no, purpose,
                       revealed, fields)
SELECT gen_random_uuid(), looked_at, looked_by, command, subject, subject, purpose,
       command = 'evidence export',
       CASE command WHEN 'evidence export' THEN ARRAY['entries']
            ELSE ARRAY['seq', 'recorded_at', 'direction', 'outcome', 'topic', 'partition',
                       'offset', 'event_id', 'event_type', 'signer', 'kid'] END
FROM hub_evidence_looks ORDER BY id;
DROP TABLE hub_evidence_looks;

-- Append-only for everyone: a look recorded cannot be changed or removed (the owner could
-- drop the trigger; the runtime role, which the ops commands use, also lacks the rights:
-- hub.roles.seal_append_only).
CREATE FUNCTION hub_looks_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the record of looks is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER hub_looks_append_only BEFORE UPDATE OR DELETE ON hub_looks
    FOR EACH ROW EXECUTE FUNCTION hub_looks_append_only();
CREATE TRIGGER hub_looks_no_truncate BEFORE TRUNCATE ON hub_looks
    FOR EACH STATEMENT EXECUTE FUNCTION hub_looks_append_only();
