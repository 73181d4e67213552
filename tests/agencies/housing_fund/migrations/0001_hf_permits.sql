-- The fund's view of the permits: the newest version of each, guarded by its sequence.
CREATE TABLE hf_permits (
    permit_no            text        PRIMARY KEY,
    sequence             integer     NOT NULL,
    status               text        NOT NULL,
    holder_name          text        NOT NULL,
    nationality          text        NOT NULL,
    employer_credit_code text        NOT NULL,
    valid_from           date,
    valid_until          date,
    applied_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
