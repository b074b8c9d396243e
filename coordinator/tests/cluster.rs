//! What the coordinator cluster survives: real nodes on loopback sockets
//! (see `harness`), named scenarios.
//!
//! Timings: heartbeat 50 ms, election timeout 300–600 ms, writes bounded
//! by 3 s. openraft 0.9 followers wait for the leader lease
//! (`election_timeout_max`) *plus* their random election timeout before
//! standing for election, checked on a tick of 1.5 heartbeats, so the
//! worst-case failover is `2 × election_timeout_max` plus one tick and a
//! vote round trip; [`FAILOVER_BOUND`] is that.

mod harness;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{add_region, Cluster, ELECTION_MAX};
use vantage_coordinator::node::{ClusterError, Role};
use vantage_coordinator::raft::NodeId;
use vantage_coordinator::state::{CommandResponse, Outcome};

/// How long a new leader may take after the old one dies.
const FAILOVER_BOUND: Duration = Duration::from_millis(2 * 600 + 3 * 50);
/// A generous bound for things that normally take a few heartbeats.
const SETTLE: Duration = Duration::from_secs(10);

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn assert_added(response: Result<CommandResponse, ClusterError>, name: &str) {
    match response {
        Ok(CommandResponse::Applied(Outcome::RegionAdded { name: added })) => assert_eq!(added, name),
        other => panic!("writing region {name}: expected it added, got {other:?}"),
    }
}

fn others(cluster: &Cluster, not: NodeId) -> Vec<NodeId> {
    cluster.running().into_iter().filter(|id| *id != not).collect()
}

#[test]
fn t10_three_nodes_elect_a_leader_and_a_write_through_any_node_is_read_on_all() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);

    let mut written = Vec::new();
    for via in [1, 2, 3] {
        let name = format!("via-{via}");
        assert_added(cluster.write(via, add_region(&name)), &name);
        // The writing node's state includes its write when write returns.
        assert!(
            cluster.node(via).read_local(|a| a.mesh.regions().contains_key(&name)),
            "node {via} reads its own write"
        );
        written.push(name);
    }
    for id in [1, 2, 3] {
        cluster.wait_for_regions(id, &written, SETTLE);
    }

    // A retried write (same idempotency key) is not applied twice: the
    // original answer comes back.
    assert_added(cluster.write(3, add_region("via-1")), "via-1");

    // Linearizable reads through a follower see every committed write.
    let follower = others(&cluster, leader)[0];
    let count = cluster
        .on(follower, |node| async move { node.read_linearizable(|a| a.mesh.regions().len()).await })
        .expect("a linearizable read through a follower");
    assert_eq!(count, 3);

    let status = cluster.on(follower, |node| async move { node.status().await });
    assert_eq!(status.node_id, follower);
    assert_eq!(status.leader_id, Some(leader));
    assert!(status.term >= 1);
    assert_eq!(status.members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    for member in &status.members {
        assert!(member.reachable, "member {} reachable", member.id);
        let role = if member.id == leader { Role::Leader } else { Role::Follower };
        assert_eq!(member.role, role, "role of {}", member.id);
        assert_eq!(member.raft_addr, cluster.address(member.id).raft_addr);
        assert!(member.last_applied >= 4, "member {} applied {}", member.id, member.last_applied);
    }
    let json = serde_json::to_value(&status).expect("status serializes");
    assert_eq!(json["members"][0]["role"].as_str().map(|r| r == "leader" || r == "follower"), Some(true));
}

#[test]
fn t20_leader_killed_a_new_leader_takes_over_keeping_every_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let old_leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let mut acknowledged = Vec::new();
    for (i, name) in names("before", 6).into_iter().enumerate() {
        let via = [1, 2, 3][i % 3];
        assert_added(cluster.write(via, add_region(&name)), &name);
        acknowledged.push(name);
    }

    let killed_at = Instant::now();
    cluster.kill(old_leader);
    let survivors = others(&cluster, old_leader);
    let new_leader = cluster.wait_for_leader(&survivors, SETTLE);
    let failover = killed_at.elapsed();
    assert_ne!(new_leader, old_leader);
    assert!(
        failover <= FAILOVER_BOUND,
        "a new leader took {failover:?}, more than {FAILOVER_BOUND:?} (2 x election_timeout_max {ELECTION_MAX:?} + a tick)"
    );
    eprintln!("t20: failover took {failover:?}");

    // Every acknowledged write is still there, read linearizably.
    for id in &survivors {
        let regions: BTreeSet<String> = cluster
            .on(*id, |node| async move {
                node.read_linearizable(|a| a.mesh.regions().keys().cloned().collect()).await
            })
            .expect("a linearizable read");
        for name in &acknowledged {
            assert!(regions.contains(name), "node {id} lost acknowledged write {name}");
        }
    }

    // Writes continue through either survivor.
    for (i, name) in names("after", 4).into_iter().enumerate() {
        assert_added(cluster.write(survivors[i % 2], add_region(&name)), &name);
        acknowledged.push(name);
    }

    // The killed node comes back from its data dir and catches up.
    cluster.restart(old_leader);
    cluster.wait_for_regions(old_leader, &acknowledged, SETTLE);
    cluster.wait_until(SETTLE, "the restarted node to follow the new leader", || {
        (cluster.node(old_leader).current_leader() == Some(new_leader)).then_some(())
    });
    assert_added(cluster.write(old_leader, add_region("through-restarted")), "through-restarted");
}

