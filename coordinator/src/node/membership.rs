//! Membership on the leader: adding a node (learner, then voter once it
//! has caught up), removing one (retiring its id first), and handing
//! leadership to another voter.
//!
//! Leadership transfer: openraft 0.9 has no transfer API (0.10 adds
//! `trigger().transfer_leader()`), and a follower refuses to vote while
//! its leader lease (`election_timeout_max` since the leader was last
//! heard) runs, so simply asking the target to stand for election fails.
//! The leader therefore (1) stops taking writes and reads (the transfer
//! gate), (2) waits until the target has every log entry, (3) pauses its
//! heartbeats, (4) waits one `election_timeout_max` plus a quarter of
//! `election_timeout_min`, so every follower's lease has lapsed but no
//! follower's own election timer (lease + a random `election_timeout_min..max`)
//! has fired yet, (5) asks the target to start an election, and (6)
//! resumes heartbeats whatever happened. The target, being fully caught up,
//! wins unless a follower is partitioned from it; then the error says so
//! and the old leader carries on. With only two voters the old leader's own
//! lease may refuse its vote, so a transfer needs at least three voters to
//! be reliable.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use super::error::ClusterError;
use super::forward::{self, ForwardError, Forwarded, MembershipChange};
use super::Shared;
use crate::raft::types::{Node, NodeId};
use crate::state::{Command, CommandResponse, IdempotencyKey, Request, UnixMillis};

impl Shared {
    /// Routes a membership change to the leader.
    /// Waits until this node has applied the change too, so the caller
    /// sees it in this node's status.
    pub(super) async fn change_membership(&self, change: MembershipChange) -> Result<(), ClusterError> {
        let timeout = self.options.membership_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let log_index = self
            .on_leader(
                "membership change",
                timeout,
                || self.lead_membership(change.clone()),
                |client, ttl| forward::change_membership(client, &change, ttl),
            )
            .await?;
        if change == (MembershipChange::RemoveNode { node_id: self.id }) {
            // This node was removed: nobody replicates to it any more.
            return Ok(());
        }
        self.wait_applied(log_index, deadline, "applying a membership change").await
    }

    /// Routes a leadership transfer to the leader.
    pub(super) async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId, ClusterError> {
        self.on_leader(
            "leadership transfer",
            self.options.membership_timeout,
            || self.lead_transfer(to),
            |client, ttl| forward::transfer_leader(client, to, ttl),
        )
        .await
    }

    /// Applies a membership change on this node, which must lead; returns
    /// the log index that has the change (or that shows it was already
    /// made).
    pub(super) async fn lead_membership(&self, change: MembershipChange) -> Forwarded<u64> {
        self.ensure_leader()?;
        match change {
            MembershipChange::AddNode { node_id, node, learner_only } => {
                self.lead_add(node_id, node, learner_only).await
            }
            MembershipChange::RemoveNode { node_id } => self.lead_remove(node_id).await,
        }
    }

