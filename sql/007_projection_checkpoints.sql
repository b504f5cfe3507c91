-- How far each projection has folded the log. Written in the same transaction as the rows it
-- covers, so after a crash the read models and their checkpoint never disagree: the projector
-- resumes after `position`, and a repeated position is a duplicate delivery, not an error.
-- `format` names the fold that produced the rows: a projector whose fold differs rebuilds.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    format     integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
