//! The rollup tables: `history.redb` beside the Raft log, written by the
//! state machine as it applies [`RollupBatch`](crate::state::history::RollupBatch)es.
//!
//! ```text
//! hourly  (hour,  endpoint, region) → rollup   kept 8 days
//! daily   (day,   endpoint, region) → rollup   kept 92 days
//! meta    "applied_index"           → the log index of the last batch written
//! ```
//!
//! Keys lead with the period, so retention is a cheap range delete at the
//! front of each table, and one endpoint's history is one short range
//! read per period (a 90-day read is 90 + 1 of them). Values are
//! [`Rollup::encode`]'s compact form.
//!
//! Why redb and not the in-memory state: at 10,000 endpoints × 3 regions
//! the tables hold millions of rows; kept in [`MeshState`](crate::state::MeshState)
//! they would be in memory and in every JSON snapshot. Here they are on
//! disk behind redb's bounded page cache, and the snapshot streams them.
//!
//! Idempotence: openraft re-applies the log after the last snapshot on
//! every restart, so a batch may be applied again. Each write records the
//! entry's log index in the same transaction, committed durably; an entry
//! at or below it is skipped.

// redb::Error is large; the closures here pass it straight on from redb.
#![allow(clippy::result_large_err)]

use std::io::{self, Read, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use vantage_core::history::{Granularity, Rollup};

use crate::state::history::RollupRow;
use crate::state::{EndpointId, UnixMillis};

type Key<'a> = (u32, u64, &'a str);

const HOURLY: TableDefinition<'_, Key<'_>, &[u8]> = TableDefinition::new("hourly");
const DAILY: TableDefinition<'_, Key<'_>, &[u8]> = TableDefinition::new("daily");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const APPLIED_INDEX: &str = "applied_index";
/// redb's page cache for these tables: reads of recent periods stay hot,
/// memory stays bounded however many rows there are.
const CACHE_BYTES: usize = 64 << 20;
/// Rows per transaction when a snapshot is installed, so an install of
/// millions of rows never holds them all in one transaction's memory.
const IMPORT_CHUNK: usize = 100_000;

/// The history file, inside `data_dir`.
pub const HISTORY_FILE: &str = "history.redb";

/// The rollup tables.
pub struct HistoryStore {
    db: Database,
    path: PathBuf,
}

