"""The schema as the code created it before numbered migrations (idempotent DDL strings run
at every start), kept so the migration tests can build a database the old way and check
that it adopts the baseline."""

CARD_DDL = """
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
"""

PS_DDL = """
CREATE TABLE IF NOT EXISTS ps_permits (
    permit_no       text PRIMARY KEY,
    sequence        integer NOT NULL,
    status          text NOT NULL,
    standard        text NOT NULL,
    holder_name     text NOT NULL,
    nationality     char(2) NOT NULL,
    passport_no     text NOT NULL,
    passport_expiry date NOT NULL,
    employer_city   text NOT NULL,
    valid_from      date,
    valid_until     date,
    cancelled_on    date,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Databases made before the residence-permit procedures lack the column: NULL (unknown)
-- until the permit's next event fills in its real value.
ALTER TABLE ps_permits ADD COLUMN IF NOT EXISTS standard text;

CREATE SEQUENCE IF NOT EXISTS ps_residence_permit_no_seq;

-- One residence permit per work permit; an extension moves its end, a work-permit
-- cancellation marks it. Rows are never deleted.
CREATE TABLE IF NOT EXISTS ps_residence_permits (
    residence_permit_no       text PRIMARY KEY,
    permit_no                 text NOT NULL UNIQUE,
    application_id            text NOT NULL,
    valid_from                date NOT NULL,
    valid_until               date NOT NULL,
    status                    text NOT NULL
        CHECK (status IN ('issued', 'cancellation_required')),
    extension_available_until date,
    cancel_by                 date,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every application received and its decision, one row per submission (event id).
CREATE TABLE IF NOT EXISTS ps_applications (
    event_id            uuid PRIMARY KEY,
    application_id      text NOT NULL,
    permit_no           text NOT NULL,
    purpose             text NOT NULL,
    presented           text NOT NULL,
    entry_date          date,
    applied_on          date NOT NULL,
    requested_until     date NOT NULL,
    outcome             text NOT NULL CHECK (outcome IN ('issued', 'extended', 'rejected')),
    reason              text,
    message             text,
    residence_permit_no text,
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- One decision per application id; later submissions of it are recorded as duplicates.
CREATE UNIQUE INDEX IF NOT EXISTS ps_applications_decided
    ON ps_applications (application_id) WHERE reason IS DISTINCT FROM 'duplicate_application';
"""

SI_DDL = """
CREATE TABLE IF NOT EXISTS si_permits (
    permit_no            text PRIMARY KEY,
    sequence             integer NOT NULL,
    status               text NOT NULL,
    standard             text NOT NULL,
    holder_name          text NOT NULL,
    nationality          char(2) NOT NULL,
    passport_no          text NOT NULL,
    date_of_birth        date NOT NULL,
    employer_credit_code text NOT NULL,
    employer_name        text NOT NULL,
    issued_on            date,
    valid_from           date,
    valid_until          date,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Databases made before the registration procedure lack these columns: NULL (unknown)
-- until the permit's next event fills in their real values. Never a made-up default: a
-- passport key of made-up values could join two people under one SSN.
ALTER TABLE si_permits ADD COLUMN IF NOT EXISTS standard text;
ALTER TABLE si_permits ADD COLUMN IF NOT EXISTS passport_no text;
ALTER TABLE si_permits ADD COLUMN IF NOT EXISTS date_of_birth date;

-- How requests may name a permit besides its number.
CREATE TABLE IF NOT EXISTS si_letters (
    letter_no text PRIMARY KEY,
    permit_no text NOT NULL
);
CREATE TABLE IF NOT EXISTS si_ecards (
    card_id   text PRIMARY KEY,
    permit_no text NOT NULL
);

-- One account per person, never deleted: a permit's end suspends it.
CREATE TABLE IF NOT EXISTS si_accounts (
    ssn               text PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('active', 'suspended')),
    opened_on         date NOT NULL,
    current_permit_no text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The person's keys (hashed, see identity.py), each naming one account.
CREATE TABLE IF NOT EXISTS si_person_keys (
    person_key text PRIMARY KEY,
    ssn        text NOT NULL REFERENCES si_accounts (ssn)
);

-- One registration per permit in force; a suspended one stays as history.
CREATE TABLE IF NOT EXISTS si_registrations (
    request_id           text PRIMARY KEY,
    permit_no            text NOT NULL,
    ssn                  text NOT NULL REFERENCES si_accounts (ssn),
    requester            text NOT NULL,
    employer_credit_code text NOT NULL,
    insured              text[] NOT NULL,
    exempt               text[] NOT NULL,
    agreement            char(2),
    registered_on        date NOT NULL,
    deadline             date NOT NULL,
    late                 boolean NOT NULL,
    status               text NOT NULL CHECK (status IN ('active', 'suspended')),
    suspended_on         date,
    suspension_cause     text
);
CREATE UNIQUE INDEX IF NOT EXISTS si_registrations_in_force
    ON si_registrations (permit_no) WHERE status = 'active';

-- Every request received and its decision, one row per submission (event id).
CREATE TABLE IF NOT EXISTS si_requests (
    event_id       uuid PRIMARY KEY,
    request_id     text NOT NULL,
    requester      text NOT NULL,
    reference_kind text NOT NULL,
    reference      text NOT NULL,
    permit_no      text,
    requested_on   date NOT NULL,
    certificate    boolean NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('registered', 'rejected', 'referred')),
    reason         text,
    message        text,
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- One decision per request id; later submissions of it are recorded as duplicates.
CREATE UNIQUE INDEX IF NOT EXISTS si_requests_decided
    ON si_requests (request_id) WHERE reason IS DISTINCT FROM 'duplicate_request';
"""

RUNTIME_DDL = """
CREATE TABLE IF NOT EXISTS hub_consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
"""

DISPATCH_DDL = """
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
"""

REDRIVES_DDL = """
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
"""

REPLAYS_DDL = """
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
"""

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS hub_outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

AUTHORITY_DDL = """
CREATE SEQUENCE IF NOT EXISTS permit_no_seq START 156000000000000001;
CREATE TABLE IF NOT EXISTS permits (
    permit_no  text        PRIMARY KEY,
    sequence   integer     NOT NULL,
    status     text        NOT NULL,
    record     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""
