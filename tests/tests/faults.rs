//! What the system survives on a network the tests control: real TLS
//! coordinator processes and `vantage-probe run` agents, every path between
//! them through a [`vantage_tests::faultnet::Link`] (a userspace TCP proxy)
//! that the scenario blackholes, delays and heals.
//!
//! - t10: a leader cut off from both followers (its four directed Raft
//!   links blackholed). The majority elects a new leader and takes writes;
//!   the old one acknowledges none; after the heal it follows the new
//!   leader and every node holds exactly the acknowledged writes.
//! - t20: a probe cut off from every coordinator while it keeps checking.
//!   After the heal it resends from its spool, and every node's ingest
//!   ledger holds each sequence number the probe handed out exactly once.
//! - t30: 150 ms each way on every link of the leader: writes still commit,
//!   each within a stated bound (2 s), without an election (given a
//!   heartbeat above the round trip: see `SLOW_RAFT`). The same delay on
//!   one follower's links alone does not slow commits at all, and that
//!   follower catches up.
//!
//! Raft in t10 and t20: heartbeat 100 ms, election timeout 400–800 ms (openraft 0.9
//! followers first wait out the leader lease, equal to the max, so a new
//! leader takes about 1.2–1.6 s plus a vote round).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::operator::Deployment;
use vantage_tests::{Direction, HttpTarget, TargetOptions};

const RAFT: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n";

/// `cluster status --json` on node `n` (`None` if it did not answer).
fn status(d: &Deployment, n: usize) -> Option<Value> {
    d.json(n, &["cluster", "status"]).ok()
}

/// Polls node `n`'s cluster status until `check` holds; returns it.
#[track_caller]
fn wait_status(
    d: &Deployment,
    n: usize,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    d.wait_json(n, &["cluster", "status"], within, what, check).unwrap_or_else(|e| panic!("{e:#}"))
}

fn leader_of(status: &Value) -> Option<usize> {
    status["leader_id"].as_u64().map(|id| id as usize)
}

fn term_of(status: &Value) -> u64 {
    status["term"].as_u64().expect("a term")
}

/// The region names node `n` holds (`--consistent`: after a read barrier
/// through the leader).
#[track_caller]
fn regions(d: &Deployment, n: usize, consistent: bool) -> BTreeSet<String> {
    let mut args = vec!["region", "list"];
    if consistent {
        args.push("--consistent");
    }
    let list = d.json(n, &args).unwrap_or_else(|e| panic!("{e:#}"));
    list.as_array().expect("a list").iter().map(|r| r["name"].as_str().expect("a name").to_string()).collect()
}

/// Adds region `name` through node `n`; returns how long vantagectl took.
#[track_caller]
fn add_region(d: &Deployment, n: usize, name: &str) -> Duration {
    let started = Instant::now();
    d.ok(n, &["region", "add", name]).unwrap_or_else(|e| panic!("{e:#}"));
    started.elapsed()
}

