//! The node's side of the peer service: forwarded operations, run only
//! while this node leads, and what it tells peers about itself.

use openraft::ServerState;
use vantage_proto::pb;

use super::forward::{Committed, Forwarded, MembershipChange};
use super::Shared;
use crate::raft::server::PeerHandler;
use crate::raft::types::NodeId;
use crate::state::Request;

impl PeerHandler for Shared {
    async fn client_write(&self, request: Request) -> Forwarded<Committed> {
        let _operation = self.begin()?;
        self.lead_write(request).await
    }

    async fn read_index(&self) -> Forwarded<u64> {
        let _operation = self.begin()?;
        self.lead_read_index().await
    }

    async fn change_membership(&self, change: MembershipChange) -> Forwarded<u64> {
        let _operation = self.begin()?;
        self.lead_membership(change).await
    }

    async fn transfer_leader(&self, to: Option<NodeId>) -> Forwarded<NodeId> {
        let _operation = self.begin()?;
        self.lead_transfer(to).await
    }

    async fn start_election(&self, leader_id: NodeId, term: u64) -> bool {
        let (follows, voter) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let follows = metrics.current_leader == Some(leader_id) && metrics.current_term == term;
            (follows, metrics.membership_config.membership().voter_ids().any(|id| id == self.id))
        };
        if !follows || !voter {
            tracing::info!(
                node_id = self.id,
                leader_id,
                term,
                follows,
                voter,
                "refused a stale or invalid election request"
            );
            return false;
        }
        tracing::info!(node_id = self.id, leader_id, term, "standing for election at the leader's request");
        self.raft.trigger().elect().await.is_ok()
    }

    fn node_info(&self) -> pb::RaftNodeInfoReply {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let state = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        pb::RaftNodeInfoReply {
            node_id: self.id,
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            last_applied: metrics.last_applied.map(|id| id.index),
            last_log_index: metrics.last_log_index,
            initialized: metrics.last_log_index.is_some()
                || metrics.current_term > 0
                || metrics.membership_config.log_id().is_some(),
            state: state.to_string(),
        }
    }
}
