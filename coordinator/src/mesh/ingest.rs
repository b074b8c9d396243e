//! Exactly-once results across leader changes: the leader's side of the
//! ingest ledger ([`crate::state::ingest`]).
//!
//! A stream task processes a batch (validates, de-duplicates against the
//! committed ledger and this leader's memory, hands what is new to the
//! sink) and records its sequence numbers and its acknowledgement here as
//! pending. Every `checkpoint_interval` the checkpoint task commits the
//! pending numbers of every probe in one
//! [`Command::RecordIngest`](crate::state::Command::RecordIngest) and only
//! then sends the acknowledgements. A checkpoint that fails while this node
//! still leads is retried with the next one; when leadership is lost the
//! pending numbers and this leader's de-duplication memory are dropped (the
//! probes resend what was not acknowledged to the next leader, whose ledger
//! says what was recorded).
//!
//! Checkpoints run one at a time, so an acknowledgement taken after a
//! checkpoint started waits for the next: it is never sent before the
//! numbers it covers are committed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use vantage_proto::pb;

use super::{Mesh, Outbound};
use crate::state::{Command, IdempotencyKey, IngestEntry, Outcome, ProbeId, Request, SeqRanges, UnixMillis};

/// What a leader processed since its last checkpoint.
#[derive(Default)]
pub(super) struct Pending {
    /// The term the numbers were processed in.
    pub term: u64,
    /// Per probe.
    pub probes: BTreeMap<u64, PendingProbe>,
}

/// One probe's processed numbers and the acknowledgements waiting for them.
#[derive(Default)]
pub(super) struct PendingProbe {
    pub seqs: SeqRanges,
    pub accepted: u64,
    pub rejected: u64,
    /// Per stream: where to send, and the cumulative acknowledgement.
    pub acks: BTreeMap<u64, (Outbound, pb::ResultAck)>,
}

impl PendingProbe {
    /// Adds an acknowledgement for `stream_id`; acknowledgements are
    /// cumulative, so one per stream is kept with every refusal listed.
    pub fn ack(&mut self, stream_id: u64, tx: &Outbound, ack: pb::ResultAck) {
        match self.acks.get_mut(&stream_id) {
            Some((_, waiting)) => {
                waiting.up_to_seq = waiting.up_to_seq.max(ack.up_to_seq);
                waiting.rejected.extend(ack.rejected);
            }
            None => {
                self.acks.insert(stream_id, (tx.clone(), ack));
            }
        }
    }

    /// Folds a later pending record of the same probe into this one.
    fn merge(&mut self, later: PendingProbe) {
        self.seqs.extend(&later.seqs);
        self.accepted += later.accepted;
        self.rejected += later.rejected;
        for (stream_id, (tx, ack)) in later.acks {
            self.ack(stream_id, &tx, ack);
        }
    }
}

impl Mesh {
    /// Commits pending numbers every `checkpoint_interval`, then sends the
    /// acknowledgements waiting for them.
    pub(super) async fn checkpoint_loop(&self) {
        let shared = &self.shared;
        let mut next_key = 0u64;
        loop {
            tokio::select! {
                () = shared.shutdown.cancelled() => break,
                () = tokio::time::sleep(shared.options.checkpoint_interval) => {}
            }
            let term = shared.node.leading_term();
            let taken = {
                let mut inner = shared.lock();
                if term != Some(inner.pending.term) {
                    // Not leading, or leading in another term: what was
                    // processed before is not ours to record any more.
                    inner.forget_processed(term.unwrap_or(0));
                    continue;
                }
                if inner.pending.probes.is_empty() {
                    continue;
                }
                std::mem::take(&mut inner.pending.probes)
            };
            let Some(term) = term else { continue };
            let entries: Vec<IngestEntry> = taken
                .iter()
                .filter(|(_, p)| !p.seqs.is_empty())
                .map(|(&probe, p)| IngestEntry {
                    probe: ProbeId(probe),
                    seqs: p.seqs.clone(),
                    accepted: p.accepted,
                    rejected: p.rejected,
                })
                .collect();
            let committed = if entries.is_empty() {
                // Only acknowledgements of numbers committed earlier.
                Ok(true)
            } else {
                next_key += 1;
                let request = Request {
                    idempotency_key: IdempotencyKey(format!("ingest-{term}-{next_key}")),
                    issued_at: UnixMillis::from(shared.clock.now()),
                    command: Command::RecordIngest { entries },
                };
                let started = Instant::now();
                let result = shared.node.commit_if_leader(request).await;
                metrics::histogram!("vantage_mesh_checkpoint_seconds")
                    .record(started.elapsed().as_secs_f64());
                match result {
                    Ok(Some(Outcome::IngestRecorded { duplicates })) => {
                        if duplicates > 0 {
                            tracing::error!(
                                duplicates,
                                "ingest checkpoint recorded numbers already recorded"
                            );
                        }
                        Ok(true)
                    }
                    Ok(Some(other)) => Err(format!("unexpected outcome {other:?}")),
                    Ok(None) => Ok(false),
                    Err(error) => Err(error),
                }
            };
            match committed {
                Ok(true) => {
                    shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("vantage_mesh_checkpoints_total").increment(1);
                    self.deliver_acks(taken);
                }
                Ok(false) => {
                    tracing::info!("ingest checkpoint not committed: this node no longer leads");
                    shared.lock().forget_processed(0);
                }
                Err(error) => {
                    metrics::counter!("vantage_mesh_checkpoint_failures_total").increment(1);
                    tracing::warn!(%error, "ingest checkpoint failed; retrying with the next one");
                    let mut inner = shared.lock();
                    if inner.pending.term == term {
                        let later = std::mem::replace(&mut inner.pending.probes, taken);
                        for (probe, pending) in later {
                            inner.pending.probes.entry(probe).or_default().merge(pending);
                        }
                    }
                }
            }
        }
    }

    /// Sends each stream its acknowledgement; a stream whose queue is full
    /// gets it from a task bounded by `send_timeout` (a later, cumulative
    /// acknowledgement covers a lost one).
    fn deliver_acks(&self, taken: BTreeMap<u64, PendingProbe>) {
        let limit = self.shared.options.send_timeout;
        for (_, pending) in taken {
            for (_, (tx, ack)) in pending.acks {
                let message = pb::CoordinatorMessage { msg: Some(pb::coordinator_message::Msg::Ack(ack)) };
                if let Err(tokio::sync::mpsc::error::TrySendError::Full(message)) = tx.try_send(Ok(message)) {
                    self.shared.tasks.spawn(async move {
                        let _ = tokio::time::timeout(limit, tx.send(message)).await;
                    });
                }
            }
        }
    }
}
