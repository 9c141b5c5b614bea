//! Measuring what a workspace volume holds, for engines that cannot hold a volume to a size
//! (see docs/workspace-disk-limits.md): the runtime manager walks the volume's directory on
//! the Docker host, as the kubelet does for an `emptyDir` with a `sizeLimit`.
//!
//! A runtime is hostile here: it may plant symbolic links (never followed), mount points
//! (never crossed), sparse files (counted by allocated blocks, not apparent size), hard links
//! (each inode counted once), unreadable directories (the walker runs as root on the host) and
//! millions of tiny files (the walk stops at a budget and reports what it counted, a lower
//! bound that still trips the limit when it is already over).

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How far one walk may go.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Inodes visited before the walk gives up and reports what it counted.
    pub entries: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { entries: 2_000_000 }
    }
}

/// What a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Bytes allocated on disk.
    pub bytes: u64,
    /// Inodes counted.
    pub entries: u64,
    /// Whether the budget ran out (then `bytes` is a lower bound).
    pub partial: bool,
}

/// The bytes allocated under `root`, each inode once, staying on `root`'s filesystem and
/// never following a symbolic link. Entries that vanish during the walk are skipped.
pub fn tree_bytes(root: &Path, budget: Budget) -> io::Result<Tally> {
    let top = std::fs::symlink_metadata(root)?;
    let device = top.dev();
    let mut tally = Tally::default();
    let mut seen_links: HashSet<u64> = HashSet::new();
    let mut pending = vec![root.to_path_buf()];
    tally.bytes += top.blocks() * 512;
    tally.entries += 1;
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            if tally.entries >= budget.entries {
                tally.partial = true;
                return Ok(tally);
            }
            let Ok(entry) = entry else { continue };
            // `DirEntry::metadata` does not follow symbolic links.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != device {
                continue;
            }
            tally.entries += 1;
            if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert(meta.ino()) {
                continue;
            }
            tally.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn counts_allocated_blocks_once_and_follows_no_link() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("a/b"))?;
        let block = vec![7u8; 1024 * 1024];
        std::fs::write(root.join("a/b/one-mib"), &block)?;
        // A hard link to it counts nothing more.
        std::fs::hard_link(root.join("a/b/one-mib"), root.join("again"))?;
        // A sparse file claiming 1 GiB holds only the 4 KiB written at its end.
        let mut sparse = std::fs::File::create(root.join("sparse"))?;
        sparse.seek(SeekFrom::Start(1 << 30))?;
        sparse.write_all(&[1; 4096])?;
        drop(sparse);
        // A link to a big tree outside is not followed.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside)?;
        std::fs::write(outside.join("big"), vec![1u8; 4 * 1024 * 1024])?;
        std::os::unix::fs::symlink(&outside, root.join("escape"))?;

        let tally = tree_bytes(&root, Budget::default())?;
        assert!(!tally.partial);
        let mib = 1024 * 1024;
        assert!(
            (mib..mib + 256 * 1024).contains(&tally.bytes),
            "one MiB and some metadata, not the sparse size nor the outside tree: {tally:?}"
        );
        Ok(())
    }

    #[test]
    fn a_budget_stops_the_walk_with_a_lower_bound() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        for i in 0..50 {
            std::fs::write(dir.path().join(format!("f{i}")), [1u8; 10])?;
        }
        let tally = tree_bytes(dir.path(), Budget { entries: 10 })?;
        assert!(tally.partial);
        assert_eq!(tally.entries, 10);
        let whole = tree_bytes(dir.path(), Budget::default())?;
        assert!(!whole.partial && whole.bytes > tally.bytes);
        Ok(())
    }

    #[test]
    fn a_missing_root_is_an_error() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(tree_bytes(&dir.path().join("nope"), Budget::default()).is_err());
        Ok(())
    }
}
