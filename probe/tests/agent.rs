//! The probe agent (`vantage-probe run`) against an in-test fake coordinator.
//!
//! [`FakeCoordinator`] is a **test double** of the coordinator's
//! `ProbeService`: a tonic server on `127.0.0.1:0` that records what the
//! probe sends (Hello and its token, results, acks of assignments,
//! heartbeats), answers Welcome, pushes an assignment, acknowledges result
//! batches (or not, when told), and lets the test push messages or drop the
//! stream. It is not the coordinator: no sharding, no validation beyond what
//! these tests need. Targets are real HTTP servers from the harness on
//! loopback.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};
use vantage_core::schedule::{slot_offset, slot_start};
use vantage_probe::agent::client::{self, Tuning};
use vantage_probe::agent::config::Config;
use vantage_proto::pb;
use vantage_proto::pb::probe_service_server::{ProbeService, ProbeServiceServer};
use vantage_tests::{HttpTarget, TargetOptions};

type Outbound = mpsc::Sender<Result<pb::CoordinatorMessage, Status>>;

/// What the fake has seen, and how it behaves.
#[derive(Default)]
struct FakeState {
    /// Hello of every stream, with the `authorization` metadata it came with.
    hellos: Vec<(pb::Hello, String)>,
    /// Every result received, in arrival order (resends included).
    results: Vec<pb::ProbeResult>,
    /// The highest sequence number acknowledged.
    acked: u64,
    /// Acknowledge result batches (default true via `start`).
    acking: bool,
    assignment_acks: Vec<u64>,
    heartbeats: Vec<pb::Heartbeat>,
    /// Answer Hello with this Redirect instead of Welcome.
    redirect_to: Option<String>,
    /// Sent after Welcome on every stream.
    assignment: Option<pb::Assignment>,
    /// Welcome.coordinators.
    peers: Vec<String>,
    /// Refuse new streams with UNAVAILABLE (a coordinator that is down).
    refusing: bool,
    /// The current stream's sender and its number.
    stream: Option<(u64, Outbound)>,
    streams_opened: u64,
}

/// A test double of the coordinator's ProbeService (see the module docs).
struct FakeCoordinator {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    _stop: oneshot::Sender<()>,
}

impl FakeCoordinator {
    fn start() -> FakeCoordinator {
        FakeCoordinator::serve(None)
    }

