//! The agent: one `ProbeService.Connect` session at a time to the leading
//! coordinator, the scheduler running the assignment it pushes, and the spool
//! keeping every result until the coordinator acknowledges it.
//!
//! Session states (one task owns all of them, so the spool and the
//! assignment need no locks):
//!
//! ```text
//!            ┌──────────── backoff (full jitter, 100 ms → 10 s) ◄──────────┐
//!            ▼                                                             │
//!   Connecting(next address) ──connect/stream error───────────────────────►┤
//!            │ TLS (CA pinned) + `authorization: Bearer` + Hello            │
//!            ▼                                                             │
//!   AwaitingWelcome ──Redirect{leader}──► Connecting(leader) (no backoff,   │
//!            │                            unless redirects keep coming)     │
//!            │ Welcome                                                      │
//!            ▼                                                             │
//!   Streaming: resend unacked (original timestamps), batches ≤ max          │
//!     results every ≤ 100 ms, heartbeats, Assignment → scheduler + ack,     │
//!     ResultAck → spool.ack, CheckNow → out-of-slot check ──stream ends────┘
//!            │ shutdown
//!            ▼
//!   Draining (bounded grace): send what is unsent, wait for acks, close.
//! ```
//!
//! While no session is up the scheduler keeps running the last assignment
//! and results go on into the spool; after [`Config::orphan_ttl`] without a
//! coordinator the assignment is dropped (an `error` log line says so) and
//! the next Hello asks for a full one.
//!
//! Self-health: canary URLs are checked every [`Config::canary_interval`];
//! while more than half of the last round failed, every result is marked
//! `probe_unhealthy` and heartbeats say `unhealthy`. With no canary URLs the
//! probe never marks itself.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message as _;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tracing::{debug, error, info, warn};
use vantage_core::clock::{SystemWallClock, WallClock};
use vantage_core::netguard::Policy;
use vantage_core::observation::Observation;
use vantage_core::result::CheckResult;
use vantage_core::spec::CheckSpec;
use vantage_core::time::unix_micros as unix_us;
use vantage_proto::pb;
use vantage_proto::pb::probe_service_client::ProbeServiceClient;

use super::assignment::scheduled_endpoint;
use super::config::{normalize_address, Config};
use super::scheduler::{self, Outcome, SchedulerConfig, SchedulerHandle, SlotRecord, Trigger};
use super::spool::{Spool, SpoolCodec, SpoolConfig, SpoolError};
use super::telemetry::{self, AgentGauges};
use crate::check::{Checker, CheckerConfig, CheckerError};

/// The most results in one batch (the protocol's limit).
pub const MAX_BATCH_RESULTS: usize = 500;

/// The longest a result waits before it is sent while a session is up.
pub const MAX_BATCH_DELAY: Duration = Duration::from_millis(100);

