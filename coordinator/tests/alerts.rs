//! Webhook delivery end to end: real coordinator nodes (see `harness`), the
//! real dispatcher, and receivers on loopback sockets that this file runs
//! (a hyper server that answers, hangs, resets or floods on cue, and a real
//! Alertmanager when Debian's `prometheus-alertmanager` is installed).
//! Transitions are committed by hand (`Command::RecordTransition`), as the
//! agreement runner will.
//!
//! Every signature is checked twice: by the code below and by the
//! reference verifier of Standard Webhooks (`pip install
//! standardwebhooks==1.0.0`; required under `CI=true`, skipped with a
//! message elsewhere).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use harness::Cluster;
use tokio_util::sync::CancellationToken;
use vantage_coordinator::node::ClusterNode;
use vantage_coordinator::raft::NodeId;
use vantage_coordinator::sinks::retry::RetryPolicy;
use vantage_coordinator::sinks::webhook::{Dispatcher, DispatcherOptions, ServiceOptions, WebhookService};
use vantage_coordinator::state::{
    Command, CommandError, CommandResponse, Delivery, DeliveryStatus, EndpointId, EndpointSpec,
    IdempotencyKey, Outcome, Request, TransitionRecord, UnixMillis, ValidationError, WebhookFormat,
    WebhookId, WebhookSecret, WebhookSpec,
};
use vantage_core::agreement::{ProbeEvidence, RegionEvidence, State, Verdict};
use vantage_core::clock::SystemWallClock;
use vantage_core::result::ErrorKind;
use vantage_tests::webhook_receiver::{reference_verify, verify, Fault, Received, Receiver};

/// The secret of every test webhook (Standard Webhooks form).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Bound for anything that should happen within a few ticks and retries.
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- scenarios

#[test]
fn t10_each_transition_reaches_each_webhook_once_signed_and_recorded() {
    let receiver = Receiver::start(Fault::Ok);
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);
    let standard = add_webhook(&cluster, 1, hook("standard", &receiver.url("/standard")));
    let slack = add_webhook(
        &cluster,
        1,
        WebhookSpec { format: WebhookFormat::Slack, ..hook("slack", &receiver.url("/slack")) },
    );
    let dispatcher = start_dispatcher(&cluster, 1, options());

    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t10-open");
    wait_delivered(&cluster, 1, 2);
    transition(&cluster, 1, endpoint, State::Down, State::Up, "t10-resolve");
    let deliveries = wait_delivered(&cluster, 1, 4);
    // Quiet for a while: nothing is sent twice.
    std::thread::sleep(Duration::from_millis(600));

    let seen = receiver.seen();
    assert_eq!(seen.len(), 4, "one POST per transition and webhook: {seen:#?}");
    for path in ["/standard", "/slack"] {
        let ids: BTreeSet<&str> = seen.iter().filter(|r| r.path == path).map(|r| r.id()).collect();
        assert_eq!(ids.len(), 2, "{path}: one webhook-id per transition");
    }
    for d in &deliveries {
        assert_eq!(d.attempts, 1, "{d:?}");
        assert!(d.last_error.is_none());
        assert!(seen.iter().any(|r| r.id() == d.message_id()), "delivery {} was received", d.id);
    }
    assert_eq!(deliveries.iter().filter(|d| d.webhook == standard).count(), 2);
    assert_eq!(deliveries.iter().filter(|d| d.webhook == slack).count(), 2);
    verify_all(&seen);

    let bodies: Vec<serde_json::Value> = seen
        .iter()
        .filter(|r| r.path == "/standard")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let types: BTreeSet<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, BTreeSet::from(["outage_opened", "outage_resolved"]));
    let opened = bodies.iter().find(|b| b["type"] == "outage_opened").unwrap();
    assert_eq!(opened["endpoint"]["name"], "api");
    assert_eq!(opened["state"], "down");
    assert_eq!(opened["evidence"][0]["region"], "eu");
    assert_eq!(opened["evidence"][0]["probes"][0]["status_code"], 503);
    let slack_body: serde_json::Value =
        serde_json::from_slice(&seen.iter().find(|r| r.path == "/slack").unwrap().body).unwrap();
    assert!(slack_body["text"].as_str().unwrap().contains("api"), "{slack_body}");
    assert!(slack_body["blocks"].is_array());
    stop(&cluster, 1, dispatcher);
}

