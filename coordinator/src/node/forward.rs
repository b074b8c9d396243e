//! Operations a follower forwards to the leader over the peer port, and
//! the answers that come back.
//!
//! The leader runs a forwarded operation only if it still leads; otherwise
//! it answers [`ForwardError::NotLeader`] and the follower routes again
//! once it knows the new leader. Nothing is forwarded twice, so a request
//! cannot loop between nodes.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use vantage_proto::pb;
use vantage_proto::pb::raft_service_client::RaftServiceClient;

use super::error::ClusterError;
use crate::raft::network::is_unreachable;
use crate::raft::types::{Node, NodeId};
use crate::raft::wire;
use crate::state::{CommandResponse, Request};

/// What the leader answers to a forwarded operation.
pub type Forwarded<T> = Result<T, ForwardError>;

/// Why the leader did not complete a forwarded operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardError {
    /// The node asked is not (or no longer) the leader.
    NotLeader {
        /// The leader it knows of, if any.
        leader_id: Option<NodeId>,
    },
    /// The leader tried and failed.
    Failed(ClusterError),
}

impl From<ClusterError> for ForwardError {
    fn from(error: ClusterError) -> Self {
        ForwardError::Failed(error)
    }
}

/// A committed write: the state machine's answer and the log index it
/// was committed at, so the forwarding node can wait to apply it too
/// before answering (clients read their own writes on any node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The state machine's answer.
    pub response: CommandResponse,
    /// The entry's log index.
    pub log_index: u64,
}

/// A membership change, forwarded to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    /// Adds a node as a learner, then (unless `learner_only`) makes it a
    /// voter once it has caught up.
    AddNode {
        /// The new node's id; never a retired one.
        node_id: NodeId,
        /// Where it is reached.
        node: Node,
        /// Leave it a learner.
        learner_only: bool,
    },
    /// Removes a node (voter or learner) and retires its id.
    RemoveNode {
        /// The node's id.
        node_id: NodeId,
    },
}

/// A forwarded call that did not produce an answer from the leader.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The peer could not be reached or did not answer in time: try again.
    Unreachable(String),
    /// The peer answered with something unusable: give up.
    Broken(String),
}

fn request<T>(message: T, ttl: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(ttl);
    request
}

fn status_error(status: &tonic::Status) -> CallError {
    if is_unreachable(status.code())
        || matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled)
    {
        CallError::Unreachable(status.to_string())
    } else {
        CallError::Broken(status.to_string())
    }
}

fn decode_reply<T: DeserializeOwned>(reply: &pb::RaftPayload) -> Result<Forwarded<T>, CallError> {
    wire::decode("forwarded reply", reply).map_err(|e| CallError::Broken(e.to_string()))
}

/// Forwards a client write.
pub(crate) async fn write(
    mut client: RaftServiceClient<Channel>,
    payload: pb::RaftPayload,
    ttl: Duration,
) -> Result<Forwarded<Committed>, CallError> {
    let reply = client.client_write(request(payload, ttl)).await.map_err(|s| status_error(&s))?;
    decode_reply(reply.get_ref())
}

/// Encodes a client write once, for every forwarding attempt.
pub(crate) fn encode_write(request: &Request) -> Result<pb::RaftPayload, wire::WireError> {
    wire::encode("client request", request)
}

/// Asks the leader for a read index.
pub(crate) async fn read_index(
    mut client: RaftServiceClient<Channel>,
    ttl: Duration,
) -> Result<Forwarded<u64>, CallError> {
    let reply =
        client.read_index(request(pb::RaftReadIndexRequest {}, ttl)).await.map_err(|s| status_error(&s))?;
    decode_reply(reply.get_ref())
}

/// Forwards a membership change.
pub(crate) async fn change_membership(
    mut client: RaftServiceClient<Channel>,
    change: &MembershipChange,
    ttl: Duration,
) -> Result<Forwarded<u64>, CallError> {
    let payload = wire::encode("membership change", change).map_err(|e| CallError::Broken(e.to_string()))?;
    let reply = client.change_membership(request(payload, ttl)).await.map_err(|s| status_error(&s))?;
    decode_reply(reply.get_ref())
}

/// Forwards a leadership transfer.
pub(crate) async fn transfer_leader(
    mut client: RaftServiceClient<Channel>,
    to: Option<NodeId>,
    ttl: Duration,
) -> Result<Forwarded<NodeId>, CallError> {
    let reply = client
        .transfer_leader(request(pb::RaftTransferLeaderRequest { to }, ttl))
        .await
        .map_err(|s| status_error(&s))?;
    decode_reply(reply.get_ref())
}

/// Asks a node to start an election on behalf of the leader handing over.
pub(crate) async fn start_election(
    mut client: RaftServiceClient<Channel>,
    leader_id: NodeId,
    term: u64,
    ttl: Duration,
) -> Result<bool, CallError> {
    let reply = client
        .start_election(request(pb::RaftStartElectionRequest { leader_id, term }, ttl))
        .await
        .map_err(|s| status_error(&s))?;
    Ok(reply.into_inner().started)
}

/// Asks a node about itself.
pub(crate) async fn node_info(
    mut client: RaftServiceClient<Channel>,
    ttl: Duration,
) -> Result<pb::RaftNodeInfoReply, CallError> {
    let reply =
        client.node_info(request(pb::RaftNodeInfoRequest {}, ttl)).await.map_err(|s| status_error(&s))?;
    Ok(reply.into_inner())
}
