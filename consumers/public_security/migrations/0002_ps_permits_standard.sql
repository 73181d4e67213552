-- ps_permits of a database made before the residence-permit procedures lacks standard
-- (baseline 0001 found the old table and left it alone).
-- Which databases exist, and what this step does to each:
--   * fresh, or made by the code that declared the column in its CREATE: the column is
--     there, NOT NULL; nothing to do.
--   * made before the procedures and since started by that code: its
--     `ADD COLUMN IF NOT EXISTS` already added it, nullable; nothing to do.
--   * made before the procedures and not started since: it is added here, nullable,
--     exactly as that code would have added it.
-- So every database ends with the same columns; standard is nullable where rows written
-- before the procedures exist. NULL means unknown until the permit's next event fills in
-- the real value, and NOT NULL cannot be set while such rows hold NULL. A later step may
-- SET NOT NULL once every row carries it.
-- A plain ALTER TABLE ... ADD COLUMN would fail on the first two kinds, hence the check.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'ps_permits'
                     AND column_name = 'standard') THEN
        ALTER TABLE ps_permits ADD COLUMN standard text;
    END IF;
END
$$;