#[test]
fn t20_the_webhook_id_stays_the_same_across_retries() {
    let receiver = Receiver::start(Fault::Ok);
    receiver.script([Fault::Status(500), Fault::Status(500)]);
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);
    add_webhook(&cluster, 1, hook("oncall", &receiver.url("/hook")));
    let dispatcher = start_dispatcher(&cluster, 1, options());

    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t20-open");
    let delivered = wait_delivered(&cluster, 1, 1);
    std::thread::sleep(Duration::from_millis(400));

    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "two 500s, then the 200: {seen:#?}");
    let ids: BTreeSet<&str> = seen.iter().map(|r| r.id()).collect();
    assert_eq!(ids, BTreeSet::from([delivered[0].message_id().as_str()]), "one webhook-id for every attempt");
    assert_eq!(delivered[0].attempts, 3);
    assert!(delivered[0].last_error.is_none(), "a delivered delivery keeps no error");
    verify_all(&seen);
    stop(&cluster, 1, dispatcher);
}

#[test]
fn t25_one_endpoints_alerts_arrive_in_the_order_they_were_decided() {
    let receiver = Receiver::start(Fault::Ok);
    // The first two attempts fail: the outage_resolved decided meanwhile
    // must still arrive after the outage_opened.
    receiver.script([Fault::Status(500), Fault::Status(500)]);
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);
    add_webhook(&cluster, 1, hook("oncall", &receiver.url("/hook")));
    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t25-open");
    transition(&cluster, 1, endpoint, State::Down, State::Up, "t25-resolve");
    let dispatcher = start_dispatcher(&cluster, 1, options());
    wait_delivered(&cluster, 1, 2);
    let kinds: Vec<String> = receiver
        .seen()
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["outage_opened", "outage_opened", "outage_opened", "outage_resolved"],
        "in order, retries first"
    );
    stop(&cluster, 1, dispatcher);
}

#[test]
fn t30_a_hang_a_reset_and_a_flood_are_retried_until_the_receiver_heals() {
    let receiver = Receiver::start(Fault::Ok);
    receiver.script([Fault::Hang, Fault::Reset, Fault::Huge, Fault::Status(503)]);
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);
    add_webhook(&cluster, 1, hook("oncall", &receiver.url("/hook")));
    let dispatcher = start_dispatcher(&cluster, 1, options());

    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t30-open");
    let delivered = wait_delivered(&cluster, 1, 1);
    std::thread::sleep(Duration::from_millis(400));

    let seen = receiver.seen();
    assert_eq!(seen.len(), 5, "hang, reset, 10 MB, 503, then 200: {seen:#?}");
    assert!(seen.iter().all(|r| r.id() == delivered[0].message_id()), "one webhook-id for every attempt");
    assert_eq!(delivered[0].attempts, 5);
    let answered: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(answered, [0, 0, 200, 503, 200], "no answer, reset, 200 with 10 MB, 503, 200");
    // The reset connection's request was read only to its head.
    verify_all(&seen.iter().filter(|r| !r.body.is_empty()).cloned().collect::<Vec<_>>());
    stop(&cluster, 1, dispatcher);
}

#[test]
fn t35_a_receiver_that_never_heals_ends_in_a_visible_failure() {
    let receiver = Receiver::start(Fault::Status(500));
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);
    add_webhook(&cluster, 1, hook("oncall", &receiver.url("/hook")));
    let mut options = options();
    options.retry.max_attempts = 3;
    let dispatcher = start_dispatcher(&cluster, 1, options);

    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t35-open");
    let failed = cluster.wait_until(SETTLE, "the delivery to fail", || {
        deliveries(&cluster, 1).into_iter().find(|d| matches!(d.status, DeliveryStatus::Failed { .. }))
    });
    std::thread::sleep(Duration::from_millis(400));

    assert_eq!(failed.attempts, 3);
    let error = failed.last_error.clone().unwrap();
    assert!(
        error.starts_with(
            "the receiver answered 500 Internal Server Error: try again later; gave up after 3 attempt(s)"
        ),
        "{error}"
    );
    assert_eq!(receiver.seen().len(), 3, "bounded: no attempt after giving up");
    stop(&cluster, 1, dispatcher);
}