/// A failure reading or writing the rollup tables.
#[derive(Debug, thiserror::Error)]
pub enum HistoryIoError {
    /// redb failed.
    #[error("history {path}: {source}")]
    Redb {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored value does not decode.
    #[error("history {path}: the rollup of {what} does not decode")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which row.
        what: String,
    },
    /// A snapshot's history section could not be read or written.
    #[error("history section of a snapshot: {0}")]
    Snapshot(#[from] io::Error),
}

impl HistoryStore {
    /// Opens (creating if needed) `data_dir/history.redb`.
    pub fn open(data_dir: &Path) -> Result<HistoryStore, HistoryIoError> {
        let path = data_dir.join(HISTORY_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| redb_error(&path, e))?;
        let store = HistoryStore { db, path };
        store.write(|txn| {
            txn.open_table(HOURLY)?;
            txn.open_table(DAILY)?;
            txn.open_table(META)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The log index of the last batch written (0: none).
    pub fn applied_index(&self) -> Result<u64, HistoryIoError> {
        let read = || -> Result<u64, redb::Error> {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get(APPLIED_INDEX)?.map(|v| v.value()).unwrap_or(0))
        };
        read().map_err(|e| redb_error(&self.path, e))
    }

    /// Merges `rows` (a batch committed at log index `index`, applied at
    /// `at`) into the hourly and daily tables and drops periods past
    /// retention, in one durable transaction; does nothing when `index`
    /// was already written.
    pub fn apply<'a>(
        &self,
        index: u64,
        at: UnixMillis,
        rows: impl Iterator<Item = &'a RollupRow>,
    ) -> Result<bool, HistoryIoError> {
        if index <= self.applied_index()? {
            return Ok(false);
        }
        let path = self.path.clone();
        let mut corrupt = None;
        self.write(|txn| {
            let mut hourly = txn.open_table(HOURLY)?;
            let mut daily = txn.open_table(DAILY)?;
            for row in rows {
                let day = Granularity::Day.period_of(Granularity::Hour.start_of(row.hour));
                for (table, period) in [(&mut hourly, row.hour), (&mut daily, day)] {
                    let key = (period, row.endpoint.0, row.region.as_str());
                    let merged = match table.get(key)? {
                        None => row.rollup.encode(),
                        Some(stored) => match Rollup::decode(stored.value()) {
                            Some(mut rollup) => {
                                rollup.merge(&row.rollup);
                                rollup.encode()
                            }
                            None => {
                                corrupt.get_or_insert_with(|| format!("{key:?}"));
                                continue;
                            }
                        },
                    };
                    table.insert(key, merged.as_slice())?;
                }
            }
            prune(&mut hourly, Granularity::Hour.oldest_kept(at))?;
            prune(&mut daily, Granularity::Day.oldest_kept(at))?;
            txn.open_table(META)?.insert(APPLIED_INDEX, index)?;
            Ok(())
        })?;
        match corrupt {
            Some(what) => Err(HistoryIoError::Corrupt { path, what }),
            None => Ok(true),
        }
    }

    /// One endpoint's rollups of `granularity` over `periods`: region →
    /// period → rollup.
    pub fn read(
        &self,
        endpoint: EndpointId,
        granularity: Granularity,
        periods: RangeInclusive<u32>,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, Rollup>>, HistoryIoError>
    {
        let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<u32, Rollup>> =
            Default::default();
        let txn = self.db.begin_read().map_err(|e| redb_error(&self.path, e))?;
        let table = txn
            .open_table(match granularity {
                Granularity::Hour => HOURLY,
                Granularity::Day => DAILY,
            })
            .map_err(|e| redb_error(&self.path, e))?;
        for period in periods {
            let range = table
                .range((period, endpoint.0, "")..(period, endpoint.0 + 1, ""))
                .map_err(|e| redb_error(&self.path, e))?;
            for entry in range {
                let (key, value) = entry.map_err(|e| redb_error(&self.path, e))?;
                let (period, _, region) = key.value();
                let rollup = Rollup::decode(value.value()).ok_or_else(|| HistoryIoError::Corrupt {
                    path: self.path.clone(),
                    what: format!("{granularity:?} {period} of endpoint {} in {region}", endpoint.0),
                })?;
                out.entry(region.to_string()).or_default().insert(period, rollup);
            }
        }
        Ok(out)
    }

    /// A consistent view for a snapshot, taken at the moment of the call.
    pub fn begin_export(&self) -> Result<HistoryExport, HistoryIoError> {
        let txn = self.db.begin_read().map_err(|e| redb_error(&self.path, e))?;
        let applied_index = txn
            .open_table(META)
            .and_then(|meta| Ok(meta.get(APPLIED_INDEX)?.map(|v| v.value()).unwrap_or(0)))
            .map_err(|e| redb_error(&self.path, e))?;
        Ok(HistoryExport { txn, applied_index, path: self.path.clone() })
    }

    /// Replaces every row with those of a snapshot's history section
    /// (read from `input` until it ends), then records `applied_index`.
    /// Until the last chunk commits the recorded index is 0, so a crash
    /// in the middle makes the next start import again.
    pub fn import(&self, input: &mut impl Read, applied_index: u64) -> Result<u64, HistoryIoError> {
        self.write(|txn| {
            txn.delete_table(HOURLY)?;
            txn.delete_table(DAILY)?;
            txn.open_table(HOURLY)?;
            txn.open_table(DAILY)?;
            txn.open_table(META)?.insert(APPLIED_INDEX, 0)?;
            Ok(())
        })?;
        let mut rows = 0u64;
        loop {
            let mut chunk = Vec::with_capacity(1024);
            while chunk.len() < IMPORT_CHUNK {
                match read_record(input)? {
                    Some(record) => chunk.push(record),
                    None => break,
                }
            }
            let last = chunk.len() < IMPORT_CHUNK;
            rows += chunk.len() as u64;
            self.write(|txn| {
                let mut hourly = txn.open_table(HOURLY)?;
                let mut daily = txn.open_table(DAILY)?;
                for record in &chunk {
                    let table = if record.daily { &mut daily } else { &mut hourly };
                    table.insert(
                        (record.period, record.endpoint, record.region.as_str()),
                        record.value.as_slice(),
                    )?;
                }
                if last {
                    txn.open_table(META)?.insert(APPLIED_INDEX, applied_index)?;
                }
                Ok(())
            })?;
            if last {
                return Ok(rows);
            }
        }
    }

    /// How many rows each table holds (hourly, daily).
    pub fn row_counts(&self) -> Result<(u64, u64), HistoryIoError> {
        use redb::ReadableTableMetadata as _;
        let count = || -> Result<(u64, u64), redb::Error> {
            let txn = self.db.begin_read()?;
            Ok((txn.open_table(HOURLY)?.len()?, txn.open_table(DAILY)?.len()?))
        };
        count().map_err(|e| redb_error(&self.path, e))
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), HistoryIoError> {
        let run = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::Immediate);
            f(&txn)?;
            txn.commit()?;
            Ok(())
        };
        run().map_err(|e| redb_error(&self.path, e))
    }
}

/// The rollup tables as they were when a snapshot began, streamed into
/// the snapshot file's history section.
pub struct HistoryExport {
    txn: redb::ReadTransaction,
    applied_index: u64,
    path: PathBuf,
}

impl HistoryExport {
    /// The log index of the last batch this view includes.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Writes every row (hourly, then daily) to `out`; returns how many.
    pub fn write_to(&self, out: &mut impl Write) -> Result<u64, HistoryIoError> {
        let mut rows = 0;
        for (daily, definition) in [(false, HOURLY), (true, DAILY)] {
            let table = self.txn.open_table(definition).map_err(|e| redb_error(&self.path, e))?;
            for entry in table.iter().map_err(|e| redb_error(&self.path, e))? {
                let (key, value) = entry.map_err(|e| redb_error(&self.path, e))?;
                let (period, endpoint, region) = key.value();
                write_record(out, daily, period, endpoint, region, value.value())?;
                rows += 1;
            }
        }
        Ok(rows)
    }
}

/// One row of a snapshot's history section.
struct Record {
    daily: bool,
    period: u32,
    endpoint: u64,
    region: String,
    value: Vec<u8>,
}

/// `[kind u8: 1 hourly, 2 daily][period u32 LE][endpoint u64 LE]
/// [region len u8][region][value len u32 LE][value]`.
fn write_record(
    out: &mut impl Write,
    daily: bool,
    period: u32,
    endpoint: u64,
    region: &str,
    value: &[u8],
) -> io::Result<()> {
    let region_len =
        u8::try_from(region.len()).map_err(|_| io::Error::other("region name over 255 bytes"))?;
    let value_len = u32::try_from(value.len()).map_err(|_| io::Error::other("rollup over 4 GiB"))?;
    out.write_all(&[if daily { 2 } else { 1 }])?;
    out.write_all(&period.to_le_bytes())?;
    out.write_all(&endpoint.to_le_bytes())?;
    out.write_all(&[region_len])?;
    out.write_all(region.as_bytes())?;
    out.write_all(&value_len.to_le_bytes())?;
    out.write_all(value)
}

/// The next record, or `None` at a clean end.
fn read_record(input: &mut impl Read) -> io::Result<Option<Record>> {
    let mut kind = [0u8; 1];
    if input.read(&mut kind)? == 0 {
        return Ok(None);
    }
    let daily = match kind[0] {
        1 => false,
        2 => true,
        other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown row kind {other}"))),
    };
    let (mut period, mut endpoint, mut region_len) = ([0u8; 4], [0u8; 8], [0u8; 1]);
    input.read_exact(&mut period)?;
    input.read_exact(&mut endpoint)?;
    input.read_exact(&mut region_len)?;
    let (period, endpoint) = (u32::from_le_bytes(period), u64::from_le_bytes(endpoint));
    let mut region = vec![0u8; usize::from(region_len[0])];
    input.read_exact(&mut region)?;
    let region = String::from_utf8(region)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "region name is not UTF-8"))?;
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_ROLLUP_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("rollup of {len} bytes")));
    }
    let mut value = vec![0u8; len];
    input.read_exact(&mut value)?;
    if Rollup::decode(&value).is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("rollup of endpoint {endpoint} in {region} does not decode"),
        ));
    }
    Ok(Some(Record { daily, period, endpoint, region, value }))
}

/// No rollup is near this: two histograms of at most 1,184 buckets.
const MAX_ROLLUP_BYTES: usize = 64 * 1024;

fn prune(table: &mut redb::Table<'_, Key<'static>, &'static [u8]>, oldest: u32) -> Result<(), redb::Error> {
    // `retain_in` walks only the expired front of the table.
    table.retain_in((0, 0, "")..(oldest, 0, ""), |_, _| false)?;
    Ok(())
}

fn redb_error(path: &Path, error: impl Into<redb::Error>) -> HistoryIoError {
    HistoryIoError::Redb { path: path.to_path_buf(), source: Box::new(error.into()) }
}
