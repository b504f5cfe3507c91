-- Web UI sessions (api/ui/sessions.py), kept so that a restart of the service does not sign every
-- browser out. Not part of the log: a session is a convenience of one browser, not a deployment fact.
-- Only a SHA-256 of the session id is stored (the id itself lives in the browser's cookie alone),
-- beside the SHA-256 of the token the session stands for (what the token table is keyed by, never
-- the token) and when the session ends unless it is used again. A session whose token is revoked
-- or expired answers nothing from the first request on (the token is checked on every request),
-- and its row is deleted when the service next loads the table.
CREATE TABLE ui_sessions (
    id_sha256    bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    token_sha256 bytea NOT NULL CHECK (length(token_sha256) = 32),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);
