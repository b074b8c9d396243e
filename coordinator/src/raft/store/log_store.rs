//! The Raft log and vote in a redb database.
//!
//! Tables: `log` (index → JSON-encoded entry) and `meta` (`format`, `vote`,
//! `committed`, `last_purged` → JSON). Each write is one transaction
//! committed with `Durability::Immediate`, so it is on disk (fsynced) when
//! the method returns; writes are serialized because openraft calls them
//! one at a time through `&mut self` and each waits for its commit. The
//! blocking redb calls run on tokio's blocking pool.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{storage_failure, StoreError};
use crate::raft::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Log entries by index.
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// Small named values: format marker, vote, committed, last purged.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

const KEY_FORMAT: &str = "format";
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// The layout version of the database, written once when it is created.
const FORMAT: u32 = 1;
/// redb's page cache; the log is read mostly at its tail.
const CACHE_BYTES: usize = 64 << 20;

/// openraft's log store: the log and the vote, durable before acknowledged.
pub struct LogStore {
    db: Arc<LogDb>,
    last_purged_on_open: Option<LogId>,
}

/// A cheap, cloneable reader of the log, for openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<LogDb>,
}

/// The database and its path (for messages).
struct LogDb {
    db: Database,
    path: PathBuf,
}

/// What can go wrong inside one log operation.
#[derive(Debug, thiserror::Error)]
enum LogIoError {
    #[error("raft log {path}: {source}")]
    Redb {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("raft log {path}: record {what} does not decode: {source}")]
    Decode {
        path: PathBuf,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("raft log {path}: cannot encode {what}: {source}")]
    Encode {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("raft log task did not finish: {source}")]
    Join {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl LogStore {
    /// Opens the database at `path`, creating it when the file is absent,
    /// and checks its format marker.
    pub(super) fn open(path: &Path) -> Result<LogStore, StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        // `create` would silently initialize an empty file; an existing file
        // must already be a database.
        let opened = if path.exists() { builder.open(path) } else { builder.create(path) };
        let db = opened.map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::LogInUse { path: path.to_path_buf() },
            source => StoreError::OpenLog { path: path.to_path_buf(), source: Box::new(source) },
        })?;
        let db = LogDb { db, path: path.to_path_buf() };
        db.ensure_format()?;
        let last_purged_on_open = db.read_meta::<LogId>(KEY_LAST_PURGED).map_err(|e| db.open_error(e))?;
        Ok(LogStore { db: Arc::new(db), last_purged_on_open })
    }

    /// The last purged log id found when the store was opened.
    pub(super) fn last_purged_on_open(&self) -> Option<LogId> {
        self.last_purged_on_open
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_entries(&self.db, range).await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_entries(&self.db, range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (last_purged_log_id, last_entry) =
            blocking(&self.db, |db| Ok((db.read_meta::<LogId>(KEY_LAST_PURGED)?, db.last_entry_log_id()?)))
                .await
                .map_err(|e| storage_failure(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
        let last_log_id = last_entry.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { db: self.db.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        blocking(&self.db, move |db| db.write_meta(KEY_VOTE, "vote", &vote))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Vote, ErrorVerb::Write, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        blocking(&self.db, |db| db.read_meta::<Vote>(KEY_VOTE))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Vote, ErrorVerb::Read, &e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let index = committed.map_or(0, |id| id.index);
        blocking(&self.db, move |db| db.write_meta(KEY_COMMITTED, "committed log id", &committed))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        // openraft 0.9's metrics carry no committed index; this is where it
        // is known, on the leader and on followers alike.
        metrics::gauge!("vantage_raft_committed_index").set(index as f64);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        blocking(&self.db, |db| Ok(db.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten()))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Store, ErrorVerb::Read, &e))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        blocking(&self.db, move |db| db.append(&entries))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        // Only now, with the transaction committed and fsynced, may openraft
        // count these entries as persisted.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating raft log");
        blocking(&self.db, move |db| db.remove_from(log_id.index))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Log(log_id), ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging raft log");
        blocking(&self.db, move |db| db.purge_upto(log_id))
            .await
            .map_err(|e| storage_failure(ErrorSubject::Log(log_id), ErrorVerb::Delete, &e))
    }
}

/// Reads the entries in `range`, in order.
async fn read_entries<RB: RangeBounds<u64>>(db: &Arc<LogDb>, range: RB) -> Result<Vec<Entry>, StorageError> {
    let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
    blocking(db, move |db| db.read_entries(bounds))
        .await
        .map_err(|e| storage_failure(ErrorSubject::Logs, ErrorVerb::Read, &e))
}

/// Runs a database operation on tokio's blocking pool: redb's commits wait
/// for fsync, which must not stall the async workers.
async fn blocking<T, F>(db: &Arc<LogDb>, operation: F) -> Result<T, LogIoError>
where
    T: Send + 'static,
    F: FnOnce(&LogDb) -> Result<T, LogIoError> + Send + 'static,
{
    let db = db.clone();
    tokio::task::spawn_blocking(move || operation(&db)).await.map_err(|source| LogIoError::Join { source })?
}

impl LogDb {
    /// Creates the tables and the format marker in a fresh database (also
    /// one left empty by a crash during creation), or checks the marker of
    /// an existing one.
    fn ensure_format(&self) -> Result<(), StoreError> {
        let unsupported = |found: String| StoreError::UnsupportedLogFormat {
            path: self.path.clone(),
            found,
            supported: FORMAT,
        };
        let txn = self.begin_write().map_err(|e| self.open_error(e))?;
        {
            let log = txn.open_table(LOG).map_err(|e| self.open_error(self.redb(e)))?;
            let mut meta = txn.open_table(META).map_err(|e| self.open_error(self.redb(e)))?;
            let found = meta
                .get(KEY_FORMAT)
                .map_err(|e| self.open_error(self.redb(e)))?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            let fresh = || -> Result<bool, LogIoError> {
                Ok(meta.is_empty().map_err(|e| self.redb(e))? && log.is_empty().map_err(|e| self.redb(e))?)
            };
            match found {
                Some(found) if found == FORMAT.to_string() => {}
                Some(found) => return Err(unsupported(found)),
                None if fresh().map_err(|e| self.open_error(e))? => {
                    meta.insert(KEY_FORMAT, FORMAT.to_string().as_bytes())
                        .map_err(|e| self.open_error(self.redb(e)))?;
                }
                None => return Err(unsupported("none (tables exist without a format marker)".into())),
            }
        }
        self.commit(txn).map_err(|e| self.open_error(e))
    }

    /// An error met while opening, as the [`StoreError`] that explains it.
    fn open_error(&self, error: LogIoError) -> StoreError {
        match error {
            LogIoError::Redb { source, .. } => StoreError::ReadLog { path: self.path.clone(), source },
            other => StoreError::CorruptLog { path: self.path.clone(), reason: other.to_string() },
        }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LogIoError> {
        let txn = self.db.begin_read().map_err(|e| self.redb(e))?;
        let meta = txn.open_table(META).map_err(|e| self.redb(e))?;
        let Some(value) = meta.get(key).map_err(|e| self.redb(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value()).map(Some).map_err(|source| LogIoError::Decode {
            path: self.path.clone(),
            what: key.to_string(),
            source,
        })
    }

    fn write_meta<T: Serialize>(&self, key: &str, what: &'static str, value: &T) -> Result<(), LogIoError> {
        let bytes = self.encode(what, value)?;
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.redb(e))?;
            meta.insert(key, bytes.as_slice()).map_err(|e| self.redb(e))?;
        }
        self.commit(txn)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, LogIoError> {
        let txn = self.db.begin_read().map_err(|e| self.redb(e))?;
        let log = txn.open_table(LOG).map_err(|e| self.redb(e))?;
        let Some((index, value)) = log.last().map_err(|e| self.redb(e))? else {
            return Ok(None);
        };
        Ok(Some(self.decode_entry(index.value(), value.value())?.log_id))
    }

    fn read_entries(&self, bounds: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, LogIoError> {
        let txn = self.db.begin_read().map_err(|e| self.redb(e))?;
        let log = txn.open_table(LOG).map_err(|e| self.redb(e))?;
        let mut entries = Vec::new();
        for item in log.range::<u64>(bounds).map_err(|e| self.redb(e))? {
            let (index, value) = item.map_err(|e| self.redb(e))?;
            entries.push(self.decode_entry(index.value(), value.value())?);
        }
        Ok(entries)
    }

    fn append(&self, entries: &[Entry]) -> Result<(), LogIoError> {
        if entries.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write()?;
        {
            let mut log = txn.open_table(LOG).map_err(|e| self.redb(e))?;
            for entry in entries {
                let bytes = self.encode("log entry", entry)?;
                log.insert(entry.log_id.index, bytes.as_slice()).map_err(|e| self.redb(e))?;
            }
        }
        self.commit(txn)
    }

    /// Deletes every entry at `index` and after.
    fn remove_from(&self, index: u64) -> Result<(), LogIoError> {
        let txn = self.begin_write()?;
        {
            let mut log = txn.open_table(LOG).map_err(|e| self.redb(e))?;
            log.retain_in::<u64, _>(index.., |_, _| false).map_err(|e| self.redb(e))?;
        }
        self.commit(txn)
    }

    /// Records `upto` as purged and deletes every entry up to it, in one
    /// transaction. The purged id never moves back.
    fn purge_upto(&self, upto: LogId) -> Result<(), LogIoError> {
        let previous = self.read_meta::<LogId>(KEY_LAST_PURGED)?;
        if previous.is_some_and(|previous| previous >= upto) {
            return Ok(());
        }
        let bytes = self.encode("last purged log id", &upto)?;
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.redb(e))?;
            meta.insert(KEY_LAST_PURGED, bytes.as_slice()).map_err(|e| self.redb(e))?;
            let mut log = txn.open_table(LOG).map_err(|e| self.redb(e))?;
            log.retain_in::<u64, _>(..=upto.index, |_, _| false).map_err(|e| self.redb(e))?;
        }
        self.commit(txn)
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, LogIoError> {
        let mut txn = self.db.begin_write().map_err(|e| self.redb(e))?;
        // The default, stated because correctness depends on it: commit
        // returns only after the data is fsynced.
        txn.set_durability(Durability::Immediate);
        Ok(txn)
    }

    fn commit(&self, txn: redb::WriteTransaction) -> Result<(), LogIoError> {
        txn.commit().map_err(|e| self.redb(e))
    }

    fn decode_entry(&self, index: u64, bytes: &[u8]) -> Result<Entry, LogIoError> {
        serde_json::from_slice(bytes).map_err(|source| LogIoError::Decode {
            path: self.path.clone(),
            what: format!("log entry {index}"),
            source,
        })
    }

    fn encode<T: Serialize>(&self, what: &'static str, value: &T) -> Result<Vec<u8>, LogIoError> {
        serde_json::to_vec(value).map_err(|source| LogIoError::Encode {
            path: self.path.clone(),
            what,
            source,
        })
    }

    fn redb(&self, error: impl Into<redb::Error>) -> LogIoError {
        LogIoError::Redb { path: self.path.clone(), source: Box::new(error.into()) }
    }
}
