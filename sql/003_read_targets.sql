-- Read model: every target as the fleet fold (projections/fleet.py) sees it, one row per target.
-- Derived data: the projector (projections/runner.py) keeps it in the same transaction as its
-- checkpoint, and `ledger rebuild` recreates it from the log. Serves GET /v1/targets and the
-- matched_targets resolution at submission. Selectors are matched in Python (full Kubernetes
-- semantics), so labels need no index here.
CREATE TABLE read_targets (
    name            text        PRIMARY KEY,
    labels          jsonb       NOT NULL,
    server          text,
    context         text,
    credentials_ref text,
    ca_ref          text,
    insecure        boolean     NOT NULL,
    retired         boolean     NOT NULL,
    version         integer     NOT NULL,
    position        bigint      NOT NULL,
    registered_at   timestamptz,
    updated_at      timestamptz
);
