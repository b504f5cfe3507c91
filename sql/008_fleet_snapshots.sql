-- Serialized fleet states (projections/snapshots.py) taken by the projector every K events, so that
-- a point-in-time replay (GET /v1/state?at=N) loads the nearest snapshot at or below N and folds
-- only the events after it. A cache of the log, never a source of truth: `format` changes whenever
-- the fold or the encoding does, rows of another format are ignored, and `ledger rebuild` clears
-- the table.
CREATE TABLE fleet_snapshots (
    position    bigint      PRIMARY KEY CHECK (position >= 0),
    format      integer     NOT NULL,
    recorded_at timestamptz,
    data        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
