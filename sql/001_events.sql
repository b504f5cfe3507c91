-- The event log: one ordered, append-only table that is at once audit trail, version history and
-- work queue. Positions are assigned by the batching writer under an advisory lock (see
-- ledger/writer.py), never by a sequence: a sequence leaves gaps on rollback, and readers rely on
-- "seen N means seen everything before N".
CREATE TABLE events (
    position    bigint      PRIMARY KEY CHECK (position > 0),
    stream      text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    id          uuid        NOT NULL,
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL,
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL,
    category    text        GENERATED ALWAYS AS (split_part(stream, '-', 1)) STORED,
    CONSTRAINT events_id_key UNIQUE (id),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

CREATE INDEX events_category_position ON events (category, position);
CREATE INDEX events_type_position ON events (type, position);
CREATE INDEX events_recorded_at ON events (recorded_at);
