//! Agreement end to end, as it runs for real: TLS coordinators, one real
//! `vantage-probe run` agent in each of three regions, a loopback target
//! told which regions to fail (it reads the region from each probe's
//! User-Agent), and the outcome read the way an operator reads it
//! (`vantagectl endpoint status` and `incident list`).
//!
//! - t10: one region failing is `degraded`, never an outage; two of three
//!   open exactly one outage with evidence from both; recovery resolves it.
//! - t20: probes SIGKILLed while the target is up: their regions become
//!   Unknown; with two regions gone the endpoint is `unknown`, never down.
//! - t30: a target flapping every round is one flapping incident, not an
//!   outage per change.
//! - t40: a new leader (the old one SIGKILLed during an outage, while the
//!   webhook receiver answers 500) neither resolves nor opens the outage
//!   again in its first interval, and delivers: one `webhook-id` for every
//!   attempt of a transition, each transition accepted exactly once.

use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::operator::Deployment;
use vantage_tests::webhook_receiver::{reference_verify, verify, Fault, Receiver};
use vantage_tests::{HttpTarget, TargetOptions};

/// The signing secret of the test webhook (Standard Webhooks form).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const PROBES: [(&str, &str); 3] = [("eu-1", "eu"), ("us-1", "us"), ("ap-1", "ap")];
const RAFT: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n";

/// A deployment with three regions, a probe in each, a target and the
/// endpoint `web` checking it every second.
struct World {
    d: Deployment,
    target: HttpTarget,
    _runtime: tokio::runtime::Runtime,
}

impl World {
    fn start(nodes: usize, extra: &[&str]) -> World {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let target = {
            let _entered = runtime.enter();
            HttpTarget::start(TargetOptions::default()).unwrap()
        };
        // Mesh timings short enough for a test: a silent probe is dropped
        // after 2 s, its endpoints move after 2 s more.
        let tables = format!("{RAFT}[mesh]\nprobe_grace_ms = 2000\nheartbeat_ms = 500\n");
        let mut d = Deployment::start(nodes, &tables).unwrap();
        let leader = d.leader(Duration::from_secs(15)).unwrap();
        d.ok(leader, &["region", "add", "eu", "us", "ap"]).unwrap();
        let url = target.url("/");
        let mut add =
            vec!["endpoint", "add", "web", &url, "--interval", "1s", "--timeout", "500ms", "--allow-private"];
        add.extend(extra);
        d.ok(leader, &add).unwrap();
        for (name, region) in PROBES {
            d.add_probe(leader, name, region, "").unwrap();
            d.start_probe(name).unwrap();
        }
        World { d, target, _runtime: runtime }
    }

    fn leader(&self) -> usize {
        self.d.leader(Duration::from_secs(15)).unwrap()
    }

    /// Polls `endpoint status web --json` until its state is `state`.
    #[track_caller]
    fn wait_state(&self, state: &str, within: Duration) -> Value {
        let n = self.leader();
        self.d
            .wait_json(n, &["endpoint", "status", "web"], within, &format!("web {state}"), |v| {
                v["state"] == state
            })
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn state(&self) -> String {
        let status = self.d.json(self.leader(), &["endpoint", "status", "web"]).unwrap();
        status["state"].as_str().unwrap_or("?").to_string()
    }

    fn incidents(&self) -> Vec<Value> {
        let list = self.d.json(self.leader(), &["incident", "list", "--endpoint", "web"]).unwrap();
        list.as_array().cloned().unwrap_or_default()
    }

    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.incidents().into_iter().filter(|i| i["kind"] == kind).collect()
    }

    /// A webhook for every event, delivering to a receiver on loopback.
    fn webhook(&self) -> Receiver {
        let receiver = Receiver::start(Fault::Ok);
        let url = receiver.url("/hook");
        self.d
            .ok(self.leader(), &["webhook", "add", "oncall", &url, "--secret", SECRET, "--allow-private"])
            .unwrap();
        receiver
    }
}

/// The bodies of the deliveries of `kind` the receiver accepted.
fn events(receiver: &Receiver, kind: &str) -> Vec<Value> {
    receiver
        .seen()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|body| body["type"] == kind)
        .collect()
}

