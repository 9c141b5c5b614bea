//! Installing a runtime's files on the host: the configuration the orchestrator rendered,
//! written where the container mounts it read-only, for the runtime's user alone.

/// Writes `openclaw.json` into `dir` atomically (temporary file, fsync, rename), readable by the
/// runtime's user through the read-only bind mount. `root` (the parent of every runtime's
/// directory) can be traversed but not listed, so no runtime learns another's directory name.
///
/// With `owner` (the runtime's `uid:gid`) the directory (0700) and the file (0600) belong to the
/// runtime's user and nobody else on the host can read the keys inside. Changing owners needs
/// root; a manager that isn't falls back to a file everyone on the host may read, and says so.
pub fn write_atomically(
    root: &std::path::Path,
    dir: &std::path::Path,
    text: &str,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    let tmp = dir.join(".openclaw.json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    let owned = match owner {
        Some((uid, gid)) => match std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
            .and_then(|()| std::os::unix::fs::chown(dir, Some(uid), Some(gid)))
        {
            Ok(()) => true,
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(dir = %dir.display(), "cannot give the runtime's configuration to its user (the runtime manager is not root): it stays readable by every user on this host");
                false
            }
            Err(err) => return Err(err),
        },
        None => false,
    };
    let (dir_mode, file_mode) = if owned {
        (0o700, 0o600)
    } else {
        (0o755, 0o644)
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file_mode))?;
    std::fs::rename(&tmp, dir.join("openclaw.json"))
}

/// The numeric `uid:gid` of a container user setting, when it is one.
pub fn numeric_owner(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys in a runtime's configuration are for its user alone: owner-only modes and the
    /// runtime's uid:gid (as root); without the right to change owners, the old readable modes.
    #[test]
    fn the_configuration_belongs_to_the_runtimes_user() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let root = tempfile::tempdir().expect("dir");
        let dir = root.path().join("clawloops-rt-alice");
        write_atomically(root.path(), &dir, "{}", numeric_owner("1000:1001")).expect("written");
        let file = std::fs::metadata(dir.join("openclaw.json")).expect("file");
        let folder = std::fs::metadata(&dir).expect("dir");
        let root_mode = std::fs::metadata(root.path())
            .expect("root")
            .permissions()
            .mode();
        assert_eq!(
            root_mode & 0o777,
            0o711,
            "the root is traversable, not listable"
        );
        // Only root may give files away.
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if as_root {
            assert_eq!((file.uid(), file.gid()), (1000, 1001));
            assert_eq!((folder.uid(), folder.gid()), (1000, 1001));
            assert_eq!(file.permissions().mode() & 0o777, 0o600);
            assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        } else {
            assert_eq!(file.permissions().mode() & 0o777, 0o644);
        }
        assert_eq!(numeric_owner("node"), None);
        assert_eq!(numeric_owner("65534:65534"), Some((65534, 65534)));
    }
}
