-- The entry layer: workspace activity for idle stop, per-user idle override, why a runtime was
-- stopped by the platform, and change notifications for the forward-auth cache.

ALTER TABLE runtimes
    -- The last workspace request seen by forward-auth (written in batches, never per request).
    ADD COLUMN last_active_at    timestamptz,
    -- Minutes without workspace traffic before the runtime is stopped; NULL = the deployment's
    -- default, 0 = never.
    ADD COLUMN idle_stop_minutes integer,
    -- Why the platform (not the user) stopped it last, in words for the dashboard.
    ADD COLUMN stop_reason       text,
    -- When the entry proxy last fetched a route to this runtime (the entry page waits for a
    -- fetch after the runtime became ready before it sends the browser there).
    ADD COLUMN routed_at         timestamptz,
    ADD CONSTRAINT runtimes_idle_stop_check
        CHECK (idle_stop_minutes IS NULL OR idle_stop_minutes BETWEEN 0 AND 43200);

-- Workspace hosts are `<username with . and _ as ->.<domain>`: two usernames that differ only
-- there (alice.b, alice-b) would share a host and a runtime id, so they cannot both exist.
CREATE UNIQUE INDEX users_workspace_name_key ON users (translate(username, '._', '--'));

-- Every change that can turn a forward-auth "allow" into a "deny" tells each control plane
-- (LISTEN clawloops_access) which user to forget, whichever code path or replica made it.
-- The payload is the user id only: session ids are credentials and never leave the table.
CREATE FUNCTION clawloops_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('clawloops_access', COALESCE(NEW.id, OLD.id)::text);
    ELSIF OLD.user_id IS NOT NULL THEN
        PERFORM pg_notify('clawloops_access', OLD.user_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_access_changed
    AFTER UPDATE OF status, role, must_change_password, password_hash, username OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION clawloops_access_changed();
CREATE TRIGGER sessions_access_changed
    AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION clawloops_access_changed();
CREATE TRIGGER runtimes_access_changed
    AFTER UPDATE OF desired_state, observed_state OR DELETE ON runtimes
    FOR EACH ROW EXECUTE FUNCTION clawloops_access_changed();
