-- Read model: a revision keeps an admin's freeze override (the reason, and the freezes that covered
-- its targets when it was submitted), so history shows which revisions went through a freeze.
-- Derived data: the fold's format moved with this change (projections/tables.py FORMAT), so the
-- rows are rebuilt from the log and these columns filled.
ALTER TABLE read_revisions
    ADD COLUMN override_reason  text,
    ADD COLUMN override_freezes text[] NOT NULL DEFAULT '{}';
