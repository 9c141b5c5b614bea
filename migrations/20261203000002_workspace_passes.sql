-- Workspaces on a site of their own (docs/workspace-site.md): the control plane's session
-- cookie never reaches workspace hosts, so a signed-in person is handed to their workspace by
-- a one-time code (`code`, a minute), which forward-auth exchanges for a cookie of that host
-- alone (`cookie`). Both are stored as SHA-256 of the secret, and end with their session.
CREATE TABLE workspace_passes (
    token_hash  bytea       NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('code', 'cookie')),
    session_id  text        NOT NULL,
    workspace   text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workspace_passes_pkey PRIMARY KEY (token_hash),
    CONSTRAINT workspace_passes_session_id_fkey FOREIGN KEY (session_id)
        REFERENCES sessions (id) ON DELETE CASCADE
);
CREATE INDEX workspace_passes_session_id_idx ON workspace_passes (session_id);
CREATE INDEX workspace_passes_expires_at_idx ON workspace_passes (expires_at);
