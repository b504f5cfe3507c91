-- Read model: the version history of every deployment, one row per revision (rollbacks included,
-- with the revision they restore). Rows never change once written, like the events they come from.
-- manifests is jsonb so that history can be searched ("which revision ran image X?").
-- Serves GET /v1/deployments/{name}/revisions[/{n}] and /diff.
CREATE TABLE read_revisions (
    deployment      text        NOT NULL,
    revision        integer     NOT NULL,
    manifests       jsonb       NOT NULL,
    selector        text        NOT NULL,
    message         text        NOT NULL,
    matched_targets text[]      NOT NULL,
    actor           text,
    recorded_at     timestamptz NOT NULL,
    position        bigint      NOT NULL,
    rolled_back_to  integer,
    PRIMARY KEY (deployment, revision)
);
