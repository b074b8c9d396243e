//! How a node is started: [`NodeOptions`], validated before anything is
//! opened or bound, and the openraft configuration derived from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vantage_core::clock::{SystemWallClock, WallClock};
use vantage_proto::raft::SNAPSHOT_CHUNK_BYTES;

use crate::raft::tls::PeerTls;
use crate::raft::types::{Node, NodeId};

/// Everything a [`ClusterNode`](super::ClusterNode) needs to start.
///
/// Build it with [`NodeOptions::new`] (defaults suited to nodes in different
/// regions) and change fields as needed; [`NodeOptions::validate`] runs
/// when the node starts, before the data dir is opened or a port bound.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id, at least 1. Ids are never reused: a replaced node
    /// gets a new one.
    pub node_id: NodeId,
    /// Where the Raft log, vote and snapshots live.
    pub data_dir: PathBuf,
    /// The address the peer (Raft) listener binds.
    pub raft_listen_addr: SocketAddr,
    /// How other nodes reach this one (advertised in the membership).
    pub node: Node,
    /// The initial members, this node included, when forming a new
    /// cluster: the one with the lowest id initializes the cluster from
    /// this map if its data dir is empty and no peer already belongs to a
    /// cluster. Leave empty (or without this node) for a node that joins an
    /// existing cluster through `add_node`.
    pub peers: BTreeMap<NodeId, Node>,
    /// Where this node dials a member's Raft port when that differs from
    /// the member's advertised `raft_addr` (a proxy, a NAT, a sidecar), by
    /// node id; members not listed are dialed at `raft_addr`. Local to this
    /// node, never replicated. TLS still checks the advertised host.
    pub dial_raft_addrs: BTreeMap<NodeId, String>,
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// The shortest time a follower waits without hearing from a leader
    /// before it stands for election (openraft adds the leader lease, equal
    /// to `election_timeout_max`, on top).
    pub election_timeout_min: Duration,
    /// The longest such wait; also the leader lease.
    pub election_timeout_max: Duration,
    /// Build a snapshot every this many applied log entries; the log behind
    /// a snapshot is purged.
    pub snapshot_every_logs: u64,
    /// How many already-snapshotted entries to keep in the log, so a
    /// follower slightly behind catches up from the log rather than a
    /// whole snapshot.
    pub max_in_snapshot_log_to_keep: u64,
    /// How long a write or a linearizable read may take, across a leader
    /// change, before it fails with an error saying why.
    pub write_timeout: Duration,
    /// How long adding a node (learner catch-up included), removing one or
    /// transferring leadership may take.
    pub membership_timeout: Duration,
    /// How long shutdown waits for in-flight operations, Raft and the peer
    /// listener to finish, in total.
    pub shutdown_grace: Duration,
    /// TLS for the peer port; `None` is plaintext (`insecure = true` only).
    pub tls: Option<PeerTls>,
    /// Stamps the requests the node proposes itself (retiring a removed
    /// node's id).
    pub clock: Arc<dyn WallClock>,
}

/// An option that cannot work; names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node option {field}: {reason}")]
pub struct OptionsError {
    /// The option, as named in [`NodeOptions`].
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl NodeOptions {
    /// Options with the defaults: heartbeat 250 ms, election timeout
    /// 1–2 s, a snapshot every 10 000 entries keeping 1 000 behind it,
    /// writes bounded by 10 s, membership changes by 60 s, shutdown by
    /// 10 s, every member dialed at its advertised address, plaintext, the
    /// system clock.
    pub fn new(
        node_id: NodeId,
        data_dir: PathBuf,
        raft_listen_addr: SocketAddr,
        node: Node,
        peers: BTreeMap<NodeId, Node>,
    ) -> NodeOptions {
        NodeOptions {
            node_id,
            data_dir,
            raft_listen_addr,
            node,
            peers,
            dial_raft_addrs: BTreeMap::new(),
            heartbeat: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            snapshot_every_logs: 10_000,
            max_in_snapshot_log_to_keep: 1_000,
            write_timeout: Duration::from_secs(10),
            membership_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            clock: Arc::new(SystemWallClock),
        }
    }

    /// Checks that the options can work together.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let bad = |field: &'static str, reason: String| Err(OptionsError { field, reason });
        if self.node_id == 0 {
            return bad("node_id", "must be at least 1".into());
        }
        if self.node.raft_addr.is_empty() {
            return bad("node.raft_addr", "must not be empty; peers reach this node there".into());
        }
        if self.heartbeat.is_zero() {
            return bad("heartbeat", "must be above zero".into());
        }
        if self.election_timeout_min <= self.heartbeat {
            return bad(
                "election_timeout_min",
                format!(
                    "{:?} must be longer than the heartbeat ({:?}), or followers elect while the leader is alive",
                    self.election_timeout_min, self.heartbeat
                ),
            );
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return bad(
                "election_timeout_max",
                format!(
                    "{:?} must be longer than election_timeout_min ({:?})",
                    self.election_timeout_max, self.election_timeout_min
                ),
            );
        }
        if self.snapshot_every_logs == 0 {
            return bad("snapshot_every_logs", "must be at least 1".into());
        }
        for (field, value) in [
            ("write_timeout", self.write_timeout),
            ("membership_timeout", self.membership_timeout),
            ("shutdown_grace", self.shutdown_grace),
        ] {
            if value.is_zero() {
                return bad(field, "must be above zero".into());
            }
        }
        for (id, peer) in &self.peers {
            if *id == 0 {
                return bad("peers", "node id 0 is not allowed; ids start at 1".into());
            }
            if peer.raft_addr.is_empty() {
                return bad("peers", format!("node {id} has an empty raft_addr"));
            }
        }
        for (id, addr) in &self.dial_raft_addrs {
            if addr.is_empty() {
                return bad("dial_raft_addrs", format!("node {id} has an empty dial address"));
            }
        }
        if let Some(me) = self.peers.get(&self.node_id) {
            if *me != self.node {
                return bad(
                    "peers",
                    format!(
                        "the entry for this node ({}) says {me}, but this node is {}",
                        self.node_id, self.node
                    ),
                );
            }
        }
        Ok(())
    }

    /// openraft's configuration for these options.
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, OptionsError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "vantage".into(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            // Per snapshot chunk; a chunk is at most SNAPSHOT_CHUNK_BYTES.
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_logs),
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES as u64,
            ..Default::default()
        };
        config.validate().map_err(|e| OptionsError { field: "raft", reason: e.to_string() })
    }

    /// How long to wait for a peer to answer a status probe. A probe may
    /// have to connect first (TCP and TLS: two round trips between
    /// regions), and a slow answer must not be mistaken for a missing node
    /// when diagnosing a lost quorum, so this is generous.
    pub(crate) fn probe_timeout(&self) -> Duration {
        self.election_timeout_max.clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// How long a connection to a peer (TCP and TLS handshake, two round
    /// trips between regions) may take to set up.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.election_timeout_max.clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// How long openraft waits before retrying an unreachable peer.
    pub(crate) fn unreachable_backoff(&self) -> Duration {
        (self.heartbeat * 2).min(Duration::from_secs(1))
    }
}
