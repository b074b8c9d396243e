//! The openraft type configuration of the coordinator cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::state::{CommandResponse, Request};

/// A coordinator node's id. Ids are never reused: a replaced node gets a
/// new one.
pub type NodeId = u64;

/// What the cluster knows about a member: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// The gRPC address for probes and admins.
    pub api_addr: String,
    /// The gRPC address for Raft peers only.
    pub raft_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{api: {}, raft: {}}}", self.api_addr, self.raft_addr)
    }
}

openraft::declare_raft_types!(
    /// The coordinator's Raft types: [`Request`]s in, [`CommandResponse`]s
    /// out, snapshots as files (the history they carry is too large to
    /// hold in memory; see `raft::store`).
    pub TypeConfig:
        D = Request,
        R = CommandResponse,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log id of this cluster.
pub type LogId = openraft::LogId<NodeId>;
/// A vote of this cluster.
pub type Vote = openraft::Vote<NodeId>;
/// A log entry of this cluster.
pub type Entry = openraft::Entry<TypeConfig>;
/// A membership as recorded by the state machine.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot with its data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// The error every storage method returns; openraft stops the node on it.
pub type StorageError = openraft::StorageError<NodeId>;
/// A running Raft node of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;
