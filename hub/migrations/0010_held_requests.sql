-- Requests held until what they name arrives, and the answers given per request id
-- (hub/dispatch.py: `Hold`, `Router.hold_for`, `Router.on_request`).

-- A request that named a permit (or a document issued on it) the agency does not know yet waits here
-- until an event naming that key is applied, or until `hold_until` (its record time plus
-- the agency's hold period) has passed on the stream's clock; then its handler decides it.
-- A resubmission of a held request id waits behind it (same key, same deadline). The row
-- goes when the request is decided.
CREATE TABLE hub_held_requests (
    position    bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    request_id  text,
    hold_key    text        NOT NULL,
    reason      text        NOT NULL,
    event       bytea       NOT NULL,
    received_at timestamptz NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    hold_until  timestamptz NOT NULL
);
CREATE INDEX hub_held_requests_key ON hub_held_requests (hold_key);
CREATE INDEX hub_held_requests_until ON hub_held_requests (hold_until);
CREATE INDEX hub_held_requests_request ON hub_held_requests (event_type, request_id)
    WHERE request_id IS NOT NULL;

-- The first answer to each request id: the outbox records it became, byte for byte, so a
-- resubmission of the same request (same id, same data) gets the very same events again.
-- `digest` is the SHA-256 of the request's data as first submitted.
CREATE TABLE hub_request_answers (
    event_type  text        NOT NULL,
    request_id  text        NOT NULL,
    digest      bytea       NOT NULL,
    topics      text[]      NOT NULL,
    keys        bytea[]     NOT NULL,
    "values"    bytea[]     NOT NULL,
    answered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (event_type, request_id)
);