#[test]
fn t40_private_addresses_need_allow_private_and_a_removed_webhook_fails_its_deliveries() {
    let receiver = Receiver::start(Fault::Ok);
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);

    // An IP literal the guard refuses is refused when the webhook is added.
    let literal = WebhookSpec { allow_private: false, ..hook("literal", &receiver.url("/literal")) };
    match cluster.write(1, request("add-literal", Command::AddWebhook(literal))) {
        Ok(CommandResponse::Rejected(CommandError::Invalid(ValidationError::InvalidWebhookUrl {
            reason,
            ..
        }))) => {
            assert!(reason.contains("loopback") && reason.contains("--allow-private"), "{reason}")
        }
        other => panic!("a loopback webhook without allow_private must be refused, got {other:?}"),
    }
    // A name is judged after resolution: localhost resolves to loopback.
    let port = receiver.addr().port();
    let guarded =
        WebhookSpec { allow_private: false, ..hook("guarded", &format!("http://localhost:{port}/guarded")) };
    let allowed =
        WebhookSpec { allow_private: true, ..hook("allowed", &format!("http://localhost:{port}/allowed")) };
    let gone = hook("gone", &receiver.url("/gone"));
    let guarded = add_webhook(&cluster, 1, guarded);
    let allowed = add_webhook(&cluster, 1, allowed);
    let gone = add_webhook(&cluster, 1, gone);
    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t40-open");
    write(&cluster, 1, "remove-gone", Command::RemoveWebhook { id: gone });
    let dispatcher = start_dispatcher(&cluster, 1, options());

    let done = cluster.wait_until(SETTLE, "all three deliveries to be finished", || {
        let all = deliveries(&cluster, 1);
        all.iter().all(|d| !matches!(d.status, DeliveryStatus::Pending { .. })).then_some(all)
    });
    let of = |webhook: WebhookId| done.iter().find(|d| d.webhook == webhook).unwrap().clone();
    let refused = of(guarded);
    assert!(matches!(refused.status, DeliveryStatus::Failed { .. }), "{refused:?}");
    let error = refused.last_error.unwrap();
    assert!(
        error.starts_with("localhost resolves to")
            && error.contains("loopback address, refused by the SSRF guard"),
        "{error}"
    );
    assert_eq!(refused.attempts, 1, "a refused address is not retried");
    assert!(matches!(of(allowed).status, DeliveryStatus::Delivered { .. }));
    let removed = of(gone);
    assert!(matches!(removed.status, DeliveryStatus::Failed { .. }));
    assert!(removed.last_error.unwrap().contains("was removed"), "the failure says why");
    assert_eq!(removed.attempts, 0, "nothing was sent");
    let paths: Vec<String> = receiver.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/allowed"], "nothing reached the receiver but the allowed webhook's POST");
    stop(&cluster, 1, dispatcher);
}

#[test]
fn t50_a_new_leader_delivers_with_the_same_webhook_id() {
    let receiver = Receiver::start(Fault::Status(500));
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let endpoint = add_endpoint(&cluster, leader);
    add_webhook(&cluster, leader, hook("oncall", &receiver.url("/hook")));
    let mut dispatchers: BTreeMap<NodeId, Running> =
        [1, 2, 3].into_iter().map(|id| (id, start_dispatcher(&cluster, id, options()))).collect();
    transition(&cluster, leader, endpoint, State::Unknown, State::Down, "t50-open");
    cluster
        .wait_until(SETTLE, "the leader to have tried twice", || (receiver.seen().len() >= 2).then_some(()));

    // SIGKILL the leader while the receiver still answers 500.
    dispatchers.remove(&leader);
    cluster.kill(leader);
    let survivors: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let new_leader = cluster.wait_for_leader(&survivors, SETTLE);
    let before_heal = receiver.seen().len();
    receiver.set_default(Fault::Ok);
    let delivered = wait_delivered(&cluster, new_leader, 1);
    std::thread::sleep(Duration::from_millis(400));

    let seen = receiver.seen();
    assert!(seen.len() > before_heal, "the new leader sent it");
    let ids: BTreeSet<&str> = seen.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([delivered[0].message_id().as_str()]),
        "one webhook-id across the failover"
    );
    assert_eq!(seen.iter().filter(|r| r.status == 200).count(), 1, "delivered once");
    verify_all(&seen);
    for (id, dispatcher) in dispatchers {
        stop(&cluster, id, dispatcher);
    }
}

