-- Read model: every deployment's current state (revision, selector, paused, removed), one row per
-- deployment, kept by the projector with its checkpoint. Serves GET /v1/deployments[/{name}].
CREATE TABLE read_deployments (
    name             text        PRIMARY KEY,
    current_revision integer     NOT NULL,
    selector         text        NOT NULL,
    paused           boolean     NOT NULL,
    pause_reason     text        NOT NULL,
    removed          boolean     NOT NULL,
    version          integer     NOT NULL,
    position         bigint      NOT NULL,
    created_at       timestamptz,
    updated_at       timestamptz
);
