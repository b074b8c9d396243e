//! "Check it now from everywhere" (`vantagectl check ENDPOINT`): a CheckNow
//! to every probe assigned to the endpoint, then waiting for the results
//! that answer it.
//!
//! Results answering a CheckNow carry its request id. The [`Waiters`]
//! registry sees every accepted result on its way to the mesh's sink
//! ([`TapSink`]) and hands those with a registered request id to the caller
//! waiting for them. It is bounded twice: at most [`MAX_WAITERS`] checks wait
//! at once, and each waits for at most [`WAITER_CAPACITY`] results (extra
//! ones are dropped for the waiter, never for the sink). A [`ResultWaiter`]
//! unregisters itself when dropped, so a timed-out or cancelled check leaves
//! nothing behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CheckNowTicket, Mesh, MeshError};
use crate::results::{AcceptedResult, ResultSink};

/// The most checks waiting for their results at the same time.
pub const MAX_WAITERS: usize = 64;
/// The most results one check waits for (one per probe asked; more than
/// any region has probes).
pub const WAITER_CAPACITY: usize = 256;

/// What [`Mesh::check_endpoint`] learned, region by region.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The endpoint checked.
    pub endpoint_id: u64,
    /// The CheckNow request id the results carry.
    pub request_id: String,
    /// One entry per region the endpoint is checked from, by name; a region
    /// with several probes has several outcomes.
    pub regions: BTreeMap<String, Vec<ProbeOutcome>>,
}

/// What one probe (or, for an uncovered region, nobody) answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    /// The probe checked and sent its result.
    Answered(Box<AcceptedResult>),
    /// The probe was asked but no result came before the deadline.
    TimedOut {
        /// The probe asked.
        probe_id: u64,
    },
    /// The probe is assigned the endpoint but could not be asked:
    /// disconnected (within its grace period) or its queue is full.
    Unreachable {
        /// The probe.
        probe_id: u64,
    },
    /// No live, eligible probe in the region.
    Uncovered,
}

impl Mesh {
    /// Asks every probe assigned to `endpoint_id` to check it now and waits
    /// up to `wait` for their results. Fails only when this node does not
    /// lead, the endpoint is not placed, or too many checks already wait;
    /// probes that do not answer in time are reported as such.
    pub async fn check_endpoint(&self, endpoint_id: u64, wait: Duration) -> Result<CheckReport, MeshError> {
        let mut waiter = self.shared.waiters.register(self.next_request_id())?;
        let ticket = self.send_check_now(endpoint_id, waiter.request_id.clone())?;
        let mut pending: BTreeSet<(String, u64)> = ticket.sent.iter().cloned().collect();
        let mut answered: BTreeMap<(String, u64), AcceptedResult> = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + wait;
        while !pending.is_empty() {
            let result = tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = self.shared.shutdown.cancelled() => break,
                result = waiter.next() => match result {
                    Some(result) => result,
                    None => break,
                },
            };
            let key = (result.region.clone(), result.probe_id);
            if pending.remove(&key) {
                answered.insert(key, result);
            }
        }
        tracing::info!(
            endpoint_id,
            request_id = %ticket.request_id,
            asked = ticket.sent.len(),
            answered = answered.len(),
            "check endpoint"
        );
        Ok(report(endpoint_id, ticket, answered))
    }
}

impl Mesh {
    /// Asks every probe assigned to `endpoint_id` to check it now, without
    /// waiting: the results arrive as any other (the agreement runner's
    /// confirmation round). Fails when this node does not lead or the
    /// endpoint is not placed.
    pub fn request_check(&self, endpoint_id: u64) -> Result<CheckNowTicket, MeshError> {
        self.send_check_now(endpoint_id, self.next_request_id())
    }
}

/// Puts a ticket and the results that answered it together, region by region.
fn report(
    endpoint_id: u64,
    ticket: CheckNowTicket,
    mut answered: BTreeMap<(String, u64), AcceptedResult>,
) -> CheckReport {
    let mut regions: BTreeMap<String, Vec<ProbeOutcome>> = BTreeMap::new();
    for (region, probe_id) in ticket.sent {
        let outcome = match answered.remove(&(region.clone(), probe_id)) {
            Some(result) => ProbeOutcome::Answered(Box::new(result)),
            None => ProbeOutcome::TimedOut { probe_id },
        };
        regions.entry(region).or_default().push(outcome);
    }
    for (region, probe_id) in ticket.unreachable {
        regions.entry(region).or_default().push(ProbeOutcome::Unreachable { probe_id });
    }
    for region in ticket.uncovered {
        regions.entry(region).or_default().push(ProbeOutcome::Uncovered);
    }
    CheckReport { endpoint_id, request_id: ticket.request_id, regions }
}

/// Checks waiting for results, by request id.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    by_request: Mutex<HashMap<String, mpsc::Sender<AcceptedResult>>>,
}

