//! The coordinator cluster as an operator runs it: three real
//! `vantage-coordinator run` processes with TLS on loopback, driven by the
//! real `vantagectl`, crashed with SIGKILL and stopped with SIGTERM.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::operator::Deployment;
use vantage_tests::process::workspace_bin;

/// Three initial members (plus spares to add), vantagectl per node.
struct Cluster {
    d: Deployment,
}

impl Cluster {
    /// Writes certificates and three configs, and starts the nodes.
    fn start() -> Cluster {
        Cluster::with_spares(0)
    }

    /// Like [`Cluster::start`], plus `spares` configs of nodes to add
    /// (nodes 4, 5 …), not started.
    fn with_spares(spares: usize) -> Cluster {
        let raft =
            "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n";
        Cluster { d: Deployment::start_with(3, spares, raft).unwrap() }
    }

    fn path(&self) -> &Path {
        self.d.path()
    }

    fn start_node(&mut self, n: usize) {
        self.d.start_node(n).unwrap();
    }

    /// Runs vantagectl against node `n`.
    fn ctl(&self, n: usize, args: &[&str]) -> Output {
        self.d.ctl(n, args).unwrap()
    }

    #[track_caller]
    fn ok(&self, n: usize, args: &[&str]) -> String {
        self.d.ok(n, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[track_caller]
    fn json(&self, n: usize, args: &[&str]) -> Value {
        self.d.json(n, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Polls `cluster status --json` on node `n` until `check` holds.
    #[track_caller]
    fn wait_status(&self, n: usize, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let what = format!("cluster status on node {n}");
        self.d.wait_json(n, &["cluster", "status"], within, &what, check).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn leader(&self, status: &Value) -> usize {
        status["leader_id"].as_u64().expect("a leader") as usize
    }

    fn raft(&self, n: usize) -> String {
        self.d.raft_addr(n)
    }

    fn logs(&self) -> String {
        self.d.logs()
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn t10_three_processes_elect_a_leader_and_every_vantagectl_command_round_trips() {
    let mut c = Cluster::start();
    let status = c.wait_status(2, Duration::from_secs(15), |s| s["leader_id"].is_u64());
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let leader = c.leader(&status);
    for m in members {
        let role = if m["id"].as_u64() == Some(leader as u64) { "leader" } else { "follower" };
        assert_eq!(m["role"], role, "{status}");
        assert!(
            m["api_addr"].is_string() && m["raft_addr"].is_string() && m["last_applied"].is_u64(),
            "{status}"
        );
        assert_eq!(m["reachable"], true);
    }
    let follower = if leader == 1 { 2 } else { 1 };

    // Regions and endpoints, through a follower (forwarded to the leader).
    c.ok(follower, &["region", "add", "eu-west", "us-east", "old"]);
    assert_eq!(names(&c.json(follower, &["region", "list"])), ["eu-west", "old", "us-east"]);
    c.ok(follower, &["region", "rm", "old"]);
    c.ok(
        follower,
        &[
            "endpoint",
            "add",
            "api",
            "https://api.example.com/health",
            "--interval",
            "30s",
            "--timeout",
            "5s",
            "--regions",
            "eu-west",
            "--label",
            "team=core",
            "--expect-status",
            "200-299",
        ],
    );
    c.ok(leader, &["endpoint", "add", "db", "tcp://db.example.com:5432"]);
    let list = c.json(3, &["endpoint", "list", "--consistent"]);
    let endpoints = list.as_array().unwrap();
    assert_eq!(names(&list), ["api", "db"]);
    assert!(endpoints.iter().all(|e| e["id"].is_u64() && e["url"].is_string()), "{list}");
    assert_eq!(endpoints[0]["url"], "https://api.example.com/health");
    c.ok(follower, &["endpoint", "update", "api", "--interval", "60s"]);
    assert_eq!(c.json(leader, &["endpoint", "get", "api", "--consistent"])["interval_ms"], 60_000);
    c.ok(follower, &["endpoint", "pause", "db"]);
    assert_eq!(c.json(leader, &["endpoint", "get", "db", "--consistent"])["paused"], true);
    c.ok(follower, &["endpoint", "resume", "db"]);
    c.ok(follower, &["endpoint", "rm", "db"]);
    assert_eq!(names(&c.json(follower, &["endpoint", "list"])), ["api"]);

    // Bad input changes nothing and says why.
    let out = c.ctl(follower, &["endpoint", "add", "api", "https://x.example/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("endpoint \"api\" already exists"));
    let out = c.ctl(follower, &["endpoint", "add", "x", "https://x.example/", "--regions", "mars"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown region \"mars\""), "{out:?}");
    let out = c.ctl(follower, &["endpoint", "add", "x", "htp:/x"]);
    assert_eq!(out.status.code(), Some(2), "a bad URL is a usage error: {out:?}");

    // Webhooks and maintenance.
    c.ok(
        follower,
        &["webhook", "add", "oncall", "https://hooks.example.com/x", "--secret", "0123456789abcdef0123"],
    );
    c.ok(follower, &["webhook", "update", "oncall", "--url", "https://hooks.example.com/y"]);
    let hooks = c.json(leader, &["webhook", "list", "--consistent"]);
    assert_eq!(hooks[0]["url"], "https://hooks.example.com/y");
    c.ok(follower, &["webhook", "rm", "oncall"]);
    c.ok(
        follower,
        &[
            "maintenance",
            "add",
            "--start",
            "now",
            "--end",
            "+1h",
            "--endpoint",
            "api",
            "--reason",
            "db upgrade",
        ],
    );
    let windows = c.json(follower, &["maintenance", "list", "--consistent"]);
    let id = windows[0]["id"].as_u64().unwrap().to_string();
    c.ok(follower, &["maintenance", "rm", &id]);

    // Configuration as code: the second apply changes nothing.
    let file = c.path().join("mesh.yaml");
    std::fs::write(
        &file,
        "regions: [eu-west, us-east]\nendpoints:\n  - name: api\n    url: https://api.example.com/health\n    interval: 60s\n    timeout: 5s\n    regions: [eu-west]\n    labels: {team: core}\n    expect: {status: \"200-299\"}\n  - name: web\n    url: https://www.example.com/\n    interval: 30s\nwebhooks:\n  - name: pager\n    url: https://hooks.example.com/pager\n    secret: \"abcdefabcdefabcdef01\"\n",
    )
    .unwrap();
    let first = c.json(follower, &["apply", "-f", file.to_str().unwrap()]);
    assert!(!first["changes"].as_array().unwrap().is_empty(), "{first}");
    let second = c.json(leader, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(second["changes"], serde_json::json!([]), "a second apply changes nothing: {second}");
    let export = c.ok(3, &["export"]);
    assert!(export.contains("name: web") && export.contains("secret_env:"), "{export}");

    // Cluster operations.
    let snap = c.ok(follower, &["cluster", "snapshot"]);
    assert!(!snap.trim().is_empty());

    // The HTTP health endpoint, checked by our own probe over TLS.
    let probe = workspace_bin("vantage-probe").unwrap();
    let ca = c.path().join("pki/ca.pem");
    let health = format!("https://{}/healthz", c.d.http_addr(1));
    let out = Command::new(probe)
        .args([
            "check",
            "--json",
            "--allow-private",
            "--ca",
            ca.to_str().unwrap(),
            "--expect-json",
            "/status=ok",
            &health,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "/healthz: {}", String::from_utf8_lossy(&out.stdout));

    // Everyone stops cleanly on SIGTERM.
    for n in 1..=3 {
        let status = c.d.stop_node(n, Duration::from_secs(10)).unwrap();
        assert!(status.success(), "node {n} exited with {status}: {}", c.logs());
    }
}

#[test]
fn t20_sigkill_the_leader_then_lose_quorum_then_recover() {
    let mut c = Cluster::start();
    let status = c.wait_status(1, Duration::from_secs(15), |s| s["leader_id"].is_u64());
    let leader = c.leader(&status);
    let others: Vec<usize> = (1..=3).filter(|n| *n != leader).collect();
    for i in 0..5 {
        c.ok(others[0], &["region", "add", &format!("r{i}")]);
    }

    // Crash the leader: a new one is elected and every acknowledged write is there.
    c.d.kill_node(leader);
    let killed_at = Instant::now();
    let status = c.wait_status(others[0], Duration::from_secs(5), |s| {
        s["leader_id"].as_u64().is_some_and(|l| l != leader as u64)
    });
    let failover = killed_at.elapsed();
    // Election timeout max is 1 s here; a follower first waits out the
    // leader lease (1 s) then its own election timeout (≤ 1 s), and the
    // status is polled every 100 ms through a CLI process.
    assert!(failover < Duration::from_millis(3500), "failover took {failover:?}");
    c.ok(others[1], &["region", "add", "after-crash"]);
    let regions = names(&c.json(others[0], &["region", "list", "--consistent"]));
    assert_eq!(regions.len(), 6, "{regions:?}");
    let new_leader = c.leader(&status);

    // The crashed node restarts from its data dir and catches up.
    c.start_node(leader);
    c.wait_status(new_leader, Duration::from_secs(15), |s| {
        let applied: Vec<u64> =
            s["members"].as_array().unwrap().iter().map(|m| m["last_applied"].as_u64().unwrap()).collect();
        applied.iter().all(|a| *a == applied[0] && *a > 0)
            && s["members"].as_array().unwrap().iter().all(|m| m["reachable"] == true)
    });

    // Stop two of three: writes fail with the quorum message, local reads answer.
    let survivor = leader;
    for n in (1..=3).filter(|n| *n != survivor) {
        c.d.stop_node(n, Duration::from_secs(10)).unwrap();
    }
    let out = c.ctl(survivor, &["region", "add", "no-quorum"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no leader: 1 of 3 nodes reachable, a quorum needs 2"), "{stderr}");
    assert_eq!(names(&c.json(survivor, &["region", "list"])).len(), 6, "local reads still answer");

    // Bring them back: writes resume.
    for n in (1..=3).filter(|n| *n != survivor) {
        c.start_node(n);
    }
    c.wait_status(survivor, Duration::from_secs(15), |s| s["leader_id"].is_u64());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.ctl(survivor, &["region", "add", "recovered"]).status.success() {
        assert!(Instant::now() < deadline, "writes did not resume: {}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(names(&c.json(survivor, &["region", "list", "--consistent"])).len(), 7);
}

#[test]
fn t30_membership_through_vantagectl_add_transfer_remove_and_ids_never_reused() {
    let mut c = Cluster::with_spares(1);
    let status = c.wait_status(1, Duration::from_secs(15), |s| s["leader_id"].is_u64());
    let leader = c.leader(&status);
    let follower = if leader == 1 { 2 } else { 1 };

    // A fourth node joins: started, then added (learner, then voter).
    c.start_node(4);
    let api4 = c.d.api_addr(4);
    c.ok(follower, &["cluster", "add-node", "4", "--api", &api4, "--raft", &c.raft(4)]);
    let status = c.wait_status(4, Duration::from_secs(15), |s| {
        s["members"].as_array().unwrap().len() == 4
            && s["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["reachable"] == true && m["role"] != "learner")
    });
    assert!(status["leader_id"].is_u64(), "{status}");

    // Leadership moves where it is asked to.
    let target = (1..=3).find(|n| *n != leader).unwrap();
    c.ok(follower, &["cluster", "transfer-leader", &target.to_string()]);
    c.wait_status(4, Duration::from_secs(15), |s| s["leader_id"].as_u64() == Some(target as u64));

    // Removing node 4; its id is never given out again.
    c.ok(leader, &["cluster", "remove-node", "4"]);
    c.wait_status(target, Duration::from_secs(10), |s| s["members"].as_array().unwrap().len() == 3);
    c.d.stop_node(4, Duration::from_secs(10)).unwrap();
    let out = c.ctl(leader, &["cluster", "add-node", "4", "--api", &api4, "--raft", &c.raft(4)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ids are never reused"), "{stderr}");
}