    async fn lead_add(&self, node_id: NodeId, node: Node, learner_only: bool) -> Forwarded<u64> {
        if node_id == 0 {
            return Err(ClusterError::MembershipRefused {
                reason: "node id 0 is not allowed; ids start at 1".into(),
            }
            .into());
        }
        if self.reader.read(|applied| applied.mesh.retired_nodes().contains(&node_id)) {
            return Err(ClusterError::NodeIdRetired { node_id }.into());
        }
        let (existing, is_voter) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            (membership.get_node(&node_id).cloned(), membership.voter_ids().any(|id| id == node_id))
        };
        match existing {
            Some(existing) if existing != node => {
                return Err(ClusterError::NodeIdInUse { node_id, raft_addr: existing.raft_addr }.into());
            }
            Some(_) if is_voter => return Ok(self.applied_index()),
            _ => {}
        }
        // Learner first: it replicates without voting, so a slow or absent
        // new node cannot cost the cluster its quorum. Adding an existing
        // learner again only waits for it to catch up.
        let catch_up = self.options.membership_timeout * 3 / 4;
        tracing::info!(node_id = self.id, new_node = node_id, %node, "adding a learner");
        let added = match tokio::time::timeout(catch_up, self.raft.add_learner(node_id, node, true)).await {
            Err(_) => {
                return Err(ClusterError::LearnerNotCaughtUp {
                    node_id,
                    timeout_ms: Shared::millis(catch_up),
                }
                .into())
            }
            Ok(Err(error)) => return Err(self.membership_error(error)),
            Ok(Ok(added)) => added,
        };
        if learner_only {
            return Ok(added.log_id.index);
        }
        tracing::info!(node_id = self.id, new_node = node_id, "promoting the learner to voter");
        let promoted = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
            .map_err(|e| self.membership_error(e))?;
        Ok(promoted.log_id.index)
    }

    async fn lead_remove(&self, node_id: NodeId) -> Forwarded<u64> {
        let (exists, voters) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            (membership.get_node(&node_id).is_some(), membership.voter_ids().collect::<BTreeSet<_>>())
        };
        if !exists {
            return if self.reader.read(|applied| applied.mesh.retired_nodes().contains(&node_id)) {
                Ok(self.applied_index())
            } else {
                Err(ClusterError::UnknownNode { node_id }.into())
            };
        }
        let is_voter = voters.contains(&node_id);
        if is_voter && voters.len() == 1 {
            return Err(ClusterError::LastVoter { node_id }.into());
        }
        if node_id == self.id {
            // A leader does not remove itself: hand over, and let the
            // caller route the removal to the new leader.
            let new_leader = self.lead_transfer(None).await?;
            return Err(ForwardError::NotLeader { leader_id: Some(new_leader) });
        }
        // Retire the id before it leaves the membership: if the change
        // fails halfway the id is burnt but still a member, and removing
        // it again finishes the job; the other order could free the id.
        let retire = Request {
            idempotency_key: IdempotencyKey(format!("vantage.retire-node.{node_id}")),
            issued_at: self.now(),
            command: Command::RetireNode { node_id },
        };
        match self.raft.client_write(retire).await {
            Ok(response) => {
                if let CommandResponse::Rejected(refusal) = response.data {
                    return Err(ClusterError::MembershipRefused { reason: refusal.to_string() }.into());
                }
            }
            Err(error) => return Err(self.membership_error(error)),
        }
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        };
        tracing::info!(node_id = self.id, removed = node_id, voter = is_voter, "removing a member");
        let removed =
            self.raft.change_membership(change, false).await.map_err(|e| self.membership_error(e))?;
        Ok(removed.log_id.index)
    }

    /// The last log index this node applied.
    fn applied_index(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map_or(0, |id| id.index)
    }

    /// Hands leadership over (see the module docs); returns the new leader.
    pub(super) async fn lead_transfer(&self, to: Option<NodeId>) -> Forwarded<NodeId> {
        self.ensure_leader()?;
        let target = self.transfer_target(to)?;
        if target == self.id {
            return Ok(self.id);
        }
        let _traffic = self.transfer_gate.write().await;
        self.ensure_leader()?;
        // Sinks holding results (TSDB export) flush while we wait below.
        self.transfers.send_modify(|n| *n += 1);
        let term = self.raft.metrics().borrow().current_term;
        let failed =
            |reason: String| ForwardError::Failed(ClusterError::TransferFailed { to: target, reason });
        let settle = self.options.election_timeout_max * 2;
        let caught_up = self
            .raft
            .wait(Some(settle))
            .metrics(
                |m| {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&target))
                        .and_then(|id| id.map(|id| id.index));
                    matched.is_some() && matched >= m.last_log_index
                },
                "transfer target caught up",
            )
            .await;
        if caught_up.is_err() {
            return Err(failed(format!("it has not caught up with the log within {settle:?}")));
        }
        tracing::info!(
            node_id = self.id,
            to = target,
            term,
            "transferring leadership: pausing heartbeats until the leader lease lapses"
        );
        self.raft.runtime_config().heartbeat(false);
        let outcome = self.hand_over(target, term, settle).await;
        self.raft.runtime_config().heartbeat(true);
        match outcome {
            Ok(leader) if leader == target => {
                tracing::info!(node_id = self.id, new_leader = leader, "leadership transferred");
                Ok(leader)
            }
            Ok(leader) => Err(failed(format!("node {leader} won the election instead"))),
            Err(reason) => Err(failed(reason)),
        }
    }

    /// Steps (4)–(5) of a transfer and waiting for the result: the new
    /// leader, or why none emerged.
    async fn hand_over(&self, target: NodeId, term: u64, settle: Duration) -> Result<NodeId, String> {
        tokio::time::sleep(self.options.election_timeout_max + self.options.election_timeout_min / 4).await;
        let node = self.member(target).ok_or_else(|| "it left the membership".to_string())?;
        let client = self.peers.client_for(target, &node.raft_addr).map_err(|e| e.to_string())?;
        let ttl = self.options.probe_timeout();
        match tokio::time::timeout(ttl, forward::start_election(client, self.id, term, ttl)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err("it no longer follows this leader".to_string()),
            Ok(Err(error)) => return Err(format!("it could not be asked to stand for election: {error:?}")),
            Err(_) => return Err(format!("it did not answer within {ttl:?}")),
        }
        let id = self.id;
        let metrics = self
            .raft
            .wait(Some(settle))
            .metrics(|m| m.current_leader.is_some_and(|leader| leader != id), "new leader")
            .await
            .map_err(|_| format!("no new leader emerged within {settle:?}"))?;
        metrics.current_leader.ok_or_else(|| "no new leader emerged".to_string())
    }

    /// The node to hand leadership to.
    fn transfer_target(&self, to: Option<NodeId>) -> Result<NodeId, ForwardError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        match to {
            Some(to) if voters.contains(&to) => Ok(to),
            Some(to) if membership.get_node(&to).is_some() => {
                Err(ClusterError::NotAVoter { node_id: to }.into())
            }
            Some(to) => Err(ClusterError::UnknownNode { node_id: to }.into()),
            None => {
                // The most up-to-date other voter loses the least time.
                let matched = |id: &NodeId| {
                    metrics.replication.as_ref().and_then(|r| r.get(id)).and_then(|m| m.map(|m| m.index))
                };
                voters
                    .iter()
                    .filter(|id| **id != self.id)
                    .max_by_key(|id| (matched(id), std::cmp::Reverse(**id)))
                    .copied()
                    .ok_or_else(|| {
                        ClusterError::TransferFailed {
                            to: self.id,
                            reason: "there is no other voter to hand leadership to".into(),
                        }
                        .into()
                    })
            }
        }
    }

    fn membership_error(&self, error: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ForwardError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
                ForwardError::NotLeader { leader_id: to.leader_id }
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                ClusterError::MembershipRefused { reason: e.to_string() }.into()
            }
            RaftError::Fatal(fatal) => ClusterError::stopped(self.id, &fatal).into(),
        }
    }

    /// Wall-clock time for requests this node proposes itself.
    fn now(&self) -> UnixMillis {
        UnixMillis::from(self.options.clock.now())
    }
}
