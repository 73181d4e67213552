-- Baseline: the social insurance agency's tables as the code before numbered migrations
-- created them at every start. `IF NOT EXISTS` is kept in this baseline step only, so that
-- a database made by that code adopts it without error: the step finds them there,
-- changes nothing and is recorded. Every later step is plain DDL.
--
-- si_permits.standard, passport_no and date_of_birth are declared here as a fresh
-- database gets them. A database made before the registration procedure has an
-- si_permits without them, which this CREATE ... IF NOT EXISTS leaves alone: step 0002
-- adds them there.

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
