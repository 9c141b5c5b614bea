-- Runtimes on Kubernetes: a workspace volume that cannot be provisioned (its storage class does
-- not exist) is a problem of its own.
ALTER TABLE runtimes
    DROP CONSTRAINT runtimes_problem_check,
    ADD CONSTRAINT runtimes_problem_check CHECK (
        problem IS NULL OR problem->>'code' IN (
            'IMAGE_MISSING', 'ENGINE_UNREACHABLE', 'MANAGER_UNREACHABLE', 'MANAGER_REFUSED',
            'HOST_DISK_FULL', 'ENTRY_PROXY_MISSING', 'ISOLATION_UNAVAILABLE', 'CONFIG_FAILED',
            'ENGINE_REFUSED', 'KEY_FAILED', 'DATABASE_FAILED', 'VANISHED', 'EXITED_WHILE_STARTING',
            'NOT_READY', 'CRASHED', 'CRASH_LOOP', 'FAILED', 'NODE_DOWN', 'QUOTA_EXCEEDED',
            'CLUSTER_FORBIDDEN', 'CLUSTER_REJECTED', 'STORAGE_MISSING'));
