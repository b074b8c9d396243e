//! The probe admin path end to end, as an operator runs it: one real
//! `vantage-coordinator run` node with TLS, probe tokens issued with the
//! real `vantagectl`, three real `vantage-probe run` agents (one per region)
//! checking a loopback HTTP target, `probe list` showing them connected with
//! endpoints, `probe revoke` ending one's stream, SIGTERM stopping all; and
//! the shard commands (`shard show`, `pin`, `unpin`, `rebalance`) and
//! `check` against real probes and the real check engine.

use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::operator::Deployment;
use vantage_tests::{HttpTarget, TargetOptions};

const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// One coordinator node and its probes, with vantagectl pointed at it.
struct Mesh {
    d: Deployment,
}

impl Mesh {
    /// Certificates, a one-node config with TLS, and the node started.
    fn start() -> Mesh {
        let raft =
            "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n";
        Mesh { d: Deployment::start(1, raft).unwrap() }
    }

    /// A loopback HTTP target (on its own runtime), a node that has elected
    /// itself, the three regions and endpoint `web` checking the target
    /// every second.
    fn with_web_endpoint() -> (tokio::runtime::Runtime, HttpTarget, Mesh) {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let target = {
            let _entered = runtime.enter();
            HttpTarget::start(TargetOptions::default()).unwrap()
        };
        let mesh = Mesh::start();
        mesh.wait_leader();
        let mut regions = vec!["region", "add"];
        regions.extend(REGIONS);
        mesh.ok(&regions);
        let url = target.url("/");
        mesh.ok(&[
            "endpoint",
            "add",
            "web",
            &url,
            "--interval",
            "1s",
            "--timeout",
            "500ms",
            "--allow-private",
        ]);
        (runtime, target, mesh)
    }

    /// Waits until the node has elected itself.
    fn wait_leader(&self) {
        self.d.leader(Duration::from_secs(15)).unwrap();
    }

    /// Issues a token for each (probe, region) and starts the probe.
    fn start_probes(&mut self, probes: &[(&str, &str)]) -> Vec<u64> {
        let mut ids = Vec::new();
        for &(name, region) in probes {
            let issued = self.d.add_probe(1, name, region, "").unwrap();
            assert_eq!(issued["token"].as_str().expect("a token").len(), 64, "{issued}");
            ids.push(issued["probe_id"].as_u64().expect("a probe id"));
            self.d.start_probe(name).unwrap();
        }
        ids
    }

