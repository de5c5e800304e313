//! The broker's data directory: one directory per hosted replica, claimed for one topic
//! id; the clean-shutdown marker that lets the next start trust the logs; and deletions
//! that survive a crash (a replica directory is renamed to `*-delete` before removal).

use std::io;
use std::path::{Path, PathBuf};

use tracing::{info, warn};
use uuid::Uuid;

use crate::log::RecoveryMode;

const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
/// File naming the topic a replica directory belongs to (Kafka's `partition.metadata`).
const PARTITION_METADATA: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";

/// The data directory of one broker.
#[derive(Debug, Clone)]
pub struct LogDirs {
    root: PathBuf,
}

impl LogDirs {
    /// The data directory `root`, created if missing.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(LogDirs {
            root: root.to_path_buf(),
        })
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How much to trust the logs at start-up: after a clean shutdown the files are
    /// trusted; after a crash every batch is verified. The marker is consumed, so a crash
    /// of this run is detected by the next.
    pub fn take_recovery_mode(&self) -> RecoveryMode {
        let marker = self.root.join(CLEAN_SHUTDOWN_MARKER);
        let mode = if marker.exists() {
            RecoveryMode::Trust
        } else {
            RecoveryMode::Verify
        };
        let _ = std::fs::remove_file(&marker);
        mode
    }

    /// Records that every log was flushed and closed.
    pub fn mark_clean_shutdown(&self) -> io::Result<()> {
        std::fs::write(self.root.join(CLEAN_SHUTDOWN_MARKER), b"")
    }

    fn replica_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.root.join(format!("{topic}-{index}"))
    }

    /// The directory of replica `topic`-`index`, claimed for topic `topic_id`. A directory
    /// left by an earlier topic of the same name (deleted while this broker was away) is
    /// discarded, never reused.
    pub fn claim_replica(&self, topic: &str, index: i32, topic_id: Uuid) -> io::Result<PathBuf> {
        let dir = self.replica_dir(topic, index);
        let marker = dir.join(PARTITION_METADATA);
        let expected = format!("version: 0\ntopic_id: {}\n", topic_id.simple());
        match std::fs::read_to_string(&marker) {
            Ok(text) if text == expected => return Ok(dir),
            Ok(_) => {
                warn!(dir = %dir.display(), "replica directory belongs to an earlier topic of the same name; discarding it");
                remove_dir(&dir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&dir)?;
        let tmp = marker.with_extension("tmp");
        std::fs::write(&tmp, expected)?;
        std::fs::rename(&tmp, &marker)?;
        Ok(dir)
    }

    /// Deletes the directory of a replica no longer assigned here.
    pub fn delete_replica(&self, topic: &str, index: i32) {
        info!(topic, partition = index, "removing replica");
        if let Err(e) = remove_dir(&self.replica_dir(topic, index)) {
            warn!(topic, partition = index, error = %e, "removing replica directory failed");
        }
    }

    /// Finishes deletions a crash interrupted.
    pub fn remove_interrupted_deletions(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(DELETE_SUFFIX) && entry.path().is_dir()
            {
                warn!(dir = %entry.path().display(), "removing a replica whose deletion was interrupted");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Renames `dir` aside, then removes it: a crash in between leaves a `*-delete` directory
/// that the next start removes, never a half-deleted replica.
fn remove_dir(dir: &Path) -> io::Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let doomed = dir.with_file_name(format!("{name}.{}{DELETE_SUFFIX}", Uuid::new_v4().simple()));
    match std::fs::rename(dir, &doomed) {
        Ok(()) => std::fs::remove_dir_all(&doomed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_topic_never_reuses_the_old_replica_directory() {
        let root = tempfile::tempdir().unwrap();
        let dirs = LogDirs::open(root.path()).unwrap();
        let old = Uuid::new_v4();
        let dir = dirs.claim_replica("t", 0, old).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"old data").unwrap();
        dirs.claim_replica("t", 0, old).unwrap();
        assert!(
            dir.join("00000000000000000000.log").exists(),
            "same topic: kept"
        );
        dirs.claim_replica("t", 0, Uuid::new_v4()).unwrap();
        assert!(
            !dir.join("00000000000000000000.log").exists(),
            "new topic id: old data discarded"
        );
        assert!(dir.join(PARTITION_METADATA).exists());
    }

    #[test]
    fn interrupted_deletions_are_finished_and_the_clean_marker_is_consumed() {
        let root = tempfile::tempdir().unwrap();
        let dirs = LogDirs::open(root.path()).unwrap();
        std::fs::create_dir_all(root.path().join("t-0.abc-delete")).unwrap();
        dirs.remove_interrupted_deletions();
        assert!(!root.path().join("t-0.abc-delete").exists());
        assert_eq!(dirs.take_recovery_mode(), RecoveryMode::Verify);
        dirs.mark_clean_shutdown().unwrap();
        assert_eq!(dirs.take_recovery_mode(), RecoveryMode::Trust);
        assert_eq!(dirs.take_recovery_mode(), RecoveryMode::Verify);
    }
}
