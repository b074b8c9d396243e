//! The mesh side of `ProbeService` over real tonic on 127.0.0.1: a
//! [`FakeNode`] stands in for the Raft node (the replicated state is a
//! `MeshState` changed with the real apply functions) and [`FakeProbe`] is
//! a test double of the probe agent speaking the wire protocol.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use vantage_coordinator::auth::token_hash;
use vantage_coordinator::mesh::{Commit, Leadership, Mesh, MeshError, MeshNode, MeshOptions, ProbeOutcome};
use vantage_coordinator::results::MemorySink;
use vantage_coordinator::state::{
    Command, CommandResponse, EndpointId, EndpointSpec, IdempotencyKey, MeshState, Outcome, ProbeId,
    ProbeSpec, Request, UnixMillis,
};
use vantage_core::clock::SystemWallClock;
use vantage_core::time::unix_micros as unix_us;
use vantage_proto::pb;
use vantage_proto::pb::coordinator_message::Msg as Out;
use vantage_proto::pb::probe_message::Msg as In;

const GRACE: Duration = Duration::from_millis(1_000);
const HEARTBEAT: Duration = Duration::from_millis(200);
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
const ENDPOINTS: u64 = 60;

// ---------------------------------------------------------------- scenarios

#[tokio::test]
async fn t10_each_endpoint_is_assigned_to_exactly_one_probe_per_region() {
    let mesh = TestMesh::start().await;
    let probes = mesh.connect_all().await;
    let ok = wait_until(Duration::from_secs(5), || one_owner_per_region(&probes)).await;
    assert!(ok, "every endpoint once per region: {:?}", holdings(&probes));
    // The probes' views agree with the leader's assignment.
    let published = mesh.mesh.assignment();
    for (name, probe) in &probes {
        let id = mesh.probe_ids[name];
        assert_eq!(probe.endpoints(), *published.assignment.by_probe(id), "{name}");
        assert_eq!(probe.seen().delta_mismatches, 0, "{name}: deltas applied to the version they name");
    }
    assert!(published.uncovered_regions.is_empty());
    let views = mesh.mesh.probes();
    assert_eq!(views.iter().filter(|v| v.connected).count(), 6);
    mesh.stop().await;
}

#[tokio::test]
async fn t20_a_lost_probe_moves_its_endpoints_within_its_region_and_takes_back_its_share() {
    let mesh = TestMesh::start().await;
    let mut probes = mesh.connect_all().await;
    assert!(wait_until(Duration::from_secs(5), || one_owner_per_region(&probes)).await);
    let before = holdings(&probes);

    // Reconnecting within grace keeps the endpoints.
    let version = mesh.mesh.assignment().version;
    drop(probes.remove("eu-1"));
    tokio::time::sleep(GRACE / 3).await;
    probes.insert("eu-1".into(), mesh.connect("eu-1").await.expect("reconnect"));
    assert!(wait_until(Duration::from_secs(2), || probes["eu-1"].endpoints() == before["eu-1"]).await);
    tokio::time::sleep(GRACE).await;
    assert_eq!(mesh.mesh.assignment().version, version, "nothing moved during a short disconnect");

    // A probe gone longer than grace loses its endpoints to its region's other probe.
    let lost = before["eu-1"].clone();
    assert!(!lost.is_empty());
    let gone_at = Instant::now();
    drop(probes.remove("eu-1"));
    let moved =
        wait_until(GRACE + Duration::from_secs(1), || probes["eu-2"].endpoints().len() == ENDPOINTS as usize)
            .await;
    assert!(moved, "eu-2 took over within grace + 1 s; it has {:?}", probes["eu-2"].endpoints().len());
    assert!(gone_at.elapsed() >= GRACE, "not before grace");
    for name in ["us-1", "us-2", "ap-1", "ap-2"] {
        assert_eq!(probes[name].endpoints(), before[name], "{name}: other regions untouched");
    }
    let view = mesh.mesh.probes().into_iter().find(|v| v.name == "eu-1").unwrap();
    assert!(!view.connected && !view.live && view.endpoints == 0);

    // Back: it takes back about its share, and only from eu-2.
    let eu2_before = probes["eu-2"].endpoints();
    probes.insert("eu-1".into(), mesh.connect("eu-1").await.expect("reconnect"));
    assert!(
        wait_until(Duration::from_secs(3), || {
            let (a, b) = (probes["eu-1"].endpoints(), probes["eu-2"].endpoints());
            !a.is_empty() && a.len() + b.len() == ENDPOINTS as usize && a.is_disjoint(&b)
        })
        .await
    );
    let back = probes["eu-1"].endpoints();
    assert_eq!(back, lost, "same inputs, same assignment: exactly its old share");
    assert!(back.is_subset(&eu2_before), "moved only from eu-2");
    mesh.stop().await;
}

