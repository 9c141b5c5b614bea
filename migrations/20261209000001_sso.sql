-- Single sign-on: which identity at which provider is which account, the sign-ins under way
-- (each state usable once), the links waiting for an account's own password, and who may
-- still sign in with a password.

-- One row per (provider, subject): the IdP's stable id for a person is what signs them in here,
-- never a name or an address that could later belong to someone else.
CREATE TABLE sso_identities (
    provider      text        NOT NULL CHECK (provider ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    subject       text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         text,
    linked_at     timestamptz NOT NULL DEFAULT now(),
    linked_by     text        NOT NULL CHECK (linked_by IN ('created', 'password', 'admin', 'invitation')),
    last_login_at timestamptz,
    PRIMARY KEY (provider, subject)
);
-- One identity per provider per account: a second IdP account can't ride on the first's link.
CREATE UNIQUE INDEX sso_identities_user_provider ON sso_identities (user_id, provider);

-- A sign-in between the redirect to the provider and its return. Only the state's hash is kept;
-- the row is deleted when the browser comes back, so a state (and its code) works once.
CREATE TABLE sso_flows (
    state_hash    bytea       PRIMARY KEY,
    provider      text        NOT NULL,
    nonce         text        NOT NULL,
    pkce_verifier text        NOT NULL,
    return_to     text        NOT NULL DEFAULT '/',
    -- Who started it: sign-ins under way are capped per address (each is a row anyone can make).
    client_addr   text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sso_flows_created ON sso_flows (created_at);
CREATE INDEX sso_flows_client ON sso_flows (client_addr, created_at);

-- An IdP identity waiting to be linked to the account that already has its (verified) e-mail
-- address, until that account's own password confirms it.
CREATE TABLE sso_pending_links (
    token_hash    bytea       PRIMARY KEY,
    provider      text        NOT NULL,
    subject       text        NOT NULL,
    email         text        NOT NULL,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Who may sign in with a password: everyone, or (with single sign-on in place) only the named
-- break-glass admin. That admin can't be deleted, disabled or demoted while named here (the
-- application refuses it in words; the foreign key is the backstop).
CREATE TABLE sign_in_policy (
    id               boolean     PRIMARY KEY DEFAULT true CHECK (id),
    password_for     text        NOT NULL DEFAULT 'everyone'
                                 CHECK (password_for IN ('everyone', 'break_glass')),
    break_glass_user uuid        REFERENCES users (id),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text,
    CHECK (password_for = 'everyone' OR break_glass_user IS NOT NULL)
);
INSERT INTO sign_in_policy DEFAULT VALUES;
