//! History through Raft on real nodes: the leader's roller merges results
//! and commits rollups; every node — followers, a new leader after the
//! old one is killed, a restarted node, a node that joins later and gets
//! them by snapshot — reads the same history.

mod harness;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use harness::{add_region, Cluster};
use tokio_util::sync::CancellationToken;
use vantage_coordinator::history::{HistoryOptions, Roller};
use vantage_coordinator::raft::NodeId;
use vantage_coordinator::results::{AcceptedResult, ResultSink};
use vantage_coordinator::state::{Command, EndpointSpec, IdempotencyKey, Request, UnixMillis};
use vantage_core::clock::SystemWallClock;
use vantage_core::history::{EndpointHistory, Window};
use vantage_core::observation::Observation;
use vantage_core::result::CheckResult;
use vantage_core::spec::CheckKind;

const SETTLE: Duration = Duration::from_secs(15);

fn result(endpoint_id: u64, seq: u64, region: &str, total_ms: u64, ok: bool) -> AcceptedResult {
    let started_at = SystemTime::now() - Duration::from_secs(seq);
    let mut check = CheckResult {
        url: "http://127.0.0.1/".into(),
        kind: CheckKind::Http,
        ok,
        error: None,
        status_code: Some(if ok { 200 } else { 503 }),
        http_version: None,
        remote_addr: None,
        phases_ms: Default::default(),
        tls: None,
        body_bytes: 0,
        started_at,
        hops: Vec::new(),
        dns_answers: Vec::new(),
        attempts: 1,
    };
    check.phases_ms.total = Duration::from_millis(total_ms);
    check.phases_ms.ttfb = Duration::from_millis(total_ms / 2);
    AcceptedResult {
        probe_id: 1,
        region: region.into(),
        observation: Observation {
            seq,
            endpoint_id,
            round: seq,
            probe_unhealthy: false,
            planned_start: started_at,
            lag: Duration::ZERO,
            out_of_slot: false,
            request_id: None,
            result: Some(check),
        },
        received_at: SystemTime::now(),
    }
}

/// Starts a roller on `leader` flushing every 100 ms; returns it and its stop.
fn roller_on(cluster: &Cluster, leader: NodeId) -> (Arc<Roller>, CancellationToken) {
    let options = HistoryOptions { flush_every: Duration::from_millis(100), ..Default::default() };
    let roller = Roller::new(cluster.node(leader).clone(), Arc::new(SystemWallClock), options);
    let stop = CancellationToken::new();
    let (task_roller, task_stop) = (roller.clone(), stop.clone());
    cluster.on(leader, |_| async move {
        tokio::spawn(task_roller.run(task_stop));
    });
    (roller, stop)
}

/// `api`'s history on node `id`; `None` until the node has applied it.
fn history(cluster: &Cluster, id: NodeId, now: UnixMillis) -> Option<EndpointHistory> {
    cluster.node(id).endpoint_history("api", Window::Day, now).ok()
}

fn checks(h: &EndpointHistory) -> u32 {
    h.regions.iter().map(|r| r.summary.checks).sum()
}

/// Waits until every node in `ids` reads `want` checks, then returns the
/// histories read at one instant (they must be equal).
fn settled(cluster: &Cluster, ids: &[NodeId], want: u32) -> Vec<EndpointHistory> {
    cluster.wait_until(SETTLE, &format!("{want} checks on nodes {ids:?}"), || {
        let now = UnixMillis::from(SystemTime::now());
        let all: Vec<EndpointHistory> =
            ids.iter().map(|&id| history(cluster, id, now)).collect::<Option<_>>()?;
        all.iter().all(|h| checks(h) == want).then_some(all)
    })
}