#[test]
fn t60_alertmanager_shows_the_outage_active_then_resolved() {
    let Some(binary) = alertmanager_binary() else { return };
    let am = Alertmanager::start(&binary);
    let cluster = Cluster::start(1);
    cluster.wait_for_leader(&[1], SETTLE);
    let endpoint = add_endpoint(&cluster, 1);
    let spec = WebhookSpec {
        format: WebhookFormat::Alertmanager,
        // No path: the dispatcher posts to /api/v2/alerts.
        ..hook("alertmanager", &format!("http://127.0.0.1:{}", am.port))
    };
    add_webhook(&cluster, 1, spec);
    let dispatcher = start_dispatcher(&cluster, 1, options());

    transition(&cluster, 1, endpoint, State::Unknown, State::Down, "t60-open");
    wait_delivered(&cluster, 1, 1);
    let active = am.wait_for_alerts(|alerts| !alerts.is_empty());
    let alert = &active[0];
    assert_eq!(alert["labels"]["alertname"], "VantageOutage", "{alert}");
    assert_eq!(alert["labels"]["endpoint"], "api");
    assert_eq!(alert["labels"]["team"], "core", "the endpoint's labels are the alert's");
    assert_eq!(alert["status"]["state"], "active");
    assert!(alert["annotations"]["description"].as_str().unwrap().contains("eu: down"), "{alert}");
    // Alertmanager's resolve_timeout is 2 s here: re-posts keep it active.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(am.alerts().len(), 1, "re-posted, so still active after resolve_timeout");

    transition(&cluster, 1, endpoint, State::Down, State::Up, "t60-resolve");
    wait_delivered(&cluster, 1, 2);
    am.wait_for_alerts(|alerts| alerts.is_empty());
    stop(&cluster, 1, dispatcher);
}

// ---------------------------------------------------------------- the cluster side

fn options() -> DispatcherOptions {
    DispatcherOptions {
        tick: Duration::from_millis(50),
        retry: RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            max_attempts: 10,
            give_up_after: Duration::from_secs(60),
        },
        service: WebhookService::new(ServiceOptions {
            timeout: Duration::from_secs(1),
            ..ServiceOptions::default()
        })
        .unwrap(),
        alertmanager_repost: Duration::from_millis(500),
        ..DispatcherOptions::default()
    }
}

/// A dispatcher running on one node's runtime.
struct Running {
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
}

fn start_dispatcher(cluster: &Cluster, id: NodeId, options: DispatcherOptions) -> Running {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let dispatcher = cluster.on(id, |node: ClusterNode| async move {
        Dispatcher::start(node, Arc::new(SystemWallClock), options, token)
    });
    Running { dispatcher, shutdown }
}

/// Cancels a dispatcher and waits (bounded) for what it has in flight.
fn stop(cluster: &Cluster, id: NodeId, running: Running) {
    running.shutdown.cancel();
    let stopped = cluster.on(id, |_| async move {
        tokio::time::timeout(Duration::from_secs(5), running.dispatcher.stopped()).await.is_ok()
    });
    assert!(stopped, "the dispatcher on node {id} stopped within 5s of its shutdown");
}

fn request(key: &str, command: Command) -> Request {
    Request {
        idempotency_key: IdempotencyKey(key.into()),
        issued_at: UnixMillis::from(SystemTime::now()),
        command,
    }
}

fn write(cluster: &Cluster, via: NodeId, key: &str, command: Command) -> Outcome {
    match cluster.write(via, request(key, command)) {
        Ok(CommandResponse::Applied(outcome)) => outcome,
        other => panic!("{key}: {other:?}"),
    }
}

fn add_endpoint(cluster: &Cluster, via: NodeId) -> EndpointId {
    write(cluster, via, "add-eu", Command::AddRegion { name: "eu".into() });
    write(cluster, via, "add-us", Command::AddRegion { name: "us".into() });
    let mut spec = EndpointSpec::new("api", "https://api.example.com/health");
    spec.labels = [("team".to_string(), "core".to_string())].into();
    match write(cluster, via, "add-api", Command::AddEndpoint(spec)) {
        Outcome::EndpointAdded { id } => id,
        other => panic!("{other:?}"),
    }
}

