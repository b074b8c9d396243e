//! The mesh: probes' streams on the leader, their assignments, and the
//! results they send.
//!
//! [`Mesh`] is the leader's view of the live probes and the assignment it
//! computed for them; [`ProbeApi`] serves `ProbeService.Connect` over it.
//! Both see the coordinator node through [`MeshNode`] (read the replicated
//! state, am I the leader, who is), so they are tested without Raft.
//!
//! - A stream authenticates with `authorization: Bearer <token>`; the
//!   token's hash names the probe registration, whose name and region Hello
//!   must repeat. Every heartbeat interval the stream re-checks the
//!   registration, so a revoked token ends it within one interval.
//! - Only the leader holds streams; a follower answers `Redirect` and
//!   closes.
//! - The leader recomputes the assignment ([`shard::assign`]) from the
//!   replicated configuration (pins included) and the live set (connected,
//!   or disconnected for less than `probe_grace`), debounced, whenever one
//!   of them changes. Each stream pushes its probe a full set on connect,
//!   then deltas against what it last sent.
//! - Results are validated ([`results::validate`]), de-duplicated by
//!   (probe, seq) against the replicated ingest ledger and this leader's
//!   memory, and handed to a [`ResultSink`] (the runtime's
//!   [`crate::results::FanOut`]); they are acknowledged once a
//!   checkpoint recording their numbers has committed (`ingest`), so an
//!   acknowledged result is never lost and a resent one never counted
//!   twice, across leader changes too.
//!
//! Modules: `session` (the service and one task per stream), `ingest`
//! (checkpoints of processed sequence numbers, delayed acknowledgements), [`results`]
//! (validation, de-duplication), [`placement`] (assignment inputs
//! from the state), `check` (check-now and waiting for its results by
//! request id: [`Mesh::check_endpoint`]), `rebalance` (ending grace periods
//! and recomputing at once: [`Mesh::rebalance`]), `error` ([`MeshError`]
//! and its one `Status` mapping), `node` ([`MeshNode`] for
//! [`crate::node::ClusterNode`]).

mod check;
mod error;
mod ingest;
mod node;
pub mod placement;
mod rebalance;
pub mod results;
mod session;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vantage_core::clock::WallClock;
use vantage_core::shard;
use vantage_proto::pb;

use crate::state::{MeshState, Outcome, Request};

pub use self::check::{CheckReport, ProbeOutcome, MAX_WAITERS, WAITER_CAPACITY};
pub use self::error::MeshError;
pub use self::rebalance::{RebalanceReport, ShardMove};
pub use self::results::RejectReason;
pub use self::session::ProbeApi;
use crate::results::{FanOut, ResultSink};

/// What the mesh needs from the coordinator node it runs on.
pub trait MeshNode: Send + Sync + 'static {
    /// Runs `f` on this node's applied state.
    fn read_state(&self, f: &mut dyn FnMut(&MeshState));

    /// The index of the last applied log entry: when it moves, the
    /// configuration may have changed.
    fn applied_index(&self) -> u64;

    /// Whether this node leads, and if not, who does.
    fn leadership(&self) -> Leadership;

    /// Every coordinator's API address, for probes to reconnect to after
    /// a failover.
    fn coordinators(&self) -> Vec<String>;

    /// The term this node leads in, once it has applied everything
    /// committed before that term (so the ingest ledger it reads is
    /// complete); `None` when it does not lead or has not caught up.
    fn leading_term(&self) -> Option<u64>;

    /// Commits `request` if this node leads, never forwarding it; resolves
    /// once applied here. `Ok(None)` when this node does not lead; `Err`
    /// with a reason when the cluster could not commit it or refused it.
    fn commit_if_leader(&self, request: Request) -> Commit<'_>;
}

/// What [`MeshNode::commit_if_leader`] returns.
pub type Commit<'a> = Pin<Box<dyn Future<Output = Result<Option<Outcome>, String>> + Send + 'a>>;

/// The queue of messages to one probe's stream.
type Outbound = mpsc::Sender<Result<pb::CoordinatorMessage, tonic::Status>>;

/// Whether a node leads the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This node leads: it holds probe streams.
    Leader,
    /// Another node leads, or none is known.
    Follower {
        /// The leader's id, when known.
        leader_id: Option<u64>,
        /// The leader's API address, when known.
        leader_api_addr: Option<String>,
    },
}

/// Reads the state through `node` and returns what `f` computes.
pub fn read<R>(node: &dyn MeshNode, f: impl FnOnce(&MeshState) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    node.read_state(&mut |state| {
        if let Some(f) = f.take() {
            out = Some(f(state));
        }
    });
    out.expect("MeshNode::read_state must call its closure exactly once")
}

