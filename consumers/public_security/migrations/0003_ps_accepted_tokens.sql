-- The QR tokens public security accepted: a token proves the e-card was shown once, so the
-- same token is refused for a second application of the same purpose (token_reused).
-- Only a digest is kept (SHA-256 of the token's signed segment,
-- schemas.permit_token.token_digest), never the token. A row stops mattering once its token
-- has expired (plus the leeway), since verify refuses the token then anyway; none is
-- deleted yet.
CREATE TABLE ps_accepted_tokens (
    token_digest   bytea       NOT NULL CHECK (octet_length(token_digest) = 32),
    purpose        text        NOT NULL,
    application_id text        NOT NULL,
    event_id       uuid        NOT NULL,
    expires_at     timestamptz NOT NULL,
    accepted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (token_digest, purpose)
);