/// Waits until the receiver has `count` deliveries of `kind`.
#[track_caller]
fn wait_events(receiver: &Receiver, kind: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let seen = events(receiver, kind);
        if seen.len() >= count || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn regions_down(incident: &Value) -> Vec<String> {
    let mut regions: Vec<String> = incident["regions_down"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    regions.sort();
    regions
}

#[test]
fn t10_one_region_is_degraded_two_are_one_outage_and_recovery_resolves_it() {
    let w = World::start(1, &[]);
    let receiver = w.webhook();
    w.wait_state("up", Duration::from_secs(30));

    w.target.fail_regions(&["eu"]);
    w.wait_state("degraded", Duration::from_secs(10));
    // It stays degraded: one region of three is never an outage.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_ne!(w.state(), "down", "one failing region opened an outage{}", w.d.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(w.of_kind("outage").is_empty(), "{:?}", w.incidents());

    let failing_at = Instant::now();
    w.target.fail_regions(&["eu", "us"]);
    w.wait_state("down", Duration::from_secs(10));
    eprintln!("outage agreed {:?} after the second region failed", failing_at.elapsed());
    let outages = w.of_kind("outage");
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0]["open"], true);
    assert_eq!(regions_down(&outages[0]), ["eu", "us"], "evidence from both failing regions: {}", outages[0]);
    let shown = w.d.json(w.leader(), &["incident", "show", &outages[0]["id"].to_string()]).unwrap();
    let evidence = shown["opened_evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 3, "every region's evidence: {shown}");
    for region in evidence {
        let probe = &region["probes"][0];
        match region["region"].as_str() {
            Some("ap") => assert_eq!(region["verdict"], "up", "{region}"),
            _ => {
                assert_eq!(region["verdict"], "down", "{region}");
                assert_eq!(probe["status_code"], 503, "{region}");
            }
        }
    }

    let opened = wait_events(&receiver, "outage_opened", 1, Duration::from_secs(10));
    assert_eq!(opened.len(), 1, "one outage_opened webhook: {opened:?}");
    let mut down: Vec<&str> = opened[0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == "down")
        .filter_map(|r| r["region"].as_str())
        .collect();
    down.sort_unstable();
    assert_eq!(down, ["eu", "us"], "the webhook carries both regions' evidence: {}", opened[0]);

    w.target.fail_regions(&[]);
    w.wait_state("up", Duration::from_secs(10));
    let outages = w.of_kind("outage");
    assert_eq!(outages.len(), 1, "exactly one outage in all: {outages:?}");
    assert_eq!(outages[0]["open"], false);
    assert!(outages[0]["resolved_at_unix_ms"].as_i64().is_some(), "{}", outages[0]);
    let resolved = wait_events(&receiver, "outage_resolved", 1, Duration::from_secs(10));
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    // Nothing more arrives later, and every delivery is signed.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(&receiver, "outage_opened").len(), 1);
    assert_eq!(events(&receiver, "outage_resolved").len(), 1);
    assert_eq!(events(&receiver, "degraded").len(), 1, "eu alone was one degraded alert");
    let seen = receiver.seen();
    for delivery in &seen {
        verify(SECRET, delivery).unwrap_or_else(|e| panic!("{}: {e}", delivery.id()));
    }
    reference_verify(SECRET, &seen);
}

#[test]
fn t20_killed_probes_make_their_regions_unknown_never_down() {
    let mut w = World::start(1, &[]);
    w.wait_state("up", Duration::from_secs(30));
    w.d.kill_probe("eu-1");
    // eu goes Unknown (no fresh result, then no probe); two regions still up.
    let n = w.leader();
    w.d.wait_json(n, &["endpoint", "status", "web"], Duration::from_secs(15), "eu unknown", |v| {
        v["regions"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["region"] == "eu" && r["verdict"] == "unknown"))
            || v["state"] == "unknown"
    })
    .ok();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.state(), "up", "two fresh regions up of three is up");

    w.d.kill_probe("us-1");
    w.wait_state("unknown", Duration::from_secs(20));
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(w.state(), "unknown", "{}", w.d.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        w.of_kind("outage").is_empty(),
        "no outage without a quorum of Down regions: {:?}",
        w.incidents()
    );
}

