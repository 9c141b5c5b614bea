-- A stretch closes when the runtime's state changes, not when the changing transaction began: a
-- long transaction's now() can lie before what a concurrent meter pass already charged, and a
-- stretch never ends before what was charged of it.
CREATE OR REPLACE FUNCTION runtimes_meter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.observed_state = 'running'
       AND (TG_OP = 'DELETE' OR NEW.observed_state <> 'running') THEN
        UPDATE compute_intervals SET ended_at = greatest(clock_timestamp(), started_at, charged_until)
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