#[test]
fn t30_two_of_three_stopped_writes_fail_with_no_quorum_local_reads_answer_then_writes_resume() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let written = names("kept", 3);
    for name in &written {
        assert_added(cluster.write(leader, add_region(name)), name);
    }
    for id in [1, 2, 3] {
        cluster.wait_for_regions(id, &written, SETTLE);
    }

    // Case 1: the leader and one follower stop; the survivor follows.
    let survivor = others(&cluster, leader)[0];
    let stopped: Vec<NodeId> = others(&cluster, survivor);
    for id in &stopped {
        let took = cluster.stop(*id);
        assert!(took < Duration::from_secs(4), "graceful stop of node {id} took {took:?}");
    }
    expect_no_quorum(&cluster, survivor);

    for id in &stopped {
        cluster.restart(*id);
    }
    cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    assert_added(cluster.write(survivor, add_region("resumed-1")), "resumed-1");

    // Case 2: both followers stop; the survivor is the leader and finds
    // out it has lost its quorum.
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    for id in others(&cluster, leader) {
        cluster.stop(id);
    }
    expect_no_quorum(&cluster, leader);
    for id in [1, 2, 3] {
        if id != leader {
            cluster.restart(id);
        }
    }
    cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    assert_added(cluster.write(leader, add_region("resumed-2")), "resumed-2");
    for id in [1, 2, 3] {
        cluster.wait_for_regions(id, &["resumed-1".to_string(), "resumed-2".to_string()], SETTLE);
    }
}

/// Writes and linearizable reads through `survivor` fail with the
/// no-quorum error within the write timeout; local reads still answer.
fn expect_no_quorum(cluster: &Cluster, survivor: NodeId) {
    let started = Instant::now();
    let error = cluster.write(survivor, add_region("lost")).expect_err("a write without a quorum fails");
    let took = started.elapsed();
    assert_eq!(error, ClusterError::NoQuorum { reachable: 1, members: 3, quorum: 2 });
    assert_eq!(error.to_string(), "no leader: 1 of 3 nodes reachable, a quorum needs 2");
    assert!(took < Duration::from_secs(4), "the failing write took {took:?}");
    let read = cluster.on(survivor, |node| async move { node.linearize().await });
    assert!(matches!(read, Err(ClusterError::NoQuorum { .. })), "a linearizable read fails too: {read:?}");
    let kept = cluster.node(survivor).read_local(|a| a.mesh.regions().len());
    assert!(kept >= 3, "local reads answer without a quorum");
}

#[test]
fn t40_a_node_behind_a_log_purge_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::start_tuned(
        3,
        Arc::new(|options| {
            options.snapshot_every_logs = 5;
            options.max_in_snapshot_log_to_keep = 0;
        }),
    );
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let lagging = others(&cluster, leader)[0];
    cluster.stop(lagging);
    let lagging_last_log = {
        let dir = cluster.data_dir(lagging);
        assert!(dir.exists());
        // The stopped node's log ends where the cluster's was when it left.
        cluster.node(leader).raft().metrics().borrow().last_log_index.unwrap_or(0)
    };

    let written = names("while-away", 30);
    for name in &written {
        assert_added(cluster.write(leader, add_region(name)), name);
    }
    cluster.on(leader, |node| async move { node.trigger_snapshot().await }).expect("a snapshot");
    let purged = cluster.wait_until(SETTLE, "the leader to purge its log behind a snapshot", || {
        let purged = cluster.node(leader).raft().metrics().borrow().purged.map(|id| id.index)?;
        (purged > lagging_last_log).then_some(purged)
    });

    cluster.restart(lagging);
    cluster.wait_for_regions(lagging, &written, SETTLE);
    let snapshot = cluster.node(lagging).raft().metrics().borrow().snapshot.map(|id| id.index);
    assert!(
        snapshot.is_some_and(|index| index >= purged),
        "node {lagging} caught up past the purge at {purged} but has snapshot {snapshot:?}"
    );
}

