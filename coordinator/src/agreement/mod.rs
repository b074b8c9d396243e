//! The agreement runner: on the leader, turns the probes' latest results
//! into each endpoint's state with [`vantage_core::agreement`] and commits
//! every transition through Raft (`Command::RecordTransition`), which also
//! queues its alerts.
//!
//! - [`Latest`] subscribes to the results fan-out and keeps each probe's
//!   latest result per endpoint. A failed result from one region asks the
//!   endpoint's other probes for an immediate out-of-slot check (the mesh's
//!   check-now), at most once per endpoint per interval, so an outage is
//!   confirmed in about one round trip plus one check.
//! - [`Runner`] evaluates each endpoint once per round (after its slot,
//!   when the round's results can have arrived) and at once when a fresh
//!   failure could complete a quorum; each evaluation is one
//!   [`Tracker::step`].
//! - A new leader rebuilds verdicts from fresh results before it decides:
//!   for one interval after it starts leading, an endpoint's recorded state
//!   (an open incident) is neither resolved nor opened again. Trackers
//!   resume from the recorded state.
//!
//! Architecture invariant: only the leader decides, and a decision exists
//! only once committed; raw results never enter the log.

mod evaluate;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vantage_core::agreement::{self, Context, Step, Tracker};
use vantage_core::clock::WallClock;
use vantage_core::result::CheckResult;
use vantage_core::time::UnixMillis;

use crate::mesh::{read, Mesh, MeshNode};
use crate::results::{AcceptedResult, ResultSink};
use crate::state::{Command, EndpointId, IdempotencyKey, Outcome, Request, TransitionRecord};

pub use self::evaluate::{endpoint_regions, region_evidence};

/// Tunables of the runner.
#[derive(Debug, Clone, Copy)]
pub struct AgreementOptions {
    /// How often the runner looks for rounds that are due.
    pub tick: Duration,
    /// Added to two intervals to decide whether a result is fresh.
    pub freshness_grace: Duration,
    /// After a slot starts, how long beyond the check's timeout the round
    /// waits for results before it is evaluated.
    pub round_grace: Duration,
}

impl Default for AgreementOptions {
    fn default() -> Self {
        AgreementOptions {
            tick: Duration::from_millis(200),
            freshness_grace: Duration::from_secs(5),
            round_grace: Duration::from_secs(1),
        }
    }
}

/// One probe's latest result for one endpoint.
#[derive(Debug, Clone)]
pub struct Held {
    /// The probe's region.
    pub region: String,
    /// Its canaries failed when it ran the check.
    pub probe_unhealthy: bool,
    /// The check's result.
    pub result: CheckResult,
}

/// The latest results, by endpoint then probe; a results subscriber.
#[derive(Debug, Default)]
pub struct Latest {
    inner: Mutex<LatestInner>,
    /// Woken when a fresh failure arrives (a quorum may be complete).
    failure: Notify,
}

#[derive(Debug, Default)]
struct LatestInner {
    by_endpoint: HashMap<u64, BTreeMap<u64, Held>>,
    /// Endpoints with a failure since the runner last looked.
    failed: Vec<u64>,
}

impl Latest {
    /// An empty store.
    pub fn new() -> Latest {
        Latest::default()
    }

    /// The latest result of each probe for `endpoint_id`, by probe id.
    pub fn of(&self, endpoint_id: u64) -> BTreeMap<u64, Held> {
        self.lock().by_endpoint.get(&endpoint_id).cloned().unwrap_or_default()
    }