#[tokio::test]
async fn t25_a_probe_reconnecting_with_its_version_gets_a_delta() {
    let mesh = TestMesh::start().await;
    let probe = mesh.connect("eu-1").await.unwrap();
    let share = mesh.probes_endpoints("eu-1");
    // Alone in eu once the others' grace passes; then eu-2 joins.
    assert!(wait_until(Duration::from_secs(3), || probe.endpoints().len() == ENDPOINTS as usize).await);
    let version = probe.seen().version;
    drop(probe);
    let other = mesh.connect("eu-2").await.unwrap();
    let mut resumed = hello("eu-1", "eu");
    resumed.assignment_version = version;
    let running = (1..=ENDPOINTS).collect();
    let probe =
        FakeProbe::connect_with(mesh.addr, Some(&token("eu-1")), resumed, true, running).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || probe.endpoints() == share).await,
        "{:?}",
        probe.endpoints()
    );
    let first = probe.seen().assignments[0].clone();
    assert!(!first.full && first.base_version == version, "a delta from the version it runs: {first:?}");
    assert_eq!(probe.seen().delta_mismatches, 0);
    // The resumed probe started from the full set it had.
    let removed: usize = probe.seen().assignments.iter().map(|a| a.remove.len()).sum();
    assert_eq!(removed, ENDPOINTS as usize - share.len());

    // An unknown version gets a full set.
    let mut stale = hello("eu-2", "eu");
    stale.assignment_version = 12345;
    drop(other);
    let other = FakeProbe::connect(mesh.addr, Some(&token("eu-2")), stale).await.unwrap();
    assert!(wait_until(Duration::from_secs(3), || !other.seen().assignments.is_empty()).await);
    assert!(other.seen().assignments[0].full);
    mesh.stop().await;
}