/// Tunables of the mesh.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// How long a disconnected probe keeps its endpoints.
    pub probe_grace: Duration,
    /// How often probes send heartbeats (told in Welcome), and how often a
    /// stream re-checks its probe's token and this node's leadership.
    pub heartbeat_interval: Duration,
    /// A stream silent for this many heartbeat intervals is closed.
    pub missed_heartbeats: u32,
    /// How long a new stream may take to send Hello.
    pub hello_timeout: Duration,
    /// How long to wait after a change before recomputing assignments, so
    /// a burst of changes costs one recomputation.
    pub debounce: Duration,
    /// How often the leader looks for changes (grace expiries, applied
    /// configuration).
    pub poll_interval: Duration,
    /// The most results in one batch (told in Welcome).
    pub max_batch_results: usize,
    /// How long a probe may hold results before sending (told in Welcome).
    pub max_batch_delay: Duration,
    /// The largest message accepted from or sent to a probe.
    pub max_message_bytes: usize,
    /// How long a send to a probe may wait for room in its stream.
    pub send_timeout: Duration,
    /// Limits on result timestamps and timings.
    pub timing: results::TimingLimits,
    /// How many sequence numbers below the highest are remembered per
    /// probe for de-duplication.
    pub dedup_window: u64,
    /// Assignments with more endpoints than this are computed on a
    /// blocking thread.
    pub blocking_threshold: usize,
    /// How often the sequence numbers of processed results are committed
    /// (and the results acknowledged to their probes).
    pub checkpoint_interval: Duration,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            probe_grace: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            hello_timeout: Duration::from_secs(10),
            debounce: Duration::from_millis(200),
            poll_interval: Duration::from_millis(250),
            max_batch_results: 500,
            max_batch_delay: Duration::from_millis(100),
            max_message_bytes: 4 << 20,
            send_timeout: Duration::from_secs(10),
            timing: results::TimingLimits::default(),
            dedup_window: 1 << 16,
            blocking_threshold: 2_000,
            checkpoint_interval: Duration::from_millis(250),
        }
    }
}

/// An assignment the leader computed, with the endpoint specs it was
/// computed from.
#[derive(Debug, Default)]
pub struct Published {
    /// Increases with every change; 0 before the first computation.
    pub version: u64,
    /// The leadership term it was computed in (0: never computed). Probe
    /// streams of a new leader wait for an assignment of its own term, so
    /// they never get the empty or stale one from before.
    pub term: u64,
    /// Who checks what.
    pub assignment: shard::Assignment,
    /// The placed endpoints as pushed to probes.
    pub endpoints: BTreeMap<u64, pb::AssignedEndpoint>,
    /// Regions with no live, eligible probe.
    pub uncovered_regions: BTreeSet<String>,
}

/// One probe as the leader sees it, for `vantagectl probe list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeView {
    /// The registration id.
    pub id: u64,
    /// The registered name.
    pub name: String,
    /// The registered region.
    pub region: String,
    /// The software version from Hello.
    pub version: String,
    /// A stream is open now.
    pub connected: bool,
    /// Connected, or disconnected for less than `probe_grace`.
    pub live: bool,
    /// When the current (or last) stream opened.
    pub connected_since: SystemTime,
    /// When the probe last sent anything.
    pub last_seen: SystemTime,
    /// Endpoints assigned to it in the current assignment.
    pub endpoints: usize,
    /// The last assignment version it acknowledged.
    pub acked_version: u64,
    /// Its last reported statistics.
    pub stats: Option<pb::ProbeStats>,
    /// Its canaries fail.
    pub unhealthy: bool,
}

/// An out-of-slot check request sent by [`Mesh::check_now`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckNowTicket {
    /// Results answering it carry this id.
    pub request_id: String,
    /// (region, probe id) asked to check.
    pub sent: Vec<(String, u64)>,
    /// (region, probe id) assigned but not reachable now (disconnected
    /// within grace, or its queue full).
    pub unreachable: Vec<(String, u64)>,
    /// Regions with no probe for the endpoint.
    pub uncovered: Vec<String>,
}

/// Counters of what the mesh did, also exported as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshCounters {
    /// Results stored.
    pub accepted: u64,
    /// Results received again (same probe and seq) and not stored twice.
    pub duplicates: u64,
    /// Results refused, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Whole batches refused (oversized).
    pub batches_rejected: u64,
    /// Assignments computed and published.
    pub assignments: u64,
    /// Ingest checkpoints committed.
    pub checkpoints: u64,
}

