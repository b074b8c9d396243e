//! The state machine: [`MeshState`] in memory, the rollup tables in redb
//! ([`HistoryStore`]), snapshots as files.
//!
//! Apply changes memory, except for rollup batches, whose rows are merged
//! into the rollup tables in a durable redb transaction that also records
//! the entry's log index (so the re-apply after a restart skips them).
//! Durability of the rest comes from the log (entries are fsynced before
//! they are committed) and from snapshots (fsynced before openraft may
//! purge the log behind them). On restart the state is loaded from the
//! last snapshot and openraft re-applies the committed entries after it.
//!
//! A snapshot is the mesh document plus every rollup row, streamed from one
//! redb read transaction begun together with the copy of the mesh (under
//! the apply gate), so both are as of the same log index. Snapshots move
//! as files, never as one buffer in memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use tokio::io::AsyncSeekExt;

use super::history::HistoryStore;
use super::snapshot_file::{self, LoadedSnapshot};
use super::{storage_failure, StoreError};
use crate::raft::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::state::history::rows_to_store;
use crate::state::{snapshot, Command, CommandResponse, MeshState, Outcome, Request};

/// What the state machine holds: the mesh and how far it has applied.
#[derive(Debug, Clone, Default)]
pub struct AppliedState {
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub last_membership: StoredMembership,
    /// The replicated mesh state.
    pub mesh: MeshState,
}

/// openraft's state machine.
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// A read-only handle on the applied state, for the API and status page.
#[derive(Clone)]
pub struct StateReader {
    shared: Arc<Shared>,
}

/// Builds a snapshot of the state machine as it is when
/// [`RaftSnapshotBuilder::build_snapshot`] runs, and persists it.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

struct Shared {
    applied: RwLock<AppliedState>,
    history: Arc<HistoryStore>,
    /// Held for each entry's whole apply (memory and redb) and while a
    /// snapshot copies the mesh and opens its redb view, so the two agree.
    apply_gate: Mutex<()>,
    snapshot_dir: PathBuf,
    /// The metadata of the latest durable snapshot (its data stays in the
    /// file). The async mutex also serializes snapshot file writes (a
    /// build and an install may overlap).
    current_snapshot: tokio::sync::Mutex<Option<SnapshotMeta>>,
    snapshots_built: AtomicU64,
}

/// A thread panicked while holding the state lock; the state may be half
/// changed.
#[derive(Debug, thiserror::Error)]
#[error("the state machine lock is poisoned: a thread panicked while applying")]
struct Poisoned;

/// A snapshot task did not finish.
#[derive(Debug, thiserror::Error)]
#[error("snapshot task did not finish: {source}")]
struct TaskFailed {
    #[source]
    source: tokio::task::JoinError,
}

impl StateMachineStore {
    /// Builds the state machine from the snapshot found on disk, if any,
    /// and the rollup tables; imports the snapshot's rows when the tables
    /// are behind it (a new or replaced `history.redb`).
    pub(super) fn open(
        snapshot_dir: PathBuf,
        history: HistoryStore,
        snapshot: Option<LoadedSnapshot>,
    ) -> Result<StateMachineStore, StoreError> {
        let applied = match &snapshot {
            None => AppliedState::default(),
            Some(stored) => AppliedState {
                last_applied: stored.meta().last_log_id,
                last_membership: stored.meta().last_membership.clone(),
                mesh: snapshot::decode(&stored.mesh).map_err(|source| StoreError::SnapshotFormat {
                    path: snapshot_file::current_path(&snapshot_dir),
                    source,
                })?,
            },
        };
        if let Some(stored) = &snapshot {
            let history_error =
                |reason: String| StoreError::CorruptSnapshot { path: stored.path.clone(), reason };
            let behind = history.applied_index().map_err(|e| history_error(e.to_string()))?
                < stored.header.history_applied_index;
            if behind {
                let mut section =
                    snapshot_file::history_section(stored).map_err(|e| history_error(e.to_string()))?;
                let rows = history
                    .import(&mut section, stored.header.history_applied_index)
                    .map_err(|e| history_error(e.to_string()))?;
                tracing::info!(rows, "rebuilt the rollup tables from the snapshot");
            }
            tracing::info!(snapshot = %stored.meta(), "loaded the state machine from its snapshot");
        }
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                applied: RwLock::new(applied),
                history: Arc::new(history),
                apply_gate: Mutex::new(()),
                snapshot_dir,
                current_snapshot: tokio::sync::Mutex::new(snapshot.map(|s| s.header.meta)),
                snapshots_built: AtomicU64::new(0),
            }),
        })
    }

    /// A handle for reading the applied state from elsewhere.
    pub fn reader(&self) -> StateReader {
        StateReader { shared: self.shared.clone() }
    }
}