#[test]
fn t10_isolated_leader_steps_down_and_loses_nothing() {
    let d = Deployment::start_with_links(3, RAFT).unwrap();
    let old = d.leader(Duration::from_secs(20)).unwrap();
    let followers: Vec<usize> = (1..=3).filter(|n| *n != old).collect();
    let mut acknowledged = BTreeSet::new();
    for (i, n) in [old, followers[0], followers[1]].into_iter().enumerate() {
        let name = format!("before-{i}");
        add_region(&d, n, &name);
        acknowledged.insert(name);
    }
    // Raft traffic, and the followers' forwarded writes, cross the links.
    for &f in &followers {
        for (from, to) in [(old, f), (f, old)] {
            let stats = d.raft_link(from, to).stats();
            assert!(
                stats.bytes_to_target > 0 && stats.bytes_to_client > 0,
                "node {from} does not dial node {to} through its link: {stats:?}"
            );
        }
    }
    let old_term = term_of(&status(&d, old).expect("the leader answers"));

    // 1. Cut the leader off: its four directed links forward nothing.
    d.isolate_node(old);
    let cut = Instant::now();
    let elected =
        wait_status(&d, followers[0], Duration::from_secs(10), "a new leader among the majority", |s| {
            leader_of(s).is_some_and(|l| l != old)
        });
    let new = leader_of(&elected).unwrap();
    let new_term = term_of(&elected);
    eprintln!(
        "leader {old} cut off: node {new} elected (term {old_term} → {new_term}) after {:?}",
        cut.elapsed()
    );
    assert!(followers.contains(&new), "{elected}");
    assert!(new_term > old_term, "{elected}");
    let other = followers.iter().copied().find(|f| *f != new).unwrap();
    // The other follower forwards to the leader it knows; wait until that
    // is the new one (a forward to the old leader would wait out the
    // write's whole time limit in the blackhole).
    wait_status(&d, other, Duration::from_secs(10), "the other follower following the new leader", |s| {
        leader_of(s) == Some(new)
    });

    // 2. The majority takes writes, through the new leader and through
    //    the other follower.
    for (i, n) in [new, other].into_iter().enumerate() {
        let name = format!("during-{i}");
        let took = add_region(&d, n, &name);
        eprintln!("write through node {n} during the partition: {took:?}");
        acknowledged.insert(name);
    }

    // 3. The old leader acknowledges nothing: it has lost its quorum and
    //    says so (vantagectl retries UNAVAILABLE twice, each attempt
    //    probing the peers for up to 0.8 s).
    let started = Instant::now();
    let out = d.ctl(old, &["--call-timeout", "3s", "region", "add", "lost-0"]).unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a write to the cut-off leader must fail: {out:?}{}", d.logs());
    assert!(
        stderr.contains("no leader: 1 of 3 nodes reachable, a quorum needs 2"),
        "the error says why: {stderr}"
    );
    assert!(took < Duration::from_secs(12), "the refusal took {took:?}");
    eprintln!("write to the cut-off leader refused after {took:?}: {}", stderr.trim());
    let stale = regions(&d, old, false);
    assert!(!stale.contains("during-0"), "the cut-off leader heard of the majority's writes: {stale:?}");
    // openraft 0.9 has no check-quorum step-down: cut off, a leader keeps
    // its role and term until it sees a higher term. It names itself
    // leader still, and cannot commit (above).
    let seen_by_old = status(&d, old).expect("the cut-off leader answers");
    assert_eq!(
        (leader_of(&seen_by_old), term_of(&seen_by_old)),
        (Some(old), old_term),
        "openraft 0.9: an isolated leader keeps its term until it hears a higher one: {seen_by_old}"
    );
    let unreachable: Vec<&Value> =
        seen_by_old["members"].as_array().unwrap().iter().filter(|m| m["reachable"] == false).collect();
    assert_eq!(unreachable.len(), 2, "the cut-off leader reaches no follower: {seen_by_old}");

    // 4. Heal: the old leader sees the higher term and follows the new
    //    leader.
    d.heal_all();
    let healed = Instant::now();
    let rejoined =
        wait_status(&d, old, Duration::from_secs(10), "the old leader following the new one", |s| {
            leader_of(s) == Some(new) && term_of(s) == new_term
        });
    eprintln!("healed: node {old} follows node {new} after {:?}", healed.elapsed());
    assert!(rejoined["members"].as_array().unwrap().iter().all(|m| m["reachable"] == true), "{rejoined}");

    // 5. Every node holds every acknowledged write, and only those.
    for n in 1..=3 {
        let what = format!("node {n} applying every acknowledged write");
        d.wait_json(n, &["region", "list"], Duration::from_secs(10), &what, |list| {
            let names: BTreeSet<&str> =
                list.as_array().into_iter().flatten().filter_map(|r| r["name"].as_str()).collect();
            acknowledged.iter().all(|a| names.contains(a.as_str()))
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            regions(&d, n, true),
            acknowledged,
            "node {n}: exactly the acknowledged writes{}",
            d.logs()
        );
    }
    wait_status(&d, new, Duration::from_secs(10), "every member applied the same log", |s| {
        let applied: Vec<u64> = s["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["last_applied"].as_u64().unwrap_or(0))
            .collect();
        applied.iter().all(|a| *a == applied[0] && *a > 0)
    });
}

/// Probe timing for t20: heartbeats every second (a silent probe is
/// dropped after three), and a grace long enough that its endpoints stay
/// with it through the partition.
const MESH: &str = "[mesh]\nprobe_grace_ms = 15000\nheartbeat_ms = 1000\n";

/// Probe `name` in node `n`'s `probe list --json` (`Null` if absent or no
/// answer).
fn probe_entry(d: &Deployment, n: usize, name: &str) -> Value {
    match d.json(n, &["probe", "list"]) {
        Ok(Value::Array(list)) => list.into_iter().find(|p| p["name"] == name).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Polls probe `name` on node `n` until `check` holds; returns it.
#[track_caller]
fn wait_probe(
    d: &Deployment,
    n: usize,
    name: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let entry = probe_entry(d, n, name);
        if check(&entry) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last from node {n}: {entry}{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn recorded(p: &Value) -> u64 {
    p["results_recorded"].as_u64().unwrap_or(0)
}

/// Polls `condition` every 50 ms for up to `within`.
#[track_caller]
fn wait_until(d: &Deployment, within: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}{}", d.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn t20_partitioned_probe_heals_without_loss_or_duplicates() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let target = {
        let _entered = runtime.enter();
        HttpTarget::start(TargetOptions::default()).unwrap()
    };
    let mut d = Deployment::start(3, &format!("{RAFT}\n{MESH}")).unwrap();
    let leader = d.leader(Duration::from_secs(20)).unwrap();
    d.ok(leader, &["region", "add", "eu"]).unwrap();
    const ENDPOINTS: u64 = 4;
    for i in 0..ENDPOINTS {
        let (name, url) = (format!("e{i}"), target.url(&format!("/e{i}")));
        let add =
            ["endpoint", "add", &name, &url, "--interval", "1s", "--timeout", "500ms", "--allow-private"];
        d.ok(leader, &add).unwrap();
    }
    d.add_probe(leader, "eu-1", "eu", "").unwrap();
    // Its only ways out: a link to each coordinator's API, one to the target.
    d.wall_off_probe("eu-1", &[target.addr()]).unwrap();
    d.start_probe("eu-1").unwrap();
    let before =
        wait_probe(&d, leader, "eu-1", Duration::from_secs(20), "eu-1 connected and recorded", |p| {
            p["connected"] == true && p["endpoints"] == ENDPOINTS && recorded(p) >= ENDPOINTS
        });
    let through: u64 = d.probe_links("eu-1").iter().map(|l| l.stats().bytes_to_target).sum();
    assert!(through > 0, "the probe reaches the coordinators through its links{}", d.logs());

    // 1. Partition: every path to the coordinators blackholed (timeouts,
    //    not resets); the path to the target stays, so it keeps checking.
    for link in d.probe_links("eu-1") {
        link.blackhole();
    }
    let cut = Instant::now();
    // Silent for three heartbeats, it is dropped.
    let gone =
        wait_probe(&d, leader, "eu-1", Duration::from_secs(8), "the leader dropping the silent probe", |p| {
            p["connected"] == false
        });
    eprintln!("partitioned: the leader dropped eu-1 after {:?}", cut.elapsed());
    let recorded_when_dropped = recorded(&gone);
    let checks_when_dropped = target.requests();
    // Two more rounds of checks, none of which can reach the ledger.
    wait_until(&d, Duration::from_secs(6), "eu-1 checking on while partitioned", || {
        target.requests() >= checks_when_dropped + 2 * ENDPOINTS
    });
    let still = probe_entry(&d, leader, "eu-1");
    assert_eq!(still["connected"], false, "{still}");
    assert_eq!(recorded(&still), recorded_when_dropped, "results crossed a blackholed link: {still}");
    let checked_while_dropped = target.requests() - checks_when_dropped;

    // 2. Heal: the probe reconnects and resends what its spool kept.
    d.heal_all();
    let healed = Instant::now();
    let after = wait_probe(
        &d,
        leader,
        "eu-1",
        Duration::from_secs(20),
        "eu-1 back with its partition's results",
        |p| p["connected"] == true && recorded(p) >= recorded_when_dropped + checked_while_dropped,
    );
    eprintln!(
        "healed: eu-1 back after {:?}, {} results recorded ({} before the drop, {checked_while_dropped} checked while dropped)",
        healed.elapsed(),
        recorded(&after),
        recorded_when_dropped
    );
    assert!(
        after["connected_since_unix_ms"].as_i64() > before["connected_since_unix_ms"].as_i64(),
        "a new session after the heal: {before} → {after}"
    );

    // 3. A clean stop, then the ledger on every node: each number handed
    //    out exactly once, none refused.
    let exit = d.stop_probe("eu-1", Duration::from_secs(15)).unwrap();
    assert!(exit.success(), "eu-1 exited with {exit}{}", d.logs());
    let log = d.probe_log("eu-1").unwrap();
    let (unacked, _) = log.shutdown.unwrap_or_else(|| panic!("eu-1 did not log its shutdown{}", d.logs()));
    assert_eq!(unacked, 0, "eu-1 stopped with results unacknowledged{}", d.logs());
    let handed_out = log.handed_out();
    for n in 1..=3 {
        let p =
            wait_probe(&d, n, "eu-1", Duration::from_secs(10), &format!("node {n}'s ledger complete"), |p| {
                p["processed_seqs"].as_array().and_then(|r| r.last()).and_then(|r| r["last"].as_u64())
                    == handed_out.last().map(|r| r.1)
            });
        let ranges: Vec<(u64, u64)> = p["processed_seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["first"].as_u64().unwrap(), r["last"].as_u64().unwrap()))
            .collect();
        assert_eq!(p["results_duplicated"], 0, "node {n}: results recorded twice: {p}");
        assert_eq!(
            ranges, handed_out,
            "node {n}: a hole is a lost result, an extra number one from nowhere: {p}"
        );
        let processed: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
        assert_eq!(p["results_refused"], 0, "node {n}: {p}");
        assert_eq!(recorded(&p), processed, "node {n}: {p}");
        eprintln!("node {n}: eu-1's {processed} results recorded once each: {ranges:?}");
    }
    drop(target);
}

/// Raft timing for t30's slow links. openraft 0.9 gives every
/// AppendEntries RPC (replication and heartbeats alike) the heartbeat
/// interval as its deadline, so the heartbeat must exceed the round trip
/// between nodes: with `RAFT`'s 100 ms and a 300 ms round trip every RPC
/// times out and nothing commits. 500 ms leaves room for 300 ms; the
/// election timeout grows with it.
const SLOW_RAFT: &str =
    "[raft]\nheartbeat_ms = 500\nelection_timeout_min_ms = 1500\nelection_timeout_max_ms = 3000\n";

#[test]
fn t30_slow_links_between_nodes_still_commit_within_a_bound() {
    const DELAY: Duration = Duration::from_millis(150);
    // A commit needs a follower's acknowledgement: one round trip over a
    // slow link (2 × 150 ms), plus vantagectl starting and a replication
    // request already in flight. The bound leaves room for a loaded
    // 2-core machine.
    const BOUND: Duration = Duration::from_secs(2);
    let d = Deployment::start_with_links(3, SLOW_RAFT).unwrap();
    let leader = d.leader(Duration::from_secs(20)).unwrap();
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    add_region(&d, follower, "warm");
    let term = term_of(&status(&d, leader).unwrap());

    for link in d.raft_links_of(leader) {
        link.delay(Direction::ToTarget, DELAY);
        link.delay(Direction::ToClient, DELAY);
    }
    let mut written = BTreeSet::from(["warm".to_string()]);
    for (i, n) in [leader, leader, leader, follower, follower].into_iter().enumerate() {
        let name = format!("slow-{i}");
        let took = add_region(&d, n, &name);
        eprintln!(
            "write through node {n} ({}) with 150 ms each way: {took:?}",
            if n == leader { "leader" } else { "follower" }
        );
        assert!(took >= 2 * DELAY, "committed in {took:?}, faster than a round trip over the slow links");
        let bound = if n == leader { BOUND } else { BOUND + 4 * DELAY };
        assert!(
            took <= bound,
            "write through node {n} took {took:?}, over the bound of {bound:?}{}",
            d.logs()
        );
        written.insert(name);
    }
    let after = status(&d, leader).unwrap();
    assert_eq!(
        (leader_of(&after), term_of(&after)),
        (Some(leader), term),
        "no election on slow links: {after}"
    );
    for n in 1..=3 {
        assert_eq!(regions(&d, n, true), written, "node {n}");
    }
    for link in d.raft_links_of(leader) {
        let stats = link.stats();
        assert!(stats.bytes_to_target > 0 && stats.bytes_to_client > 0, "{stats:?}");
    }

    // A slow follower alone does not slow commits: the leader and the
    // other follower are a quorum. The follower still catches up.
    d.heal_all();
    let slow = follower;
    for link in d.raft_links_of(slow) {
        link.delay(Direction::ToTarget, DELAY);
        link.delay(Direction::ToClient, DELAY);
    }
    let mut took = Vec::new();
    for i in 0..3 {
        let name = format!("quorum-{i}");
        took.push(add_region(&d, leader, &name));
        written.insert(name);
    }
    took.sort();
    eprintln!("writes through the leader with follower {slow} slow: {took:?}");
    assert!(took[1] < 2 * DELAY, "the median write waited for the slow follower: {took:?}");
    d.wait_json(
        slow,
        &["region", "list"],
        Duration::from_secs(10),
        "the slow follower catching up",
        |list| list.as_array().is_some_and(|l| l.len() == written.len()),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}