    /// Forgets everything (a new term: results of a former leader's view
    /// are not this node's).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.by_endpoint.clear();
        inner.failed.clear();
    }

    fn take_failed(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().failed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LatestInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResultSink for Latest {
    fn accept(&self, batch: &[AcceptedResult]) {
        let mut failure = false;
        {
            let mut inner = self.lock();
            for accepted in batch {
                let observation = &accepted.observation;
                // A skipped slot says nothing new: the check is still running.
                let Some(result) = &observation.result else { continue };
                let probes = inner.by_endpoint.entry(observation.endpoint_id).or_default();
                let newer = probes
                    .get(&accepted.probe_id)
                    .is_none_or(|held| held.result.started_at <= result.started_at);
                if !newer {
                    continue;
                }
                probes.insert(
                    accepted.probe_id,
                    Held {
                        region: accepted.region.clone(),
                        probe_unhealthy: observation.probe_unhealthy,
                        result: result.clone(),
                    },
                );
                if !result.ok && !observation.probe_unhealthy {
                    inner.failed.push(observation.endpoint_id);
                    failure = true;
                }
            }
        }
        if failure {
            self.failure.notify_one();
        }
    }
}

/// The leader's agreement loop.
pub struct Runner {
    node: Arc<dyn MeshNode>,
    mesh: Mesh,
    clock: Arc<dyn WallClock>,
    latest: Arc<Latest>,
    options: AgreementOptions,
    /// Per endpoint while this node leads.
    endpoints: HashMap<u64, EndpointRun>,
    /// The term the trackers belong to, and when it started here.
    term: Option<(u64, SystemTime)>,
}

/// One endpoint's agreement on this leader.
#[derive(Debug)]
struct EndpointRun {
    tracker: Tracker,
    /// The last round evaluated.
    round: Option<u64>,
    /// When confirmation was last asked for.
    confirmed_at: Option<SystemTime>,
}

impl Runner {
    /// A runner over `node` and `mesh`, fed by `latest`.
    pub fn new(
        node: Arc<dyn MeshNode>,
        mesh: Mesh,
        clock: Arc<dyn WallClock>,
        latest: Arc<Latest>,
        options: AgreementOptions,
    ) -> Runner {
        Runner { node, mesh, clock, latest, options, endpoints: HashMap::new(), term: None }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                () = self.latest.failure.notified() => {}
            }
            self.pass().await;
        }
    }

    /// One pass over every endpoint: confirmation requests, due rounds,
    /// early decisions on fresh failures.
    pub async fn pass(&mut self) {
        let Some(term) = self.node.leading_term() else {
            if self.term.take().is_some() {
                self.endpoints.clear();
            }
            return;
        };
        let now = self.clock.now();
        if self.term.map(|(t, _)| t) != Some(term) {
            // A new term: start from the recorded states, with fresh results only.
            self.term = Some((term, now));
            self.endpoints.clear();
            self.latest.clear();
        }
        let leading_since = self.term.map_or(now, |(_, since)| since);
        let failed = self.latest.take_failed();
        let snapshot = read(&*self.node, evaluate::Snapshot::take);
        let published = self.mesh.assignment();
        let connected: std::collections::BTreeSet<u64> =
            self.mesh.probes().into_iter().filter(|p| p.connected).map(|p| p.id).collect();
        self.endpoints.retain(|id, _| snapshot.endpoints.contains_key(&EndpointId(*id)));

        for endpoint in snapshot.endpoints.values() {
            let id = endpoint.id.0;
            let interval = Duration::from_millis(endpoint.spec.interval_ms.max(1));
            let run = self.endpoints.entry(id).or_insert_with(|| EndpointRun {
                tracker: Tracker::resume(snapshot.recorded(endpoint.id)),
                round: None,
                confirmed_at: None,
            });
            if failed.contains(&id)
                && run.confirmed_at.is_none_or(|at| now.duration_since(at).unwrap_or_default() >= interval)
            {
                run.confirmed_at = Some(now);
                if let Err(error) = self.mesh.request_check(id) {
                    tracing::debug!(endpoint_id = id, %error, "no confirmation round");
                }
            }
            // The first interval of a term: gather fresh results, decide nothing.
            if now.duration_since(leading_since).unwrap_or_default() < interval {
                continue;
            }
            let round =
                evaluate::due_round(id, interval, endpoint.spec.timeout_ms, now, self.options.round_grace);
            let due = round.is_some_and(|r| run.round.is_none_or(|last| r > last));
            let regions = evaluate::endpoint_regions(&snapshot.state_regions, &endpoint.spec);
            let freshness = interval * 2 + self.options.freshness_grace;
            let evidence: Vec<_> = regions
                .iter()
                .map(|region| {
                    evaluate::region_evidence(
                        region,
                        published.assignment.probes_for(id, region),
                        &connected,
                        &self.latest.of(id),
                        now,
                        freshness,
                    )
                })
                .collect();
            let rules = endpoint.spec.rules(regions.len());
            let early = failed.contains(&id)
                && agreement::classify(&evidence, rules.quorum).0 == agreement::State::Down
                && run.tracker.state() != agreement::State::Down;
            let context = Context {
                paused: endpoint.spec.paused,
                maintenance: snapshot.in_maintenance(endpoint, UnixMillis::from(now)),
            };
            let state_change = context.paused != (run.tracker.state() == agreement::State::Paused);
            if !(due || early || state_change) {
                continue;
            }
            if let Some(r) = round {
                run.round = Some(run.round.map_or(r, |last| last.max(r)));
            }
            let from = run.tracker.state();
            let step = run.tracker.step(now, &evidence, &rules, context);
            if let Some(transition) = &step.transition {
                let committed = commit(&*self.node, endpoint.id, transition, &step, evidence.clone()).await;
                if !committed {
                    // Not leading any more, or the record moved: start again
                    // from what is recorded.
                    run.tracker = Tracker::resume(from);
                    self.endpoints.remove(&id);
                }
            }
        }
    }
}

/// Commits one transition; true when it is recorded.
async fn commit(
    node: &dyn MeshNode,
    endpoint: EndpointId,
    transition: &agreement::Transition,
    step: &Step,
    evidence: Vec<agreement::RegionEvidence>,
) -> bool {
    let at = UnixMillis::from(transition.at);
    let record = TransitionRecord {
        endpoint,
        from: transition.from,
        to: transition.to,
        at,
        alert: transition.alert,
        evidence,
    };
    let key = IdempotencyKey(format!("agreement-{}-{}-{}", endpoint.0, at.0, transition.to.as_str()));
    let request = Request { idempotency_key: key, issued_at: at, command: Command::RecordTransition(record) };
    match node.commit_if_leader(request).await {
        Ok(Some(Outcome::TransitionRecorded { opened, resolved, deliveries })) => {
            tracing::info!(
                endpoint_id = endpoint.0,
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                down = step.counts.down,
                up = step.counts.up,
                unknown = step.counts.unknown,
                opened = ?opened.map(|i| i.0),
                resolved = ?resolved.iter().map(|i| i.0).collect::<Vec<_>>(),
                alerts = deliveries.len(),
                "endpoint state changed"
            );
            metrics::counter!("vantage_agreement_transitions_total", "to" => transition.to.as_str())
                .increment(1);
            true
        }
        Ok(Some(other)) => {
            tracing::warn!(endpoint_id = endpoint.0, outcome = ?other, "unexpected outcome of a transition");
            false
        }
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(endpoint_id = endpoint.0, %error, "transition not recorded");
            false
        }
    }
}

#[cfg(test)]
mod tests;
