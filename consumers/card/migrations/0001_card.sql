-- Baseline: the card service's tables as the code before numbered migrations created them
-- at every start. `IF NOT EXISTS` is kept in this baseline step only, so that a database
-- made by that code adopts it without error: the step finds them there, changes nothing
-- and is recorded. Every later step is plain DDL.

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
-- One e-card per permit: the primary key is the last guard against a second card.
CREATE TABLE IF NOT EXISTS card_ecards (
    permit_no  text PRIMARY KEY,
    card_id    text NOT NULL UNIQUE,
    request_id uuid NOT NULL,
    ssn        text,
    issued_at  timestamptz NOT NULL,
    notified_sequence integer NOT NULL
);
-- Each registration request id is answered once, whatever event carried it.
CREATE TABLE IF NOT EXISTS card_requests (
    request_id uuid PRIMARY KEY,
    event_id   uuid NOT NULL,
    subject    text NOT NULL,
    outcome    text,
    reason     text,
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS card_qr_tokens (
    id           bigserial PRIMARY KEY,
    permit_no    text NOT NULL,
    card_id      text NOT NULL,
    key_id       text NOT NULL,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    purpose      text NOT NULL,
    token_sha256 text NOT NULL
);
CREATE INDEX IF NOT EXISTS card_qr_tokens_permit ON card_qr_tokens (permit_no);
-- One physical card per permit and per SSN.
CREATE TABLE IF NOT EXISTS card_physical_cards (
    permit_no text PRIMARY KEY,
    ssn       text NOT NULL UNIQUE,
    card_no   text NOT NULL UNIQUE,
    issued_on date NOT NULL,
    ecard_id  text
);
-- dedup_key: 'status:<sequence>' or 'expiry:<valid_until>', so nothing is sent twice.
CREATE TABLE IF NOT EXISTS card_notifications (
    permit_no   text NOT NULL,
    dedup_key   text NOT NULL,
    card_id     text NOT NULL,
    kind        text NOT NULL,
    trigger     text NOT NULL,
    notified_on date NOT NULL,
    message     text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (permit_no, dedup_key)
);