impl Waiters {
    /// Registers a waiter for results carrying `request_id`.
    fn register(self: &Arc<Self>, request_id: String) -> Result<ResultWaiter, MeshError> {
        let (sender, receiver) = mpsc::channel(WAITER_CAPACITY);
        let mut by_request = self.lock();
        if by_request.len() >= MAX_WAITERS {
            return Err(MeshError::TooManyChecks { max: MAX_WAITERS });
        }
        by_request.insert(request_id.clone(), sender);
        Ok(ResultWaiter { request_id, receiver, waiters: self.clone() })
    }

    /// Hands a copy of each result with a registered request id to its
    /// waiter. Never blocks: a full waiter misses the result.
    fn deliver(&self, results: &[AcceptedResult]) {
        if results.iter().all(|r| r.observation.request_id.is_none()) {
            return;
        }
        let by_request = self.lock();
        for result in results {
            let Some(sender) = result.observation.request_id.as_ref().and_then(|id| by_request.get(id))
            else {
                continue;
            };
            if sender.try_send(result.clone()).is_err() {
                tracing::debug!(request_id = ?result.observation.request_id, "check-now result dropped: its waiter is full");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<AcceptedResult>>> {
        // A map insert or remove cannot be left half done: recover.
        self.by_request.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many checks wait now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Results for one request id; unregistered when dropped.
#[derive(Debug)]
pub(super) struct ResultWaiter {
    request_id: String,
    receiver: mpsc::Receiver<AcceptedResult>,
    waiters: Arc<Waiters>,
}

impl ResultWaiter {
    async fn next(&mut self) -> Option<AcceptedResult> {
        self.receiver.recv().await
    }
}

impl Drop for ResultWaiter {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.request_id);
    }
}

/// The waiters subscribe to the mesh's fan-out ahead of the consumers.
impl ResultSink for Waiters {
    fn accept(&self, batch: &[AcceptedResult]) {
        self.deliver(batch);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn result(probe_id: u64, request_id: Option<&str>) -> AcceptedResult {
        AcceptedResult {
            probe_id,
            region: "eu".into(),
            observation: vantage_core::observation::Observation {
                seq: probe_id,
                endpoint_id: 1,
                round: 0,
                probe_unhealthy: false,
                planned_start: SystemTime::UNIX_EPOCH,
                lag: Duration::ZERO,
                out_of_slot: request_id.is_some(),
                request_id: request_id.map(str::to_string),
                result: None,
            },
            received_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn waiters_get_only_their_results_and_unregister_when_dropped() {
        let waiters = Arc::new(Waiters::default());
        let mut a = waiters.register("chk-a".into()).unwrap();
        let b = waiters.register("chk-b".into()).unwrap();
        waiters.deliver(&[result(1, Some("chk-a")), result(2, None), result(3, Some("chk-x"))]);
        assert_eq!(a.next().await.map(|r| r.probe_id), Some(1));
        assert!(a.receiver.try_recv().is_err(), "only results carrying its request id");
        assert_eq!(waiters.len(), 2);
        drop(b);
        assert_eq!(waiters.len(), 1);
        drop(a);
        assert_eq!(waiters.len(), 0, "a dropped waiter leaves nothing behind");
    }

    #[tokio::test]
    async fn the_registry_is_bounded_and_a_full_waiter_does_not_block() {
        let waiters = Arc::new(Waiters::default());
        let held: Vec<_> = (0..MAX_WAITERS).map(|i| waiters.register(format!("chk-{i}")).unwrap()).collect();
        assert_eq!(
            waiters.register("one-too-many".into()).unwrap_err(),
            MeshError::TooManyChecks { max: MAX_WAITERS }
        );
        drop(held);
        let mut waiter = waiters.register("chk-full".into()).unwrap();
        let flood: Vec<_> = (0..WAITER_CAPACITY as u64 + 10).map(|i| result(i, Some("chk-full"))).collect();
        waiters.deliver(&flood);
        let mut got = 0;
        while waiter.receiver.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, WAITER_CAPACITY, "the overflow was dropped, not queued");
    }

    #[test]
    fn a_report_has_every_region_with_what_happened_there() {
        let ticket = CheckNowTicket {
            request_id: "chk-1".into(),
            sent: vec![("eu".into(), 1), ("us".into(), 2)],
            unreachable: vec![("ap".into(), 3)],
            uncovered: vec!["sa".into()],
        };
        let answered = BTreeMap::from([(("eu".to_string(), 1), result(1, Some("chk-1")))]);
        let report = report(7, ticket, answered);
        assert_eq!(report.regions.len(), 4);
        assert!(matches!(report.regions["eu"][..], [ProbeOutcome::Answered(_)]));
        assert_eq!(report.regions["us"], [ProbeOutcome::TimedOut { probe_id: 2 }]);
        assert_eq!(report.regions["ap"], [ProbeOutcome::Unreachable { probe_id: 3 }]);
        assert_eq!(report.regions["sa"], [ProbeOutcome::Uncovered]);
    }
}
