-- The model layer: provider credentials (sealed), the model registry and who sees which model,
-- gateway keys (per runtime and personal), per-user limits with their quota windows, and usage.

CREATE TABLE provider_credentials (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL,
    -- nonce || ciphertext (XChaCha20-Poly1305, the row id as associated data); never returned.
    sealed          bytea       NOT NULL,
    -- The secret's last four characters, so admins can tell credentials apart.
    hint            text        NOT NULL,
    -- Where "verify" lists models when no model uses the credential yet.
    verify_url      text,
    verified_at     timestamptz,
    verify_ok       boolean,
    verify_message  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT provider_credentials_name_key UNIQUE (name),
    CONSTRAINT provider_credentials_name_check CHECK (length(name) BETWEEN 1 AND 80)
);

CREATE TABLE models (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- What users and runtimes ask for.
    alias              text        NOT NULL,
    upstream_kind      text        NOT NULL,
    base_url           text        NOT NULL,
    upstream_model     text        NOT NULL,
    credential_id      uuid        REFERENCES provider_credentials (id) ON DELETE RESTRICT,
    enabled            boolean     NOT NULL DEFAULT true,
    visibility         text        NOT NULL DEFAULT 'everyone',
    visible_roles      text[]      NOT NULL DEFAULT '{}',
    is_default         boolean     NOT NULL DEFAULT false,
    -- Micro-dollars per million tokens ($2.50 per 1M = 2500000).
    price_input_micro  bigint      NOT NULL DEFAULT 0,
    price_output_micro bigint      NOT NULL DEFAULT 0,
    context_window     integer,
    fallback_id        uuid        REFERENCES models (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT models_alias_key UNIQUE (alias),
    CONSTRAINT models_alias_check CHECK (alias ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,79}$'),
    CONSTRAINT models_kind_check CHECK (upstream_kind IN ('litellm', 'openai-compatible', 'ollama', 'vllm')),
    CONSTRAINT models_visibility_check CHECK (visibility IN ('everyone', 'roles', 'users')),
    CONSTRAINT models_price_check CHECK (price_input_micro >= 0 AND price_output_micro >= 0),
    CONSTRAINT models_context_check CHECK (context_window IS NULL OR context_window > 0),
    CONSTRAINT models_fallback_check CHECK (fallback_id IS NULL OR fallback_id <> id)
);
CREATE UNIQUE INDEX models_one_default ON models ((true)) WHERE is_default;

CREATE TABLE model_users (
    model_id uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (model_id, user_id)
);

-- Which enabled model each user may use: the one rule the pages, the gateway and the rendered
-- runtime configuration all read.
CREATE VIEW user_models AS
SELECT u.id AS user_id, m.id AS model_id
FROM users u
JOIN models m ON m.enabled
WHERE m.visibility = 'everyone'
   OR (m.visibility = 'roles' AND u.role = ANY (m.visible_roles))
   OR (m.visibility = 'users' AND EXISTS (
         SELECT 1 FROM model_users mu WHERE mu.model_id = m.id AND mu.user_id = u.id));

CREATE TABLE api_keys (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           text        NOT NULL,
    name           text        NOT NULL,
    -- The key's first characters, shown in lists.
    prefix         text        NOT NULL,
    -- SHA-256 of the whole key (keys are 256 random bits, so a fast hash is enough).
    hash           bytea       NOT NULL,
    -- Runtime keys only: the key sealed, so the runtime's configuration can be rendered again.
    sealed         bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    revoked_reason text,
    CONSTRAINT api_keys_hash_key UNIQUE (hash),
    CONSTRAINT api_keys_kind_check CHECK (kind IN ('personal', 'runtime')),
    CONSTRAINT api_keys_sealed_check CHECK ((kind = 'runtime') = (sealed IS NOT NULL)),
    CONSTRAINT api_keys_name_check CHECK (length(name) BETWEEN 1 AND 80)
);
CREATE UNIQUE INDEX api_keys_one_runtime ON api_keys (user_id) WHERE kind = 'runtime' AND revoked_at IS NULL;
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE user_limits (
    user_id            uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    rpm                integer,
    tpm                integer,
    budget_tokens      bigint,
    budget_usd_micro   bigint,
    budget_period      text        NOT NULL DEFAULT 'month',
    keys_suspended_at  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_limits_positive CHECK (
        (rpm IS NULL OR rpm > 0) AND (tpm IS NULL OR tpm > 0)
        AND (budget_tokens IS NULL OR budget_tokens > 0)
        AND (budget_usd_micro IS NULL OR budget_usd_micro > 0)),
    CONSTRAINT user_limits_period_check CHECK (budget_period IN ('day', 'month'))
);

-- Settled use per user, quota (rpm, tpm, tokens, cost) and window.
CREATE TABLE quota_usage (
    user_id      uuid        NOT NULL,
    quota        text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, quota, window_start)
);

-- What each control-plane replica holds reserved (granted, not yet settled) in a window. A replica
-- that stops heart-beating has its leases returned by the others.
CREATE TABLE quota_leases (
    replica      uuid        NOT NULL,
    user_id      uuid        NOT NULL,
    quota        text        NOT NULL,
    window_start timestamptz NOT NULL,
    amount       bigint      NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, user_id, quota, window_start)
);
CREATE INDEX quota_leases_window ON quota_leases (user_id, quota, window_start);

-- One row per gateway request; never updated or deleted.
CREATE TABLE usage_events (
    id                bigserial   PRIMARY KEY,
    at                timestamptz NOT NULL,
    user_id           uuid        NOT NULL,
    username          text        NOT NULL,
    key_id            uuid,
    key_kind          text,
    model_alias       text        NOT NULL,
    endpoint          text        NOT NULL,
    stream            boolean     NOT NULL,
    status            smallint    NOT NULL,
    error_code        text,
    prompt_tokens     integer     NOT NULL,
    completion_tokens integer     NOT NULL,
    -- True when the upstream reported no usage and the tokens were counted here.
    estimated         boolean     NOT NULL,
    cost_nano         bigint      NOT NULL,
    latency_ms        integer     NOT NULL,
    ttfb_ms           integer
);
CREATE INDEX usage_events_at ON usage_events (at);
CREATE INDEX usage_events_user_at ON usage_events (user_id, at);

CREATE FUNCTION usage_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage_events is append-only';
END
$$;
CREATE TRIGGER usage_events_append_only BEFORE UPDATE OR DELETE ON usage_events
    FOR EACH ROW EXECUTE FUNCTION usage_events_append_only();

CREATE TABLE usage_daily (
    day               date   NOT NULL,
    user_id           uuid   NOT NULL,
    model_alias       text   NOT NULL,
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_nano         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, model_alias)
);
CREATE INDEX usage_daily_user ON usage_daily (user_id, day);

-- The gateway caches keys, limits and the registry; these tell every replica to drop them.
CREATE FUNCTION notify_gateway() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('clawloops_gateway', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER models_gateway AFTER INSERT OR UPDATE OR DELETE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
CREATE TRIGGER model_users_gateway AFTER INSERT OR UPDATE OR DELETE ON model_users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
CREATE TRIGGER provider_credentials_gateway AFTER INSERT OR UPDATE OF sealed OR DELETE ON provider_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
CREATE TRIGGER api_keys_gateway AFTER UPDATE OF revoked_at, expires_at OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
CREATE TRIGGER user_limits_gateway AFTER INSERT OR UPDATE OR DELETE ON user_limits
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
CREATE TRIGGER users_gateway AFTER UPDATE OF role, status OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