/// The leader's probe sessions and assignments. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    shared: Arc<Shared>,
}

impl Mesh {
    /// Starts the mesh: its assignment task runs until `shutdown`, and
    /// [`Mesh::stopped`] waits for it and every stream's task.
    pub fn start(
        node: Arc<dyn MeshNode>,
        clock: Arc<dyn WallClock>,
        sink: Arc<dyn ResultSink>,
        options: MeshOptions,
        shutdown: CancellationToken,
    ) -> Mesh {
        let (published, _) = watch::channel(Arc::new(Published::default()));
        let first_version = vantage_core::time::UnixMillis::from(clock.now()).0.max(1);
        // Results answering a CheckNow are shown to whoever waits for them
        // (`check_endpoint`) before they go on to the consumers.
        let waiters = Arc::new(check::Waiters::default());
        let sink =
            Arc::new(FanOut::new().subscribe("check_now", waiters.clone()).subscribe("consumers", sink));
        let shared = Arc::new(Shared {
            node,
            clock,
            sink,
            waiters,
            options,
            inner: Mutex::new(Inner::default()),
            published,
            changed: Notify::new(),
            shutdown,
            tasks: TaskTracker::new(),
            counters: Counters::default(),
            next_version: AtomicU64::new(first_version),
            next_stream: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
        });
        let mesh = Mesh { shared };
        let runner = mesh.clone();
        mesh.shared.tasks.spawn(async move { runner.assignment_loop().await });
        let checkpointer = mesh.clone();
        mesh.shared.tasks.spawn(async move { checkpointer.checkpoint_loop().await });
        mesh
    }

    /// The tonic service for `ProbeService`, with the message size limits.
    pub fn service(&self) -> pb::probe_service_server::ProbeServiceServer<ProbeApi> {
        ProbeApi::new(self.clone()).into_service()
    }