    /// Starts the fake over TLS with this certificate and key (PEM).
    fn start_tls(cert_pem: &str, key_pem: &str) -> FakeCoordinator {
        FakeCoordinator::serve(Some(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem))))
    }

    fn serve(tls: Option<ServerTlsConfig>) -> FakeCoordinator {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState { acking: true, ..FakeState::default() }));
        let (stop, stopped) = oneshot::channel::<()>();
        let service = ProbeServiceServer::new(FakeService { state: state.clone() });
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        tokio::spawn(async move {
            let _ = builder
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeCoordinator { addr, state, _stop: stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Sends a message on the current stream.
    async fn push(&self, msg: pb::coordinator_message::Msg) {
        let tx = self.state().stream.as_ref().map(|(_, tx)| tx.clone()).expect("a stream is open");
        tx.send(Ok(pb::CoordinatorMessage { msg: Some(msg) })).await.unwrap();
    }

    /// Ends the current stream from the coordinator's side.
    fn drop_stream(&self) {
        self.state().stream = None;
    }

    /// Waits (polling) until `done` holds, up to `within`.
    async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&FakeState) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if done(&self.state()) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct FakeService {
    state: Arc<Mutex<FakeState>>,
}

#[tonic::async_trait]
impl ProbeService for FakeService {
    type ConnectStream = ReceiverStream<Result<pb::CoordinatorMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::ProbeMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if self.state.lock().unwrap().refusing {
            return Err(Status::unavailable("the fake coordinator is refusing streams"));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        tokio::spawn(async move {
            let Ok(Some(pb::ProbeMessage { msg: Some(pb::probe_message::Msg::Hello(hello)) })) =
                inbound.message().await
            else {
                let _ = tx.send(Err(Status::invalid_argument("Hello must come first"))).await;
                return;
            };
            let (number, first) = {
                let mut s = state.lock().unwrap();
                s.hellos.push((hello, token));
                s.streams_opened += 1;
                let number = s.streams_opened;
                if let Some(leader) = s.redirect_to.clone() {
                    let redirect = pb::Redirect { leader_id: Some(2), leader_api_addr: leader };
                    (number, vec![coordinator(pb::coordinator_message::Msg::Redirect(redirect))])
                } else {
                    let welcome = pb::Welcome {
                        probe_id: 1,
                        heartbeat_interval_ms: 200,
                        max_batch_results: 500,
                        max_batch_delay_ms: 100,
                        coordinators: s.peers.clone(),
                    };
                    let mut first = vec![coordinator(pb::coordinator_message::Msg::Welcome(welcome))];
                    if let Some(a) = s.assignment.clone() {
                        first.push(coordinator(pb::coordinator_message::Msg::Assignment(a)));
                    }
                    s.stream = Some((number, tx.clone()));
                    (number, first)
                }
            };
            for m in first {
                let _ = tx.send(Ok(m)).await;
            }
            // Only the state holds the sender from here, so `drop_stream`
            // ends the response stream.
            drop(tx);
            while let Ok(Some(m)) = inbound.message().await {
                let reply = {
                    let mut s = state.lock().unwrap();
                    match m.msg {
                        Some(pb::probe_message::Msg::Results(batch)) => {
                            assert!(batch.results.len() <= 500, "oversized batch");
                            let last = batch.results.iter().map(|r| r.seq).max().unwrap_or(0);
                            s.results.extend(batch.results);
                            if s.acking {
                                s.acked = s.acked.max(last);
                                Some(pb::coordinator_message::Msg::Ack(pb::ResultAck {
                                    up_to_seq: s.acked,
                                    rejected: Vec::new(),
                                }))
                            } else {
                                None
                            }
                        }
                        Some(pb::probe_message::Msg::AssignmentAck(ack)) => {
                            s.assignment_acks.push(ack.version);
                            None
                        }
                        Some(pb::probe_message::Msg::Heartbeat(beat)) => {
                            s.heartbeats.push(beat);
                            None
                        }
                        _ => None,
                    }
                    .and_then(|msg| match &s.stream {
                        Some((n, tx)) if *n == number => Some((tx.clone(), msg)),
                        _ => None,
                    })
                };
                if let Some((tx, msg)) = reply {
                    let _ = tx.send(Ok(coordinator(msg))).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn coordinator(msg: pb::coordinator_message::Msg) -> pb::CoordinatorMessage {
    pb::CoordinatorMessage { msg: Some(msg) }
}

fn endpoint(id: u64, url: String, interval_ms: u64) -> pb::AssignedEndpoint {
    pb::AssignedEndpoint {
        endpoint_id: id,
        name: format!("e{id}"),
        url,
        interval_ms,
        timeout_ms: 2000,
        assertions: None,
        allow_private: true,
        retries: 0,
    }
}

fn full(version: u64, endpoints: Vec<pb::AssignedEndpoint>) -> pb::Assignment {
    pb::Assignment { version, full: true, base_version: 0, upsert: endpoints, remove: Vec::new() }
}

/// A running agent and what it needs to stay alive.
struct RunningAgent {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), client::AgentError>>,
    _dir: tempfile::TempDir,
}

impl RunningAgent {
    /// Stops the agent and checks that it drained and returned cleanly
    /// within its grace period.
    async fn stop(self) {
        self.shutdown.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(3), self.task).await;
        outcome.expect("the agent stops within its grace").unwrap().unwrap();
    }
}

fn write_config(dir: &Path, coordinators: &[String], security: &str, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("probe.token"), "s3cret-token\n").unwrap();
    let list = coordinators.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "probe_id = \"eu-1\"\nregion = \"eu-west\"\ncoordinators = [{list}]\ntoken_file = \"probe.token\"\n\
         {security}\nweight = 150\nmax_concurrency = 8\n{extra}"
    );
    let path = dir.join("probe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_agent(coordinators: &[String], extra: &str) -> RunningAgent {
    start_agent_in(tempfile::tempdir().unwrap(), coordinators, "insecure = true", extra)
}

/// Starts an agent whose config (and token) live in `dir`.
fn start_agent_in(
    dir: tempfile::TempDir,
    coordinators: &[String],
    security: &str,
    extra: &str,
) -> RunningAgent {
    let config = Config::load(&write_config(dir.path(), coordinators, security, extra)).unwrap();
    let tuning = Tuning {
        backoff_first: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(1),
        ..Tuning::default()
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(client::run(config, tuning, shutdown.clone()));
    RunningAgent { shutdown, task, _dir: dir }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

fn ran(results: &[pb::ProbeResult], endpoint_id: u64) -> usize {
    results.iter().filter(|r| r.endpoint_id == endpoint_id && !r.skipped && r.result.is_some()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_registers_with_token_and_checks_the_assignment_at_its_slots() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment =
        Some(full(1, vec![endpoint(11, target.url("/a"), 1000), endpoint(12, target.url("/b"), 1000)]));
    let agent = start_agent(&[fake.url()], "");

    fake.wait_for(Duration::from_secs(5), "two results per endpoint", |s| {
        ran(&s.results, 11) >= 2 && ran(&s.results, 12) >= 2 && !s.heartbeats.is_empty()
    })
    .await;
    {
        let s = fake.state();
        let (hello, token) = &s.hellos[0];
        assert_eq!(token, "Bearer s3cret-token");
        assert_eq!((hello.probe.as_str(), hello.region.as_str()), ("eu-1", "eu-west"));
        assert_eq!((hello.weight, hello.max_concurrency, hello.assignment_version), (150, 8, 0));
        assert_eq!(s.assignment_acks, vec![1]);
        for r in s.results.iter().filter(|r| !r.out_of_slot) {
            // planned start = round * interval + offset(endpoint id).
            let interval = Duration::from_secs(1);
            let planned = slot_start(r.round, interval, slot_offset(r.endpoint_id, interval));
            assert_eq!(r.planned_start_unix_us, planned.as_micros() as i64, "{r:?}");
            let result = r.result.as_ref().unwrap();
            assert!(result.ok, "{result:?}");
            assert!(!r.probe_unhealthy);
        }
        let seqs: Vec<u64> = s.results.iter().map(|r| r.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers rise: {seqs:?}");
        assert_eq!(s.acked, *seqs.last().unwrap());
        let stats = s.heartbeats[0].stats.unwrap();
        assert_eq!(stats.scheduled_endpoints, 2);
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_reconnects_and_resends_unacked_results_with_original_timestamps() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment =
        Some(full(1, vec![endpoint(21, target.url("/"), 300), endpoint(22, target.url("/"), 300)]));
    let agent = start_agent(&[fake.url()], "");

    fake.wait_for(Duration::from_secs(5), "acked results", |s| s.acked > 0 && s.results.len() >= 2).await;
    fake.state().acking = false;
    let acked_at_drop = fake.state().acked;
    fake.wait_for(Duration::from_secs(5), "unacked results", |s| {
        s.results.iter().filter(|r| r.seq > s.acked).count() >= 3
    })
    .await;
    let unacked: BTreeMap<u64, pb::ProbeResult> = {
        let mut s = fake.state();
        s.acking = true;
        s.results.iter().filter(|r| r.seq > acked_at_drop).map(|r| (r.seq, r.clone())).collect()
    };
    fake.drop_stream();

    let last_unacked = *unacked.keys().last().unwrap();
    fake.wait_for(Duration::from_secs(5), "a second stream with the resend acknowledged", |s| {
        s.hellos.len() >= 2 && s.acked >= last_unacked
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    agent.stop().await;

    let s = fake.state();
    assert_eq!(s.hellos[1].0.assignment_version, 1, "the second Hello names the version still run");
    let mut seen = HashSet::new();
    for r in &s.results {
        if !seen.insert(r.seq) {
            assert!(r.seq > acked_at_drop, "seq {} was acknowledged before the drop but sent again", r.seq);
            // A resend carries the original payload and timestamps.
            let original = &unacked[&r.seq];
            assert_eq!(r, original, "resent result differs from the original");
        }
    }
    for seq in unacked.keys() {
        assert!(s.results.iter().filter(|r| r.seq == *seq).count() >= 2, "unacked seq {seq} was not resent");
    }
    let min = *seen.iter().min().unwrap();
    let max = *seen.iter().max().unwrap();
    assert_eq!(seen.len() as u64, max - min + 1, "no sequence number is missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_a_redirect_makes_the_probe_connect_to_the_leader() {
    let leader = FakeCoordinator::start();
    let follower = FakeCoordinator::start();
    // A bare HOST:PORT, as the coordinator's Raft membership stores it.
    follower.state().redirect_to = Some(leader.addr.to_string());
    leader.state().assignment = Some(full(3, Vec::new()));
    let agent = start_agent(&[follower.url()], "");

    leader.wait_for(Duration::from_secs(3), "Hello at the leader", |s| s.assignment_acks == [3]).await;
    assert_eq!(follower.state().hellos.len(), 1);
    assert_eq!(leader.state().hellos[0].1, "Bearer s3cret-token");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t35_after_losing_its_coordinator_the_probe_tries_those_welcome_named() {
    let first = FakeCoordinator::start();
    let second = FakeCoordinator::start();
    first.state().peers = vec![first.url(), second.addr.to_string()];
    first.state().assignment = Some(full(1, Vec::new()));
    second.state().assignment = Some(full(1, Vec::new()));
    let agent = start_agent(&[first.url()], "");
    first.wait_for(Duration::from_secs(3), "the first session", |s| s.assignment_acks == [1]).await;

    first.state().refusing = true;
    first.drop_stream();
    second
        .wait_for(Duration::from_secs(3), "Hello at the second coordinator", |s| !s.hellos.is_empty())
        .await;
    assert_eq!(second.state().hellos[0].0.assignment_version, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_check_now_yields_an_out_of_slot_result() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    // A long interval: the grid may run once, the request must run now.
    fake.state().assignment = Some(full(1, vec![endpoint(41, target.url("/now"), 3_600_000)]));
    let agent = start_agent(&[fake.url()], "");
    fake.wait_for(Duration::from_secs(3), "the assignment ack", |s| s.assignment_acks == [1]).await;

    let asked_at = now_us();
    fake.push(pb::coordinator_message::Msg::CheckNow(pb::CheckNow {
        endpoint_id: 41,
        request_id: "r-1".into(),
    }))
    .await;
    fake.wait_for(Duration::from_secs(3), "the out-of-slot result", |s| {
        s.results.iter().any(|r| r.out_of_slot && r.request_id == "r-1")
    })
    .await;
    {
        let s = fake.state();
        let r = s.results.iter().find(|r| r.out_of_slot).unwrap();
        assert_eq!(r.endpoint_id, 41);
        assert!(r.result.as_ref().unwrap().ok);
        assert!(r.planned_start_unix_us >= asked_at - 1_000_000, "planned at the request, not on the grid");
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_a_delta_removes_an_endpoint() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment =
        Some(full(1, vec![endpoint(51, target.url("/"), 300), endpoint(52, target.url("/"), 300)]));
    let agent = start_agent(&[fake.url()], "");
    fake.wait_for(Duration::from_secs(3), "results from both", |s| {
        ran(&s.results, 51) >= 1 && ran(&s.results, 52) >= 1
    })
    .await;

    let delta =
        pb::Assignment { version: 2, full: false, base_version: 1, upsert: Vec::new(), remove: vec![52] };
    fake.push(pb::coordinator_message::Msg::Assignment(delta)).await;
    fake.wait_for(Duration::from_secs(3), "the delta's ack", |s| s.assignment_acks == [1, 2]).await;
    let removed_at = now_us();
    let before = ran(&fake.state().results, 51);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    agent.stop().await;

    let s = fake.state();
    assert!(ran(&s.results, 51) >= before + 2, "endpoint 51 keeps running");
    let late: Vec<_> =
        s.results.iter().filter(|r| r.endpoint_id == 52 && r.planned_start_unix_us > removed_at).collect();
    assert!(late.is_empty(), "endpoint 52 ran after its removal: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_tls_with_the_coordinator_ca_pinned() {
    let (ca_pem, cert_pem, key_pem) = coordinator_pki();
    let (other_ca_pem, _, _) = coordinator_pki();
    let fake = FakeCoordinator::start_tls(&cert_pem, &key_pem);
    fake.state().assignment = Some(full(1, Vec::new()));
    let url = format!("https://{}", fake.addr);

    // A different CA: the handshake fails, nothing reaches the service.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &other_ca_pem).unwrap();
    let stranger = start_agent_in(dir, std::slice::from_ref(&url), "ca_file = \"ca.pem\"", "");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(fake.state().hellos.is_empty(), "a server the pinned CA did not sign got the token");
    stranger.stop().await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    let agent = start_agent_in(dir, &[url], "ca_file = \"ca.pem\"", "");
    fake.wait_for(Duration::from_secs(3), "Hello over TLS", |s| s.assignment_acks == [1]).await;
    assert_eq!(fake.state().hellos[0].1, "Bearer s3cret-token");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_a_restarted_probe_resends_its_spooled_results() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment = Some(full(1, vec![endpoint(71, target.url("/"), 200)]));
    fake.state().acking = false;
    let spool = tempfile::tempdir().unwrap();
    let spool_line = format!("spool_dir = \"{}\"\n", spool.path().display());
    let first = start_agent(&[fake.url()], &spool_line);
    fake.wait_for(Duration::from_secs(3), "unacked results", |s| s.results.len() >= 3).await;
    first.stop().await;
    let before: BTreeMap<u64, pb::ProbeResult> =
        fake.state().results.iter().map(|r| (r.seq, r.clone())).collect();
    let received_before = fake.state().results.len();

    fake.state().acking = true;
    let second = start_agent(&[fake.url()], &spool_line);
    let last = *before.keys().last().unwrap();
    fake.wait_for(Duration::from_secs(3), "the resend acknowledged", |s| s.acked > last).await;
    second.stop().await;

    let s = fake.state();
    let after_restart = &s.results[received_before..];
    for (seq, original) in &before {
        let resent = after_restart.iter().find(|r| r.seq == *seq);
        assert_eq!(resent, Some(original), "seq {seq} not resent as it was after the restart");
    }
    let fresh: Vec<u64> = after_restart.iter().map(|r| r.seq).filter(|q| !before.contains_key(q)).collect();
    assert!(
        !fresh.is_empty() && fresh.iter().all(|q| *q > last),
        "numbers continue after the restart: {fresh:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t80_an_orphaned_probe_stops_checking_after_orphan_ttl() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment = Some(full(1, vec![endpoint(81, target.url("/"), 200)]));
    let agent = start_agent(&[fake.url()], "orphan_ttl = \"1s\"\n");
    fake.wait_for(Duration::from_secs(3), "results", |s| ran(&s.results, 81) >= 2).await;

    {
        let mut s = fake.state();
        s.refusing = true;
        s.assignment = None;
    }
    fake.drop_stream();
    let dropped_at = now_us();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    fake.state().refusing = false;
    fake.wait_for(Duration::from_secs(3), "a new stream", |s| s.hellos.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.stop().await;

    let s = fake.state();
    assert_eq!(
        s.hellos.last().unwrap().0.assignment_version,
        0,
        "the orphaned probe asks for a full assignment"
    );
    let planned: Vec<i64> = s.results.iter().map(|r| r.planned_start_unix_us).collect();
    assert!(
        planned.iter().any(|p| *p > dropped_at + 200_000 && *p < dropped_at + 1_000_000),
        "kept checking while disconnected"
    );
    let late: Vec<_> = planned.iter().filter(|p| **p > dropped_at + 1_500_000).collect();
    assert!(late.is_empty(), "checked after orphan_ttl: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t90_failing_canaries_mark_results_probe_unhealthy() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment = Some(full(1, vec![endpoint(91, target.url("/"), 200)]));
    let canary =
        format!("canary_urls = [\"http://{}/\"]\ncanary_interval = \"1s\"\n", vantage_tests::refused_addr());
    let agent = start_agent(&[fake.url()], &canary);
    fake.wait_for(Duration::from_secs(3), "unhealthy results and heartbeats", |s| {
        s.results.iter().any(|r| r.probe_unhealthy) && s.heartbeats.iter().any(|h| h.unhealthy)
    })
    .await;
    agent.stop().await;
}

/// A CA and a certificate for 127.0.0.1 signed by it (PEM: CA, cert, key).
fn coordinator_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t95_the_binary_registers_and_stops_cleanly_on_sigterm() {
    let fake = FakeCoordinator::start();
    fake.state().assignment = Some(full(1, Vec::new()));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[fake.url()], "insecure = true", "");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage-probe"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    fake.wait_for(Duration::from_secs(5), "Hello from the binary", |s| s.assignment_acks == [1]).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status =
        tokio::time::timeout(Duration::from_secs(7), child.wait()).await.expect("exits within its grace");
    assert!(status.unwrap().success());
}

/// A loopback port free a moment ago (the binary binds it itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One raw HTTP/1.1 exchange on loopback: the status code, the head and the
/// body (the server closes after one answer).
fn http_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close before reading everything of an oversized head.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The value of the sample line `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// `promtool check metrics` (Prometheus's own linter of names, types and
/// help) on `text`. Under CI a missing promtool fails; elsewhere the check
/// is skipped with the install hint.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool not found under CI ({e}): apt-get install prometheus")
        }
        Err(_) => {
            eprintln!("skipping promtool check metrics: promtool not found (apt-get install prometheus)");
            return;
        }
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t97_the_binary_serves_its_metrics_on_metrics_addr() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let fake = FakeCoordinator::start();
    fake.state().assignment = Some(full(1, vec![endpoint(97, target.url("/"), 200)]));
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = format!("metrics_addr = \"{metrics_addr}\"\n");
    let config = write_config(dir.path(), &[fake.url()], "insecure = true", &extra);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage-probe"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    fake.wait_for(Duration::from_secs(10), "five acknowledged results", |s| {
        ran(&s.results, 97) >= 5 && s.acked >= s.results.last().map_or(u64::MAX, |r| r.seq)
    })
    .await;
    // The gauges follow on the agent's 100 ms ticks; wait for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (head, text) = loop {
        let (status, head, body) = tokio::task::spawn_blocking(move || {
            http_exchange(metrics_addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        })
        .await
        .unwrap();
        assert_eq!(status, 200, "{head}\n{body}");
        if body.contains("vantage_probe_endpoints_assigned 1\n") {
            break (head, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "endpoints_assigned never 1:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    let (sent_by_fake, acked_by_fake) = {
        let s = fake.state();
        (s.results.len() as f64, s.acked)
    };
    let checks = sample(&text, "vantage_probe_checks_total{trigger=\"slot\"}");
    assert!(checks >= 5.0, "{text}");
    assert_eq!(sample(&text, "vantage_probe_stream_connected"), 1.0);
    assert!(sample(&text, "vantage_probe_results_sent_total") >= sent_by_fake.min(5.0), "{text}");
    assert!(
        sample(&text, "vantage_probe_results_acked_total") >= 5.0,
        "acked through {acked_by_fake}: {text}"
    );
    assert!(sample(&text, "vantage_probe_scheduling_lag_seconds_count") >= 5.0, "{text}");
    assert!(sample(&text, "vantage_probe_scheduling_lag_seconds_bucket{le=\"+Inf\"}") >= 5.0, "{text}");
    assert!(text.contains("# TYPE vantage_probe_scheduling_lag_seconds histogram"), "{text}");
    assert!(text.contains("# TYPE vantage_probe_spool_records gauge"), "{text}");
    assert_eq!(sample(&text, "vantage_probe_spool_dropped_total"), 0.0);
    assert_eq!(sample(&text, "vantage_probe_slots_skipped_total"), 0.0);
    promtool_check(&text);

    // Nothing else is served, and a request head past the limit is refused.
    let (status, _, _) = tokio::task::spawn_blocking(move || {
        http_exchange(metrics_addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(status, 404);
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(64 * 1024));
    let (status, head, _) =
        tokio::task::spawn_blocking(move || http_exchange(metrics_addr, huge.as_bytes())).await.unwrap();
    assert!(status == 431 || status == 0, "an oversized head is refused or cut off: {head}");

    // The stream goes away: the gauge says so.
    fake.state().refusing = true;
    fake.drop_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, _, body) = tokio::task::spawn_blocking(move || {
            http_exchange(metrics_addr, b"GET /metrics HTTP/1.1\r\n\r\n")
        })
        .await
        .unwrap();
        if body.contains("vantage_probe_stream_connected 0\n") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still connected:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(7), child.wait()).await.expect("exits within its grace");
    assert!(status.unwrap().success());
}

#[test]
fn the_binary_names_metrics_addr_when_it_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &["http://127.0.0.1:1".into()],
        "insecure = true",
        &format!("metrics_addr = \"{addr}\"\n"),
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vantage-probe"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("metrics_addr = {addr}: cannot listen")), "{stderr}");
}

#[test]
fn the_binary_refuses_a_bad_config_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(&path, "probe_id = \"eu-1\"\nregion = \"eu west\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vantage-probe"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing key \"coordinators\""), "{stderr}");
}

#[test]
fn config_errors_name_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.token"), "t\n").unwrap();
    let token = dir.path().join("probe.token").display().to_string();
    let base = format!("probe_id = \"eu-1\"\nregion = \"eu-west\"\ntoken_file = \"{token}\"\n");
    let cases: &[(&str, &str)] = &[
        (
            "regoin = \"x\"\ncoordinators = [\"http://127.0.0.1:1\"]\ninsecure = true\n",
            "probe.toml:4: unknown key \"regoin\" in the top level: did you mean \"region\"?",
        ),
        (
            "coordinators = [\n  \"http://127.0.0.1:1\",\n  \"ftp://x:1\",\n]\ninsecure = true\n",
            "probe.toml:6: coordinators[1]: \"ftp://x:1\" must be http://HOST:PORT",
        ),
        (
            "coordinators = [\"https://127.0.0.1:1\"]\n",
            "probe.toml: ca_file: set ca_file to the coordinator CA",
        ),
        (
            "coordinators = [\"http://127.0.0.1:1\"]\ninsecure = true\nweight = 0\n",
            "probe.toml:6: weight: 0 is out of range (1..=1000)",
        ),
        (
            "coordinators = [\"http://127.0.0.1:1\"]\ninsecure = true\norphan_ttl = \"soon\"\n",
            "probe.toml:6: orphan_ttl: invalid duration \"soon\"",
        ),
        (
            "coordinators = [\"http://127.0.0.1:1\"]\ninsecure = true\nresolvers = [\"dns.example\"]\n",
            "probe.toml:6: resolvers: invalid socket address \"dns.example\"",
        ),
        ("coordinators = []\ninsecure = true\n", "probe.toml:4: coordinators: list at least one coordinator"),
        (
            "coordinators = [\"http://127.0.0.1:1\"]\ninsecure = true\nmetrics_addr = \"localhost:9465\"\n",
            "probe.toml:6: metrics_addr: invalid socket address \"localhost:9465\": expected IP:PORT",
        ),
        (
            "coordinators = [\"http://127.0.0.1:1\"]\ninsecure = true\nmetrics_addr = \"127.0.0.1:0\"\n",
            "probe.toml:6: metrics_addr: 127.0.0.1:0 has port 0: give the fixed port Prometheus scrapes",
        ),
    ];
    for (extra, expected) in cases {
        let error = Config::parse(&format!("{base}{extra}"), "probe.toml").unwrap_err().to_string();
        assert!(error.starts_with(expected), "got: {error}\nwanted: {expected}");
    }
    let missing = Config::parse("probe_id = \"a\"\n", "probe.toml").unwrap_err().to_string();
    assert!(missing.starts_with("probe.toml: missing key \"region\""), "{missing}");

    let good =
        Config::parse(&format!("{base}coordinators = [\"127.0.0.1:7400\"]\ninsecure = true\n"), "probe.toml")
            .unwrap();
    assert_eq!(good.coordinator_urls(), vec!["http://127.0.0.1:7400".to_string()]);
    assert_eq!((good.weight, good.orphan_ttl), (100, Duration::from_secs(600)));
}

#[test]
fn the_example_config_in_deploy_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/probe.toml")).unwrap();
    // The example names files that do not exist here; everything before
    // the file checks must pass.
    match Config::parse(&text, "deploy/probe.toml") {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("cannot read"), "{e}"),
    }
}
