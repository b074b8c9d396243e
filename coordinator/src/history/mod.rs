//! The leader's history roller: a results subscriber that merges every
//! accepted in-slot result into a per endpoint × region × hour
//! [`Rollup`], and a task that commits what it merged through Raft once a
//! minute ([`Command::RecordRollups`]), where the state machine writes it
//! into the rollup tables on every node.
//!
//! Loss window: results are acknowledged to probes once their ingest
//! checkpoint commits, which is before their rollup does, so a leader
//! that dies (SIGKILL, power) loses the rollups of at most one flush
//! interval; history then undercounts those checks. A stopping leader
//! (SIGTERM) and one handing leadership over flush first, and a deposed one flushes too (its write is
//! forwarded to the new leader), each batch under its own origin so it
//! never collides with the new leader's. A write whose outcome is unknown
//! is retried with the same batch number, so it counts once.
//!
//! Results left out: skipped slots (no check ran), checks of a probe whose
//! canaries failed (its own network is the problem), and out-of-slot
//! checks (check-now confirmations would count failures twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vantage_core::clock::WallClock;
use vantage_core::history::{Granularity, Rollup};

use crate::node::ClusterNode;
use crate::results::{AcceptedResult, ResultSink};
use crate::state::history::{BatchOrigin, RollupBatch, RollupRow, MAX_ROWS_PER_BATCH};
use crate::state::{Command, CommandResponse, EndpointId, IdempotencyKey, Request, UnixMillis};

/// How the roller runs.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// How often the merged rollups are committed.
    pub flush_every: Duration,
    /// How long a batch whose write keeps failing is retried before it
    /// is dropped (counted and logged).
    pub give_up_after: Duration,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { flush_every: Duration::from_secs(60), give_up_after: Duration::from_secs(600) }
    }
}

/// Merges accepted results; see the module docs.
pub struct Roller {
    node: ClusterNode,
    clock: Arc<dyn WallClock>,
    options: HistoryOptions,
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// (endpoint, hour) → per region, the merged rollup since the last
    /// flush. Regions are few, so a short list found by name costs no
    /// allocation per result (only the first of each region and hour).
    rows: HashMap<(u64, u32), Vec<(String, Rollup)>>,
    /// The term the rows were rolled up in (the leader's).
    term: Option<u64>,
}

/// A batch written but not yet known committed.
struct Unsent {
    batch: RollupBatch,
    since: Instant,
}

impl Roller {
    /// A roller writing through `node`.
    pub fn new(node: ClusterNode, clock: Arc<dyn WallClock>, options: HistoryOptions) -> Arc<Roller> {
        Arc::new(Roller { node, clock, options, state: Mutex::new(Pending::default()) })
    }

    /// Commits what is merged every `flush_every` until `shutdown`, then
    /// once more (bounded by the node's write retries).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut unsent: Option<Unsent> = None;
        let mut next_batch: HashMap<BatchOrigin, u64> = HashMap::new();
        let mut tick = tokio::time::interval(self.options.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut transfers = self.node.leadership_transfers();
        loop {
            // A leadership transfer flushes at once: the write waits out the
            // hand-over and lands on the new leader (forwarded).
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                Ok(()) = transfers.changed() => false,
                () = shutdown.cancelled() => true,
            };
            // Flush until nothing is left (a batch holds at most
            // MAX_ROWS_PER_BATCH rows) or a write fails.
            loop {
                if unsent.is_none() {
                    unsent =
                        self.take_batch(&mut next_batch).map(|batch| Unsent { batch, since: Instant::now() });
                }
                let Some(pending) = &unsent else { break };
                if self.write(&pending.batch).await {
                    unsent = None;
                } else {
                    if pending.since.elapsed() > self.options.give_up_after {
                        let rows = pending.batch.rows.len();
                        metrics::counter!("vantage_history_rows_dropped_total").increment(rows as u64);
                        tracing::warn!(
                            rows,
                            batch = pending.batch.batch,
                            "rollup batch dropped after retrying for too long"
                        );
                        unsent = None;
                    }
                    break;
                }
            }
            if stopping {
                return;
            }
        }
    }

    fn take_batch(&self, next_batch: &mut HashMap<BatchOrigin, u64>) -> Option<RollupBatch> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.rows.is_empty() {
            return None;
        }
        let origin = BatchOrigin { term: state.term.unwrap_or(0), node: self.node.id() };
        let mut rows: Vec<RollupRow> = Vec::new();
        let keys: Vec<(u64, u32)> = state.rows.keys().copied().collect();
        for key in keys {
            let regions = state.rows.get(&key).map_or(0, Vec::len);
            if rows.len() + regions > MAX_ROWS_PER_BATCH {
                break;
            }
            let (endpoint, hour) = key;
            for (region, rollup) in state.rows.remove(&key).unwrap_or_default() {
                rows.push(RollupRow { endpoint: EndpointId(endpoint), region, hour, rollup });
            }
        }
        rows.sort_by(|a, b| (a.hour, a.endpoint, &a.region).cmp(&(b.hour, b.endpoint, &b.region)));
        // Numbers continue from what the state applied for this origin, so
        // a restarted roller never reuses one.
        let applied = self.node.read_local(|s| s.mesh.history_ledger().last_batch.get(&origin).copied());
        let number = next_batch.entry(origin).or_insert(0);
        *number = (*number).max(applied.unwrap_or(0)) + 1;
        Some(RollupBatch { origin, batch: *number, rows })
    }

    async fn write(&self, batch: &RollupBatch) -> bool {
        let request = Request {
            idempotency_key: IdempotencyKey(format!(
                "rollups-{}-{}-{}",
                batch.origin.node, batch.origin.term, batch.batch
            )),
            issued_at: UnixMillis::from(self.clock.now()),
            command: Command::RecordRollups(batch.clone()),
        };
        let started = Instant::now();
        match self.node.write(request).await {
            Ok(CommandResponse::Applied(_)) => {
                metrics::counter!("vantage_history_batches_total").increment(1);
                metrics::counter!("vantage_history_rows_total").increment(batch.rows.len() as u64);
                metrics::histogram!("vantage_history_flush_seconds").record(started.elapsed().as_secs_f64());
                true
            }
            Ok(other) => {
                tracing::warn!(response = ?other, "rollup batch refused; dropped");
                metrics::counter!("vantage_history_rows_dropped_total").increment(batch.rows.len() as u64);
                true
            }
            Err(error) => {
                tracing::warn!(%error, rows = batch.rows.len(), "rollup batch not committed yet; retrying");
                false
            }
        }
    }
}

impl ResultSink for Roller {
    fn accept(&self, batch: &[AcceptedResult]) {
        let term = self.node.leading_term();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The origin's term is the one the pending rows began in; a batch
        // is numbered within it, so a later term of this same node starts
        // its numbers afresh only once those rows are flushed.
        if state.rows.is_empty() && term.is_some() {
            state.term = term;
        }
        for accepted in batch {
            let observation = &accepted.observation;
            let Some(result) = &observation.result else { continue };
            if observation.probe_unhealthy || observation.out_of_slot {
                continue;
            }
            let hour = Granularity::Hour.period_of(UnixMillis::from(result.started_at));
            let regions = state.rows.entry((observation.endpoint_id, hour)).or_default();
            match regions.iter_mut().find(|(region, _)| *region == accepted.region) {
                Some((_, rollup)) => rollup.record(result),
                None => {
                    let mut rollup = Rollup::default();
                    rollup.record(result);
                    regions.push((accepted.region.clone(), rollup));
                }
            }
        }
    }
}