#[test]
fn t30_a_flapping_target_is_one_flapping_incident() {
    let w = World::start(1, &["--recovery-rounds", "1"]);
    w.wait_state("up", Duration::from_secs(30));
    let all = ["eu", "us", "ap"];
    let started = Instant::now();
    let mut flapping_seen = false;
    for round in 0..40 {
        w.target.fail_regions(if round % 2 == 0 { &all } else { &[] });
        std::thread::sleep(Duration::from_millis(1_000));
        if w.state() == "flapping" {
            flapping_seen = true;
            break;
        }
    }
    assert!(flapping_seen, "not flapping after {:?}: {:?}{}", started.elapsed(), w.incidents(), w.d.logs());
    // Keep flapping a while: still one flapping incident, no new outages.
    let outages_then = w.of_kind("outage").len();
    for round in 0..6 {
        w.target.fail_regions(if round % 2 == 0 { &all } else { &[] });
        std::thread::sleep(Duration::from_millis(1_000));
    }
    assert_eq!(w.of_kind("flapping").len(), 1, "{:?}", w.incidents());
    assert_eq!(w.of_kind("outage").len(), outages_then, "no outage per change while flapping");
    eprintln!("flapping after {:?}, {outages_then} outage(s) before it", started.elapsed());
    assert!(outages_then <= 4, "the flapping rule held the alerts to a few: {outages_then}");
}

#[test]
fn t40_a_new_leader_neither_resolves_nor_reopens_in_its_first_interval() {
    let mut w = World::start(3, &[]);
    // The receiver answers 500 until after the failover.
    let receiver = w.webhook();
    receiver.set_default(Fault::Status(500));
    w.wait_state("up", Duration::from_secs(30));
    w.target.fail_regions(&["eu", "us", "ap"]);
    w.wait_state("down", Duration::from_secs(15));
    let before = w.of_kind("outage");
    assert_eq!(before.len(), 1, "{before:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while events(&receiver, "outage_opened").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!events(&receiver, "outage_opened").is_empty(), "the old leader tried to deliver");

    let old = w.leader();
    w.d.kill_node(old);
    let new = w.d.leader(Duration::from_secs(15)).unwrap();
    assert_ne!(new, old);
    // The target still fails: the same outage stays open, none is added.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let outages = w.of_kind("outage");
        assert_eq!(outages.len(), 1, "no outage opened again: {outages:?}");
        assert_eq!(outages[0]["id"], before[0]["id"]);
        assert_eq!(outages[0]["open"], true, "not resolved by the new leader: {outages:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    receiver.set_default(Fault::Ok);
    w.target.fail_regions(&[]);
    w.wait_state("up", Duration::from_secs(20));
    let outages = w.of_kind("outage");
    assert_eq!(outages.len(), 1);
    assert_eq!(outages[0]["open"], false);

    // Across the SIGKILL: every attempt for one transition carried one
    // webhook-id, each transition was accepted exactly once, none is lost.
    let resolved = wait_events(&receiver, "outage_resolved", 1, Duration::from_secs(20));
    assert!(!resolved.is_empty(), "outage_resolved delivered");
    let seen = receiver.seen();
    let mut by_id: std::collections::BTreeMap<String, (String, usize, usize)> = Default::default();
    for r in &seen {
        let kind = serde_json::from_slice::<Value>(&r.body)
            .map(|b| b["type"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let entry = by_id.entry(r.id().to_string()).or_insert((kind, 0, 0));
        entry.1 += 1;
        entry.2 += usize::from(r.status == 200);
    }
    let opened: Vec<_> = by_id.values().filter(|(k, _, _)| k == "outage_opened").collect();
    assert_eq!(
        opened.len(),
        1,
        "one webhook-id for the outage_opened across retries and the failover: {by_id:?}"
    );
    assert!(opened[0].1 >= 2, "retried: {by_id:?}");
    for (id, (kind, _, accepted)) in &by_id {
        assert_eq!(*accepted, 1, "{kind} ({id}) accepted exactly once: {by_id:?}");
    }
    for delivery in &seen {
        verify(SECRET, delivery).unwrap_or_else(|e| panic!("{}: {e}", delivery.id()));
    }
}
