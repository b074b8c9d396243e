//! [`MeshNode`] for the real coordinator node.

use super::{Commit, Leadership, MeshNode};
use crate::node::ClusterNode;
use crate::state::{CommandResponse, MeshState, Request};

impl MeshNode for ClusterNode {
    fn read_state(&self, f: &mut dyn FnMut(&MeshState)) {
        self.read_local(|applied| f(&applied.mesh));
    }

    fn applied_index(&self) -> u64 {
        self.read_local(|applied| applied.last_applied.map_or(0, |id| id.index))
    }

    fn leadership(&self) -> Leadership {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        if m.current_leader == Some(self.id()) && m.state.is_leader() {
            return Leadership::Leader;
        }
        let leader_api_addr = m
            .current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).map(|n| n.api_addr.clone()));
        Leadership::Follower { leader_id: m.current_leader, leader_api_addr }
    }

    fn coordinators(&self) -> Vec<String> {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        m.membership_config.membership().nodes().map(|(_, n)| n.api_addr.clone()).collect()
    }

    fn leading_term(&self) -> Option<u64> {
        ClusterNode::leading_term(self)
    }

    fn commit_if_leader(&self, request: Request) -> Commit<'_> {
        Box::pin(async move {
            match self.write_if_leader(request).await {
                Ok(None) => Ok(None),
                Ok(Some(CommandResponse::Applied(outcome))) => Ok(Some(outcome)),
                Ok(Some(CommandResponse::Empty)) => Err("the command was applied as an empty entry".into()),
                Ok(Some(CommandResponse::Rejected(error))) => Err(error.to_string()),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}
