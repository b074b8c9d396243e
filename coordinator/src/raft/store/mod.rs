//! Durable Raft storage under a node's `data_dir`.
//!
//! ```text
//! data_dir/
//!   raft.redb                     log entries, vote, committed log id, last purged log id
//!   history.redb                  the rollup tables (hourly and daily), applied by the state machine
//!   snapshots/current.snapshot    the latest state machine snapshot (mesh document + rollup rows)
//! ```
//!
//! - [`LogStore`] (openraft's `RaftLogStorage`) keeps the log and the vote
//!   in [redb], a pure-Rust embedded ACID store. Every write is a
//!   transaction committed with `Durability::Immediate` (fsync) before the
//!   call returns, so a vote or an appended entry is on disk before openraft
//!   acknowledges it to a peer.
//! - [`StateMachineStore`] (openraft's `RaftStateMachine`) keeps the
//!   [`MeshState`](crate::state::MeshState) in memory and persists
//!   snapshots as files (written to a temporary file, fsynced, renamed,
//!   directory fsynced). On restart the state is the last snapshot, and
//!   openraft re-applies the committed log after it (the committed log id
//!   is saved too).
//!
//! Any I/O error during operation becomes an openraft [`StorageError`],
//! logged once with `tracing::error!`; openraft then stops the node rather
//! than continue with a log it cannot trust. Nothing is retried silently.
//! Errors found when opening (an unreadable or foreign database file, a
//! damaged snapshot, a data dir missing pieces) are a [`StoreError`] naming
//! the file and what to do.

mod history;
mod log_store;
mod snapshot_file;
mod state_machine;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

pub use self::history::{HistoryIoError, HistoryStore, HISTORY_FILE};
pub use self::log_store::{LogReader, LogStore};
pub use self::state_machine::{AppliedState, SnapshotBuilder, StateMachineStore, StateReader};
use super::types::{NodeId, StorageError};
use crate::state::snapshot::SnapshotFormatError;

/// The file holding the log and vote, inside `data_dir`.
pub const LOG_FILE: &str = "raft.redb";
/// The directory holding snapshots, inside `data_dir`.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The file holding the current snapshot of the node whose data directory
/// is `data_dir` (its modification time is when it was written).
pub fn current_snapshot_file(data_dir: &Path) -> PathBuf {
    snapshot_file::current_path(&data_dir.join(SNAPSHOT_DIR))
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data dir {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store in this one) has the log open.
    #[error(
        "raft log {path} is in use by another process; is another coordinator running with this data_dir?"
    )]
    LogInUse {
        /// The log file.
        path: PathBuf,
    },
    /// The log file exists but cannot be read as a database.
    #[error("cannot open raft log {path}: {source}; the file is unreadable or damaged: restore the data dir from a backup, or remove it and re-add this node to the cluster under a new id")]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// The log database opened but its tables could not be read or set up.
    #[error("cannot read raft log {path}: {source}")]
    ReadLog {
        /// The log file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record in the log database does not decode.
    #[error("raft log {path} is damaged: {reason}; restore the data dir from a backup, or remove it and re-add this node to the cluster under a new id")]
    CorruptLog {
        /// The log file.
        path: PathBuf,
        /// What does not decode.
        reason: String,
    },
    /// The log database was written by a different program or version.
    #[error("raft log {path} has format {found:?}, this build reads format {supported}; it was not written by this coordinator version")]
    UnsupportedLogFormat {
        /// The log file.
        path: PathBuf,
        /// The format marker found.
        found: String,
        /// The format this build reads.
        supported: u32,
    },
    /// A snapshot exists without the log it belongs with.
    #[error("found snapshot {snapshot} but no raft log at {path}; refusing to start from a partial data dir (restore the missing file, or remove the data dir and re-add this node)")]
    LogMissing {
        /// Where the log should be.
        path: PathBuf,
        /// The snapshot found.
        snapshot: PathBuf,
    },
    /// The log was purged behind a snapshot, but the snapshot is gone.
    #[error("raft log {path} was compacted up to index {purged_index}, but there is no snapshot in {snapshot_dir}; the state before that index is lost: restore the snapshot, or remove the data dir and re-add this node")]
    SnapshotMissing {
        /// The log file.
        path: PathBuf,
        /// Where the snapshot should be.
        snapshot_dir: PathBuf,
        /// The last purged log index.
        purged_index: u64,
    },
    /// The snapshot file could not be read.
    #[error("cannot read snapshot {path}: {source}")]
    ReadSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot file is damaged (bad header, length or checksum).
    #[error("snapshot {path} is damaged: {reason}; restore it from a backup, or remove the data dir and re-add this node")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The rollup tables could not be opened.
    #[error("cannot open the history tables {path}: {reason}; if the file is damaged, remove it: it is rebuilt from the snapshot and the log")]
    History {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The snapshot file is intact but its state does not decode.
    #[error("snapshot {path} cannot be loaded: {source}")]
    SnapshotFormat {
        /// The snapshot file.
        path: PathBuf,
        /// Why the state does not decode.
        #[source]
        source: SnapshotFormatError,
    },
}

/// Opens (creating if needed) the log store and the state machine under
/// `data_dir`, checking that what is there is whole and readable.
///
/// Blocks on file I/O; call it before starting the Raft node, or from
/// `spawn_blocking`.
pub fn open(data_dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|source| StoreError::CreateDir { path: data_dir.to_path_buf(), source })?;
    let log_path = data_dir.join(LOG_FILE);
    let snapshot_dir = data_dir.join(SNAPSHOT_DIR);
    let snapshot = snapshot_file::read(&snapshot_dir)?;
    if snapshot.is_some() && !log_path.exists() {
        return Err(StoreError::LogMissing {
            path: log_path,
            snapshot: snapshot_file::current_path(&snapshot_dir),
        });
    }
    let log = LogStore::open(&log_path)?;
    if let (Some(purged), None) = (log.last_purged_on_open(), &snapshot) {
        return Err(StoreError::SnapshotMissing { path: log_path, snapshot_dir, purged_index: purged.index });
    }
    let history = HistoryStore::open(data_dir)
        .map_err(|e| StoreError::History { path: data_dir.join(HISTORY_FILE), reason: e.to_string() })?;
    let state_machine = StateMachineStore::open(snapshot_dir, history, snapshot)?;
    Ok((log, state_machine))
}

/// Turns an I/O failure during operation into the [`StorageError`] that
/// makes openraft stop the node, logging it once with what failed.
fn storage_failure(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: &(dyn std::error::Error + 'static),
) -> StorageError {
    tracing::error!(
        subject = ?subject,
        verb = %verb,
        error = %error,
        "raft storage failed; stopping this node rather than continue with a log it cannot trust"
    );
    StorageError::IO { source: StorageIOError::new(subject, verb, AnyError::from_dyn(error, None)) }
}
