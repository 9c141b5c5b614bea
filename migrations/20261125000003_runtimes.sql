-- One runtime per user (the binding) and the durable lifecycle tasks that act on it.
-- No foreign key to users: when an account is deleted its runtime must still be torn down,
-- so the binding outlives the user row until the delete task finishes.

CREATE TABLE runtimes (
    user_id            uuid        NOT NULL,
    username           text        NOT NULL,
    runtime_id         text        NOT NULL,
    desired_state      text        NOT NULL DEFAULT 'stopped',
    observed_state     text        NOT NULL DEFAULT 'stopped',
    profile            text        NOT NULL,
    image              text        NOT NULL,
    config_hash        text,
    container_id       text,
    -- Where the control plane reaches the runtime (never shown to users) ...
    internal_endpoint  text,
    -- ... and what the user opens in the browser (set once the entry layer routes it).
    browser_url        text,
    retention          text        NOT NULL DEFAULT 'preserve_workspace',
    -- The runtime's own gateway token (no secret is shared between runtimes).
    gateway_token      text        NOT NULL,
    memory_mb          integer,
    cpus               double precision,
    pids               integer,
    last_error         text,
    crash_count        integer     NOT NULL DEFAULT 0,
    crash_window_start timestamptz,
    next_recover_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    ready_at           timestamptz,
    CONSTRAINT runtimes_pkey PRIMARY KEY (user_id),
    CONSTRAINT runtimes_runtime_id_key UNIQUE (runtime_id),
    CONSTRAINT runtimes_desired_check CHECK (desired_state IN ('running', 'stopped', 'deleted')),
    CONSTRAINT runtimes_observed_check CHECK (observed_state IN
        ('creating', 'starting', 'running', 'stopping', 'stopped', 'error', 'deleted')),
    CONSTRAINT runtimes_retention_check CHECK (retention IN ('preserve_workspace', 'wipe_workspace')),
    CONSTRAINT runtimes_limits_check CHECK (
        (memory_mb IS NULL OR memory_mb BETWEEN 64 AND 65536)
        AND (cpus IS NULL OR cpus BETWEEN 0.1 AND 64)
        AND (pids IS NULL OR pids BETWEEN 16 AND 65536))
);

CREATE TABLE runtime_tasks (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id        uuid        NOT NULL,
    action         text        NOT NULL,
    status         text        NOT NULL DEFAULT 'queued',
    stage          text        NOT NULL DEFAULT 'queued',
    -- [{"stage": "...", "at": "..."}], in order.
    stages         jsonb       NOT NULL DEFAULT '[]',
    wipe_workspace boolean     NOT NULL DEFAULT false,
    error          text,
    requested_by   text,
    attempts       integer     NOT NULL DEFAULT 0,
    lease_owner    text,
    lease_until    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    CONSTRAINT runtime_tasks_pkey PRIMARY KEY (id),
    CONSTRAINT runtime_tasks_action_check CHECK (action IN ('start', 'stop', 'recover', 'delete')),
    CONSTRAINT runtime_tasks_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled'))
);
-- Asking twice for the same thing joins the queued task instead of adding one.
CREATE UNIQUE INDEX runtime_tasks_one_queued_key ON runtime_tasks (user_id, action) WHERE status = 'queued';
-- One task at a time per user, whatever the number of control-plane replicas.
CREATE UNIQUE INDEX runtime_tasks_one_running_key ON runtime_tasks (user_id) WHERE status = 'running';
CREATE INDEX runtime_tasks_queue_idx ON runtime_tasks (created_at) WHERE status = 'queued';
CREATE INDEX runtime_tasks_user_idx ON runtime_tasks (user_id, created_at DESC);
