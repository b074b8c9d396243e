//! `ProbeService.Connect`: admission (token, leadership, Hello), then one
//! task per stream that pushes assignments and check requests, takes result
//! batches and heartbeats, and re-checks the token and leadership every
//! heartbeat interval.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use vantage_proto::pb;
use vantage_proto::pb::coordinator_message::Msg as Out;
use vantage_proto::pb::probe_message::Msg as In;

use super::results::{self, Rejection, Sender};
use super::{
    read, Connected, Leadership, Mesh, MeshError, Outbound, Published, Session, SessionCommand, Shared,
};
use crate::state::{ProbeId, ProbeRegistration, TokenHash};

/// Messages queued for one probe before sends wait (bounded by
/// `send_timeout`).
const OUTBOUND_QUEUE: usize = 64;
/// Check requests queued for one probe; more are reported unreachable.
const COMMAND_QUEUE: usize = 256;
/// The largest message sent to a probe: a full assignment of tens of
/// thousands of endpoints. Probes must accept at least this much.
pub const MAX_OUTBOUND_BYTES: usize = 64 << 20;

/// The `ProbeService` over a [`Mesh`].
#[derive(Clone)]
pub struct ProbeApi {
    mesh: Mesh,
}

impl ProbeApi {
    /// The service for `mesh`.
    pub fn new(mesh: Mesh) -> ProbeApi {
        ProbeApi { mesh }
    }

    /// The tonic service, with explicit message size limits: inbound
    /// `max_message_bytes`, outbound `MAX_OUTBOUND_BYTES` (64 MiB).
    pub fn into_service(self) -> pb::probe_service_server::ProbeServiceServer<ProbeApi> {
        let inbound = self.mesh.shared.options.max_message_bytes;
        pb::probe_service_server::ProbeServiceServer::new(self)
            .max_decoding_message_size(inbound)
            .max_encoding_message_size(MAX_OUTBOUND_BYTES)
    }
}

#[tonic::async_trait]
impl pb::probe_service_server::ProbeService for ProbeApi {
    type ConnectStream = ReceiverStream<Result<pb::CoordinatorMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::ProbeMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let shared = &self.mesh.shared;
        if shared.shutdown.is_cancelled() {
            return Err(MeshError::ShuttingDown.into());
        }
        let token_hash = bearer_hash(request.metadata()).map_err(|e| refuse(e, None))?;
        let registration = read(&*shared.node, |s| s.probe_by_token_hash(&token_hash).cloned())
            .ok_or_else(|| refuse(MeshError::UnknownToken, None))?;
        if let Leadership::Follower { leader_id, leader_api_addr } = shared.node.leadership() {
            tracing::info!(probe = %registration.name, ?leader_id, ?leader_api_addr, "probe redirected to the leader");
            let (tx, rx) = mpsc::channel(1);
            let redirect = redirect(leader_id, leader_api_addr);
            // A fresh channel of capacity 1 always has room.
            let _ = tx.try_send(Ok(redirect));
            return Ok(Response::new(ReceiverStream::new(rx)));
        }
        wait_ready(shared).await.map_err(|e| refuse(e, Some(&registration)))?;
        let mut inbound = request.into_inner();
        let hello = receive_hello(shared, &mut inbound).await.map_err(|e| refuse(e, Some(&registration)))?;
        if hello.probe != registration.name {
            let error = MeshError::WrongProbe { registered: registration.name.clone(), claimed: hello.probe };
            return Err(refuse(error, Some(&registration)));
        }
        if hello.region != registration.region {
            let error = MeshError::WrongRegion {
                probe: registration.name.clone(),
                registered: registration.region.clone(),
                claimed: hello.region,
            };
            return Err(refuse(error, Some(&registration)));
        }

        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let stream_id = shared.next_stream.fetch_add(1, Ordering::Relaxed);
        let close = shared.shutdown.child_token();
        let (previous, previous_version) =
            attach(shared, &registration, &hello, stream_id, commands_tx, close.clone());
        // A probe still running what this leader last sent it gets a delta.
        let resume = hello.assignment_version != 0 && hello.assignment_version == previous_version;
        tracing::info!(
            probe = %registration.name,
            probe_id = registration.id.0,
            region = %registration.region,
            version = %hello.version,
            stream_id,
            "probe connected"
        );
        let task = StreamTask {
            shared: shared.clone(),
            probe_id: registration.id.0,
            name: registration.name,
            region: registration.region,
            token_hash,
            stream_id,
            tx,
            commands,
            close,
            sent: if resume { (*previous).clone() } else { BTreeMap::new() },
            sent_version: if resume { previous_version } else { 0 },
            previous_ids: previous.keys().copied().collect(),
            last_heard: Instant::now(),
        };
        shared.tasks.spawn(task.run(inbound, resume));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The SHA-256 of the bearer token in `authorization`.
fn bearer_hash(metadata: &MetadataMap) -> Result<TokenHash, MeshError> {
    let value = metadata.get("authorization").ok_or(MeshError::MissingToken)?;
    let text = value.to_str().map_err(|_| MeshError::MissingToken)?;
    let token = text.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty());
    Ok(crate::auth::token_hash(token.ok_or(MeshError::MissingToken)?))
}

