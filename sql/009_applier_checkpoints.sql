-- Where the applier's fold of the log stands (handlers/checkpoint.py): the position and the folded
-- state at that position (fleet plus the applier's own bookkeeping, MessagePack, zlib), so a
-- restarted applier folds only what came after instead of the whole log. A cache, never a source
-- of truth: the state is a pure function of the log up to `position`, which is why every applier
-- process may write it (only forward), and a row of another `format` is ignored.
CREATE TABLE applier_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    format     text        NOT NULL,
    state      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