#[test]
fn t50_a_full_restart_of_all_three_nodes_keeps_all_data() {
    let mut cluster = Cluster::start(3);
    cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let mut written = Vec::new();
    for (i, name) in names("first", 9).into_iter().enumerate() {
        assert_added(cluster.write([1, 2, 3][i % 3], add_region(&name)), &name);
        written.push(name);
    }

    // Graceful: stop all, start all.
    for id in [1, 2, 3] {
        cluster.stop(id);
    }
    for id in [1, 2, 3] {
        cluster.restart(id);
    }
    cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    for id in [1, 2, 3] {
        cluster.wait_for_regions(id, &written, SETTLE);
    }
    assert_added(cluster.write(2, add_region("second")), "second");
    written.push("second".into());

    // Crash: kill all, start all.
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.restart(id);
    }
    cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    for id in [1, 2, 3] {
        cluster.wait_for_regions(id, &written, SETTLE);
        let count = cluster.node(id).read_local(|a| a.mesh.regions().len());
        assert_eq!(count, written.len(), "node {id} has exactly the written regions");
    }
    assert_added(cluster.write(3, add_region("third")), "third");
}

#[test]
fn t60_membership_learner_then_voter_transfer_remove_and_ids_never_reused() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let written = names("seed", 3);
    for name in &written {
        assert_added(cluster.write(leader, add_region(name)), name);
    }
    let follower = others(&cluster, leader)[0];

    // Node 4 joins: learner first (through a follower), then voter.
    let node4 = cluster.start_joiner(4);
    cluster
        .on(follower, |node| {
            let node4 = node4.clone();
            async move { node.add_node(4, node4, true).await }
        })
        .expect("node 4 added as a learner");
    cluster.wait_for_regions(4, &written, SETTLE);
    let status = cluster.on(follower, |node| async move { node.status().await });
    let member4 = status.members.iter().find(|m| m.id == 4).expect("node 4 is a member");
    assert_eq!(member4.role, Role::Learner);
    assert!(member4.reachable);

    cluster
        .on(4, |node| {
            let node4 = node4.clone();
            async move { node.add_node(4, node4, false).await }
        })
        .expect("node 4 promoted to voter (asked through itself)");
    let status = cluster.on(leader, |node| async move { node.status().await });
    assert_eq!(status.members.iter().find(|m| m.id == 4).map(|m| m.role), Some(Role::Follower));
    assert_eq!(
        cluster.node(leader).raft().metrics().borrow().membership_config.membership().voter_ids().count(),
        4
    );
    assert_added(cluster.write(4, add_region("through-4")), "through-4");

    // Adding a member again with the same addresses changes nothing; with
    // other addresses it is refused.
    cluster
        .on(2, |node| {
            let node4 = node4.clone();
            async move { node.add_node(4, node4, false).await }
        })
        .expect("re-adding node 4 is a no-op");
    let other = vantage_coordinator::raft::Node { api_addr: "x".into(), raft_addr: "127.0.0.1:1".into() };
    let refused = cluster.on(2, |node| async move { node.add_node(4, other, false).await });
    assert!(matches!(refused, Err(ClusterError::NodeIdInUse { node_id: 4, .. })), "{refused:?}");

    // Leadership moves to the chosen voter.
    let target = others(&cluster, leader).into_iter().find(|id| *id != 4).expect("another voter");
    let new_leader = cluster
        .on(4, move |node| async move { node.transfer_leadership(Some(target)).await })
        .expect("leadership transferred");
    assert_eq!(new_leader, target);
    assert_eq!(cluster.wait_for_leader(&[1, 2, 3, 4], SETTLE), target);
    assert_added(cluster.write(leader, add_region("after-transfer")), "after-transfer");

    // Node 4 leaves; its id is retired.
    cluster.on(1, |node| async move { node.remove_node(4).await }).expect("node 4 removed");
    let status = cluster.on(2, |node| async move { node.status().await });
    assert_eq!(status.members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    cluster.on(3, |node| async move { node.remove_node(4).await }).expect("removing it again is a no-op");
    cluster.stop(4);
    let node4 = cluster.address(4);
    let reused = cluster.on(2, |node| async move { node.add_node(4, node4, false).await });
    assert_eq!(reused, Err(ClusterError::NodeIdRetired { node_id: 4 }));
    for id in [1, 2, 3] {
        cluster.wait_until(SETTLE, "the retired id to replicate", || {
            cluster.node(id).read_local(|a| a.mesh.retired_nodes().contains(&4)).then_some(())
        });
    }
    let unknown = cluster.on(1, |node| async move { node.remove_node(9).await });
    assert_eq!(unknown, Err(ClusterError::UnknownNode { node_id: 9 }));

    // Removing the leader hands leadership over first.
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    let asked = others(&cluster, leader)[0];
    cluster.on(asked, move |node| async move { node.remove_node(leader).await }).expect("the leader removed");
    let rest = others(&cluster, leader);
    let new_leader = cluster.wait_for_leader(&rest, SETTLE);
    assert_ne!(new_leader, leader);
    assert_added(cluster.write(rest[0], add_region("two-voters")), "two-voters");
}

