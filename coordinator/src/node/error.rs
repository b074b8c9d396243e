//! How node operations fail.
//!
//! [`ClusterError`] crosses the peer port when a follower forwards an
//! operation to the leader, so it is plain serde data; the leader's answer
//! reaches the client unchanged.

use serde::{Deserialize, Serialize};

use crate::raft::store::StoreError;
use crate::raft::types::NodeId;

use super::options::OptionsError;

/// Why the cluster could not carry out an operation.
///
/// Every write carries an idempotency key; after [`ClusterError::Timeout`]
/// or [`ClusterError::NoQuorum`] the write may still be applied once the
/// cluster recovers, so retry it with the same key (a replay returns the
/// first answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ClusterError {
    /// Too few voting members answer for a leader to be elected or to
    /// commit anything.
    #[error("no leader: {reachable} of {members} nodes reachable, a quorum needs {quorum}")]
    NoQuorum {
        /// Voting members that answered, the asking node included.
        reachable: usize,
        /// Voting members.
        members: usize,
        /// Votes needed.
        quorum: usize,
    },
    /// Enough members answer, but no leader emerged in time (an election
    /// in progress).
    #[error("no leader elected within {waited_ms} ms although {reachable} of {members} nodes are reachable; retry shortly")]
    NoLeader {
        /// How long the node waited.
        waited_ms: u64,
        /// Voting members that answered.
        reachable: usize,
        /// Voting members.
        members: usize,
    },
    /// The operation was not confirmed in time. A write may still be
    /// applied: retry with the same idempotency key.
    #[error("{operation} was not confirmed within {timeout_ms} ms (leader: {}); it may still take effect: retry with the same idempotency key", leader_name(*.leader_id))]
    Timeout {
        /// What was attempted.
        operation: String,
        /// The leader last known.
        leader_id: Option<NodeId>,
        /// The limit.
        timeout_ms: u64,
    },
    /// The node is shutting down and takes no new operations.
    #[error("node {node_id} is shutting down; send the request to another node")]
    ShuttingDown {
        /// The node.
        node_id: NodeId,
    },
    /// Raft stopped on this node (a storage error, or shut down).
    #[error("raft stopped on node {node_id}: {reason}; see that node's log")]
    Stopped {
        /// The node.
        node_id: NodeId,
        /// What openraft reported.
        reason: String,
    },
    /// A peer answered something this node cannot use (another version,
    /// a bad address, an oversized message).
    #[error("peer {node_id} failed: {reason}")]
    Peer {
        /// The peer.
        node_id: NodeId,
        /// What went wrong.
        reason: String,
    },
    /// The id belonged to a node that was removed.
    #[error("node id {node_id} belonged to a node that was removed, and ids are never reused; give the new node a new id")]
    NodeIdRetired {
        /// The id.
        node_id: NodeId,
    },
    /// The id is a member already, at other addresses.
    #[error("node id {node_id} is already a member at {raft_addr}; remove it first or use a new id")]
    NodeIdInUse {
        /// The id.
        node_id: NodeId,
        /// Where the member is.
        raft_addr: String,
    },
    /// No member has this id.
    #[error("node {node_id} is not a member of the cluster (see: vantagectl cluster status)")]
    UnknownNode {
        /// The id.
        node_id: NodeId,
    },
    /// The node is a learner, so it cannot lead.
    #[error("node {node_id} is a learner, not a voter; it cannot become leader")]
    NotAVoter {
        /// The id.
        node_id: NodeId,
    },
    /// Removing the node would leave no voter.
    #[error("cannot remove node {node_id}: it is the last voter")]
    LastVoter {
        /// The id.
        node_id: NodeId,
    },
    /// openraft refused the membership change (another in progress, …).
    #[error("membership change refused: {reason}")]
    MembershipRefused {
        /// What openraft reported.
        reason: String,
    },
    /// A learner was added but did not catch up in time, so it was not
    /// made a voter.
    #[error("node {node_id} was added as a learner but did not catch up within {timeout_ms} ms; check that it runs at its raft_addr, then add it again to make it a voter")]
    LearnerNotCaughtUp {
        /// The id.
        node_id: NodeId,
        /// The limit.
        timeout_ms: u64,
    },
    /// Leadership did not move to the chosen node.
    #[error("leadership transfer to node {to} failed: {reason}")]
    TransferFailed {
        /// The intended leader.
        to: NodeId,
        /// Why.
        reason: String,
    },
}

fn leader_name(leader: Option<NodeId>) -> String {
    match leader {
        Some(id) => format!("node {id}"),
        None => "unknown".to_string(),
    }
}

impl ClusterError {
    /// Whether the operation may succeed if tried again at the same or
    /// another node without changing anything (used when a forwarded
    /// operation comes back with this error).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClusterError::ShuttingDown { .. } | ClusterError::Stopped { .. } | ClusterError::NoLeader { .. }
        )
    }

    pub(crate) fn stopped(node_id: NodeId, fatal: &openraft::error::Fatal<NodeId>) -> ClusterError {
        ClusterError::Stopped { node_id, reason: fatal.to_string() }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An option is invalid.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The peer listener could not bind.
    #[error("cannot listen for peers on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The data dir could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// openraft could not start.
    #[error("raft could not start: {reason}")]
    Raft {
        /// What openraft reported.
        reason: String,
    },
    /// Initializing a new cluster failed.
    #[error("cannot initialize the cluster: {reason}")]
    Initialize {
        /// What openraft reported.
        reason: String,
    },
    /// Opening the store on the blocking pool failed.
    #[error("opening the data dir did not finish: {reason}")]
    Task {
        /// Why.
        reason: String,
    },
}