    /// Polls `vantagectl ARGS --json` until `check` holds; returns that
    /// answer.
    #[track_caller]
    fn wait_json(
        &self,
        args: &[&str],
        within: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.d.wait_json(1, args, within, what, check).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.d.ctl(1, args).unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        self.d.ok(1, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        self.d.json(1, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Polls `probe list --json` until `check` holds.
    #[track_caller]
    fn wait_probes(&self, within: Duration, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let list =
            self.wait_json(&["probe", "list"], within, what, |v| v.as_array().is_some_and(|l| check(l)));
        list.as_array().cloned().unwrap_or_default()
    }

    fn log(&self, file: &str) -> String {
        self.d.log(file)
    }

    fn logs(&self) -> String {
        self.d.logs()
    }

    /// SIGTERMs every probe, then the node: each exits 0.
    fn stop(mut self) {
        for name in self.d.running_probes() {
            let status = self.d.stop_probe(&name, Duration::from_secs(10)).unwrap();
            assert!(status.success(), "probe {name} exited with {status:?}{}", self.logs());
        }
        let status = self.d.stop_node(1, Duration::from_secs(15)).unwrap();
        assert!(status.success(), "the coordinator exited with {status:?}{}", self.logs());
    }
}

fn connected_with_endpoints(p: &Value) -> bool {
    p["connected"] == true && p["endpoints"].as_u64().is_some_and(|n| n >= 1)
}

#[test]
fn t80_probes_get_tokens_connect_from_three_regions_and_a_revoked_one_is_cut_off() {
    let (runtime, target, mut mesh) = Mesh::with_web_endpoint();
    let ids = mesh.start_probes(&[("eu-1", "eu"), ("us-1", "us"), ("ap-1", "ap")]);

    let started = Instant::now();
    let probes = mesh.wait_probes(Duration::from_secs(15), "three connected probes with endpoints", |list| {
        list.len() == 3 && list.iter().all(connected_with_endpoints)
    });
    eprintln!("three probes connected with endpoints after {:?}", started.elapsed());
    let mut seen: Vec<&str> = probes.iter().map(|p| p["region"].as_str().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["ap", "eu", "us"]);
    for p in &probes {
        assert!(ids.contains(&p["id"].as_u64().unwrap()), "{p}");
        assert!(!p["version"].as_str().unwrap().is_empty(), "{p}");
        assert!(p["connected_since_unix_ms"].as_i64().unwrap() > 0, "{p}");
    }
    let table = mesh.ok(&["probe", "list"]);
    assert_eq!(table.lines().filter(|l| l.contains(" connected ")).count(), 3, "{table}");

    // Revoke one: its registration is gone at once and its stream ends
    // within a heartbeat or two (the mesh re-checks tokens every heartbeat,
    // 5 s by default), with a clear status the probe logs.
    assert_eq!(mesh.ok(&["probe", "revoke", "ap-1"]), format!("revoked probe ap-1 (id {})\n", ids[2]));
    let revoked_at = Instant::now();
    let left = mesh.wait_probes(Duration::from_secs(5), "the revoked probe unlisted", |list| {
        list.len() == 2 && list.iter().all(|p| p["region"] != "ap")
    });
    assert!(left.iter().all(|p| p["connected"] == true), "{left:?}");
    let deadline = revoked_at + Duration::from_secs(15);
    loop {
        let log = mesh.log("ap-1.log");
        if log.contains("was revoked or rotated") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked probe's stream did not end within 15s{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the revoked probe's stream ended after {:?}", revoked_at.elapsed());
    let node_log = mesh.log("node1.log");
    assert!(node_log.contains("was revoked or rotated"), "{}", mesh.logs());
    let status = mesh.ctl(&["probe", "revoke", "ap-1"]);
    assert_eq!(status.status.code(), Some(1), "revoking twice is an error");

    // SIGTERM everything: each exits 0.
    mesh.stop();
    assert!(target.requests() > 0, "the probes checked the target");
    drop(target);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// The region's one assignment in `shard show --json`: (probe, pinned).
fn assigned(shown: &Value, region: &str) -> Option<(String, bool)> {
    let assignments = shown["assignments"].as_array()?;
    let mine: Vec<&Value> = assignments.iter().filter(|a| a["region"] == region).collect();
    match mine[..] {
        [a] => Some((a["probe"].as_str()?.to_string(), a["pinned"].as_bool()?)),
        _ => None,
    }
}

#[test]
fn t85_shard_show_pin_unpin_rebalance_and_check_against_real_probes() {
    let (runtime, target, mut mesh) = Mesh::with_web_endpoint();
    mesh.start_probes(&[("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us"), ("ap-1", "ap")]);
    mesh.wait_probes(Duration::from_secs(15), "four connected probes", |list| {
        list.len() == 4 && list.iter().all(|p| p["connected"] == true)
    });

    // Who checks web: one probe per region, eu-1 or eu-2 by hashing.
    let shown =
        mesh.wait_json(&["shard", "show", "web"], Duration::from_secs(10), "web placed everywhere", |v| {
            REGIONS.iter().all(|r| assigned(v, r).is_some())
        });
    assert_eq!(shown["endpoint"], "web");
    assert_eq!(assigned(&shown, "us"), Some(("us-1".to_string(), false)));
    let (hashed, pinned) = assigned(&shown, "eu").unwrap();
    assert!(!pinned);
    let other = if hashed == "eu-1" { "eu-2" } else { "eu-1" };

    // Pin web in eu to the other probe: the leader moves it there.
    let out = mesh.ok(&["shard", "pin", "web", "--region", "eu", "--probe", other]);
    assert!(out.starts_with(&format!("pinned endpoint web (id 1) in eu to probe {other}")), "{out}");
    let pinned_at = Instant::now();
    mesh.wait_json(&["shard", "show", "web"], Duration::from_secs(5), "web moved to the pinned probe", |v| {
        assigned(v, "eu") == Some((other.to_string(), true))
    });
    eprintln!("the pin took effect after {:?}", pinned_at.elapsed());
    mesh.wait_probes(Duration::from_secs(5), "the pinned probe holding web", |list| {
        list.iter().any(|p| p["name"] == other && p["endpoints"] == 1)
            && list.iter().any(|p| p["name"] == hashed.as_str() && p["endpoints"] == 0)
    });
    let listed = mesh.json(&["shard", "list", "--region", "eu"]);
    assert_eq!(listed["shards"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["shards"][0]["probe"], other);
    assert_eq!(listed["shards"][0]["pinned"], true);

    // Unpin: hashing places it again, on the probe it chose first.
    mesh.ok(&["shard", "unpin", "web"]);
    mesh.wait_json(&["shard", "show", "web"], Duration::from_secs(5), "web back to hashing", |v| {
        assigned(v, "eu") == Some((hashed.clone(), false))
    });

    // Check now from every region: one row per region, with phases from
    // the real check engine, and exit 0.
    let requests_before = target.requests();
    let checked_at = Instant::now();
    let report = mesh.json(&["check", "web"]);
    eprintln!("check answered after {:?}", checked_at.elapsed());
    assert_eq!(report["ok"], true, "{report}");
    let rows = report["regions"].as_array().unwrap();
    let mut seen: Vec<&str> = rows.iter().map(|r| r["region"].as_str().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["ap", "eu", "us"], "{report}");
    for row in rows {
        assert_eq!(row["outcome"], "ok", "{row}");
        assert_eq!(row["status_code"], 200, "{row}");
        let phases = &row["phases_ms"];
        assert!(phases["total"].as_f64().unwrap() > 0.0, "{row}");
        assert!(phases["connect"].as_f64().unwrap() <= phases["total"].as_f64().unwrap(), "{row}");
        assert!(row["probe"].as_str().unwrap().starts_with(row["region"].as_str().unwrap()), "{row}");
    }
    assert!(target.requests() > requests_before);
    let table = mesh.ok(&["check", "web"]);
    assert!(
        table.starts_with("REGION  PROBE  RESULT    DNS  CONNECT  TLS  TTFB  TRANSFER  TOTAL\n"),
        "{table}"
    );
    assert!(table.ends_with("3 of 3 region(s) ok for web (phases in ms)\n"), "{table}");

    // The probe holding web in eu stops. Within probe_grace it keeps web;
    // rebalance moves it now.
    let dry = mesh.json(&["shard", "rebalance", "--dry-run"]);
    assert!(dry["moves"].as_array().unwrap().is_empty(), "nothing to move while all are connected: {dry}");
    let status = mesh.d.stop_probe(&hashed, Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status:?}");
    mesh.wait_probes(Duration::from_secs(5), "the stopped probe disconnected", |list| {
        list.iter().any(|p| p["name"] == hashed.as_str() && p["connected"] == false)
    });
    assert_eq!(
        assigned(&mesh.json(&["shard", "show", "web"]), "eu"),
        Some((hashed.clone(), false)),
        "kept within grace"
    );
    let rebalanced = mesh.json(&["shard", "rebalance"]);
    assert_eq!(rebalanced["moved"], serde_json::json!({"eu": 1}), "{rebalanced}");
    assert_eq!(rebalanced["expired_probes"], serde_json::json!([hashed]), "{rebalanced}");
    assert_eq!(assigned(&mesh.json(&["shard", "show", "web"]), "eu"), Some((other.to_string(), false)));

    mesh.stop();
    drop(target);
    runtime.shutdown_timeout(Duration::from_secs(1));
}
