-- si_permits of a database made before the registration procedure lacks standard,
-- passport_no and date_of_birth (baseline 0001 found the old table and left it alone).
-- Which databases exist, and what this step does to each:
--   * fresh, or made by the code that declared the columns in its CREATE: the columns are
--     there, NOT NULL; nothing to do.
--   * made before the procedure and since started by that code: its
--     `ADD COLUMN IF NOT EXISTS` already added them, nullable; nothing to do.
--   * made before the procedure and not started since: they are added here, nullable,
--     exactly as that code would have added them.
-- So every database ends with the same columns; they are nullable where rows written
-- before the procedure exist. NULL means unknown until the permit's next event fills in
-- the real value. Never a made-up default: a passport key of made-up values could join
-- two people under one SSN; and NOT NULL cannot be set while such rows hold NULL. A later
-- step may SET NOT NULL once every row carries the values.
-- A plain ALTER TABLE ... ADD COLUMN would fail on the first two kinds, hence the checks.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'si_permits'
                     AND column_name = 'standard') THEN
        ALTER TABLE si_permits ADD COLUMN standard text;
    END IF;
    IF NOT EXISTS (SELECT FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'si_permits'
                     AND column_name = 'passport_no') THEN
        ALTER TABLE si_permits ADD COLUMN passport_no text;
    END IF;
    IF NOT EXISTS (SELECT FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'si_permits'
                     AND column_name = 'date_of_birth') THEN
        ALTER TABLE si_permits ADD COLUMN date_of_birth date;
    END IF;
END
$$;
