-- Workspace disk limits (see docs/workspace-disk-limits.md): a user's own limit in MiB
-- (NULL = the deployment's default, 0 = none) and what the workspace volume held when the
-- orchestrator last measured it.
ALTER TABLE runtimes
    ADD COLUMN disk_mb          integer     CHECK (disk_mb >= 0),
    ADD COLUMN disk_used_bytes  bigint      CHECK (disk_used_bytes >= 0),
    ADD COLUMN disk_measured_at timestamptz;
