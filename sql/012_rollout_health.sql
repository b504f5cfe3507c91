-- Read models for rollout health (issue 12): a rollout's state words become pending, applying,
-- progressing, healthy, degraded, failed, paused ("applied" is now progressing until the applier
-- records a verdict), with the health verdict and the reason/message of the last degraded or failed
-- state; a revision keeps its progress deadline and self-heal setting. Derived data: the fold's
-- format moved with this change (projections/tables.py FORMAT), so the rows are rebuilt from the log.
DELETE FROM read_rollouts;
ALTER TABLE read_rollouts
    DROP CONSTRAINT read_rollouts_state_check,
    ADD CONSTRAINT read_rollouts_state_check
        CHECK (state IN ('pending', 'applying', 'progressing', 'healthy', 'degraded', 'failed', 'paused')),
    ADD COLUMN health  text CHECK (health IN ('healthy', 'degraded')),
    ADD COLUMN reason  text,
    ADD COLUMN message text;

ALTER TABLE read_revisions
    ADD COLUMN progress_deadline_seconds integer NOT NULL DEFAULT 600,
    ADD COLUMN self_heal                 boolean NOT NULL DEFAULT true;