    /// Waits until the assignment task and every stream task have ended
    /// (after the shutdown token was cancelled).
    pub async fn stopped(&self) {
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    /// The current assignment.
    pub fn assignment(&self) -> Arc<Published> {
        self.shared.published.borrow().clone()
    }

    /// Every registered probe with what the leader knows of its stream.
    pub fn probes(&self) -> Vec<ProbeView> {
        let registrations: Vec<_> = read(&*self.shared.node, |s| s.probes().values().cloned().collect());
        let published = self.assignment();
        let now = Instant::now();
        let inner = self.shared.lock();
        registrations
            .into_iter()
            .map(|p| {
                let session = inner.sessions.get(&p.id.0);
                ProbeView {
                    id: p.id.0,
                    name: p.name,
                    region: p.region,
                    version: session.map(|s| s.version.clone()).unwrap_or_default(),
                    connected: session.is_some_and(|s| s.connected.is_some()),
                    live: session.is_some_and(|s| s.is_live(now, self.shared.options.probe_grace)),
                    connected_since: session.map_or(SystemTime::UNIX_EPOCH, |s| s.connected_since),
                    last_seen: session.map_or(SystemTime::UNIX_EPOCH, |s| s.last_seen),
                    endpoints: published.assignment.by_probe(p.id.0).len(),
                    acked_version: session.map_or(0, |s| s.acked_version),
                    stats: session.and_then(|s| s.stats),
                    unhealthy: session.is_some_and(|s| s.unhealthy),
                }
            })
            .collect()
    }

    /// Asks every probe assigned to `endpoint_id`, in every region, to
    /// check it now; their results carry the returned ticket's id.
    pub fn check_now(&self, endpoint_id: u64) -> Result<CheckNowTicket, MeshError> {
        self.send_check_now(endpoint_id, self.next_request_id())
    }

    /// Whether this node leads, and if not, who does.
    pub fn leadership(&self) -> Leadership {
        self.shared.node.leadership()
    }

    /// A request id no other CheckNow of this leader carries.
    fn next_request_id(&self) -> String {
        let version = self.assignment().version;
        format!("chk-{version}-{}", self.shared.next_request.fetch_add(1, Ordering::Relaxed))
    }

    fn send_check_now(&self, endpoint_id: u64, request_id: String) -> Result<CheckNowTicket, MeshError> {
        if !matches!(self.shared.node.leadership(), Leadership::Leader) {
            return Err(MeshError::NotLeader);
        }
        let published = self.assignment();
        let regions =
            published.assignment.endpoint(endpoint_id).ok_or(MeshError::NotPlaced { endpoint_id })?;
        let mut ticket = CheckNowTicket {
            request_id: request_id.clone(),
            sent: Vec::new(),
            unreachable: Vec::new(),
            uncovered: Vec::new(),
        };
        let inner = self.shared.lock();
        for (region, probes) in regions {
            if probes.is_empty() {
                ticket.uncovered.push(region.clone());
            }
            for &probe_id in probes {
                let command =
                    SessionCommand::CheckNow(pb::CheckNow { endpoint_id, request_id: request_id.clone() });
                let delivered = inner
                    .sessions
                    .get(&probe_id)
                    .and_then(|s| s.connected.as_ref())
                    .is_some_and(|c| c.commands.try_send(command).is_ok());
                let entry = (region.clone(), probe_id);
                if delivered {
                    ticket.sent.push(entry);
                } else {
                    ticket.unreachable.push(entry);
                }
            }
        }
        tracing::info!(endpoint_id, request_id = %ticket.request_id, sent = ticket.sent.len(), "check now");
        Ok(ticket)
    }

    /// What the mesh counted so far.
    pub fn counters(&self) -> MeshCounters {
        let c = &self.shared.counters;
        MeshCounters {
            accepted: c.accepted.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            rejected: RejectReason::ALL
                .iter()
                .map(|r| (r.as_str(), c.rejected[r.index()].load(Ordering::Relaxed)))
                .collect(),
            batches_rejected: c.batches_rejected.load(Ordering::Relaxed),
            assignments: c.assignments.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Recomputes the assignment whenever its inputs change, debounced.
    async fn assignment_loop(&self) {
        let shared = &self.shared;
        let mut last: Option<placement::Inputs> = None;
        let mut last_index = None;
        let mut last_live = None;
        let mut was_leader = false;
        loop {
            tokio::select! {
                () = shared.shutdown.cancelled() => break,
                () = tokio::time::sleep(shared.options.poll_interval) => {}
                () = shared.changed.notified() => {}
            }
            // Leading, with everything committed before the term applied.
            let Some(term) = shared.node.leading_term() else {
                (last, last_index, was_leader) = (None, None, false);
                continue;
            };
            let first_of_term = !was_leader;
            if first_of_term {
                was_leader = true;
                self.assume_registered_probes_live();
            }
            let index = shared.node.applied_index();
            let live = shared.lock().live_set(Instant::now(), shared.options.probe_grace);
            if last.is_some() && last_index == Some(index) && last_live.as_ref() == Some(&live) {
                continue;
            }
            // Let a burst of changes settle, then read them all at once;
            // but a new leader's probes are waiting for their assignment.
            if !first_of_term {
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(shared.options.debounce) => {}
                }
            }
            let index = shared.node.applied_index();
            let live = shared.lock().live_set(Instant::now(), shared.options.probe_grace);
            let inputs = read(&*shared.node, |state| placement::inputs(state, |id| live.contains(&id)));
            (last_index, last_live) = (Some(index), Some(live));
            if last.as_ref() == Some(&inputs) {
                continue;
            }
            let assignment = if inputs.placements.len() > shared.options.blocking_threshold {
                let owned = inputs.clone();
                match tokio::task::spawn_blocking(move || placement::assign(&owned)).await {
                    Ok(assignment) => assignment,
                    Err(error) => {
                        tracing::error!(%error, "assignment computation failed");
                        continue;
                    }
                }
            } else {
                placement::assign(&inputs)
            };
            self.publish(&inputs, assignment, term);
            last = Some(inputs);
        }
    }

    /// On becoming leader, treats every registered probe as disconnected
    /// just now: it keeps its endpoints for `probe_grace` while it
    /// reconnects, so a new leader rebuilds the old assignment instead of
    /// handing each region to whichever probe reconnects first.
    fn assume_registered_probes_live(&self) {
        let registered: Vec<(u64, String)> =
            read(&*self.shared.node, |s| s.probes().values().map(|p| (p.id.0, p.name.clone())).collect());
        let (now, wall) = (Instant::now(), self.shared.clock.now());
        let mut inner = self.shared.lock();
        for (id, name) in registered {
            let session = inner.sessions.entry(id).or_insert_with(|| Session::new(name, wall));
            if session.connected.is_none() {
                session.disconnected_at = Some(now);
            }
        }
        tracing::info!(
            probes = inner.sessions.len(),
            "leading: registered probes keep their endpoints for probe_grace"
        );
    }

    fn publish(&self, inputs: &placement::Inputs, assignment: shard::Assignment, term: u64) {
        let shared = &self.shared;
        let current = shared.published.borrow().clone();
        if current.version != 0 && current.assignment == assignment && current.endpoints == inputs.endpoints {
            if current.term != term {
                // The same assignment, now of this term: no version change.
                let same = Published {
                    version: current.version,
                    term,
                    assignment,
                    endpoints: inputs.endpoints.clone(),
                    uncovered_regions: current.uncovered_regions.clone(),
                };
                shared.published.send_replace(Arc::new(same));
            }
            return;
        }
        let covered: BTreeSet<&str> =
            inputs.candidates.iter().filter(|c| c.is_eligible()).map(|c| c.region.as_str()).collect();
        let uncovered_regions: BTreeSet<String> =
            inputs.regions.iter().filter(|r| !covered.contains(r.as_str())).cloned().collect();
        let version = shared.next_version.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            version,
            endpoints = inputs.placements.len(),
            probes = assignment.probes().len(),
            uncovered_endpoints = assignment.uncovered().len(),
            uncovered_regions = ?uncovered_regions,
            moved_probes = shard::diff(&current.assignment, &assignment).len(),
            "assignment published"
        );
        shared.counters.assignments.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("vantage_mesh_assignments_total").increment(1);
        shared.published.send_replace(Arc::new(Published {
            version,
            term,
            assignment,
            endpoints: inputs.endpoints.clone(),
            uncovered_regions,
        }));
    }
}

/// Shared by the mesh handle, the assignment task and the stream tasks.
struct Shared {
    node: Arc<dyn MeshNode>,
    clock: Arc<dyn WallClock>,
    sink: Arc<dyn ResultSink>,
    waiters: Arc<check::Waiters>,
    options: MeshOptions,
    inner: Mutex<Inner>,
    published: watch::Sender<Arc<Published>>,
    /// Wakes the assignment task (a probe joined or left).
    changed: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    counters: Counters,
    next_version: AtomicU64,
    next_stream: AtomicU64,
    next_request: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock can leave it half changed: recover.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    batches_rejected: AtomicU64,
    assignments: AtomicU64,
    checkpoints: AtomicU64,
}

#[derive(Default)]
struct Inner {
    sessions: BTreeMap<u64, Session>,
    dedup: HashMap<u64, results::SeqWindow>,
    /// Processed since the last checkpoint, in `pending.term`.
    pending: ingest::Pending,
}

impl Inner {
    /// Probes connected, or disconnected for less than `grace`.
    fn live_set(&self, now: Instant, grace: Duration) -> BTreeSet<u64> {
        self.sessions.iter().filter(|(_, s)| s.is_live(now, grace)).map(|(&id, _)| id).collect()
    }