/// Timing knobs that are not in the config file: the defaults suit
/// production; tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The first reconnect delay's ceiling; the ceiling doubles per failed
    /// attempt and the delay is drawn uniformly below it (full jitter).
    pub backoff_first: Duration,
    /// The largest reconnect delay ceiling.
    pub backoff_max: Duration,
    /// How long one TCP/TLS connect may take.
    pub connect_timeout: Duration,
    /// How long the coordinator may take to answer Hello.
    pub welcome_timeout: Duration,
    /// How long shutdown may spend sending unsent results and waiting for
    /// their acknowledgement.
    pub shutdown_grace: Duration,
    /// Where wall-clock time comes from (result timestamps, slots).
    pub clock: Arc<dyn WallClock>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            backoff_first: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            welcome_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            clock: Arc::new(SystemWallClock),
        }
    }
}

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The token file could not be read.
    #[error("token_file {path:?}: {source}")]
    TokenRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token file is empty or not a valid header value.
    #[error("token_file {path:?}: expected one line holding the probe token (from `vantagectl probe token create`)")]
    TokenInvalid {
        /// The file.
        path: PathBuf,
    },
    /// The CA file could not be read.
    #[error("ca_file {path:?}: {source}")]
    CaRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The check engine could not be set up (resolvers).
    #[error("setting up the check engine: {0}")]
    Checker(#[from] CheckerError),
    /// The spool failed (disk error): results can no longer be kept, so the
    /// agent stops rather than lose them silently.
    #[error("result spool: {0}")]
    Spool(#[from] SpoolError),
    /// The scheduler refused its configuration.
    #[error("scheduler: {0}")]
    Scheduler(#[from] scheduler::SchedulerError),
    /// `metrics_addr` could not be bound.
    #[error("metrics_addr = {addr}: cannot listen: {source} (is another process using it?)")]
    MetricsListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` fires, then drains within
/// [`Tuning::shutdown_grace`]. Returns an error only for what it cannot
/// work around (unreadable token or CA, a spool disk error); connection
/// problems are retried forever.
pub async fn run(config: Config, tuning: Tuning, shutdown: CancellationToken) -> Result<(), AgentError> {
    let token = read_token(&config.token_file)?;
    let tls = match &config.ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|source| AgentError::CaRead { path: path.clone(), source })?;
            Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
        }
        None => None,
    };
    let checker_config = CheckerConfig {
        resolvers: config.resolvers.clone(),
        clock: tuning.clock.clone(),
        user_agent: agent_user_agent(&config.region, &config.probe_id),
        ..Default::default()
    };
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            super::metrics_server::bind(addr)
                .await
                .map_err(|source| AgentError::MetricsListen { addr, source })?,
        ),
        None => None,
    };
    let spool = open_spool(&config, tuning.clock.now())?;

    let tracker = TaskTracker::new();
    let stop_tasks = shutdown.child_token();
    if let Some(listener) = metrics_listener {
        info!(metrics_addr = ?config.metrics_addr, "serving /metrics");
        // Scrapes go on through the drain; the listener stops with the agent.
        tracker.spawn(super::metrics_server::serve(listener, shutdown.child_token()));
    }
    let (scheduler, records) = scheduler::spawn(
        SchedulerConfig { max_concurrency: config.max_concurrency },
        Checker::new(checker_config.clone())?,
        tuning.clock.clone(),
        &tracker,
        stop_tasks.clone(),
    )?;
    let healthy = Arc::new(AtomicBool::new(true));
    if !config.canary_urls.is_empty() {
        let canaries = Canaries {
            specs: canary_specs(&config.canary_urls),
            interval: config.canary_interval,
            checker: Checker::new(checker_config)?,
            healthy: healthy.clone(),
        };
        tracker.spawn(canaries.run(stop_tasks.clone()));
    }
    tracker.close();

    let mut agent = Agent {
        known: config.coordinator_urls(),
        seed: seed(&config.probe_id, tuning.clock.now()),
        config,
        tuning,
        token,
        tls,
        scheduler,
        records,
        spool,
        healthy,
        assignment_version: 0,
        disconnected_since: Some(Instant::now()),
        check_now_requests: HashMap::new(),
        next_address: 0,
        fatal: None,
        gauges: AgentGauges::default(),
    };
    agent.update_spool_gauges();
    let outcome = agent.run(&shutdown).await;
    stop_tasks.cancel();
    if tokio::time::timeout(agent.tuning.shutdown_grace, tracker.wait()).await.is_err() {
        warn!("checks still running at shutdown were abandoned");
    }
    // Records of checks that finished during the drain go to the spool (and
    // its disk), to be sent after the next start.
    while let Ok(record) = agent.records.try_recv() {
        agent.keep(record);
    }
    let closed = agent.spool.close();
    outcome?;
    closed?;
    Ok(())
}

/// Opens the spool so that sequence numbers never repeat: recovered
/// records keep their numbers and new ones continue after them; when nothing
/// waits (a fresh or fully acknowledged spool, or no directory) numbering
/// jumps to the wall clock in microseconds, so even a wiped spool directory
/// does not reuse numbers the coordinator has seen. (The spool skips records
/// numbered below `min_first_seq` on recovery, so the floor is applied only
/// when nothing waits.)
fn open_spool(config: &Config, now: SystemTime) -> Result<Spool<ProtoCodec>, SpoolError> {
    let open = |min_first_seq| {
        Spool::<ProtoCodec>::open(SpoolConfig {
            dir: config.spool_dir.clone(),
            min_first_seq,
            ..SpoolConfig::default()
        })
    };
    let spool = open(1)?;
    // The last number the previous run handed out (0: none): acknowledged,
    // or waiting among the recovered records.
    let stats = spool.stats();
    let previous_last_seq =
        spool.unacked().last().map_or(stats.done_through, |u| u.seq.max(stats.done_through));
    let spool = if stats.pending_records > 0 {
        spool
    } else {
        let floor = stats.next_seq.max(unix_us(now).max(1) as u64);
        spool.close()?;
        open(floor)?
    };
    // Always said: an operator (or a test) comparing sequence numbers with
    // the coordinators' ledger (`vantagectl probe list --json`) needs where
    // each run starts and where the previous one ended.
    info!(
        recovered = spool.recovery().records,
        previous_last_seq,
        next_seq = spool.stats().next_seq,
        "spool opened (recovered: unacknowledged results to resend)"
    );
    Ok(spool)
}

/// Reads the probe token: the file's first line, trimmed.
pub fn read_token(path: &std::path::Path) -> Result<MetadataValue<Ascii>, AgentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| AgentError::TokenRead { path: path.into(), source })?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(AgentError::TokenInvalid { path: path.into() });
    }
    let mut value = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| AgentError::TokenInvalid { path: path.into() })?;
    // Keeps it out of HTTP/2 header compression and debug output.
    value.set_sensitive(true);
    Ok(value)
}

/// Spool records: an encoded `pb::ProbeResult` whose `seq` is filled in
/// when it is sent (the spool frame carries the sequence number).
#[derive(Debug)]
pub struct ProtoCodec;

impl SpoolCodec for ProtoCodec {
    type Item = pb::ProbeResult;

    fn encode(item: &pb::ProbeResult, out: &mut Vec<u8>) -> Result<(), String> {
        item.encode(out).map_err(|e| e.to_string())
    }

    fn decode(bytes: &[u8]) -> Result<pb::ProbeResult, String> {
        pb::ProbeResult::decode(bytes).map_err(|e| e.to_string())
    }
}

/// The one task's state.
struct Agent {
    config: Config,
    tuning: Tuning,
    token: MetadataValue<Ascii>,
    tls: Option<ClientTlsConfig>,
    scheduler: SchedulerHandle<CheckSpec>,
    records: mpsc::UnboundedReceiver<SlotRecord<CheckResult>>,
    spool: Spool<ProtoCodec>,
    healthy: Arc<AtomicBool>,
    /// The assignment version the scheduler runs (0: none).
    assignment_version: u64,
    /// When the last session with a Welcome ended (or the agent started);
    /// `None` while one is up.
    disconnected_since: Option<Instant>,
    /// CheckNow request ids waiting for their endpoint's out-of-slot record.
    check_now_requests: HashMap<u64, Vec<String>>,
    /// Every coordinator address known (config, then Welcome), normalized.
    known: Vec<String>,
    next_address: usize,
    seed: u64,
    /// A spool error met while draining records; ends the agent.
    fatal: Option<SpoolError>,
    /// This agent's share of the process's gauges.
    gauges: AgentGauges,
}

/// How a session ended.
enum SessionEnd {
    /// Shutdown was asked for (the session drained and closed).
    Shutdown,
    /// The coordinator does not lead; `Some`: the leader's address.
    Redirect(Option<String>),
    /// Connecting failed or the stream broke; `welcomed`: it got as far as
    /// a Welcome (so the backoff starts over).
    Failed { welcomed: bool, reason: String },
}

/// What the current session negotiated.
struct Session {
    tx: mpsc::Sender<pb::ProbeMessage>,
    welcomed: bool,
    /// The last sequence number sent on this session.
    last_sent: u64,
    max_batch: usize,
    /// Sends unsent results at least this often (Welcome may shorten it).
    send_tick: tokio::time::Interval,
    /// Heartbeats (the interval Welcome names).
    heartbeat: tokio::time::Interval,
}

impl Agent {
    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), AgentError> {
        // The backoff grows once per round over every known coordinator,
        // not per attempt: after a failover the dead leader and followers
        // still naming it are passed over at once instead of pushing the
        // next try seconds away.
        let mut attempt: u32 = 0;
        let mut failures_in_round = 0usize;
        let mut redirect: Option<String> = None;
        let mut redirects_in_a_row = 0u32;
        let mut leaderless_in_a_row = 0u32;
        // After losing a session that worked, reconnect attempts stay quick
        // for a while: the likely cause is a leader failover, over within
        // an election or two.
        let mut quick_until: Option<Instant> = None;
        loop {
            let target = match redirect.take() {
                Some(leader) => leader,
                None => self.next_target(),
            };
            let end = self.session(&target, shutdown).await;
            if let Some(e) = self.fatal.take() {
                return Err(e.into());
            }
            match end {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Redirect(leader) => {
                    redirects_in_a_row += 1;
                    info!(from = %target, leader = leader.as_deref().unwrap_or("unknown"), "redirected to the leader");
                    let known_leader = leader.is_some();
                    redirect = leader.and_then(|l| self.learn(&l));
                    if redirect.is_some() && redirects_in_a_row <= 3 {
                        continue;
                    }
                    // No leader known: an election is under way and usually
                    // ends within a few hundred ms; ask again soon, without
                    // growing the backoff, for a bounded number of times.
                    if !known_leader && leaderless_in_a_row < LEADERLESS_RETRIES {
                        leaderless_in_a_row += 1;
                        let delay = self.backoff(0).max(self.tuning.backoff_first / 2);
                        if self.drive(tokio::time::sleep(delay), shutdown).await.is_none() {
                            return Ok(());
                        }
                        continue;
                    }
                }
                SessionEnd::Failed { welcomed, reason } => {
                    redirects_in_a_row = 0;
                    if welcomed {
                        (attempt, failures_in_round, leaderless_in_a_row) = (0, 0, 0);
                        self.disconnected_since = Some(Instant::now());
                        quick_until = Some(Instant::now() + FAILOVER_WINDOW);
                    }
                    warn!(coordinator = %target, %reason, "coordinator session ended; reconnecting");
                }
            }
            failures_in_round += 1;
            let quick = quick_until.is_some_and(|until| Instant::now() < until);
            let delay = if quick {
                self.backoff(0).max(self.tuning.backoff_first / 2)
            } else if failures_in_round < self.known.len() {
                self.backoff(0)
            } else {
                failures_in_round = 0;
                let delay = self.backoff(attempt);
                attempt = attempt.saturating_add(1);
                delay
            };
            debug!(?delay, attempt, "waiting before reconnecting");
            let slept = self.drive(tokio::time::sleep(delay), shutdown).await;
            if let Some(e) = self.fatal.take() {
                return Err(e.into());
            }
            if slept.is_none() {
                return Ok(());
            }
        }
    }

    /// One session with the coordinator at `target`.
    async fn session(&mut self, target: &str, shutdown: &CancellationToken) -> SessionEnd {
        let failed = |reason: String| SessionEnd::Failed { welcomed: false, reason };
        let mut endpoint = match Endpoint::from_shared(target.to_string()) {
            Ok(e) => e.connect_timeout(self.tuning.connect_timeout).tcp_nodelay(true),
            Err(e) => return failed(format!("invalid address: {e}")),
        };
        if let Some(tls) = &self.tls {
            endpoint = match endpoint.tls_config(tls.clone()) {
                Ok(e) => e,
                Err(e) => return failed(format!("TLS setup: {e}")),
            };
        }
        let channel = match self.drive(endpoint.connect(), shutdown).await {
            None => return SessionEnd::Shutdown,
            Some(Err(e)) => return failed(format!("connect: {}", error_chain(&e))),
            Some(Ok(channel)) => channel,
        };
        let (tx, rx) = mpsc::channel(OUTBOUND_MESSAGES);
        let hello = pb::Hello {
            probe: self.config.probe_id.clone(),
            region: self.config.region.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            weight: self.config.weight,
            assignment_version: self.assignment_version,
            max_concurrency: u32::try_from(self.config.max_concurrency).unwrap_or(u32::MAX),
        };
        // The channel is empty, so this cannot fail.
        let _ = tx.try_send(message(pb::probe_message::Msg::Hello(hello)));
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert("authorization", self.token.clone());
        // A full assignment of many endpoints is one message; allow it.
        let mut client = ProbeServiceClient::new(channel).max_decoding_message_size(MAX_INBOUND_MESSAGE);
        // A server that accepts but never answers must not hold the agent.
        let opened = tokio::time::timeout(self.tuning.welcome_timeout, client.connect(request));
        let mut inbound = match self.drive(opened, shutdown).await {
            None => return SessionEnd::Shutdown,
            Some(Err(_)) => return failed("no answer to Hello in time".into()),
            Some(Ok(Err(status))) => return failed(describe_status(&status)),
            Some(Ok(Ok(response))) => response.into_inner(),
        };
        let mut session = Session {
            tx,
            welcomed: false,
            last_sent: 0,
            max_batch: MAX_BATCH_RESULTS,
            send_tick: ticker(MAX_BATCH_DELAY),
            // Replaced by Welcome; the branch is off until then.
            heartbeat: ticker(Duration::from_secs(3600)),
        };
        let mut heartbeat_mark = (Instant::now(), self.ran_so_far());
        let welcome_deadline = tokio::time::sleep(self.tuning.welcome_timeout);
        tokio::pin!(welcome_deadline);
        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    if session.welcomed {
                        self.drain(&mut session, &mut inbound).await;
                    }
                    break SessionEnd::Shutdown;
                }
                inbound_message = inbound.message() => match inbound_message {
                    Ok(Some(m)) => {
                        let Some(msg) = m.msg else { continue };
                        if let Some(end) = self.handle(msg, &mut session).await {
                            break end;
                        }
                    }
                    Ok(None) => break SessionEnd::Failed {
                        welcomed: session.welcomed,
                        reason: "the coordinator closed the stream".into(),
                    },
                    Err(status) => break SessionEnd::Failed {
                        welcomed: session.welcomed,
                        reason: describe_status(&status),
                    },
                },
                Some(record) = self.records.recv() => {
                    self.keep(record);
                    // A full batch goes at once, not at the next tick.
                    if session.welcomed && self.spool.stats().next_seq.saturating_sub(session.last_sent + 1) >= session.max_batch as u64 {
                        self.send_pending(&mut session);
                    }
                }
                _ = session.send_tick.tick() => {
                    if let Err(e) = self.spool.sync_if_due() {
                        self.fatal = Some(e);
                    }
                    if session.welcomed {
                        self.send_pending(&mut session);
                    }
                    self.check_orphan();
                    self.update_spool_gauges();
                }
                _ = session.heartbeat.tick(), if session.welcomed => {
                    let beat = self.heartbeat(&mut heartbeat_mark);
                    let _ = session.tx.try_send(message(pb::probe_message::Msg::Heartbeat(beat)));
                }
                () = &mut welcome_deadline, if !session.welcomed => {
                    break SessionEnd::Failed { welcomed: false, reason: "no Welcome in time".into() };
                }
            }
            if self.fatal.is_some() {
                break SessionEnd::Shutdown;
            }
        };
        self.gauges.connected(false);
        end
    }

    /// Handles one coordinator message; `Some` ends the session.
    async fn handle(
        &mut self,
        msg: pb::coordinator_message::Msg,
        session: &mut Session,
    ) -> Option<SessionEnd> {
        use pb::coordinator_message::Msg;
        match msg {
            Msg::Welcome(welcome) => {
                info!(probe_id = welcome.probe_id, "registered with the coordinator");
                session.welcomed = true;
                self.disconnected_since = None;
                self.gauges.connected(true);
                session.max_batch = match welcome.max_batch_results {
                    0 => MAX_BATCH_RESULTS,
                    n => (n as usize).min(MAX_BATCH_RESULTS),
                };
                let every = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100)));
                session.heartbeat = tokio::time::interval_at(Instant::now() + every, every);
                session.heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
                if welcome.max_batch_delay_ms > 0 {
                    let delay = Duration::from_millis(u64::from(welcome.max_batch_delay_ms).max(10));
                    session.send_tick = ticker(delay.min(MAX_BATCH_DELAY));
                }
                for address in &welcome.coordinators {
                    self.learn(address);
                }
                // Everything unacknowledged goes again, as it was stored.
                session.last_sent = self.spool.stats().done_through;
                self.send_pending(session);
                None
            }
            Msg::Redirect(redirect) => {
                let leader = Some(redirect.leader_api_addr).filter(|a| !a.is_empty());
                Some(SessionEnd::Redirect(leader))
            }
            _ if !session.welcomed => {
                Some(SessionEnd::Failed { welcomed: false, reason: "a message before Welcome".into() })
            }
            Msg::Assignment(assignment) => self.apply_assignment(assignment, session),
            Msg::Ack(ack) => {
                for rejected in &ack.rejected {
                    warn!(seq = rejected.seq, reason = %rejected.reason, detail = %rejected.detail, "the coordinator refused a result");
                }
                self.ack(ack.up_to_seq);
                None
            }
            Msg::CheckNow(request) => {
                match self.scheduler.check_now(request.endpoint_id).await {
                    Ok(_) => {
                        self.check_now_requests
                            .entry(request.endpoint_id)
                            .or_default()
                            .push(request.request_id);
                    }
                    Err(e) => {
                        warn!(endpoint_id = request.endpoint_id, error = %e, "check-now request not run")
                    }
                }
                None
            }
        }
    }

    /// Applies a full assignment or a delta and acknowledges it.
    fn apply_assignment(&mut self, assignment: pb::Assignment, session: &mut Session) -> Option<SessionEnd> {
        if !assignment.full && assignment.base_version != self.assignment_version {
            // A delta against something else: reconnect and ask for a full
            // set (Hello with version 0).
            warn!(
                base = assignment.base_version,
                have = self.assignment_version,
                "assignment delta does not apply to the version running; asking for a full assignment"
            );
            self.assignment_version = 0;
            return Some(SessionEnd::Failed { welcomed: true, reason: "assignment version mismatch".into() });
        }
        let mut upsert = Vec::with_capacity(assignment.upsert.len());
        for wire in &assignment.upsert {
            match scheduled_endpoint(wire) {
                Ok(endpoint) => upsert.push(endpoint),
                Err(e) => error!(error = %e, "assigned endpoint cannot be checked; skipped"),
            }
        }
        let applied = if assignment.full {
            self.scheduler.replace(upsert)
        } else {
            self.scheduler.upsert(upsert).and_then(|()| self.scheduler.remove(assignment.remove.clone()))
        };
        if let Err(e) = applied {
            error!(error = %e, "assignment not applied");
            return Some(SessionEnd::Failed { welcomed: true, reason: e.to_string() });
        }
        self.assignment_version = assignment.version;
        info!(version = assignment.version, full = assignment.full, "assignment applied");
        let ack = pb::AssignmentAck { version: assignment.version };
        let _ = session.tx.try_send(message(pb::probe_message::Msg::AssignmentAck(ack)));
        None
    }

    /// Sends what is unsent, waits (bounded) for its acknowledgement, then
    /// closes the stream by dropping the sender.
    async fn drain(&mut self, session: &mut Session, inbound: &mut tonic::Streaming<pb::CoordinatorMessage>) {
        let deadline = Instant::now() + self.tuning.shutdown_grace;
        while let Ok(record) = self.records.try_recv() {
            self.keep(record);
        }
        loop {
            self.send_pending(session);
            if self.spool.stats().done_through >= session.last_sent
                && self.spool.unacked_after(session.last_sent).next().is_none()
            {
                break;
            }
            match tokio::time::timeout_at(deadline, inbound.message()).await {
                Ok(Ok(Some(pb::CoordinatorMessage {
                    msg: Some(pb::coordinator_message::Msg::Ack(ack)),
                }))) => {
                    self.ack(ack.up_to_seq);
                    if self.fatal.is_some() {
                        break;
                    }
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(_)) | Err(_) => break,
            }
        }
        let stats = self.spool.stats();
        // The last number handed out: with unacked = 0, every result up to
        // it was acknowledged (an operator or a test can compare it with the
        // coordinators' ledger in `vantagectl probe list --json`).
        let last_seq = stats.next_seq.saturating_sub(1);
        info!(unacked = stats.pending_records, last_seq, "session closed for shutdown");
    }

    /// Sends unsent results in batches while the outbound queue has room.
    fn send_pending(&mut self, session: &mut Session) {
        loop {
            let batch: Vec<pb::ProbeResult> = self
                .spool
                .unacked_after(session.last_sent)
                .take(session.max_batch)
                .map(|u| pb::ProbeResult { seq: u.seq, ..u.item.clone() })
                .collect();
            let Some(last) = batch.last().map(|r| r.seq) else { return };
            // Batches leave room for acks of assignments and heartbeats.
            if session.tx.capacity() <= CONTROL_HEADROOM {
                return;
            }
            let Ok(permit) = session.tx.try_reserve() else { return };
            telemetry::results_sent(batch.len());
            permit.send(message(pb::probe_message::Msg::Results(pb::ResultBatch { results: batch })));
            session.last_sent = last;
        }
    }

    /// Moves one scheduler record into the spool.
    fn keep(&mut self, record: SlotRecord<CheckResult>) {
        let out_of_slot = record.trigger == Trigger::CheckNow;
        let request_id = if out_of_slot {
            match self.check_now_requests.remove(&record.endpoint_id) {
                // One run answers every request made while it ran; the
                // protocol carries one id, so the first is named.
                Some(ids) => ids.into_iter().next().unwrap_or_default(),
                None => String::new(),
            }
        } else {
            String::new()
        };
        let observation = Observation {
            seq: 0,
            endpoint_id: record.endpoint_id,
            round: record.round,
            probe_unhealthy: !self.healthy.load(Ordering::Relaxed),
            planned_start: record.planned_start,
            lag: record.lag,
            out_of_slot,
            request_id: Some(request_id).filter(|id| !id.is_empty()),
            result: match record.outcome {
                Outcome::Ran(result) => {
                    telemetry::check_ran(out_of_slot, record.lag);
                    Some(result)
                }
                Outcome::Skipped => {
                    telemetry::slot_skipped();
                    None
                }
            },
        };
        let item = pb::ProbeResult::from(&observation);
        if let Err(e) = self.spool.push(item) {
            error!(error = %e, "cannot keep a result in the spool; stopping");
            self.fatal = Some(e);
        }
        self.update_spool_gauges();
    }

    /// Acknowledges up to `up_to_seq` in the spool and counts what left it.
    fn ack(&mut self, up_to_seq: u64) {
        let before = self.spool.stats().pending_records;
        if let Err(e) = self.spool.ack(up_to_seq) {
            self.fatal = Some(e);
        }
        let after = self.spool.stats().pending_records;
        self.gauges.acked(before.saturating_sub(after));
        self.update_spool_gauges();
    }

    /// The spool's, the schedule's and the canaries' gauges from their
    /// current state (the scheduler applies assignments on its own task, so
    /// its count is read on the agent's ticks, not right after sending it
    /// one).
    fn update_spool_gauges(&mut self) {
        let stats = self.spool.stats();
        self.gauges.spool(stats.pending_records, stats.lost_total);
        self.gauges.unhealthy(!self.healthy.load(Ordering::Relaxed));
        self.gauges.endpoints(self.scheduler.stats().endpoints);
    }

    /// Runs `future` while keeping records flowing into the spool and the
    /// orphan timer honest; `None` when shutdown fired first.
    async fn drive<F: Future>(&mut self, future: F, shutdown: &CancellationToken) -> Option<F::Output> {
        tokio::pin!(future);
        let mut tick = tokio::time::interval(MAX_BATCH_DELAY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                output = &mut future => return Some(output),
                Some(record) = self.records.recv() => self.keep(record),
                _ = tick.tick() => {
                    if let Err(e) = self.spool.sync_if_due() {
                        self.fatal = Some(e);
                    }
                    self.check_orphan();
                    self.update_spool_gauges();
                }
            }
            if self.fatal.is_some() {
                return None;
            }
        }
    }

    /// Stops checking once no coordinator has been reachable for
    /// `orphan_ttl`: the endpoints have likely moved to other probes.
    fn check_orphan(&mut self) {
        let Some(since) = self.disconnected_since else { return };
        if self.assignment_version == 0 || since.elapsed() < self.config.orphan_ttl {
            return;
        }
        error!(
            orphan_ttl = ?self.config.orphan_ttl,
            endpoints = self.scheduler.stats().endpoints,
            "no coordinator reachable for orphan_ttl: STOPPED CHECKING the last assignment until a coordinator answers"
        );
        if let Err(e) = self.scheduler.replace(Vec::new()) {
            warn!(error = %e, "clearing the schedule");
        }
        self.assignment_version = 0;
    }

    fn heartbeat(&self, mark: &mut (Instant, u64)) -> pb::Heartbeat {
        let ran = self.ran_so_far();
        let elapsed = mark.0.elapsed().as_secs_f64();
        let checks_per_second = if elapsed > 0.0 { (ran - mark.1) as f64 / elapsed } else { 0.0 };
        *mark = (Instant::now(), ran);
        let spool = self.spool.stats();
        pb::Heartbeat {
            sent_at_unix_ms: unix_us(self.tuning.clock.now()) / 1000,
            unhealthy: !self.healthy.load(Ordering::Relaxed),
            stats: Some(pb::ProbeStats {
                checks_per_second,
                scheduling_lag_p99_ms: self.scheduler.lag().p99().as_secs_f64() * 1000.0,
                scheduled_endpoints: u32::try_from(self.scheduler.stats().endpoints).unwrap_or(u32::MAX),
                spool_unacked: spool.pending_records,
                spool_dropped: spool.lost_total,
            }),
        }
    }

    fn ran_so_far(&self) -> u64 {
        let stats = self.scheduler.stats();
        stats.slots_run + stats.checks_now
    }

    /// The next address to try: the known ones in turn.
    fn next_target(&mut self) -> String {
        let target = self.known[self.next_address % self.known.len()].clone();
        self.next_address = (self.next_address + 1) % self.known.len();
        target
    }

    /// Adds an address (from Welcome or Redirect) to the known ones;
    /// returns it normalized, or `None` if it is unusable.
    fn learn(&mut self, address: &str) -> Option<String> {
        match normalize_address(address, self.config.insecure) {
            Ok(url) => {
                if !self.known.contains(&url) {
                    self.known.push(url.clone());
                }
                Some(url)
            }
            Err(e) => {
                warn!(address, error = %e, "ignoring a coordinator address");
                None
            }
        }
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        full_jitter(self.tuning.backoff_first, self.tuning.backoff_max, attempt, &mut self.seed)
    }
}

/// How long after losing a working session reconnect attempts stay at the
/// first backoff step (50–100 ms apart) instead of growing: a failover's
/// election and the followers learning the new leader fit well within it.
const FAILOVER_WINDOW: Duration = Duration::from_secs(5);

/// How many times in a row a probe told "no leader known" asks again after
/// a short pause before the backoff grows (about 1.5 s of elections; a
/// cluster without a quorum is then polled at the normal backoff).
const LEADERLESS_RETRIES: u32 = 20;

/// The largest coordinator message accepted (a full assignment of 100,000
/// endpoints is about 10 MiB).
const MAX_INBOUND_MESSAGE: usize = 64 << 20;

/// Outbound messages that may wait before tonic takes them; a full queue
/// holds results back in the spool rather than blocking the agent.
const OUTBOUND_MESSAGES: usize = 32;

/// Outbound slots batches leave free for control messages.
const CONTROL_HEADROOM: usize = 4;

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

fn message(msg: pb::probe_message::Msg) -> pb::ProbeMessage {
    pb::ProbeMessage { msg: Some(msg) }
}

/// One line for a stream error; a refused token or region is also logged
/// as an `error` with what to check, since retrying cannot fix it alone.
fn describe_status(status: &tonic::Status) -> String {
    if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) {
        error!(
            code = ?status.code(),
            message = status.message(),
            "the coordinator refused this probe: check token_file, probe_id and region (retrying)"
        );
    }
    format!("{:?}: {}", status.code(), status.message())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The `User-Agent` of an agent's HTTP checks, naming its region and
/// probe so a target's owners can tell monitors apart and allow-list them:
/// `vantage-probe/VERSION (region=R; probe=P)`. Both names are from a
/// header-safe character set (the config checks them).
pub fn agent_user_agent(region: &str, probe_id: &str) -> String {
    format!("vantage-probe/{} (region={region}; probe={probe_id})", env!("CARGO_PKG_VERSION"))
}

/// Full jitter: uniform in `[0, min(max, first * 2^attempt)]`, so probes
/// that lost the same coordinator spread their reconnects.
fn full_jitter(first: Duration, max: Duration, attempt: u32, seed: &mut u64) -> Duration {
    let ceiling = first.saturating_mul(1u32 << attempt.min(20)).min(max);
    let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(next_random(seed) % ceiling_us.saturating_add(1))
}

/// A seed for the backoff jitter: not secret, only different per probe and
/// start, so probes that lost the same leader do not reconnect in step.
fn seed(probe_id: &str, now: SystemTime) -> u64 {
    let mut seed = unix_us(now) as u64;
    for b in probe_id.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    seed | 1
}

/// SplitMix64.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The canary checks: their own checker, their own task.
struct Canaries {
    specs: Vec<CheckSpec>,
    interval: Duration,
    checker: Checker,
    healthy: Arc<AtomicBool>,
}

impl Canaries {
    /// Checks every canary each interval; the probe is unhealthy while more
    /// than half of the latest round failed.
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut failed = 0;
            for spec in &self.specs {
                let result = tokio::select! {
                    () = stop.cancelled() => return,
                    r = self.checker.check(spec) => r,
                };
                if !result.ok {
                    failed += 1;
                    warn!(url = %spec.url, "canary failed");
                }
            }
            let healthy = failed * 2 <= self.specs.len();
            if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
                if healthy {
                    info!("canaries pass again: results are no longer marked probe_unhealthy");
                } else {
                    error!(
                        failed,
                        of = self.specs.len(),
                        "canaries fail: results are marked probe_unhealthy"
                    );
                }
            }
        }
    }
}

fn canary_specs(urls: &[String]) -> Vec<CheckSpec> {
    urls.iter()
        .filter_map(|url| match CheckSpec::parse(url) {
            Ok(mut spec) => {
                // Canaries are the operator's own choice, often internal.
                spec.guard = Policy { allow_private: true, ..Policy::default() };
                Some(spec)
            }
            Err(e) => {
                warn!(url, error = %e, "ignoring a canary URL");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_doubling_ceiling_and_spreads() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(10));
        let mut seed = 42;
        for attempt in 0..40u32 {
            let ceiling = first.saturating_mul(1 << attempt.min(20)).min(max);
            let delays: Vec<Duration> =
                (0..200).map(|_| full_jitter(first, max, attempt, &mut seed)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            assert!(delays.iter().any(|d| *d < ceiling / 4) && delays.iter().any(|d| *d > ceiling * 3 / 4));
        }
    }

    #[test]
    fn proto_codec_round_trips() {
        let item = pb::ProbeResult {
            endpoint_id: 3,
            round: 9,
            planned_start_unix_us: 1_700_000_000_000_000,
            ..Default::default()
        };
        let mut bytes = Vec::new();
        ProtoCodec::encode(&item, &mut bytes).unwrap();
        assert_eq!(ProtoCodec::decode(&bytes).unwrap(), item);
    }
}
