-- People, their sessions, invitations, login throttling and the audit log.

CREATE TABLE users (
    id                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- Stored lower-case: usernames are unique without regard to case and later name
    -- containers and hosts, which must be lower-case.
    username             text        NOT NULL,
    email                text,
    role                 text        NOT NULL DEFAULT 'user',
    status               text        NOT NULL DEFAULT 'active',
    password_hash        text        NOT NULL,
    must_change_password boolean     NOT NULL DEFAULT false,
    -- Part of every session; a new value ends all of the user's sessions at once.
    session_stamp        bytea       NOT NULL DEFAULT uuid_send(gen_random_uuid()),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    last_login_at        timestamptz,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
    CONSTRAINT users_status_check CHECK (status IN ('active', 'disabled')),
    CONSTRAINT users_username_check CHECK (username = lower(username) AND length(username) BETWEEN 3 AND 32)
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;

-- tower-sessions records. `user_id` is copied out of the record so one person's sessions can be
-- listed and ended together (and disappear with the account).
CREATE TABLE sessions (
    id          text        NOT NULL,
    user_id     uuid,
    data        jsonb       NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    client_addr text,
    user_agent  text,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE invitations (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- SHA-256 of the secret in the link; the secret itself is never stored.
    token_hash  bytea       NOT NULL,
    role        text        NOT NULL,
    username    text,
    email       text,
    note        text,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_by  uuid,
    consumed_at timestamptz,
    consumed_by uuid,
    CONSTRAINT invitations_pkey PRIMARY KEY (id),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_role_check CHECK (role IN ('user', 'admin')),
    CONSTRAINT invitations_username_check CHECK (username IS NULL OR username = lower(username)),
    CONSTRAINT invitations_single_end_check CHECK (revoked_at IS NULL OR consumed_at IS NULL),
    CONSTRAINT invitations_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT invitations_revoked_by_fkey FOREIGN KEY (revoked_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT invitations_consumed_by_fkey FOREIGN KEY (consumed_by) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX invitations_created_at_idx ON invitations (created_at DESC);

-- Failed sign-ins per key ("user:<name>" or "addr:<ip>"), for exponential back-off.
CREATE TABLE login_throttle (
    key          text        NOT NULL,
    failures     integer     NOT NULL DEFAULT 0,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT login_throttle_pkey PRIMARY KEY (key)
);

-- Append-only record of security and admin events. Names are copied in so the history still
-- reads after an account is deleted.
CREATE TABLE audit_events (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    at            timestamptz NOT NULL DEFAULT now(),
    action        text        NOT NULL,
    actor_id      uuid,
    actor_name    text,
    subject_type  text,
    subject_id    text,
    subject_name  text,
    client_addr   text,
    details       jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT audit_events_pkey PRIMARY KEY (id)
);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, at DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
