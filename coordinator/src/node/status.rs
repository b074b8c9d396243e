//! The cluster as one node sees it: `cluster status`.
//!
//! Every other member is asked directly (`NodeInfo`, within the probe
//! timeout), concurrently: `reachable` means it answered this node just
//! now, and `last_applied` is what it reports itself. This works the same
//! from any node; a leader's replication metrics would only cover the
//! leader's view and tell how far a member has *stored* the log, not
//! applied it.

use serde::Serialize;

use super::Shared;
use crate::raft::types::NodeId;

/// The cluster as one node sees it. Serializes as the `cluster status
/// --json` contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: NodeId,
    /// The current leader, if one is known.
    pub leader_id: Option<NodeId>,
    /// The current term, as this node knows it.
    pub term: u64,
    /// Every member, voters and learners, by id.
    pub members: Vec<MemberStatus>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: NodeId,
    /// Where it serves probes and admins.
    pub api_addr: String,
    /// Where it serves its peers.
    pub raft_addr: String,
    /// Its role.
    pub role: Role,
    /// Whether it answered the node reporting (always true for itself).
    pub reachable: bool,
    /// The last log index it has applied (0 when unknown or none).
    pub last_applied: u64,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Leads the cluster.
    Leader,
    /// Votes and follows.
    Follower,
    /// Replicates without voting.
    Learner,
}

impl Shared {
    /// Builds the status, asking every other member about itself.
    pub(super) async fn status(&self) -> ClusterStatus {
        let (mut leader_id, term, last_applied, members, voters) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let members: Vec<_> = membership.nodes().map(|(id, node)| (*id, node.clone())).collect();
            let voters: Vec<NodeId> = membership.voter_ids().collect();
            (
                metrics.current_leader,
                metrics.current_term,
                metrics.last_applied.map_or(0, |id| id.index),
                members,
                voters,
            )
        };
        let answers = self.probe(members.iter().map(|(id, _)| *id).filter(|id| *id != self.id)).await;
        if leader_id.is_none() {
            // This node may be between elections; a member may know.
            leader_id = answers.iter().filter_map(|(_, info)| info.as_ref()?.leader_id).next();
        }
        let members = members
            .into_iter()
            .map(|(id, node)| {
                let answer =
                    answers.iter().find(|(answered, _)| *answered == id).and_then(|(_, info)| info.as_ref());
                let role = if Some(id) == leader_id {
                    Role::Leader
                } else if voters.contains(&id) {
                    Role::Follower
                } else {
                    Role::Learner
                };
                let (reachable, applied) = if id == self.id {
                    (true, last_applied)
                } else {
                    (answer.is_some(), answer.and_then(|info| info.last_applied).unwrap_or(0))
                };
                MemberStatus {
                    id,
                    api_addr: node.api_addr,
                    raft_addr: node.raft_addr,
                    role,
                    reachable,
                    last_applied: applied,
                }
            })
            .collect();
        ClusterStatus { node_id: self.id, leader_id, term, members }
    }
}
