-- Reviewers' decisions on referred registration requests (InsuranceReviewDecided, from the
-- agency's desk on socialinsurance.decisions.v1), one per request id: the request's state
-- moves from referred to registered or rejected by the row here (docs/domain.md §2 social
-- insurance, the request's states). The reason is the reviewer's ground, free of personal
-- data by the schema's rule; the officer is named by staff id, never by name.
CREATE TABLE si_reviews (
    request_id text PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    permit_no  text NOT NULL,
    decision   text NOT NULL CHECK (decision IN ('approve', 'refuse')),
    exempt     text[] NOT NULL,
    officer_id text NOT NULL,
    decided_at timestamptz NOT NULL,
    reason     text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('registered', 'rejected')),
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The employer a request named, so that a reviewer's approval registers it as asked. NULL
-- on requests stored before this step: a referred one named the permit's own employer
-- (any other was refused before the agreement question), which the approval then takes.
ALTER TABLE si_requests ADD COLUMN employer_credit_code text;
