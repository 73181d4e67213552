-- The evidence log (hub/evidence.py): every record this agency received or sent, in one
-- append-only hash chain. Row N's `row_hash` = SHA-256(row N-1's `row_hash` || SHA-256 of
-- row N's canonical entry); row 1 chains from 32 zero bytes.
CREATE TABLE hub_evidence (
    seq         bigint      PRIMARY KEY CHECK (seq >= 1),
    recorded_at timestamptz NOT NULL,
    direction   text        NOT NULL CHECK (direction IN ('received', 'sent')),
    outcome     text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    event_id    text,
    event_type  text,
    subject     text,
    signer      text,
    kid         text,
    jws         text,
    tree        text,
    digest      bytea       NOT NULL,
    value       bytea       NOT NULL,
    prev_hash   bytea       NOT NULL,
    row_hash    bytea       NOT NULL
);
CREATE INDEX hub_evidence_subject ON hub_evidence (subject, seq);
CREATE INDEX hub_evidence_position ON hub_evidence (topic, partition, "offset");

-- Append-only for everyone but the table's owner: the runtime role may insert and read,
-- and a row it tries to change or remove is refused. (The owner can drop this trigger; the
-- chain heads the other agencies recorded are what catch an owner's rewrite.)
CREATE FUNCTION hub_evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the evidence log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER hub_evidence_append_only BEFORE UPDATE OR DELETE ON hub_evidence
    FOR EACH ROW EXECUTE FUNCTION hub_evidence_append_only();
CREATE TRIGGER hub_evidence_no_truncate BEFORE TRUNCATE ON hub_evidence
    FOR EACH STATEMENT EXECUTE FUNCTION hub_evidence_append_only();

-- The chain heads other agencies published (schemas/evidence.py), as this agency read
-- them: what `hub evidence verify PUBLISHER` compares the publisher's chain with. Two
-- different hashes for one row number are both kept: that is an equivocation to report.
CREATE TABLE hub_evidence_peer_heads (
    publisher   text        NOT NULL,
    seq         bigint      NOT NULL,
    row_hash    bytea       NOT NULL,
    recorded_at timestamptz NOT NULL,
    event_id    uuid        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (publisher, seq, row_hash)
);

-- Who looked at the evidence of a permit, why, and with which command.
CREATE TABLE hub_evidence_looks (
    id        bigserial   PRIMARY KEY,
    looked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    looked_by text        NOT NULL,
    purpose   text        NOT NULL,
    command   text        NOT NULL,
    subject   text        NOT NULL
);
