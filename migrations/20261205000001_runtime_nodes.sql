-- Runtimes on engines with several nodes (Docker Swarm, Kubernetes).

-- The node a runtime's workspace lives on: the runtime is pinned there (a workspace volume is
-- local to one node). NULL: not placed yet, or an engine with one node.
ALTER TABLE runtimes ADD COLUMN node text;

-- A runtime whose node is unreachable waits for it (NODE_DOWN).
ALTER TABLE runtimes
    DROP CONSTRAINT runtimes_problem_check,
    ADD CONSTRAINT runtimes_problem_check CHECK (
        problem IS NULL OR problem->>'code' IN (
            'IMAGE_MISSING', 'ENGINE_UNREACHABLE', 'MANAGER_UNREACHABLE', 'MANAGER_REFUSED',
            'HOST_DISK_FULL', 'ENTRY_PROXY_MISSING', 'ISOLATION_UNAVAILABLE', 'CONFIG_FAILED',
            'ENGINE_REFUSED', 'KEY_FAILED', 'DATABASE_FAILED', 'VANISHED', 'EXITED_WHILE_STARTING',
            'NOT_READY', 'CRASHED', 'CRASH_LOOP', 'FAILED', 'NODE_DOWN'));