    /// Forgets what this leader processed but did not record: its
    /// de-duplication memory and pending numbers, now from `term`.
    fn forget_processed(&mut self, term: u64) {
        let dropped: usize = self.pending.probes.values().map(|p| p.acks.len()).sum();
        if dropped > 0 || !self.dedup.is_empty() {
            tracing::info!(
                acknowledgements = dropped,
                "leadership changed: unrecorded results are left to the probes to resend"
            );
        }
        self.dedup.clear();
        self.pending = ingest::Pending { term, probes: BTreeMap::new() };
    }
}

/// What the leader remembers of one probe's stream (kept after it closes,
/// for the grace period and for `probe list`).
struct Session {
    name: String,
    version: String,
    connected_since: SystemTime,
    last_seen: SystemTime,
    connected: Option<Connected>,
    disconnected_at: Option<Instant>,
    acked_version: u64,
    stats: Option<pb::ProbeStats>,
    unhealthy: bool,
    /// The endpoints last pushed to it and their version: a probe that
    /// reconnects still running that version gets a delta, and its resent
    /// results for them are still accepted.
    last_sent: Arc<BTreeMap<u64, pb::AssignedEndpoint>>,
    last_sent_version: u64,
}

impl Session {
    /// A session never connected to this leader.
    fn new(name: String, now: SystemTime) -> Session {
        Session {
            name,
            version: String::new(),
            connected_since: now,
            last_seen: now,
            connected: None,
            disconnected_at: None,
            acked_version: 0,
            stats: None,
            unhealthy: false,
            last_sent: Arc::default(),
            last_sent_version: 0,
        }
    }

    fn is_live(&self, now: Instant, grace: Duration) -> bool {
        self.connected.is_some() || self.disconnected_at.is_some_and(|at| now.duration_since(at) < grace)
    }
}

/// The open stream of a session.
struct Connected {
    stream_id: u64,
    commands: mpsc::Sender<SessionCommand>,
    close: CancellationToken,
}

/// Sent to a stream's task from outside it.
enum SessionCommand {
    CheckNow(pb::CheckNow),
}