#[test]
fn t70_tls_peers_need_a_certificate_from_the_cluster_ca() {
    use std::time::SystemTime;

    use vantage_coordinator::certs::ClusterPki;
    use vantage_coordinator::node::PeerTls;
    use vantage_coordinator::raft::network::PeerPool;
    use vantage_coordinator::tls::TlsMaterial;
    use vantage_proto::pb;

    let pki = Arc::new(ClusterPki::generate(3, &[], 30, SystemTime::now()).expect("a cluster pki"));
    let material = |pki: &ClusterPki, id: u64| {
        let node = &pki.nodes[(id - 1) as usize];
        TlsMaterial::from_pem(pki.ca.cert_pem.as_bytes(), node.cert_pem.as_bytes(), node.key_pem.as_bytes())
            .expect("node tls material")
    };
    let tls_pki = pki.clone();
    let cluster = Cluster::start_tuned(
        3,
        Arc::new(move |options| {
            let material = material(&tls_pki, options.node_id);
            options.tls = Some(PeerTls {
                server: material.raft_server_config().expect("a raft server config"),
                client: material.peer_client_config().expect("a peer client config"),
            });
        }),
    );
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE);
    for via in [1, 2, 3] {
        let name = format!("tls-via-{via}");
        assert_added(cluster.write(via, add_region(&name)), &name);
    }
    let follower = others(&cluster, leader)[0];
    let status = cluster.on(follower, |node| async move { node.status().await });
    assert!(status.members.iter().all(|m| m.reachable), "peers reach each other over TLS: {status:?}");

    // Knocking on a node's raft port without the cluster's certificate.
    let addr = cluster.address(leader).raft_addr;
    let ask = |pool: PeerPool| {
        let addr = addr.clone();
        cluster.on(follower, move |_| async move {
            let mut client = pool.client(&addr).expect("a client");
            tokio::time::timeout(Duration::from_secs(5), client.node_info(pb::RaftNodeInfoRequest {})).await
        })
    };
    let connect = Duration::from_secs(2);
    let good = ask(PeerPool::new(Some(material(&pki, 1).peer_client_config().unwrap()), connect));
    assert!(matches!(good, Ok(Ok(_))), "a cluster certificate is accepted: {good:?}");
    let plaintext = ask(PeerPool::new(None, connect));
    assert!(matches!(plaintext, Ok(Err(_))), "plaintext is refused: {plaintext:?}");
    // Clients that trust the cluster CA, so only the server can refuse.
    let other_cluster = ClusterPki::generate(1, &[], 30, SystemTime::now()).expect("another pki");
    let no_cert = ask(PeerPool::new(Some(client_trusting(&pki.ca.cert_pem, None)), connect));
    assert!(matches!(no_cert, Ok(Err(_))), "a client without a certificate is refused: {no_cert:?}");
    let foreign = &other_cluster.nodes[0];
    let foreign = ask(PeerPool::new(
        Some(client_trusting(&pki.ca.cert_pem, Some((&foreign.cert_pem, &foreign.key_pem)))),
        connect,
    ));
    assert!(matches!(foreign, Ok(Err(_))), "another cluster's certificate is refused: {foreign:?}");
}

/// A TLS 1.3 client config trusting `ca_pem`, presenting `identity`
/// (certificate and key PEM) if given.
fn client_trusting(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("a CA certificate")).expect("a usable CA");
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("a key");
            builder.with_client_auth_cert(chain, key).expect("a client identity")
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}