fn hook(name: &str, url: &str) -> WebhookSpec {
    WebhookSpec { allow_private: true, ..WebhookSpec::new(name, url, SECRET) }
}

fn add_webhook(cluster: &Cluster, via: NodeId, spec: WebhookSpec) -> WebhookId {
    assert_eq!(spec.secret, WebhookSecret(SECRET.into()));
    match write(cluster, via, &format!("add-webhook-{}", spec.name), Command::AddWebhook(spec)) {
        Outcome::WebhookAdded { id } => id,
        other => panic!("{other:?}"),
    }
}

fn transition(cluster: &Cluster, via: NodeId, endpoint: EndpointId, from: State, to: State, key: &str) {
    let down = Verdict::Down(ErrorKind::HttpStatus);
    let region = |name: &str, verdict: Verdict| RegionEvidence {
        region: name.into(),
        verdict,
        probes: vec![ProbeEvidence {
            probe_id: 7,
            verdict,
            message: (verdict != Verdict::Up).then(|| "status 503 is not one of 200-399".to_string()),
            status_code: Some(if verdict == Verdict::Up { 200 } else { 503 }),
            total_us: 42_000,
            ttfb_us: 40_000,
            started_at_unix_us: vantage_core::time::unix_micros(SystemTime::now()),
        }],
    };
    let verdict = if to == State::Down { down } else { Verdict::Up };
    let record = TransitionRecord {
        endpoint,
        from,
        to,
        at: UnixMillis::from(SystemTime::now()),
        alert: true,
        evidence: vec![region("eu", verdict), region("us", verdict)],
    };
    match write(cluster, via, key, Command::RecordTransition(record)) {
        Outcome::TransitionRecorded { .. } => {}
        other => panic!("{other:?}"),
    }
}

fn deliveries(cluster: &Cluster, id: NodeId) -> Vec<Delivery> {
    cluster.node(id).read_local(|a| a.mesh.deliveries().values().cloned().collect())
}

/// Waits until `count` deliveries are recorded delivered on node `id`.
fn wait_delivered(cluster: &Cluster, id: NodeId, count: usize) -> Vec<Delivery> {
    cluster.wait_until(SETTLE, &format!("{count} deliveries delivered on node {id}"), || {
        let all = deliveries(cluster, id);
        let delivered: Vec<Delivery> =
            all.into_iter().filter(|d| matches!(d.status, DeliveryStatus::Delivered { .. })).collect();
        (delivered.len() >= count).then_some(delivered)
    })
}

// ---------------------------------------------------------------- signatures

/// Checks every request's signature with this file's code and with the
/// reference verifier.
fn verify_all(seen: &[Received]) {
    for received in seen {
        verify(SECRET, received).unwrap_or_else(|e| panic!("{}: {e}", received.id()));
    }
    reference_verify(SECRET, seen);
}

// ---------------------------------------------------------------- Alertmanager

/// Debian's `prometheus-alertmanager`, or `None` (skip) when it is not
/// installed; under `CI=true` its absence fails the test.
fn alertmanager_binary() -> Option<String> {
    for candidate in ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"] {
        if Path::new(candidate).exists() {
            return Some(candidate.to_string());
        }
    }
    let how = "install it with: apt-get install prometheus-alertmanager";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "prometheus-alertmanager is missing; {how}");
    eprintln!("skipping the Alertmanager test (prometheus-alertmanager not found; {how})");
    None
}

/// A real Alertmanager on a loopback port, killed on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(binary: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "global:\n  resolve_timeout: 2s\nroute:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Process::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: nothing listens beyond the loopback web port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let am = Alertmanager { child, port, _dir: dir };
        harness::wait_until(SETTLE, "alertmanager to be ready", &mut || {
            http_get(am.port, "/-/ready").filter(|(status, _)| *status == 200).map(|_| ())
        });
        am
    }

    /// `GET /api/v2/alerts`: the active (not resolved) alerts.
    fn alerts(&self) -> Vec<serde_json::Value> {
        let (status, body) = http_get(self.port, "/api/v2/alerts").expect("alertmanager answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn wait_for_alerts(&self, mut ok: impl FnMut(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        harness::wait_until(SETTLE, "alertmanager's alerts", &mut || {
            let alerts = self.alerts();
            ok(&alerts).then_some(alerts)
        })
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}
