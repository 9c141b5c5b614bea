-- The runaway-agent breaker: one set of rules admins tune, the trips it made (one open trip per
-- user, whichever replica saw it first), the recent activity every replica shares, and a
-- runtime frozen in place while its owner's trip is open.

CREATE TABLE breaker_rules (
    id                     boolean     PRIMARY KEY DEFAULT true CHECK (id),
    enabled                boolean     NOT NULL DEFAULT true,
    spend_per_minute_micro bigint      DEFAULT 500000 CHECK (spend_per_minute_micro > 0),
    sustained_minutes      integer     NOT NULL DEFAULT 5 CHECK (sustained_minutes BETWEEN 1 AND 60),
    requests_per_minute    integer     DEFAULT 120 CHECK (requests_per_minute > 0),
    repeats                integer     DEFAULT 20 CHECK (repeats >= 2),
    repeat_window_secs     integer     NOT NULL DEFAULT 120 CHECK (repeat_window_secs BETWEEN 10 AND 3600),
    errors                 integer     DEFAULT 30 CHECK (errors > 0),
    error_window_secs      integer     NOT NULL DEFAULT 60 CHECK (error_window_secs BETWEEN 10 AND 3600),
    cooldown_minutes       integer     NOT NULL DEFAULT 10 CHECK (cooldown_minutes BETWEEN 0 AND 1440),
    include_personal_keys  boolean     NOT NULL DEFAULT false,
    webhook_url            text        CHECK (webhook_url ~ '^https?://'),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by             text
);
INSERT INTO breaker_rules DEFAULT VALUES;

CREATE TABLE breaker_trips (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rule         text        NOT NULL CHECK (rule IN ('spend_rate', 'request_rate', 'repeats', 'errors')),
    words        text        NOT NULL,
    key_kind     text        NOT NULL CHECK (key_kind IN ('runtime', 'personal')),
    tripped_at   timestamptz NOT NULL DEFAULT now(),
    resume_after timestamptz NOT NULL,
    resumed_at   timestamptz,
    resumed_by   text,
    CHECK ((resumed_at IS NULL) = (resumed_by IS NULL))
);
-- One open trip per user: two replicas that see the same loop make one trip.
CREATE UNIQUE INDEX breaker_trips_open ON breaker_trips (user_id) WHERE resumed_at IS NULL;
CREATE INDEX breaker_trips_recent ON breaker_trips (tripped_at DESC);

-- Each replica's per-second counts, so that a loop spread over replicas trips as one. Lost with
-- a database crash, which only forgets the last minutes of activity.
CREATE UNLOGGED TABLE breaker_activity (
    user_id   uuid    NOT NULL,
    replica   text    NOT NULL,
    second    bigint  NOT NULL,
    requests  integer NOT NULL,
    errors    integer NOT NULL,
    cost_nano bigint  NOT NULL,
    prints    bigint[] NOT NULL,
    PRIMARY KEY (user_id, second, replica)
);
CREATE INDEX breaker_activity_second ON breaker_activity (second);

-- Keys are refused while a trip is open; every replica drops its cached callers on a change.
CREATE TRIGGER breaker_rules_gateway AFTER UPDATE ON breaker_rules
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();
CREATE TRIGGER breaker_trips_gateway AFTER INSERT OR UPDATE OR DELETE ON breaker_trips
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();

-- A runtime held by the platform: frozen in place (`paused_in_place`), or stopped where the
-- engine cannot freeze; its time is not metered while it is not running.
ALTER TABLE runtimes
    ADD COLUMN paused_reason   text,
    ADD COLUMN paused_at       timestamptz,
    ADD COLUMN paused_in_place boolean,
    ADD COLUMN stop_kind       text CHECK (stop_kind IN ('idle', 'lifetime', 'disk', 'budget', 'breaker')),
    DROP CONSTRAINT runtimes_observed_check,
    ADD CONSTRAINT runtimes_observed_check CHECK (observed_state IN
        ('creating', 'starting', 'running', 'paused', 'stopping', 'stopped', 'error', 'deleted')),
    ADD CONSTRAINT runtimes_paused_check CHECK ((paused_reason IS NULL) = (paused_at IS NULL));
