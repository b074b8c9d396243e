//! The state machine: [`MeshState`] in memory, snapshots on disk.
//!
//! Apply only touches memory; durability comes from the log (entries are
//! fsynced before they are committed) and from snapshots (fsynced before
//! openraft may purge the log behind them). On restart the state is loaded
//! from the last snapshot and openraft re-applies the committed entries
//! after it.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};

use super::snapshot_file::{self, StoredSnapshot};
use super::{storage_failure, StoreError};
use crate::raft::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::state::{snapshot, CommandResponse, MeshState};

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
    snapshot_dir: PathBuf,
    /// The latest durable snapshot. The async mutex also serializes
    /// snapshot file writes (a build and an install may overlap).
    current_snapshot: tokio::sync::Mutex<Option<StoredSnapshot>>,
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
    /// Builds the state machine from the snapshot found on disk, if any.
    pub(super) fn open(
        snapshot_dir: PathBuf,
        snapshot: Option<StoredSnapshot>,
    ) -> Result<StateMachineStore, StoreError> {
        let applied = match &snapshot {
            None => AppliedState::default(),
            Some(stored) => AppliedState {
                last_applied: stored.meta.last_log_id,
                last_membership: stored.meta.last_membership.clone(),
                mesh: snapshot::decode(&stored.data).map_err(|source| StoreError::SnapshotFormat {
                    path: snapshot_file::current_path(&snapshot_dir),
                    source,
                })?,
            },
        };
        if let Some(stored) = &snapshot {
            tracing::info!(snapshot = %stored.meta, "loaded the state machine from its snapshot");
        }
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                applied: RwLock::new(applied),
                snapshot_dir,
                current_snapshot: tokio::sync::Mutex::new(snapshot),
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
        let mut applied = self.shared.write()?;
        let mut responses = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            responses.push(match entry.payload {
                EntryPayload::Blank => CommandResponse::Empty,
                EntryPayload::Normal(request) => applied.mesh.apply(&request),
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResponse::Empty
                }
            });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mesh = snapshot::decode(&data).map_err(|e| {
            storage_failure(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, &e)
        })?;
        // Durable first, then visible: a crash in between restarts from the
        // new snapshot, which is what openraft expects once this returns.
        self.shared.persist(StoredSnapshot { meta: meta.clone(), data }, Replace::Always).await?;
        let mut applied = self.shared.write()?;
        *applied = AppliedState {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            mesh,
        };
        tracing::info!(snapshot = %meta, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.shared.current_snapshot.lock().await;
        Ok(current.as_ref().map(|stored| Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (last_applied, last_membership, mesh) = {
            let applied = self.shared.read(ErrorVerb::Read)?;
            (applied.last_applied, applied.last_membership.clone(), applied.mesh.clone())
        };
        let sequence = self.shared.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_applied {
            Some(log_id) => format!("{}-{}-{sequence}", log_id.leader_id, log_id.index),
            None => format!("empty-{sequence}"),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership, snapshot_id };
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        // Encoding a large state is CPU work; keep it off the async workers.
        let data = tokio::task::spawn_blocking(move || snapshot::encode(&mesh))
            .await
            .map_err(|source| storage_failure(subject(), ErrorVerb::Write, &TaskFailed { source }))?
            .map_err(|e| storage_failure(subject(), ErrorVerb::Write, &e))?;
        self.shared
            .persist(StoredSnapshot { meta: meta.clone(), data: data.clone() }, Replace::IfNotOlder)
            .await?;
        tracing::info!(snapshot = %meta, bytes = data.len(), "built a snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

/// Whether a snapshot replaces a newer current one.
#[derive(Clone, Copy, PartialEq)]
enum Replace {
    /// Installs: openraft decided this snapshot is the state.
    Always,
    /// Builds: a build that raced with a newer install must not win.
    IfNotOlder,
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

    /// Writes `stored` to disk and makes it the current snapshot.
    async fn persist(&self, stored: StoredSnapshot, replace: Replace) -> Result<(), StorageError> {
        let mut current = self.current_snapshot.lock().await;
        if replace == Replace::IfNotOlder
            && current.as_ref().is_some_and(|existing| existing.meta.last_log_id > stored.meta.last_log_id)
        {
            return Ok(());
        }
        let signature = stored.meta.signature();
        let dir = self.snapshot_dir.clone();
        let written =
            tokio::task::spawn_blocking(move || snapshot_file::write(&dir, &stored).map(|()| stored))
                .await
                .map_err(|source| {
                    storage_failure(
                        ErrorSubject::Snapshot(Some(signature.clone())),
                        ErrorVerb::Write,
                        &TaskFailed { source },
                    )
                })?
                .map_err(|e| {
                    storage_failure(ErrorSubject::Snapshot(Some(signature.clone())), ErrorVerb::Write, &e)
                })?;
        *current = Some(written);
        Ok(())
    }
}
