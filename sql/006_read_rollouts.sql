-- Read model: rollout status per (deployment, target) for the targets a deployment currently
-- selects: desired and applied revision, state, last error and attempt. A target that stops
-- matching loses its row. Serves the per-target status of GET /v1/deployments/{name}; the index
-- serves "what runs on this target".
CREATE TABLE read_rollouts (
    deployment       text        NOT NULL,
    target           text        NOT NULL,
    desired_revision integer     NOT NULL,
    applied_revision integer,
    state            text        NOT NULL
        CHECK (state IN ('pending', 'applying', 'applied', 'failed', 'paused')),
    outcome          text,
    last_error       text,
    last_attempt_at  timestamptz,
    attempts         integer     NOT NULL,
    objects_applied  integer     NOT NULL,
    PRIMARY KEY (deployment, target)
);

CREATE INDEX read_rollouts_target ON read_rollouts (target);
