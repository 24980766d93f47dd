//! A shard's own WAL files, which qdrant-edge never truncates: which can go, and removing them
//! (see `maintain.rs` for why the newest closed file must stay); and the disk a directory takes.

use std::path::Path;

use super::super::journal::sync_dir;

/// The closed WAL files of a shard, oldest first, with their sizes.
fn closed_wal_files(wal: &Path) -> std::io::Result<Vec<(u64, std::path::PathBuf, u64)>> {
    let mut closed = Vec::new();
    for entry in std::fs::read_dir(wal)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(start) = name.to_str().and_then(|n| n.strip_prefix("closed-")).and_then(|n| n.parse().ok()) else {
            continue;
        };
        closed.push((start, entry.path(), std::os::unix::fs::MetadataExt::blocks(&entry.metadata()?) * 512));
    }
    closed.sort_unstable_by_key(|(start, ..)| *start);
    Ok(closed)
}

/// The bytes that pruning would free: every closed WAL file but the newest.
pub(super) fn prunable_wal_bytes(wal: &Path) -> u64 {
    let closed = closed_wal_files(wal).unwrap_or_default();
    closed.iter().rev().skip(1).map(|(.., bytes)| bytes).sum()
}

/// Deletes a closed shard's WAL files but the newest closed one (and the open ones), oldest
/// first; returns the bytes freed.
pub(super) fn prune_wal(wal: &Path) -> std::io::Result<u64> {
    let closed = match closed_wal_files(wal) {
        Ok(closed) => closed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut freed = 0;
    for (_, path, bytes) in closed.iter().take(closed.len().saturating_sub(1)) {
        std::fs::remove_file(path)?;
        freed += bytes;
    }
    if freed > 0 {
        sync_dir(wal)?;
    }
    Ok(freed)
}

/// The disk the files under `path` take (0 if it is not there): their allocated blocks, as `du`
/// counts them, not their lengths (qdrant-edge sizes many files far ahead of their data).
pub(super) fn dir_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.blocks() * 512),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_closed_file_and_the_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        // Sizes count allocated blocks: files of 1, 2 and 3 blocks of 4 KiB.
        for (name, blocks) in [("closed-0", 1), ("closed-40", 2), ("closed-7", 3), ("open-3", 1), ("first-index", 1)] {
            std::fs::write(dir.path().join(name), vec![1u8; blocks * 4096]).unwrap();
        }
        assert_eq!(prunable_wal_bytes(dir.path()), 4 * 4096, "closed-0 and closed-7");
        assert_eq!(prune_wal(dir.path()).unwrap(), 4 * 4096);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["closed-40", "first-index", "open-3"]);
        assert_eq!(prune_wal(dir.path()).unwrap(), 0, "nothing more to prune");
    }
}
