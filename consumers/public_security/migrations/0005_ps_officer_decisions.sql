-- Decisions by officers (docs/domain.md §2 public security, Decisions by officers).
--
-- An application may be referred to an officer (outcome 'referred', `referral` says why);
-- the officer's decision settles it as issued or rejected.
ALTER TABLE ps_applications DROP CONSTRAINT ps_applications_outcome_check;
ALTER TABLE ps_applications ADD CONSTRAINT ps_applications_outcome_check
    CHECK (outcome IN ('issued', 'extended', 'rejected', 'referred'));
ALTER TABLE ps_applications ADD COLUMN referral text;

-- A cancellation case (status cancellation_required) is closed by an officer: the residence
-- permit is cancelled on a date, not before the work permit's cancellation.
ALTER TABLE ps_residence_permits
    ADD COLUMN work_permit_cancelled_on date,
    ADD COLUMN cancelled_on date;

-- Every officer's decision applied, one per application or case: the legal record of who
-- decided, when and why. `reason` is a line of at most 200 characters that names no
-- personal data (the schema bounds it; the handler refuses one naming the holder).
CREATE TABLE ps_officer_decisions (
    event_id    uuid        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('application', 'cancellation')),
    target      text        NOT NULL,
    verdict     text        NOT NULL,
    officer_id  text        NOT NULL,
    decided_at  timestamptz NOT NULL,
    reason      text        NOT NULL CHECK (char_length(reason) <= 200),
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (kind, target)
);