/// Logs and counts a refused stream; the status goes to the probe.
fn refuse(error: MeshError, registration: Option<&ProbeRegistration>) -> Status {
    let probe = registration.map(|r| r.name.as_str()).unwrap_or("");
    tracing::warn!(probe, %error, "probe stream refused");
    metrics::counter!("vantage_mesh_streams_refused_total").increment(1);
    error.into()
}

fn redirect(leader_id: Option<u64>, leader_api_addr: Option<String>) -> pb::CoordinatorMessage {
    pb::CoordinatorMessage {
        msg: Some(Out::Redirect(pb::Redirect {
            leader_id,
            leader_api_addr: leader_api_addr.unwrap_or_default(),
        })),
    }
}

/// A new leader serves probes once it has applied everything committed
/// before its term (the ingest ledger must be complete before results are
/// de-duplicated against it) and has computed the assignment of its term
/// (not to push the empty or stale one from before): normally within one
/// commit round trip and one assignment computation.
async fn wait_ready(shared: &Shared) -> Result<u64, MeshError> {
    let deadline = Instant::now() + shared.options.hello_timeout;
    let term = loop {
        if let Some(term) = shared.node.leading_term() {
            break term;
        }
        if Instant::now() >= deadline || !matches!(shared.node.leadership(), Leadership::Leader) {
            return Err(MeshError::NotLeader);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let mut published = shared.published.subscribe();
    let computed = tokio::time::timeout_at(deadline, published.wait_for(|p| p.term == term)).await;
    match computed {
        Ok(Ok(_)) => Ok(term),
        Ok(Err(_)) => Err(MeshError::ShuttingDown),
        Err(_) => Err(MeshError::NotLeader),
    }
}

async fn receive_hello(
    shared: &Shared,
    inbound: &mut Streaming<pb::ProbeMessage>,
) -> Result<pb::Hello, MeshError> {
    let limit = shared.options.hello_timeout;
    let no_hello = MeshError::NoHello { timeout_ms: limit.as_millis() as u64 };
    match timeout(limit, inbound.message()).await {
        Err(_) | Ok(Ok(None)) => Err(no_hello),
        Ok(Err(status)) => Err(MeshError::BadMessage { detail: status.message().to_owned() }),
        Ok(Ok(Some(pb::ProbeMessage { msg: Some(In::Hello(hello)) }))) => Ok(hello),
        Ok(Ok(Some(_))) => Err(MeshError::Unexpected { detail: "the first message must be Hello".into() }),
    }
}

/// Records the new stream in the probe's session, closing an older one;
/// returns the endpoints last pushed to the probe and their version.
fn attach(
    shared: &Shared,
    registration: &ProbeRegistration,
    hello: &pb::Hello,
    stream_id: u64,
    commands: mpsc::Sender<SessionCommand>,
    close: CancellationToken,
) -> (Arc<BTreeMap<u64, pb::AssignedEndpoint>>, u64) {
    let now = shared.clock.now();
    let previous = {
        let mut inner = shared.lock();
        let session = inner
            .sessions
            .entry(registration.id.0)
            .or_insert_with(|| Session::new(registration.name.clone(), now));
        if let Some(old) = session.connected.replace(Connected { stream_id, commands, close }) {
            old.close.cancel();
        }
        session.name.clone_from(&registration.name);
        session.version.clone_from(&hello.version);
        session.connected_since = now;
        session.last_seen = now;
        session.disconnected_at = None;
        (session.last_sent.clone(), session.last_sent_version)
    };
    shared.changed.notify_one();
    previous
}

/// One probe's open stream.
struct StreamTask {
    shared: Arc<Shared>,
    probe_id: u64,
    name: String,
    region: String,
    token_hash: TokenHash,
    stream_id: u64,
    tx: Outbound,
    commands: mpsc::Receiver<SessionCommand>,
    close: CancellationToken,
    /// What the probe runs now, as last pushed.
    sent: BTreeMap<u64, pb::AssignedEndpoint>,
    sent_version: u64,
    /// The endpoints before the last change, whose results are still
    /// accepted (they may have been in flight).
    previous_ids: BTreeSet<u64>,
    last_heard: Instant,
}

impl StreamTask {
    async fn run(mut self, mut inbound: Streaming<pb::ProbeMessage>, resume: bool) {
        let outcome = self.serve(&mut inbound, resume).await;
        match outcome {
            Ok(()) => tracing::info!(probe = %self.name, stream_id = self.stream_id, "probe disconnected"),
            Err(MeshError::Disconnected) => {
                tracing::info!(probe = %self.name, stream_id = self.stream_id, "probe disconnected")
            }
            Err(error @ MeshError::ShuttingDown) => {
                // An orderly stop, not a fault: the probe is told why.
                tracing::info!(probe = %self.name, stream_id = self.stream_id, "probe stream closed: shutting down");
                let limit = self.shared.options.send_timeout;
                let _ = timeout(limit, self.tx.send(Err(error.into()))).await;
            }
            Err(MeshError::NotLeader) => {
                // As on a follower: Redirect, then close without an error.
                let (leader_id, leader_api_addr) = match self.shared.node.leadership() {
                    Leadership::Follower { leader_id, leader_api_addr } => (leader_id, leader_api_addr),
                    Leadership::Leader => (None, None),
                };
                tracing::info!(probe = %self.name, ?leader_id, ?leader_api_addr, "leadership lost; probe redirected");
                let _ = self.send(redirect(leader_id, leader_api_addr)).await;
            }
            Err(error) => {
                tracing::warn!(probe = %self.name, stream_id = self.stream_id, %error, "probe stream closed");
                let limit = self.shared.options.send_timeout;
                let _ = timeout(limit, self.tx.send(Err(error.into()))).await;
            }
        }
        self.detach();
    }

    /// Welcome, the assignment (a delta from the probe's version when
    /// `resume`, else a full set), then the stream's loop.
    async fn serve(
        &mut self,
        inbound: &mut Streaming<pb::ProbeMessage>,
        resume: bool,
    ) -> Result<(), MeshError> {
        let shared = self.shared.clone();
        let options = &shared.options;
        let welcome = pb::Welcome {
            probe_id: self.probe_id,
            heartbeat_interval_ms: options.heartbeat_interval.as_millis() as u32,
            max_batch_results: options.max_batch_results as u32,
            max_batch_delay_ms: options.max_batch_delay.as_millis() as u32,
            coordinators: self.shared.node.coordinators(),
        };
        self.send(pb::CoordinatorMessage { msg: Some(Out::Welcome(welcome)) }).await?;
        let mut published = self.shared.published.subscribe();
        let current = published.borrow_and_update().clone();
        if resume {
            self.push_delta(&current, true).await?;
        } else {
            self.push_full(&current).await?;
        }

        let interval = options.heartbeat_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.close.cancelled() => {
                    return Err(if self.shared.shutdown.is_cancelled() { MeshError::ShuttingDown } else { MeshError::Replaced });
                }
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        self.last_heard = Instant::now();
                        self.handle(message).await?;
                    }
                    Ok(None) => return Ok(()),
                    Err(status) => return Err(inbound_error(status)),
                },
                changed = published.changed() => {
                    if changed.is_err() {
                        return Err(MeshError::ShuttingDown);
                    }
                    let current = published.borrow_and_update().clone();
                    self.push_delta(&current, false).await?;
                }
                Some(command) = self.commands.recv() => match command {
                    SessionCommand::CheckNow(check) => {
                        self.send(pb::CoordinatorMessage { msg: Some(Out::CheckNow(check)) }).await?;
                    }
                },
                _ = tick.tick() => self.recheck()?,
            }
        }
    }

    async fn handle(&mut self, message: pb::ProbeMessage) -> Result<(), MeshError> {
        let now = self.shared.clock.now();
        match message.msg {
            None => Err(MeshError::Unexpected { detail: "an empty message".into() }),
            Some(In::Hello(_)) => Err(MeshError::Unexpected { detail: "a second Hello".into() }),
            Some(In::Heartbeat(heartbeat)) => {
                self.with_session(|s| {
                    s.last_seen = now;
                    s.unhealthy = heartbeat.unhealthy;
                    if heartbeat.stats.is_some() {
                        s.stats = heartbeat.stats;
                    }
                });
                Ok(())
            }
            Some(In::AssignmentAck(ack)) => {
                self.with_session(|s| {
                    s.last_seen = now;
                    s.acked_version = ack.version;
                });
                Ok(())
            }
            Some(In::Results(batch)) => self.take_results(batch).await,
        }
    }

    /// Validates, de-duplicates and stores a batch; its acknowledgement
    /// waits for the checkpoint that records its numbers (`ingest`).
    async fn take_results(&mut self, batch: pb::ResultBatch) -> Result<(), MeshError> {
        let shared = self.shared.clone();
        let max = shared.options.max_batch_results;
        if batch.results.len() > max {
            shared.counters.batches_rejected.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("vantage_mesh_batches_rejected_total", "reason" => "oversized").increment(1);
            return Err(MeshError::OversizedBatch { count: batch.results.len(), max });
        }
        let Some(up_to_seq) = batch.results.iter().map(|r| r.seq).max() else {
            return Ok(());
        };
        let term = shared.node.leading_term().ok_or(MeshError::NotLeader)?;
        // Numbers the ledger already records (resent to a new leader).
        let recorded: BTreeSet<u64> =
            read(&*shared.node, |s| match s.ingest().get(&ProbeId(self.probe_id)) {
                None => BTreeSet::new(),
                Some(ledger) => batch
                    .results
                    .iter()
                    .map(|r| r.seq)
                    .filter(|&seq| ledger.processed.contains(seq))
                    .collect(),
            });
        let now = shared.clock.now();
        let sender = Sender { probe_id: self.probe_id, region: &self.region };
        let assigned = |e: u64| self.sent.contains_key(&e) || self.previous_ids.contains(&e);
        let mut rejected: Vec<Rejection> = Vec::new();
        let mut valid = Vec::with_capacity(batch.results.len());
        for wire in &batch.results {
            match results::validate(wire, sender, assigned, now, shared.options.timing) {
                Ok(result) => valid.push(result),
                Err(rejection) => rejected.push(rejection),
            }
        }
        let mut duplicates = 0u64;
        let (accepted, rejected) = {
            let mut inner = shared.lock();
            if inner.pending.term != term {
                inner.forget_processed(term);
            }
            inner.sessions.get_mut(&self.probe_id).into_iter().for_each(|s| s.last_seen = now);
            let window = inner
                .dedup
                .entry(self.probe_id)
                .or_insert_with(|| results::SeqWindow::new(shared.options.dedup_window));
            // Processed once, stored or refused: a number seen again is
            // acknowledged and neither stored nor counted again.
            let mut first_time = |seq: u64| {
                if recorded.contains(&seq) || window.contains(seq) {
                    duplicates += 1;
                    false
                } else {
                    window.insert(seq);
                    true
                }
            };
            let accepted: Vec<_> = valid.into_iter().filter(|r| first_time(r.observation.seq)).collect();
            let rejected: Vec<Rejection> = rejected.into_iter().filter(|r| first_time(r.seq)).collect();
            let pending = inner.pending.probes.entry(self.probe_id).or_default();
            for seq in accepted.iter().map(|r| r.observation.seq).chain(rejected.iter().map(|r| r.seq)) {
                pending.seqs.insert(seq);
            }
            pending.accepted += accepted.len() as u64;
            pending.rejected += rejected.len() as u64;
            let ack = pb::ResultAck {
                up_to_seq,
                rejected: rejected
                    .iter()
                    .map(|r| pb::RejectedResult {
                        seq: r.seq,
                        reason: r.reason.as_str().to_owned(),
                        detail: r.detail.clone(),
                    })
                    .collect(),
            };
            pending.ack(self.stream_id, &self.tx, ack);
            (accepted, rejected)
        };
        let counters = &shared.counters;
        counters.accepted.fetch_add(accepted.len() as u64, Ordering::Relaxed);
        counters.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        metrics::counter!("vantage_mesh_results_accepted_total").increment(accepted.len() as u64);
        metrics::counter!("vantage_mesh_results_duplicate_total").increment(duplicates);
        for rejection in &rejected {
            counters.rejected[rejection.reason.index()].fetch_add(1, Ordering::Relaxed);
            metrics::counter!("vantage_mesh_results_rejected_total", "reason" => rejection.reason.as_str())
                .increment(1);
            tracing::debug!(
                probe = %self.name,
                seq = rejection.seq,
                reason = rejection.reason.as_str(),
                detail = %rejection.detail,
                "result rejected"
            );
        }
        if !accepted.is_empty() {
            shared.sink.accept(&accepted);
        }
        Ok(())
    }

    async fn push_full(&mut self, published: &Published) -> Result<(), MeshError> {
        let mine = published.assignment.by_probe(self.probe_id);
        let sent: BTreeMap<u64, pb::AssignedEndpoint> =
            mine.iter().filter_map(|e| published.endpoints.get(e).map(|spec| (*e, spec.clone()))).collect();
        let assignment = pb::Assignment {
            version: published.version,
            full: true,
            base_version: 0,
            upsert: sent.values().cloned().collect(),
            remove: Vec::new(),
        };
        self.send(pb::CoordinatorMessage { msg: Some(Out::Assignment(assignment)) }).await?;
        tracing::debug!(probe = %self.name, version = published.version, endpoints = sent.len(), "full assignment sent");
        self.previous_ids.extend(self.sent.keys().copied());
        self.sent = sent;
        self.sent_version = published.version;
        self.remember_sent();
        Ok(())
    }

    /// Sends what changed since the version last sent; with `always`, an
    /// empty delta too (it confirms a resumed version).
    async fn push_delta(&mut self, published: &Published, always: bool) -> Result<(), MeshError> {
        let mine = published.assignment.by_probe(self.probe_id);
        let remove: Vec<u64> = self.sent.keys().filter(|e| !mine.contains(e)).copied().collect();
        let upsert: Vec<pb::AssignedEndpoint> = mine
            .iter()
            .filter_map(|e| published.endpoints.get(e))
            .filter(|spec| self.sent.get(&spec.endpoint_id) != Some(*spec))
            .cloned()
            .collect();
        if remove.is_empty() && upsert.is_empty() && !always {
            return Ok(());
        }
        let assignment = pb::Assignment {
            version: published.version,
            full: false,
            base_version: self.sent_version,
            upsert: upsert.clone(),
            remove: remove.clone(),
        };
        self.send(pb::CoordinatorMessage { msg: Some(Out::Assignment(assignment)) }).await?;
        tracing::debug!(
            probe = %self.name,
            version = published.version,
            base_version = self.sent_version,
            upsert = upsert.len(),
            remove = remove.len(),
            "assignment delta sent"
        );
        self.previous_ids = self.sent.keys().copied().collect();
        for e in &remove {
            self.sent.remove(e);
        }
        for spec in upsert {
            self.sent.insert(spec.endpoint_id, spec);
        }
        self.sent_version = published.version;
        self.remember_sent();
        Ok(())
    }

    /// Every heartbeat interval: still leader, token still valid, probe
    /// not silent.
    fn recheck(&self) -> Result<(), MeshError> {
        if !matches!(self.shared.node.leadership(), Leadership::Leader) {
            return Err(MeshError::NotLeader);
        }
        let valid = read(&*self.shared.node, |s| {
            s.probes().get(&ProbeId(self.probe_id)).is_some_and(|p| p.token_hash == self.token_hash)
        });
        if !valid {
            return Err(MeshError::Revoked { probe: self.name.clone() });
        }
        let options = &self.shared.options;
        let limit = options.heartbeat_interval * options.missed_heartbeats.max(1);
        let silent = self.last_heard.elapsed();
        if silent > limit {
            return Err(MeshError::Silent {
                silent_ms: silent.as_millis() as u64,
                heartbeat_ms: options.heartbeat_interval.as_millis() as u64,
            });
        }
        Ok(())
    }

    async fn send(&self, message: pb::CoordinatorMessage) -> Result<(), MeshError> {
        let limit = self.shared.options.send_timeout;
        match timeout(limit, self.tx.send(Ok(message))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MeshError::Disconnected),
            Err(_) => Err(MeshError::SlowReader { timeout_ms: limit.as_millis() as u64 }),
        }
    }

    fn with_session(&self, f: impl FnOnce(&mut Session)) {
        let mut inner = self.shared.lock();
        if let Some(session) = inner.sessions.get_mut(&self.probe_id) {
            if session.connected.as_ref().is_some_and(|c| c.stream_id == self.stream_id) {
                f(session);
            }
        }
    }

    fn remember_sent(&self) {
        let sent = Arc::new(self.sent.clone());
        let version = self.sent_version;
        self.with_session(|s| {
            s.last_sent = sent;
            s.last_sent_version = version;
        });
    }

    /// Marks the session disconnected (unless a newer stream took over);
    /// its endpoints stay assigned for `probe_grace`.
    fn detach(&self) {
        let detached = {
            let mut inner = self.shared.lock();
            match inner.sessions.get_mut(&self.probe_id) {
                Some(session)
                    if session.connected.as_ref().is_some_and(|c| c.stream_id == self.stream_id) =>
                {
                    session.connected = None;
                    session.disconnected_at = Some(Instant::now());
                    true
                }
                _ => false,
            }
        };
        if detached {
            self.shared.changed.notify_one();
        }
    }
}

/// A failed read from the probe: an oversized or undecodable message is the
/// probe's fault and is reported to it; anything else means it went away.
fn inbound_error(status: Status) -> MeshError {
    match status.code() {
        tonic::Code::OutOfRange => MeshError::TooLarge { detail: status.message().to_owned() },
        tonic::Code::InvalidArgument | tonic::Code::Internal => {
            MeshError::BadMessage { detail: status.message().to_owned() }
        }
        _ => MeshError::Disconnected,
    }
}