#[test]
fn t10_history_reads_the_same_on_every_node_across_a_leader_kill_a_restart_and_a_snapshot() {
    harness::init_tracing();
    // Keep no log behind a snapshot, so a joiner must be sent one.
    let mut cluster = Cluster::start_tuned(3, Arc::new(|o| o.max_in_snapshot_log_to_keep = 0));
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    for region in ["eu", "us"] {
        cluster.write(leader, add_region(region)).expect("region added");
    }
    let mut spec = EndpointSpec::new("api".to_string(), "http://127.0.0.1:9/".to_string());
    spec.regions = ["eu".to_string(), "us".to_string()].into_iter().collect();
    let added = cluster.write(
        leader,
        Request {
            idempotency_key: IdempotencyKey("add-api".into()),
            issued_at: UnixMillis::from(SystemTime::now() - Duration::from_secs(3600)),
            command: Command::AddEndpoint(spec),
        },
    );
    assert!(format!("{added:?}").contains("EndpointAdded"), "{added:?}");
    let endpoint_id = cluster.node(leader).read_local(|s| s.mesh.endpoint_by_name("api").unwrap().id.0);

    // 30 results on the first leader: eu 100..114 ms, us 200..214 ms, one us failure.
    let (roller, stop) = roller_on(&cluster, leader);
    let batch: Vec<AcceptedResult> = (0..30u64)
        .map(|i| {
            let region = if i % 2 == 0 { "eu" } else { "us" };
            let base = if region == "eu" { 100 } else { 200 };
            result(endpoint_id, i + 1, region, base + i / 2, i != 29)
        })
        .collect();
    roller.accept(&batch);
    let first = settled(&cluster, &[1, 2, 3], 30);
    assert!(first.windows(2).all(|w| w[0] == w[1]), "every node reads the same history");
    let us = first[0].regions.iter().find(|r| r.region == "us").expect("us");
    assert_eq!((us.summary.checks, us.summary.failures), (15, 1));
    let eu = first[0].regions.iter().find(|r| r.region == "eu").expect("eu");
    let p50 = eu.summary.total_ms.expect("latency").p50;
    assert!((105.0..=109.0).contains(&p50), "eu p50 {p50}");
    stop.cancel();
    // The roller holds the node (and its open files); a dead process would not.
    drop(roller);

    // The leader dies; a new one rolls up 20 more.
    cluster.kill(leader);
    let rest: Vec<NodeId> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    let new_leader = cluster.wait_for_leader(&rest, SETTLE);
    let (roller, stop) = roller_on(&cluster, new_leader);
    let more: Vec<AcceptedResult> = (0..20u64)
        .map(|i| result(endpoint_id, 100 + i, if i % 2 == 0 { "eu" } else { "us" }, 150, true))
        .collect();
    roller.accept(&more);
    let second = settled(&cluster, &rest, 50);
    assert_eq!(second[0], second[1]);

    // The killed node comes back and catches up.
    cluster.restart(leader);
    settled(&cluster, &[1, 2, 3], 50);

    // A snapshot, then a new node that can only catch up from it.
    cluster.on(new_leader, |node| async move { node.trigger_snapshot().await }).expect("a snapshot");
    let node4 = cluster.start_joiner(4);
    cluster
        .on(new_leader, |node| async move { node.add_node(4, node4, true).await })
        .expect("node 4 added as a learner");
    let all = settled(&cluster, &[1, 2, 3, 4], 50);
    assert!(all.windows(2).all(|w| w[0] == w[1]), "the joiner reads the same history as the others");
    stop.cancel();
}

#[test]
fn t20_a_leadership_transfer_flushes_the_rollups_at_once() {
    harness::init_tracing();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    cluster.write(leader, add_region("eu")).expect("region added");
    let mut spec = EndpointSpec::new("api".to_string(), "http://127.0.0.1:9/".to_string());
    spec.regions = ["eu".to_string()].into_iter().collect();
    cluster
        .write(
            leader,
            Request {
                idempotency_key: IdempotencyKey("add-api".into()),
                issued_at: UnixMillis::from(SystemTime::now() - Duration::from_secs(3600)),
                command: Command::AddEndpoint(spec),
            },
        )
        .expect("endpoint added");
    let endpoint_id = cluster.node(leader).read_local(|s| s.mesh.endpoint_by_name("api").unwrap().id.0);
    // An hour between flushes: only the transfer can flush within the test.
    let options = HistoryOptions { flush_every: Duration::from_secs(3600), ..Default::default() };
    let roller = Roller::new(cluster.node(leader).clone(), Arc::new(SystemWallClock), options);
    let stop = CancellationToken::new();
    let (task_roller, task_stop) = (roller.clone(), stop.clone());
    cluster.on(leader, |_| async move {
        tokio::spawn(task_roller.run(task_stop));
    });
    roller.accept(&(0..5u64).map(|i| result(endpoint_id, i + 1, "eu", 100, true)).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        checks(&history(&cluster, leader, UnixMillis::from(SystemTime::now())).expect("history")),
        0,
        "nothing flushed before the transfer"
    );
    let new_leader =
        cluster.on(leader, |node| async move { node.transfer_leadership(None).await }).expect("transferred");
    assert_ne!(new_leader, leader);
    settled(&cluster, &[1, 2, 3], 5);
    stop.cancel();
}
