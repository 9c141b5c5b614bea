-- What went wrong with a runtime, typed (crates/wire/src/runtime.rs, `Problem`): the owner is
-- shown a stable code and a sentence made from `problem`; the engine's own words go to
-- `problem_detail`, for logs and admins only, with `problem_ref` quoted by both.
ALTER TABLE runtimes
    ADD COLUMN problem        jsonb,
    ADD COLUMN problem_detail text,
    ADD COLUMN problem_ref    uuid;

-- Errors recorded before codes existed: a generic problem, their words kept for admins.
UPDATE runtimes
   SET problem = '{"code": "FAILED"}', problem_detail = last_error, problem_ref = gen_random_uuid()
 WHERE last_error IS NOT NULL;

ALTER TABLE runtimes
    DROP COLUMN last_error,
    ADD CONSTRAINT runtimes_problem_check CHECK (
        problem IS NULL OR problem->>'code' IN (
            'IMAGE_MISSING', 'ENGINE_UNREACHABLE', 'MANAGER_UNREACHABLE', 'MANAGER_REFUSED',
            'HOST_DISK_FULL', 'ENTRY_PROXY_MISSING', 'ISOLATION_UNAVAILABLE', 'CONFIG_FAILED',
            'ENGINE_REFUSED', 'KEY_FAILED', 'DATABASE_FAILED', 'VANISHED', 'EXITED_WHILE_STARTING',
            'NOT_READY', 'CRASHED', 'CRASH_LOOP', 'FAILED'));

-- A task's stage is checked text like its action and status.
ALTER TABLE runtime_tasks
    ADD CONSTRAINT runtime_tasks_stage_check CHECK (stage IN
        ('queued', 'config_rendered', 'image_ready', 'container_created', 'started', 'healthy',
         'stopped', 'removed'));
