//! History end to end, as it runs for real: three TLS coordinators with
//! `[history] flush_ms = 1000`, a real `vantage-probe run` agent in each of
//! two regions checking a loopback target every second, and the history
//! read the way users read it (`vantagectl endpoint history --json` and
//! `/api/endpoints/NAME/history` on every node).
//!
//! - t10: history accumulates on the leader's flushes; the leader is
//!   SIGKILLed and the new one keeps adding to the same series; once the
//!   probes stop, every surviving node (and the killed one, restarted)
//!   reads the same per-region figures, and no region ever shows more
//!   checks than its probe ran.

use std::time::Duration;

use serde_json::Value;
use vantage_tests::operator::Deployment;
use vantage_tests::{HttpTarget, TargetOptions};

const TABLES: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n\
                      [mesh]\nprobe_grace_ms = 2000\nheartbeat_ms = 500\n[history]\nflush_ms = 1000\n";
const WITHIN: Duration = Duration::from_secs(30);

/// Checks per region in a history view (`regions[].summary.checks`).
fn checks(view: &Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = view["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (r["region"].as_str().unwrap_or("?").to_string(), r["summary"]["checks"].as_u64().unwrap_or(0))
        })
        .collect();
    out.sort();
    out
}

fn total(view: &Value) -> u64 {
    checks(view).iter().map(|(_, n)| n).sum()
}

#[test]
fn t10_history_survives_a_leader_kill_and_reads_the_same_on_every_node() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let target = {
        let _entered = runtime.enter();
        HttpTarget::start(TargetOptions::default()).unwrap()
    };
    let mut d = Deployment::start(3, TABLES).unwrap();
    let leader = d.leader(WITHIN).unwrap();
    d.ok(leader, &["region", "add", "eu", "us"]).unwrap();
    let url = target.url("/");
    d.ok(
        leader,
        &[
            "endpoint",
            "add",
            "web",
            &url,
            "--regions",
            "eu,us",
            "--interval",
            "1s",
            "--timeout",
            "500ms",
            "--allow-private",
        ],
    )
    .unwrap();
    for (name, region) in [("eu-1", "eu"), ("us-1", "us")] {
        d.add_probe(leader, name, region, "").unwrap();
        d.start_probe(name).unwrap();
    }
    let history = ["endpoint", "history", "web"];
    let before = d
        .wait_json(leader, &history, WITHIN, "history of both regions on the leader", |v| {
            checks(v).len() == 2 && checks(v).iter().all(|(_, n)| *n >= 3)
        })
        .unwrap();

    d.kill_node(leader);
    let survivors: Vec<usize> = (1..=3).filter(|&n| n != leader).collect();
    let new_leader = d.leader(WITHIN).unwrap();
    d.wait_json(new_leader, &history, WITHIN, "the new leader adds to the same series", |v| {
        total(v) >= total(&before) + 6
    })
    .unwrap();

    // Stop the probes (SIGTERM: they send what they have), then let the
    // last flush land.
    for name in ["eu-1", "us-1"] {
        d.stop_probe(name, Duration::from_secs(10)).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    d.start_node(leader).unwrap();
    let reference = d.json(new_leader, &history).unwrap();
    let figures = checks(&reference);
    for n in survivors.iter().copied().chain([leader]) {
        d.wait_json(n, &history, WITHIN, &format!("node {n} reads the leader's figures"), |v| {
            checks(v) == figures
        })
        .unwrap();
        let http = d.http_json(n, "/api/endpoints/web/history?window=24h").unwrap();
        assert_eq!(checks(&http), figures, "node {n}'s HTTP API");
    }
    // History never counts a check twice: at most what each probe ran.
    for (name, region) in [("eu-1", "eu"), ("us-1", "us")] {
        let handed_out: u64 = d.probe_log(name).unwrap().handed_out().iter().map(|(a, b)| b - a + 1).sum();
        let counted = figures.iter().find(|(r, _)| r == region).map(|(_, n)| *n).unwrap_or(0);
        assert!(counted <= handed_out, "{region}: {counted} checks in history, the probe ran {handed_out}");
        assert!(counted >= 6, "{region}: only {counted} checks in history");
    }
}