impl StateReader {
    /// Runs `f` on the applied state. Keep `f` short: apply waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&AppliedState) -> R) -> R {
        // A poisoned lock means apply panicked; openraft has stopped the
        // node by then, and reads of what is there are still useful.
        f(&self.shared.applied.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The rollup tables (read them without holding [`StateReader::read`]).
    pub fn history(&self) -> &HistoryStore {
        &self.shared.history
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.shared.read(ErrorVerb::Read)?;
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _gate = self.shared.apply_gate.lock().unwrap_or_else(PoisonError::into_inner);
        let mut responses = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            let (response, request, keep) = {
                let mut applied = self.shared.write()?;
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => (CommandResponse::Empty, None, None),
                    EntryPayload::Normal(request) => {
                        let response = applied.mesh.apply(&request);
                        // Which rows to write is decided with the state at hand;
                        // the rows themselves stay in the request (no copy).
                        let keep = match (&request.command, &response) {
                            (
                                Command::RecordRollups(batch),
                                CommandResponse::Applied(Outcome::RollupsRecorded {
                                    duplicate: false, ..
                                }),
                            ) => Some(rows_to_store(&applied.mesh, request.issued_at, batch)),
                            _ => None,
                        };
                        (response, Some(request), keep)
                    }
                    EntryPayload::Membership(membership) => {
                        applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                        (CommandResponse::Empty, None, None)
                    }
                }
            };
            if let (Some(Request { issued_at, command: Command::RecordRollups(batch), .. }), Some(keep)) =
                (&request, &keep)
            {
                // Outside the state lock: readers of the mesh never wait for
                // redb; the gate keeps snapshots consistent. Once a minute.
                let rows = batch.rows.iter().zip(keep).filter(|(_, &k)| k).map(|(row, _)| row);
                self.shared
                    .history
                    .apply(index, *issued_at, rows)
                    .map_err(|e| storage_failure(ErrorSubject::Apply(entry.log_id), ErrorVerb::Write, &e))?;
            }
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let dir = self.shared.snapshot_dir.clone();
        let file = tokio::task::spawn_blocking(move || snapshot_file::create_receiving(&dir))
            .await
            .map_err(|source| {
                storage_failure(ErrorSubject::Snapshot(None), ErrorVerb::Write, &TaskFailed { source })
            })?
            .map_err(|e| storage_failure(ErrorSubject::Snapshot(None), ErrorVerb::Write, &e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        snapshot.rewind().await.map_err(|e| storage_failure(subject(), ErrorVerb::Read, &e))?;
        let mut source = snapshot.into_std().await;
        let mut current = self.shared.current_snapshot.lock().await;
        let shared = self.shared.clone();
        let dir = self.shared.snapshot_dir.clone();
        // Check the bytes whole, import the history, then make the file
        // current: durable first, then visible. A crash before the rename
        // restarts from the old snapshot, and openraft sends this one again.
        let installed =
            tokio::task::spawn_blocking(move || -> Result<(MeshState, LoadedSnapshot), String> {
                let (loaded, temporary) =
                    snapshot_file::verify_copy(&dir, &mut source).map_err(|e| e.to_string())?;
                drop(source);
                let _ = std::fs::remove_file(snapshot_file::receiving_path(&dir));
                let mesh = snapshot::decode(&loaded.mesh).map_err(|e| e.to_string())?;
                {
                    let _gate = shared.apply_gate.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut section = snapshot_file::history_section(&loaded).map_err(|e| e.to_string())?;
                    shared
                        .history
                        .import(&mut section, loaded.header.history_applied_index)
                        .map_err(|e| e.to_string())?;
                }
                let path = snapshot_file::install_file(&dir, &temporary).map_err(|e| e.to_string())?;
                Ok((mesh, LoadedSnapshot { path, ..loaded }))
            })
            .await
            .map_err(|source| storage_failure(subject(), ErrorVerb::Write, &TaskFailed { source }))?
            .map_err(|reason| storage_failure(subject(), ErrorVerb::Read, &InstallFailed { reason }))?;
        let (mesh, loaded) = installed;
        *current = Some(meta.clone());
        let mut applied = self.shared.write()?;
        *applied = AppliedState {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            mesh,
        };
        tracing::info!(
            snapshot = %meta,
            history_index = loaded.header.history_applied_index,
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.shared.current_snapshot.lock().await;
        let Some(meta) = current.as_ref() else { return Ok(None) };
        let path = snapshot_file::current_path(&self.shared.snapshot_dir);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            storage_failure(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, &e)
        })?;
        Ok(Some(Snapshot { meta: meta.clone(), snapshot: Box::new(file) }))
    }
}

/// A received snapshot could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
struct InstallFailed {
    reason: String,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (last_applied, last_membership, mesh, history) = {
            let _gate = self.shared.apply_gate.lock().unwrap_or_else(PoisonError::into_inner);
            let applied = self.shared.read(ErrorVerb::Read)?;
            let history = self
                .shared
                .history
                .begin_export()
                .map_err(|e| storage_failure(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))?;
            (applied.last_applied, applied.last_membership.clone(), applied.mesh.clone(), history)
        };
        let sequence = self.shared.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_applied {
            Some(log_id) => format!("{}-{}-{sequence}", log_id.leader_id, log_id.index),
            None => format!("empty-{sequence}"),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership, snapshot_id };
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let mut current = self.shared.current_snapshot.lock().await;
        if let Some(existing) = current.clone().filter(|existing| existing.last_log_id > meta.last_log_id) {
            // A newer snapshot was installed meanwhile; it stands.
            drop(current);
            return self.shared.open_current(existing).await;
        }
        let dir = self.shared.snapshot_dir.clone();
        let written_meta = meta.clone();
        // Encoding and streaming the history is CPU and disk work; keep it
        // off the async workers.
        let header = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let data = snapshot::encode(&mesh).map_err(|e| e.to_string())?;
            snapshot_file::write(&dir, &written_meta, &data, Some(&history)).map_err(|e| e.to_string())
        })
        .await
        .map_err(|source| storage_failure(subject(), ErrorVerb::Write, &TaskFailed { source }))?
        .map_err(|reason| storage_failure(subject(), ErrorVerb::Write, &InstallFailed { reason }))?;
        *current = Some(meta.clone());
        drop(current);
        tracing::info!(
            snapshot = %meta,
            history_index = header.history_applied_index,
            "built a snapshot"
        );
        self.shared.open_current(meta).await
    }
}

// openraft's StorageError is large; every trait method returns it anyway.
#[allow(clippy::result_large_err)]
impl Shared {
    fn read(&self, verb: ErrorVerb) -> Result<RwLockReadGuard<'_, AppliedState>, StorageError> {
        self.applied.read().map_err(|_| storage_failure(ErrorSubject::StateMachine, verb, &Poisoned))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, AppliedState>, StorageError> {
        self.applied
            .write()
            .map_err(|_| storage_failure(ErrorSubject::StateMachine, ErrorVerb::Write, &Poisoned))
    }

    async fn open_current(&self, meta: SnapshotMeta) -> Result<Snapshot, StorageError> {
        let path = snapshot_file::current_path(&self.snapshot_dir);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            storage_failure(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, &e)
        })?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}