#[tokio::test]
async fn t30_results_are_acked_and_a_resend_is_counted_once() {
    let mesh = TestMesh::start().await;
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(wait_until(Duration::from_secs(3), || !probe.endpoints().is_empty()).await);
    let endpoint = *probe.endpoints().iter().next().unwrap();
    let batch: Vec<_> = (1..=3).map(|seq| good_result(seq, endpoint)).collect();
    probe.send_results(batch.clone()).await;
    let ack = probe.wait_ack(3).await.expect("acked");
    assert!(ack.rejected.is_empty(), "{ack:?}");
    assert_eq!(mesh.sink.recent(endpoint).iter().map(|r| r.observation.seq).collect::<Vec<_>>(), [1, 2, 3]);

    // The probe restarts and resends what it thinks is unacknowledged.
    drop(probe);
    let probe = mesh.connect("eu-1").await.unwrap();
    let mut resend = batch;
    resend.push(good_result(4, endpoint));
    probe.send_results(resend).await;
    probe.wait_ack(4).await.expect("acked again");
    assert_eq!(
        mesh.sink.recent(endpoint).iter().map(|r| r.observation.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let counters = mesh.mesh.counters();
    assert_eq!((counters.accepted, counters.duplicates), (4, 3));
    assert_eq!(mesh.sink.accepted_total(), 4);
    mesh.stop().await;
}

#[tokio::test]
async fn t32_acks_wait_for_the_ledger_and_a_new_leader_counts_resent_results_once() {
    let mesh = TestMesh::start().await;
    let fail_commits = |on: bool| mesh.node.fail_commits.store(on, Ordering::SeqCst);
    let ledger = |node: &FakeNode| {
        let state = node.state.read().unwrap();
        state.ingest().get(&ProbeId(node_probe(&state, "eu-1"))).cloned()
    };
    fail_commits(true);
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(wait_until(Duration::from_secs(3), || !probe.endpoints().is_empty()).await);
    // In eu-1's share whoever else is live, so the next leader assigns it too.
    let endpoint = *mesh.probes_endpoints("eu-1").iter().next().unwrap();
    probe.send_results((1..=5).map(|seq| good_result(seq, endpoint)).collect()).await;
    assert!(wait_until(Duration::from_secs(3), || mesh.sink.accepted_total() == 5).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(probe.seen().acks.is_empty(), "acknowledged before its checkpoint committed");
    assert_eq!(ledger(&mesh.node), None);

    fail_commits(false);
    probe.wait_ack(5).await.expect("acknowledged once the checkpoint commits");
    let recorded = ledger(&mesh.node).expect("a ledger entry");
    assert_eq!(recorded.processed.ranges(), [(1, 5)]);
    assert_eq!((recorded.accepted, recorded.duplicates), (5, 0));

    // 6..=8 are stored by this leader, which is replaced before it records
    // them: never acknowledged, so the probe resends them to the next one.
    fail_commits(true);
    probe.send_results((6..=8).map(|seq| good_result(seq, endpoint)).collect()).await;
    assert!(wait_until(Duration::from_secs(3), || mesh.sink.accepted_total() == 8).await);
    assert!(probe.seen().acks.iter().all(|a| a.up_to_seq <= 5), "{:?}", probe.seen().acks);
    let node = mesh.node.clone();
    drop(probe);
    mesh.stop().await;
    node.fail_commits.store(false, Ordering::SeqCst);

    let mesh = TestMesh::start_on(node).await;
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(wait_until(Duration::from_secs(3), || probe.endpoints().contains(&endpoint)).await);
    // Everything again, the recorded 1..=5 too, and one new result.
    probe.send_results((1..=9).map(|seq| good_result(seq, endpoint)).collect()).await;
    let ack = probe.wait_ack(9).await.expect("acknowledged by the new leader");
    assert!(ack.rejected.is_empty(), "{ack:?}");
    let counters = mesh.mesh.counters();
    assert_eq!((counters.accepted, counters.duplicates), (4, 5), "6..=9 stored, 1..=5 known from the ledger");
    assert_eq!(
        mesh.sink.recent(endpoint).iter().map(|r| r.observation.seq).collect::<Vec<_>>(),
        [6, 7, 8, 9]
    );
    let recorded = ledger(&mesh.node).expect("a ledger entry");
    assert_eq!(recorded.processed.ranges(), [(1, 9)]);
    assert_eq!((recorded.accepted, recorded.rejected, recorded.duplicates), (9, 0, 0));
    mesh.stop().await;
}

fn node_probe(state: &MeshState, name: &str) -> u64 {
    state.probes().values().find(|p| p.name == name).expect("registered").id.0
}

#[tokio::test]
async fn t40_bad_results_are_refused_and_nothing_is_recorded() {
    let mesh = TestMesh::start().await;
    // eu-2 first, so eu-1 never held eu-2's endpoints (results for the
    // previous assignment sent to a probe are still accepted).
    let other = mesh.connect("eu-2").await.unwrap();
    assert!(wait_until(Duration::from_secs(3), || other.endpoints().len() == ENDPOINTS as usize).await);
    let probe = mesh.connect("eu-1").await.unwrap();
    let share = mesh.probes_endpoints("eu-1");
    assert!(wait_until(Duration::from_secs(3), || probe.endpoints() == share).await);
    let theirs = *mesh.probes_endpoints("eu-2").iter().next().expect("eu-2 has endpoints");
    let mine = *probe.endpoints().iter().next().unwrap();

    let mut malformed = good_result(2, mine);
    malformed.result.as_mut().unwrap().phases.as_mut().unwrap().dns_us = 9_999_999;
    let mut future = good_result(3, mine);
    future.result.as_mut().unwrap().started_at_unix_us = unix_us(SystemTime::now() + Duration::from_secs(60));
    probe.send_results(vec![good_result(1, theirs), malformed, future]).await;
    let ack = probe.wait_ack(3).await.expect("refused results are acknowledged so they are not resent");
    let reasons: Vec<_> = ack.rejected.iter().map(|r| (r.seq, r.reason.as_str())).collect();
    assert_eq!(reasons, [(1, "unassigned_endpoint"), (2, "malformed_timings"), (3, "started_in_future")]);
    assert!(ack.rejected.iter().all(|r| !r.detail.is_empty()));
    let counters = mesh.mesh.counters();
    assert_eq!(counters.accepted, 0);
    assert_eq!(counters.rejected["unassigned_endpoint"], 1);
    assert_eq!(counters.rejected["malformed_timings"], 1);
    assert_eq!(counters.rejected["started_in_future"], 1);

    // An oversized batch ends the stream; none of it is stored.
    let oversized: Vec<_> = (10..=510).map(|seq| good_result(seq, mine)).collect();
    probe.send_results(oversized).await;
    let status = probe.wait_end().await.expect("stream ended").expect_err("with an error");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("501 results exceeds the limit of 500"), "{}", status.message());
    assert_eq!(mesh.mesh.counters().accepted, 0);
    assert_eq!(mesh.mesh.counters().batches_rejected, 1);
    assert!(mesh.sink.recent(mine).is_empty() && mesh.sink.recent(theirs).is_empty());
    mesh.stop().await;
}

#[tokio::test]
async fn t50_unknown_tokens_wrong_regions_and_revoked_tokens_get_clear_statuses() {
    let mesh = TestMesh::start().await;

    let status = FakeProbe::connect(mesh.addr, Some("not-a-token"), hello("eu-1", "eu")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("unknown probe token"), "{}", status.message());

    let status = FakeProbe::connect(mesh.addr, None, hello("eu-1", "eu")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("authorization"), "{}", status.message());

    let status = FakeProbe::connect(mesh.addr, Some(&token("eu-1")), hello("eu-1", "us")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "probe eu-1 is registered in region eu, not us");

    let status = FakeProbe::connect(mesh.addr, Some(&token("eu-1")), hello("eu-2", "eu")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "the token belongs to probe eu-1, not eu-2");

    // Rotated mid-stream: the stream ends within one heartbeat.
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(probe.wait_welcome().await.is_some());
    let rotated_at = Instant::now();
    mesh.node.apply(Command::RotateProbeToken {
        id: ProbeId(mesh.probe_ids["eu-1"]),
        token_hash: token_hash("a-new-token-for-eu-1"),
    });
    let status = probe.wait_end().await.expect("ended").expect_err("with a status");
    assert!(rotated_at.elapsed() < HEARTBEAT + Duration::from_millis(300), "{:?}", rotated_at.elapsed());
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the token of probe eu-1 was revoked or rotated; this stream is closed");
    let status = mesh.connect("eu-1").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "the old token no longer connects");

    // Removed mid-stream: the same.
    let probe = mesh.connect("us-1").await.unwrap();
    assert!(probe.wait_welcome().await.is_some());
    mesh.node.apply(Command::RemoveProbe { id: ProbeId(mesh.probe_ids["us-1"]) });
    let status = probe.wait_end().await.expect("ended").expect_err("with a status");
    assert_eq!(status.code(), Code::Unauthenticated);
    mesh.stop().await;
}

#[tokio::test]
async fn t60_a_follower_redirects_to_the_leader() {
    let mesh = TestMesh::start().await;
    mesh.node.set_leadership(Leadership::Follower {
        leader_id: Some(2),
        leader_api_addr: Some("10.0.0.2:7000".into()),
    });
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(probe.wait_end().await.expect("closed").is_ok(), "closed without an error");
    let redirect = probe.seen().redirect.clone().expect("a redirect");
    assert_eq!((redirect.leader_id, redirect.leader_api_addr.as_str()), (Some(2), "10.0.0.2:7000"));
    assert!(probe.seen().welcome.is_none());

    // A leader that loses leadership redirects its open streams.
    mesh.node.set_leadership(Leadership::Leader);
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(probe.wait_welcome().await.is_some());
    mesh.node
        .set_leadership(Leadership::Follower { leader_id: Some(3), leader_api_addr: Some("x:1".into()) });
    assert!(probe.wait_end().await.expect("closed").is_ok(), "redirected, then closed without an error");
    assert_eq!(probe.seen().redirect.as_ref().map(|r| r.leader_id), Some(Some(3)));
    mesh.stop().await;
}

#[tokio::test]
async fn t65_a_replicated_pin_moves_the_endpoint_and_unpinning_moves_it_back() {
    let mesh = TestMesh::start().await;
    let probes = mesh.connect_all().await;
    assert!(wait_until(Duration::from_secs(5), || one_owner_per_region(&probes)).await);
    let endpoint = 1;
    let owner = |probes: &BTreeMap<String, FakeProbe>| {
        probes
            .iter()
            .find(|(n, p)| n.starts_with("eu") && p.endpoints().contains(&endpoint))
            .map(|(n, _)| n.clone())
    };
    let hashed = owner(&probes).expect("eu owner");
    let other = if hashed == "eu-1" { "eu-2" } else { "eu-1" };

    // The pin is a replicated command: the leader reads it from the state.
    mesh.node.apply(Command::PinEndpoint {
        endpoint: EndpointId(endpoint),
        region: "eu".into(),
        probe: ProbeId(mesh.probe_ids[other]),
    });
    let moved = wait_until(Duration::from_secs(3), || owner(&probes).as_deref() == Some(other)).await;
    assert!(moved, "pinned to {other}: {:?}", holdings(&probes));
    assert!(one_owner_per_region(&probes), "still one owner per region");
    let published = mesh.mesh.assignment();
    assert!(published.assignment.unsatisfied_pins().is_empty());

    mesh.node.apply(Command::UnpinEndpoint { endpoint: EndpointId(endpoint), region: None });
    let back =
        wait_until(Duration::from_secs(3), || owner(&probes).as_deref() == Some(hashed.as_str())).await;
    assert!(back, "unpinned: back to {hashed}: {:?}", holdings(&probes));
    mesh.stop().await;
}

#[tokio::test]
async fn t70_check_now_reaches_every_assigned_probe_in_every_region() {
    let mesh = TestMesh::start().await;
    let probes = mesh.connect_all().await;
    assert!(wait_until(Duration::from_secs(5), || one_owner_per_region(&probes)).await);
    let ticket = mesh.mesh.check_now(1).expect("placed");
    assert_eq!(ticket.sent.len(), 3, "{ticket:?}");
    assert!(ticket.uncovered.is_empty() && ticket.unreachable.is_empty());
    for (region, probe_id) in &ticket.sent {
        let name = mesh.probe_ids.iter().find(|(_, &id)| id == *probe_id).unwrap().0;
        assert!(name.starts_with(region.as_str()));
        let got = wait_until(Duration::from_secs(2), || {
            probes[name]
                .seen()
                .check_now
                .iter()
                .any(|c| c.endpoint_id == 1 && c.request_id == ticket.request_id)
        })
        .await;
        assert!(got, "{name} got the request");
    }
    assert!(mesh.mesh.check_now(999).is_err(), "an unknown endpoint is refused");
    mesh.stop().await;
}

#[tokio::test]
async fn t72_check_endpoint_waits_for_the_answers_and_reports_the_silent_probe() {
    let mesh = TestMesh::start().await;
    let probes = mesh.connect_all().await;
    assert!(wait_until(Duration::from_secs(5), || one_owner_per_region(&probes)).await);
    let checker = {
        let mesh = mesh.mesh.clone();
        tokio::spawn(async move { mesh.check_endpoint(1, Duration::from_secs(2)).await })
    };
    // Each region's owner of endpoint 1 gets the request; eu and us answer
    // it, ap stays silent.
    let owners: BTreeMap<&str, &str> = REGIONS
        .iter()
        .map(|region| {
            let name = probes
                .iter()
                .find(|(n, p)| n.starts_with(region) && p.endpoints().contains(&1))
                .map(|(n, _)| n.as_str())
                .unwrap();
            (*region, name)
        })
        .collect();
    let mut request_id = String::new();
    for (region, name) in &owners {
        let probe = &probes[*name];
        assert!(
            wait_until(Duration::from_secs(2), || !probe.seen().check_now.is_empty()).await,
            "{name} asked"
        );
        request_id = probe.seen().check_now[0].request_id.clone();
        if *region != "ap" {
            let mut answer = good_result(1, 1);
            answer.out_of_slot = true;
            answer.request_id = request_id.clone();
            // A result for another request does not count.
            let mut other = good_result(2, 1);
            other.out_of_slot = true;
            other.request_id = "chk-someone-else".into();
            probe.send_results(vec![other, answer]).await;
        }
    }
    let started = Instant::now();
    let report = checker.await.unwrap().expect("leader, placed");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the wait");
    assert_eq!(report.request_id, request_id);
    assert_eq!(report.regions.len(), 3);
    for region in ["eu", "us"] {
        match &report.regions[region][..] {
            [ProbeOutcome::Answered(result)] => {
                assert_eq!(result.probe_id, mesh.probe_ids[owners[region]]);
                assert_eq!(result.observation.request_id.as_deref(), Some(request_id.as_str()));
                assert_eq!(result.observation.seq, 1, "{region}: the answer, not the other request's result");
            }
            other => panic!("{region}: {other:?}"),
        }
    }
    assert_eq!(report.regions["ap"], [ProbeOutcome::TimedOut { probe_id: mesh.probe_ids[owners["ap"]] }]);
    // The answers still reached the sink.
    assert!(wait_until(Duration::from_secs(1), || mesh.sink.recent(1).len() >= 4).await);
    mesh.stop().await;
}

#[tokio::test]
async fn t74_rebalance_moves_a_disconnected_probes_endpoints_before_grace_ends() {
    let mesh = TestMesh::start().await;
    let mut probes = mesh.connect_all().await;
    assert!(wait_until(Duration::from_secs(5), || one_owner_per_region(&probes)).await);
    let lost = probes["eu-1"].endpoints();
    drop(probes.remove("eu-1"));
    let eu1 = mesh.probe_ids["eu-1"];
    assert!(
        wait_until(Duration::from_secs(2), || mesh.mesh.probes().iter().any(|p| p.id == eu1 && !p.connected))
            .await
    );

    let dry = mesh.mesh.rebalance(true).expect("leader");
    assert_eq!(dry.expired, [eu1]);
    assert_eq!(dry.moves.len(), lost.len(), "{dry:?}");
    assert!(dry.moves.iter().all(|m| m.region == "eu" && m.from == [eu1]));
    assert_eq!(probes["eu-2"].endpoints().len(), ENDPOINTS as usize - lost.len(), "a dry run moves nothing");

    let done = mesh.mesh.rebalance(false).expect("leader");
    assert_eq!(done.moves, dry.moves);
    assert!(done.version > dry.version);
    let taken = wait_until(GRACE / 2, || probes["eu-2"].endpoints().len() == ENDPOINTS as usize).await;
    assert!(taken, "eu-2 took over well before grace ({GRACE:?}) ended");
    assert!(mesh.mesh.rebalance(true).unwrap().moves.is_empty(), "nothing left to move");

    let follower =
        TestMesh::start_as(Leadership::Follower { leader_id: Some(1), leader_api_addr: None }).await;
    assert_eq!(follower.mesh.rebalance(true).unwrap_err(), MeshError::NotLeader);
    follower.stop().await;
    mesh.stop().await;
}

#[tokio::test]
async fn t80_a_region_with_no_live_probe_is_uncovered() {
    let mesh = TestMesh::start().await;
    let _eu = mesh.connect("eu-1").await.unwrap();
    let ok = wait_until(Duration::from_secs(3), || {
        let published = mesh.mesh.assignment();
        published.uncovered_regions == BTreeSet::from(["ap".to_owned(), "us".to_owned()])
            && published.assignment.uncovered().len() == ENDPOINTS as usize
    })
    .await;
    assert!(ok, "{:?}", mesh.mesh.assignment().uncovered_regions);
    mesh.stop().await;
}

#[tokio::test]
async fn t45_a_message_over_the_size_limit_ends_the_stream_with_out_of_range() {
    let mesh = TestMesh::start().await;
    let probe = mesh.connect("eu-1").await.unwrap();
    assert!(probe.wait_welcome().await.is_some());
    let mut big = good_result(1, 1);
    big.result.as_mut().unwrap().url = "x".repeat(5 << 20);
    probe.send_results(vec![big]).await;
    let status = probe.wait_end().await.expect("ended").expect_err("with a status");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{}", status.message());
    assert_eq!(mesh.mesh.counters().accepted, 0);
    assert!(mesh.sink.recent(1).is_empty());
    mesh.stop().await;
}

#[tokio::test]
async fn t55_a_silent_probe_is_closed_and_a_second_stream_replaces_the_first() {
    let mesh = TestMesh::start().await;
    let silent =
        FakeProbe::connect_with(mesh.addr, Some(&token("eu-1")), hello("eu-1", "eu"), false, BTreeSet::new())
            .await
            .unwrap();
    let status = silent.wait_end().await.expect("ended").expect_err("with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().starts_with("no message from the probe for"), "{}", status.message());

    let first = mesh.connect("eu-2").await.unwrap();
    assert!(first.wait_welcome().await.is_some());
    let second = mesh.connect("eu-2").await.unwrap();
    let status = first.wait_end().await.expect("ended").expect_err("with a status");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "replaced by a newer connection of the same probe");
    assert!(second.wait_welcome().await.is_some());
    tokio::time::sleep(HEARTBEAT * 2).await;
    assert!(second.seen().ended.is_none(), "the newer stream stays open");
    let view = mesh.mesh.probes().into_iter().find(|v| v.name == "eu-2").unwrap();
    assert!(view.connected);
    mesh.stop().await;
}

#[tokio::test]
async fn t85_a_new_leader_keeps_the_assignment_while_probes_reconnect() {
    let mesh = TestMesh::start_as(Leadership::Follower { leader_id: Some(2), leader_api_addr: None }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    mesh.node.set_leadership(Leadership::Leader);
    let became_leader = Instant::now();
    let probes: BTreeMap<String, FakeProbe> = {
        let mut probes = BTreeMap::new();
        for name in ["eu-1", "us-1", "ap-1"] {
            probes.insert(name.to_owned(), mesh.connect(name).await.unwrap());
        }
        probes
    };
    // Within grace, the first probe back in each region gets only its own share.
    for (name, probe) in &probes {
        let share = mesh.probes_endpoints(name);
        assert!(
            wait_until(GRACE / 2, || probe.endpoints() == share).await,
            "{name}: {} endpoints, share {}",
            probe.endpoints().len(),
            share.len()
        );
    }
    assert!(became_leader.elapsed() < GRACE);
    // The probes that never came back lose theirs after grace.
    for probe in probes.values() {
        assert!(
            wait_until(GRACE + Duration::from_secs(1), || probe.endpoints().len() == ENDPOINTS as usize)
                .await
        );
    }
    assert!(became_leader.elapsed() >= GRACE);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t90_the_coordinator_serves_probe_service_next_to_admin_service() {
    use vantage_coordinator::auth::AdminAuth;
    use vantage_coordinator::config::Config;

    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (api, raft, http) = (free_port(), free_port(), free_port());
    let loopback = |port| ([127, 0, 0, 1], port).into();
    let config = Config::single_node(dir.path().join("data"), loopback(api), loopback(raft), loopback(http));
    config.validate().unwrap();
    let admin_token = "test-admin-token-0123456789";
    let auth = AdminAuth::new(token_hash(admin_token));
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(vantage_coordinator::app::run(config.clone(), None, auth, shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match FakeProbe::connect(config.api_addr, Some("no-such-token"), hello("eu-1", "eu")).await {
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("unknown probe token"), "{}", status.message());

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", config.api_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::ListRequest { consistent: false });
    request.metadata_mut().insert("authorization", format!("Bearer {admin_token}").parse().unwrap());
    assert!(admin.list_regions(request).await.is_ok(), "the admin API still answers");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), node).await.unwrap().unwrap().unwrap();
}

/// The real node's [`MeshNode`]: leadership and the leader's API address
/// from Raft's metrics, the applied index moving with writes.
#[test]
fn t95_a_cluster_node_reports_leadership_and_the_leaders_api_address() {
    let cluster = harness::Cluster::start(3);
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(10));
    let index_before = MeshNode::applied_index(cluster.node(leader));
    cluster.write(leader, harness::add_region("eu")).unwrap();
    assert!(MeshNode::applied_index(cluster.node(leader)) > index_before);
    assert_eq!(MeshNode::leadership(cluster.node(leader)), Leadership::Leader);
    let leader_api = cluster.address(leader).api_addr;
    for id in (1..=3).filter(|&id| id != leader) {
        let node = cluster.node(id);
        let expected =
            Leadership::Follower { leader_id: Some(leader), leader_api_addr: Some(leader_api.clone()) };
        harness::wait_until(Duration::from_secs(5), "the follower to know the leader", &mut || {
            (MeshNode::leadership(node) == expected).then_some(())
        });
        assert_eq!(MeshNode::coordinators(node).len(), 3);
        harness::wait_until(Duration::from_secs(5), "the region to be applied", &mut || {
            vantage_coordinator::mesh::read(node, |s| s.regions().contains_key("eu")).then_some(())
        });
    }
}

// ------------------------------------------------------------------ harness

/// A mesh served on 127.0.0.1 over a [`FakeNode`] with three regions, two
/// probes in each (`eu-1`, `eu-2`, …) and [`ENDPOINTS`] endpoints.
struct TestMesh {
    node: Arc<FakeNode>,
    mesh: Mesh,
    sink: Arc<MemorySink>,
    addr: SocketAddr,
    probe_ids: BTreeMap<String, u64>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl TestMesh {
    async fn start() -> TestMesh {
        TestMesh::start_as(Leadership::Leader).await
    }

    async fn start_as(leadership: Leadership) -> TestMesh {
        let node = Arc::new(FakeNode::default());
        node.set_leadership(leadership);
        TestMesh::start_on(node).await
    }

    /// A mesh (a leader's memory) on `node`'s replicated state, which is
    /// filled with regions, probes and endpoints unless it already has.
    async fn start_on(node: Arc<FakeNode>) -> TestMesh {
        if !node.state.read().unwrap().probes().is_empty() {
            let probe_ids =
                node.state.read().unwrap().probes().values().map(|p| (p.name.clone(), p.id.0)).collect();
            return TestMesh::serve(node, probe_ids).await;
        }
        for region in REGIONS {
            node.apply(Command::AddRegion { name: region.into() });
        }
        let mut probe_ids = BTreeMap::new();
        for region in REGIONS {
            for i in 1..=2 {
                let name = format!("{region}-{i}");
                let outcome = node.apply(Command::RegisterProbe(ProbeSpec {
                    name: name.clone(),
                    region: region.into(),
                    weight: 100,
                    token_hash: token_hash(&token(&name)),
                }));
                let Outcome::ProbeRegistered { id } = outcome else { panic!("{outcome:?}") };
                probe_ids.insert(name, id.0);
            }
        }
        for e in 1..=ENDPOINTS {
            node.apply(Command::AddEndpoint(EndpointSpec::new(
                format!("e{e}"),
                format!("https://e{e}.example/"),
            )));
        }
        TestMesh::serve(node, probe_ids).await
    }

    async fn serve(node: Arc<FakeNode>, probe_ids: BTreeMap<String, u64>) -> TestMesh {
        let options = MeshOptions {
            probe_grace: GRACE,
            heartbeat_interval: HEARTBEAT,
            debounce: Duration::from_millis(50),
            poll_interval: Duration::from_millis(50),
            hello_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(2),
            // Exercise the spawn_blocking path.
            blocking_threshold: 10,
            ..MeshOptions::default()
        };
        let shutdown = CancellationToken::new();
        let sink = Arc::new(MemorySink::new(100));
        let mesh = Mesh::start(
            node.clone(),
            Arc::new(SystemWallClock),
            sink.clone(),
            options,
            shutdown.child_token(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = mesh.service();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled())
                .await
                .unwrap();
        });
        TestMesh { node, mesh, sink, addr, probe_ids, shutdown, server }
    }

    async fn connect(&self, name: &str) -> Result<FakeProbe, Status> {
        let region = name.split('-').next().unwrap();
        FakeProbe::connect(self.addr, Some(&token(name)), hello(name, region)).await
    }

    async fn connect_all(&self) -> BTreeMap<String, FakeProbe> {
        let mut probes = BTreeMap::new();
        for name in self.probe_ids.keys() {
            probes.insert(name.clone(), self.connect(name).await.expect(name));
        }
        probes
    }

    /// What `name` would check if it were connected with every other probe.
    fn probes_endpoints(&self, name: &str) -> BTreeSet<u64> {
        use vantage_core::shard::{assign, EndpointPlacement, ProbeCandidate};
        let candidates: Vec<_> = self
            .probe_ids
            .iter()
            .map(|(n, &id)| ProbeCandidate {
                id,
                region: n.split('-').next().unwrap().into(),
                weight: 100,
                live: true,
                drained: false,
            })
            .collect();
        let placements: Vec<_> = (1..=ENDPOINTS).map(EndpointPlacement::new).collect();
        let regions = REGIONS.iter().map(|r| r.to_string()).collect();
        assign(&placements, &candidates, &regions).by_probe(self.probe_ids[name]).clone()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.mesh.stopped()).await.expect("mesh stops in time");
        tokio::time::timeout(Duration::from_secs(5), self.server).await.expect("server stops").unwrap();
    }
}

fn token(name: &str) -> String {
    format!("token-of-{name}-0123456789")
}

fn hello(name: &str, region: &str) -> pb::Hello {
    pb::Hello {
        probe: name.into(),
        region: region.into(),
        version: "test".into(),
        weight: 100,
        assignment_version: 0,
        max_concurrency: 10,
    }
}

fn good_result(seq: u64, endpoint_id: u64) -> pb::ProbeResult {
    let started = unix_us(SystemTime::now() - Duration::from_secs(1));
    pb::ProbeResult {
        seq,
        endpoint_id,
        round: seq,
        planned_start_unix_us: started,
        lag_us: 100,
        result: Some(pb::CheckResult {
            url: format!("https://e{endpoint_id}.example/"),
            kind: pb::CheckKind::Https as i32,
            ok: true,
            status_code: Some(200),
            phases: Some(pb::Phases {
                dns_us: 1_000,
                connect_us: 2_000,
                tls_us: 3_000,
                ttfb_us: 4_000,
                transfer_us: 100,
                total_us: 10_100,
            }),
            started_at_unix_us: started,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn holdings(probes: &BTreeMap<String, FakeProbe>) -> BTreeMap<String, BTreeSet<u64>> {
    probes.iter().map(|(name, p)| (name.clone(), p.endpoints())).collect()
}

fn one_owner_per_region(probes: &BTreeMap<String, FakeProbe>) -> bool {
    let held = holdings(probes);
    REGIONS.iter().all(|region| {
        let mut owners: BTreeMap<u64, usize> = BTreeMap::new();
        for (_, endpoints) in held.iter().filter(|(n, _)| n.starts_with(region)) {
            for &e in endpoints {
                *owners.entry(e).or_default() += 1;
            }
        }
        owners.len() == ENDPOINTS as usize && owners.values().all(|&n| n == 1)
    })
}

async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The replicated state without Raft: real apply functions, a counter for
/// the applied index, and a settable leadership.
struct FakeNode {
    state: RwLock<MeshState>,
    index: AtomicU64,
    leadership: Mutex<Leadership>,
    /// Commits fail (a leader without its quorum) while set.
    fail_commits: AtomicBool,
}

impl Default for FakeNode {
    fn default() -> Self {
        FakeNode {
            state: RwLock::new(MeshState::new()),
            index: AtomicU64::new(0),
            leadership: Mutex::new(Leadership::Leader),
            fail_commits: AtomicBool::new(false),
        }
    }
}

impl FakeNode {
    fn apply(&self, command: Command) -> Outcome {
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        let request = Request {
            idempotency_key: IdempotencyKey(format!("key-{index}")),
            issued_at: UnixMillis(1_700_000_000_000 + index),
            command,
        };
        match self.state.write().unwrap().apply(&request) {
            CommandResponse::Rejected(error) => panic!("refused: {error}"),
            response => response.into_result().expect("applied"),
        }
    }

    fn set_leadership(&self, leadership: Leadership) {
        *self.leadership.lock().unwrap() = leadership;
    }
}

impl MeshNode for FakeNode {
    fn read_state(&self, f: &mut dyn FnMut(&MeshState)) {
        f(&self.state.read().unwrap());
    }

    fn applied_index(&self) -> u64 {
        self.index.load(Ordering::SeqCst)
    }

    fn leadership(&self) -> Leadership {
        self.leadership.lock().unwrap().clone()
    }

    fn coordinators(&self) -> Vec<String> {
        vec!["127.0.0.1:1".into()]
    }

    fn leading_term(&self) -> Option<u64> {
        (self.leadership() == Leadership::Leader).then_some(1)
    }

    fn commit_if_leader(&self, request: Request) -> Commit<'_> {
        Box::pin(async move {
            if self.leadership() != Leadership::Leader {
                return Ok(None);
            }
            if self.fail_commits.load(Ordering::SeqCst) {
                return Err("no quorum (injected)".into());
            }
            self.index.fetch_add(1, Ordering::SeqCst);
            match self.state.write().unwrap().apply(&request) {
                CommandResponse::Rejected(error) => Err(error.to_string()),
                response => Ok(Some(response.into_result().map_err(|e| e.to_string())?)),
            }
        })
    }
}

/// A test double of the probe agent: opens `Connect`, sends Hello and
/// heartbeats, applies assignments, and records everything it receives.
struct FakeProbe {
    out: mpsc::Sender<pb::ProbeMessage>,
    seen: Arc<Mutex<Seen>>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Seen {
    welcome: Option<pb::Welcome>,
    endpoints: BTreeSet<u64>,
    version: u64,
    delta_mismatches: u32,
    acks: Vec<pb::ResultAck>,
    check_now: Vec<pb::CheckNow>,
    redirect: Option<pb::Redirect>,
    ended: Option<Result<(), Status>>,
    /// Every assignment message, without its endpoints' specs.
    assignments: Vec<pb::Assignment>,
}

impl FakeProbe {
    async fn connect(addr: SocketAddr, token: Option<&str>, hello: pb::Hello) -> Result<FakeProbe, Status> {
        FakeProbe::connect_with(addr, token, hello, true, BTreeSet::new()).await
    }

    /// Like [`FakeProbe::connect`]; without `heartbeats` the probe stays
    /// silent after Hello; `running` is what it runs at
    /// `hello.assignment_version`.
    async fn connect_with(
        addr: SocketAddr,
        token: Option<&str>,
        hello: pb::Hello,
        heartbeats: bool,
        running: BTreeSet<u64>,
    ) -> Result<FakeProbe, Status> {
        let seen = Seen { endpoints: running, version: hello.assignment_version, ..Seen::default() };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut client =
            pb::probe_service_client::ProbeServiceClient::new(channel).max_decoding_message_size(64 << 20);
        let (out, rx) = mpsc::channel(64);
        out.send(pb::ProbeMessage { msg: Some(In::Hello(hello)) }).await.unwrap();
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let mut inbound = client.connect(request).await?.into_inner();
        let seen = Arc::new(Mutex::new(seen));
        let reader = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let message = inbound.message().await;
                    let mut seen = seen.lock().unwrap();
                    match message {
                        Ok(Some(message)) => seen.take(message),
                        Ok(None) => {
                            seen.ended = Some(Ok(()));
                            break;
                        }
                        Err(status) => {
                            seen.ended = Some(Err(status));
                            break;
                        }
                    }
                }
            })
        };
        let heartbeat = {
            let out = out.clone();
            tokio::spawn(async move {
                if !heartbeats {
                    return;
                }
                loop {
                    tokio::time::sleep(HEARTBEAT / 2).await;
                    let beat = pb::Heartbeat { sent_at_unix_ms: 0, unhealthy: false, stats: None };
                    if out.send(pb::ProbeMessage { msg: Some(In::Heartbeat(beat)) }).await.is_err() {
                        break;
                    }
                }
            })
        };
        Ok(FakeProbe { out, seen, tasks: vec![reader, heartbeat] })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    fn endpoints(&self) -> BTreeSet<u64> {
        self.seen().endpoints.clone()
    }

    async fn send_results(&self, results: Vec<pb::ProbeResult>) {
        let batch = pb::ResultBatch { results };
        self.out.send(pb::ProbeMessage { msg: Some(In::Results(batch)) }).await.unwrap();
    }

    async fn wait_ack(&self, up_to_seq: u64) -> Option<pb::ResultAck> {
        let mut found = None;
        wait_until(Duration::from_secs(3), || {
            found = self.seen().acks.iter().find(|a| a.up_to_seq >= up_to_seq).cloned();
            found.is_some()
        })
        .await;
        found
    }

    async fn wait_welcome(&self) -> Option<pb::Welcome> {
        wait_until(Duration::from_secs(3), || self.seen().welcome.is_some()).await;
        self.seen().welcome.clone()
    }

    async fn wait_end(&self) -> Option<Result<(), Status>> {
        wait_until(Duration::from_secs(5), || self.seen().ended.is_some()).await;
        self.seen().ended.clone()
    }
}

impl Seen {
    fn take(&mut self, message: pb::CoordinatorMessage) {
        match message.msg {
            Some(Out::Welcome(welcome)) => self.welcome = Some(welcome),
            Some(Out::Assignment(assignment)) => {
                self.assignments.push(pb::Assignment { upsert: Vec::new(), ..assignment.clone() });
                if assignment.full {
                    self.endpoints.clear();
                } else if assignment.base_version != self.version {
                    self.delta_mismatches += 1;
                }
                for e in &assignment.remove {
                    self.endpoints.remove(e);
                }
                self.endpoints.extend(assignment.upsert.iter().map(|e| e.endpoint_id));
                self.version = assignment.version;
            }
            Some(Out::Ack(ack)) => self.acks.push(ack),
            Some(Out::CheckNow(check)) => self.check_now.push(check),
            Some(Out::Redirect(redirect)) => self.redirect = Some(redirect),
            None => {}
        }
    }
}

impl std::fmt::Debug for FakeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProbe").field("endpoints", &self.endpoints().len()).finish()
    }
}

impl Drop for FakeProbe {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
