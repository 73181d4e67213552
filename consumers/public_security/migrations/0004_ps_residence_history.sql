-- The permit number is the person's for life (docs/domain.md §2): a work permit that ends
-- (cancelled, expired) may become active again under the same number with a new validity
-- period, and its holder then applies for a new residence permit. So a work permit may
-- carry several residence permits over time, at most one of them in force ('issued').
-- An issued residence permit whose end has passed becomes 'expired' when the next one is
-- issued on the same work permit; 'cancelled' closes a cancellation case (an officer's
-- decision).
ALTER TABLE ps_residence_permits DROP CONSTRAINT ps_residence_permits_permit_no_key;
CREATE UNIQUE INDEX ps_residence_permits_in_force
    ON ps_residence_permits (permit_no) WHERE status = 'issued';
CREATE INDEX ps_residence_permits_by_permit ON ps_residence_permits (permit_no);

ALTER TABLE ps_residence_permits DROP CONSTRAINT ps_residence_permits_status_check;
ALTER TABLE ps_residence_permits ADD CONSTRAINT ps_residence_permits_status_check
    CHECK (status IN ('issued', 'cancellation_required', 'cancelled', 'expired'));

-- A change of its registered particulars (art. 33) reported to the holder: which ones
-- (field names, never values), when the work permit changed, and by when the holder
-- must apply for the change. NULL when none is outstanding.
ALTER TABLE ps_residence_permits
    ADD COLUMN changed_particulars text[],
    ADD COLUMN particulars_changed_on date,
    ADD COLUMN change_report_by date;
