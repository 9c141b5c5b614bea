-- Several control-plane replicas on one database.

-- The installation key's fingerprint (HMAC of a fixed purpose under the key, never the key):
-- recorded by the first replica that starts, compared by every later one, so that two replicas
-- can never seal secrets with different keys.
ALTER TABLE instance ADD COLUMN key_fingerprint text;

-- Fenced task leases: every claim draws a new token, and every write a worker makes is
-- conditional on still holding it, so a worker that lost its lease (paused, cut off) changes
-- nothing after another took the task over.
ALTER TABLE runtime_tasks ADD COLUMN lease_token uuid;

-- A crash is counted once: the identity of what crashed (the container and the moment it last
-- became ready) is compared and set in the same statement that counts it.
ALTER TABLE runtimes ADD COLUMN crash_key text;

-- The replicas serving this installation, as each one reports itself.
CREATE TABLE control_replicas (
    id           text        NOT NULL,
    hostname     text        NOT NULL,
    version      text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    -- Set while this replica holds the reconciler's lock.
    leader_since timestamptz,
    -- Set when it began shutting down (readiness answers 503 from then on).
    draining_at  timestamptz,
    CONSTRAINT control_replicas_pkey PRIMARY KEY (id)
);
