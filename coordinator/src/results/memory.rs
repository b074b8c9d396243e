//! The most recent results of each endpoint, in memory: what
//! `/api/endpoints` shows until history and the status page exist.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{AcceptedResult, ResultSink};

/// Keeps the most recent results of each endpoint in memory.
#[derive(Debug)]
pub struct MemorySink {
    per_endpoint: usize,
    rings: Mutex<HashMap<u64, VecDeque<AcceptedResult>>>,
    accepted: AtomicU64,
}

impl MemorySink {
    /// A sink keeping the last `per_endpoint` results of each endpoint.
    pub fn new(per_endpoint: usize) -> MemorySink {
        MemorySink {
            per_endpoint: per_endpoint.max(1),
            rings: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
        }
    }

    /// The most recent results of `endpoint_id`, oldest first.
    pub fn recent(&self, endpoint_id: u64) -> Vec<AcceptedResult> {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.get(&endpoint_id).map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// How many results were ever accepted.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl ResultSink for MemorySink {
    fn accept(&self, batch: &[AcceptedResult]) {
        self.accepted.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        for result in batch {
            let ring = rings.entry(result.observation.endpoint_id).or_default();
            if ring.len() == self.per_endpoint {
                ring.pop_front();
            }
            ring.push_back(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::accepted;
    use super::*;

    #[test]
    fn the_memory_sink_keeps_the_last_results_per_endpoint() {
        let sink = MemorySink::new(2);
        sink.accept(&[accepted(1, 7), accepted(2, 7), accepted(3, 7)]);
        let kept: Vec<u64> = sink.recent(7).iter().map(|r| r.observation.seq).collect();
        assert_eq!(kept, [2, 3]);
        assert_eq!(sink.accepted_total(), 3);
        assert!(sink.recent(8).is_empty());
    }
}
