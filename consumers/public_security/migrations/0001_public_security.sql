-- Baseline: public security's tables as the code before numbered migrations created them
-- at every start. `IF NOT EXISTS` is kept in this baseline step only, so that a database
-- made by that code adopts it without error: the step finds them there, changes nothing
-- and is recorded. Every later step is plain DDL.
--
-- ps_permits.standard is declared here as a fresh database gets it. A database made
-- before the residence-permit procedures has a ps_permits without it, which this
-- CREATE ... IF NOT EXISTS leaves alone: step 0002 adds it there.

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
