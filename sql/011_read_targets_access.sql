-- Read model: a target's access fields (ledger/access.py, defined once) as one jsonb document, so
-- that adding or retiring an access field changes no table. Derived data: the projector's fold
-- format moved with this change (projections/tables.py FORMAT), so the rows are rebuilt from the log.
ALTER TABLE read_targets
    DROP COLUMN server,
    DROP COLUMN context,
    DROP COLUMN credentials_ref,
    DROP COLUMN ca_ref,
    DROP COLUMN insecure,
    ADD COLUMN access jsonb NOT NULL DEFAULT '{}';
