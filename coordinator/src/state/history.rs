//! Rollups through Raft: the leader's per-minute batches of latency and
//! count rollups ([`RollupBatch`]) and the small ledger that makes them
//! idempotent.
//!
//! The rollups themselves are **not** kept in [`MeshState`]: the state
//! machine's storage (`raft/store/history.rs`) writes the rows a committed
//! batch names into redb tables, so the in-memory state and its JSON stay
//! small however long history grows. What the mesh keeps is
//! [`HistoryLedger`]: per origin (the node that rolled the results up and
//! the term it led in), the last batch number applied. A batch numbered at
//! or below its origin's is a duplicate (a write retried after an unknown
//! outcome) and writes nothing, on every node alike. Origins keep their own
//! numbers, so a deposed leader flushing what it rolled up (forwarded to
//! the new leader) never collides with the new leader's batches.
//!
//! Which rows of a batch are stored is decided here, purely
//! ([`rows_to_store`]): rows of endpoints that exist, periods still kept
//! at the batch's time. Raw results never enter the log: a row is one
//! endpoint × region × hour, merged on the leader from that minute's
//! results.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vantage_core::history::{Granularity, Rollup};

use super::command::{CommandError, Outcome};
use super::ids::{EndpointId, UnixMillis};
use super::MeshState;

/// The most rows one batch may carry (10,000 endpoints × 5 regions, and
/// late results of the hour before).
pub const MAX_ROWS_PER_BATCH: usize = 120_000;

/// The most origins the ledger remembers; the oldest terms are forgotten
/// first (a batch retried from a term that long gone would count twice).
pub const MAX_ORIGINS: usize = 32;

/// Who rolled a batch up: a node, in a term it led.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchOrigin {
    /// The term (first: the ledger forgets the oldest terms first).
    pub term: u64,
    /// The coordinator node.
    pub node: u64,
}

/// The leader's rollups of one flush, numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupBatch {
    /// Who rolled it up.
    pub origin: BatchOrigin,
    /// 1, 2, … per origin; a retry of an unknown outcome keeps its number.
    pub batch: u64,
    /// The rows, one per endpoint × region × hour.
    pub rows: Vec<RollupRow>,
}

/// One endpoint × region × hour: what to merge into the stored rollups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupRow {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The region its probe is in.
    pub region: String,
    /// The UTC hour of the checks' start (hours since the epoch).
    pub hour: u32,
    /// What those checks showed, in the rollup's compact binary form
    /// (base64 in the log's JSON).
    #[serde(serialize_with = "ser_rollup", deserialize_with = "de_rollup")]
    pub rollup: Rollup,
}

/// The replicated bookkeeping of rollup batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLedger {
    /// Per origin, the last batch applied.
    #[serde(with = "origins")]
    pub last_batch: BTreeMap<BatchOrigin, u64>,
    /// When the last batch was applied (its request's time).
    pub last_batch_at: UnixMillis,
}

/// Applies [`Command::RecordRollups`](super::Command::RecordRollups).
pub(super) fn record_rollups(
    state: &mut MeshState,
    at: UnixMillis,
    batch: &RollupBatch,
) -> Result<Outcome, CommandError> {
    if batch.rows.len() > MAX_ROWS_PER_BATCH {
        return Err(CommandError::TooLarge {
            what: "rollup batch rows".into(),
            max: MAX_ROWS_PER_BATCH as u64,
        });
    }
    let ledger = &mut state.tables.history;
    if ledger.last_batch.get(&batch.origin).is_some_and(|&last| batch.batch <= last) {
        return Ok(Outcome::RollupsRecorded { batch: batch.batch, rows: 0, duplicate: true });
    }
    ledger.last_batch.insert(batch.origin, batch.batch);
    while ledger.last_batch.len() > MAX_ORIGINS {
        ledger.last_batch.pop_first();
    }
    ledger.last_batch_at = at;
    let rows = rows_to_store(state, at, batch).into_iter().filter(|&keep| keep).count() as u64;
    Ok(Outcome::RollupsRecorded { batch: batch.batch, rows, duplicate: false })
}

/// Which rows of an applied (not duplicate) batch storage writes: those
/// of endpoints that exist, for hours still kept at `at`; one flag per row.
pub fn rows_to_store(state: &MeshState, at: UnixMillis, batch: &RollupBatch) -> Vec<bool> {
    let oldest = Granularity::Hour.oldest_kept(at);
    batch
        .rows
        .iter()
        .map(|row| row.hour >= oldest && state.tables.endpoints.contains_key(&row.endpoint))
        .collect()
}

fn ser_rollup<S: Serializer>(rollup: &Rollup, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(rollup.encode()))
}

fn de_rollup<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Rollup, D::Error> {
    use serde::de::Error as _;
    let text = String::deserialize(deserializer)?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text.as_bytes())
        .map_err(|e| D::Error::custom(format!("rollup is not base64: {e}")))?;
    Rollup::decode(&bytes).ok_or_else(|| D::Error::custom("rollup does not decode"))
}

/// The ledger's origins as a list (JSON object keys must be strings).
mod origins {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::BatchOrigin;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Last {
        origin: BatchOrigin,
        batch: u64,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<BatchOrigin, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter().map(|(&origin, &batch)| Last { origin, batch }).collect::<Vec<_>>().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<BatchOrigin, u64>, D::Error> {
        Ok(Vec::<Last>::deserialize(d)?.into_iter().map(|l| (l.origin, l.batch)).collect())
    }
}
