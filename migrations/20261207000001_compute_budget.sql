-- One budget for compute time and tokens. Runtime time is metered in intervals (opened and
-- closed with the runtime's observed state, in the same transaction), priced per size class
-- and hour, and charged as it accrues into the same spending window as model requests.

-- What runtime time costs, by size: a runtime belongs to the smallest class whose memory and
-- CPUs cover its limits (the largest class when none does).
CREATE TABLE compute_classes (
    name                 text             PRIMARY KEY,
    memory_mb            integer          NOT NULL,
    cpus                 double precision NOT NULL,
    -- Micro-dollars per hour of running time ($0.05 per hour = 50000).
    price_micro_per_hour bigint           NOT NULL DEFAULT 0,
    updated_at           timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT compute_classes_name_check CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,29}$'),
    CONSTRAINT compute_classes_size_check CHECK (memory_mb BETWEEN 64 AND 1048576 AND cpus BETWEEN 0.1 AND 512),
    CONSTRAINT compute_classes_price_check CHECK (price_micro_per_hour BETWEEN 0 AND 1000000000000)
);
INSERT INTO compute_classes (name, memory_mb, cpus) VALUES
    ('small', 2048, 1), ('medium', 8192, 4), ('large', 32768, 16);

-- One row per stretch a runtime ran. `seen_at` is the last time the engine was seen running it;
-- a runtime found gone is closed there, so time nobody saw is never charged. `charged_until`
-- moves forward in the transaction that charges, so nothing is charged twice.
CREATE TABLE compute_intervals (
    id            bigserial        PRIMARY KEY,
    user_id       uuid             NOT NULL,
    runtime_id    text             NOT NULL,
    -- The binding's own limits when it started (NULL: the installation's defaults).
    memory_mb     integer,
    cpus          double precision,
    started_at    timestamptz      NOT NULL,
    seen_at       timestamptz      NOT NULL,
    ended_at      timestamptz,
    charged_until timestamptz      NOT NULL,
    charged_nano  bigint           NOT NULL DEFAULT 0,
    CONSTRAINT compute_intervals_order CHECK (
        seen_at >= started_at AND charged_until >= started_at
        AND (ended_at IS NULL OR (ended_at >= started_at AND charged_until <= ended_at)))
);
CREATE UNIQUE INDEX compute_intervals_one_open ON compute_intervals (user_id) WHERE ended_at IS NULL;
CREATE INDEX compute_intervals_uncharged ON compute_intervals (id) WHERE ended_at IS NULL OR charged_until < ended_at;
CREATE INDEX compute_intervals_user ON compute_intervals (user_id, started_at);

-- Charged runtime time per day, user and class (the reports' roll-up, beside usage_daily).
CREATE TABLE compute_daily (
    day        date   NOT NULL,
    user_id    uuid   NOT NULL,
    size_class text   NOT NULL,
    run_ms     bigint NOT NULL DEFAULT 0,
    cost_nano  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, size_class)
);
CREATE INDEX compute_daily_user ON compute_daily (user_id, day);

CREATE FUNCTION runtimes_meter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.observed_state = 'running'
       AND (TG_OP = 'DELETE' OR NEW.observed_state <> 'running') THEN
        UPDATE compute_intervals SET ended_at = greatest(now(), started_at)
         WHERE user_id = OLD.user_id AND ended_at IS NULL;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.observed_state = 'running'
       AND (TG_OP = 'INSERT' OR OLD.observed_state <> 'running') THEN
        INSERT INTO compute_intervals (user_id, runtime_id, memory_mb, cpus, started_at, seen_at, charged_until)
        VALUES (NEW.user_id, NEW.runtime_id, NEW.memory_mb, NEW.cpus, now(), now(), now())
        ON CONFLICT (user_id) WHERE ended_at IS NULL DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER runtimes_meter AFTER INSERT OR UPDATE OF observed_state OR DELETE ON runtimes
    FOR EACH ROW EXECUTE FUNCTION runtimes_meter();

-- Runtimes running when this migration runs start their meter now.
INSERT INTO compute_intervals (user_id, runtime_id, memory_mb, cpus, started_at, seen_at, charged_until)
SELECT user_id, runtime_id, memory_mb, cpus, now(), now(), now() FROM runtimes WHERE observed_state = 'running';

-- Budgets per week as well; an exempt user has no budget whatever the default says.
ALTER TABLE user_limits
    DROP CONSTRAINT user_limits_period_check,
    ADD CONSTRAINT user_limits_period_check CHECK (budget_period IN ('day', 'week', 'month')),
    ADD COLUMN budget_exempt boolean NOT NULL DEFAULT false;

-- The spending budget of everyone without one of their own (one row).
CREATE TABLE budget_default (
    id               boolean     PRIMARY KEY DEFAULT true,
    budget_usd_micro bigint,
    budget_period    text        NOT NULL DEFAULT 'month',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT budget_default_one CHECK (id),
    CONSTRAINT budget_default_positive CHECK (budget_usd_micro IS NULL OR budget_usd_micro > 0),
    CONSTRAINT budget_default_period_check CHECK (budget_period IN ('day', 'week', 'month'))
);
INSERT INTO budget_default DEFAULT VALUES;
CREATE TRIGGER budget_default_gateway AFTER INSERT OR UPDATE OR DELETE ON budget_default
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gateway();

-- The spending and token budgets that apply to each user: their own, else the default (never
-- for an exempt user), with the period both use. The gateway, the meter and the pages read
-- this one rule.
CREATE VIEW user_budgets AS
SELECT u.id AS user_id,
       CASE WHEN coalesce(l.budget_exempt, false) THEN NULL ELSE l.budget_tokens END AS budget_tokens,
       CASE WHEN coalesce(l.budget_exempt, false) THEN NULL
            ELSE coalesce(l.budget_usd_micro, d.budget_usd_micro) END AS budget_usd_micro,
       CASE WHEN l.budget_usd_micro IS NOT NULL OR l.budget_tokens IS NOT NULL THEN l.budget_period
            ELSE coalesce(d.budget_period, 'month') END AS budget_period,
       l.budget_usd_micro IS NULL AND d.budget_usd_micro IS NOT NULL
           AND NOT coalesce(l.budget_exempt, false) AS from_default,
       coalesce(l.budget_exempt, false) AS exempt
FROM users u
LEFT JOIN user_limits l ON l.user_id = u.id
LEFT JOIN budget_default d ON d.id;
