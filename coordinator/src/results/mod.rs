//! Where accepted results go: one [`ResultSink`] trait, a [`FanOut`] that
//! hands every batch to each subscriber in turn, and the subscribers.
//!
//! The mesh validates and de-duplicates a probe's results
//! (`mesh/results.rs`), then gives each accepted batch to one sink — the
//! fan-out the runtime builds — before the batch is acknowledged. Each
//! consumer (the latest-results view for `/api/endpoints`, agreement, TSDB
//! export; history rollups next) subscribes here without touching the
//! stream code.
//!
//! Modules: [`memory`] ([`MemorySink`], the recent results per endpoint).
//!
//! Architecture invariant: `accept` never blocks on I/O. It runs on a
//! probe's stream task; a consumer with slow work (a TSDB write) queues the
//! batch and returns, and says in its own metrics what it had to drop.

pub mod memory;

use std::sync::Arc;
use std::time::SystemTime;

use vantage_core::observation::Observation;

pub use self::memory::MemorySink;

/// One accepted result: what the probe observed, who sent it, and when it
/// arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedResult {
    /// The probe that ran the check.
    pub probe_id: u64,
    /// The probe's region.
    pub region: String,
    /// What the probe reported for the slot.
    pub observation: Observation,
    /// When the coordinator received it.
    pub received_at: SystemTime,
}

/// A consumer of accepted results.
///
/// `accept` must not block for long: it runs on the probe's stream task,
/// and the batch is acknowledged to the probe once every subscriber of the
/// fan-out returned.
pub trait ResultSink: Send + Sync + 'static {
    /// Sees one batch of accepted results (in the probe's sequence order);
    /// a consumer keeps what it needs by cloning.
    fn accept(&self, batch: &[AcceptedResult]);
}

/// Hands every batch to each subscriber, in the order they subscribed.
#[derive(Default, Clone)]
pub struct FanOut {
    subscribers: Vec<(&'static str, Arc<dyn ResultSink>)>,
}

impl FanOut {
    /// A fan-out with no subscribers (results are dropped after
    /// acknowledgement).
    pub fn new() -> FanOut {
        FanOut::default()
    }

    /// Adds `sink` under `name` (for logs and metrics).
    pub fn subscribe(mut self, name: &'static str, sink: Arc<dyn ResultSink>) -> FanOut {
        self.subscribers.push((name, sink));
        self
    }

    /// The subscribers' names, in delivery order.
    pub fn names(&self) -> Vec<&'static str> {
        self.subscribers.iter().map(|(name, _)| *name).collect()
    }
}

impl ResultSink for FanOut {
    fn accept(&self, batch: &[AcceptedResult]) {
        if batch.is_empty() {
            return;
        }
        for (name, sink) in &self.subscribers {
            sink.accept(batch);
            metrics::counter!("vantage_results_delivered_total", "consumer" => *name)
                .increment(batch.len() as u64);
        }
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut").field("subscribers", &self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Records which subscriber saw which sequence numbers, in order.
    #[derive(Default)]
    struct Log(Mutex<Vec<(&'static str, u64)>>);

    struct Named(&'static str, Arc<Log>);

    impl ResultSink for Named {
        fn accept(&self, batch: &[AcceptedResult]) {
            let mut log = self.1 .0.lock().unwrap();
            log.extend(batch.iter().map(|r| (self.0, r.observation.seq)));
        }
    }

    pub(crate) fn accepted(seq: u64, endpoint_id: u64) -> AcceptedResult {
        AcceptedResult {
            probe_id: 1,
            region: "eu".into(),
            observation: Observation {
                seq,
                endpoint_id,
                round: seq,
                probe_unhealthy: false,
                planned_start: SystemTime::UNIX_EPOCH,
                lag: Duration::ZERO,
                out_of_slot: false,
                request_id: None,
                result: None,
            },
            received_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn every_subscriber_sees_every_batch_in_order() {
        let log = Arc::new(Log::default());
        let fan = FanOut::new()
            .subscribe("first", Arc::new(Named("first", log.clone())))
            .subscribe("second", Arc::new(Named("second", log.clone())));
        assert_eq!(fan.names(), ["first", "second"]);
        fan.accept(&[accepted(1, 7), accepted(2, 7)]);
        fan.accept(&[]);
        fan.accept(&[accepted(3, 8)]);
        assert_eq!(
            *log.0.lock().unwrap(),
            [("first", 1), ("first", 2), ("second", 1), ("second", 2), ("first", 3), ("second", 3)]
        );
    }
}
