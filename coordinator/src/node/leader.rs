//! Getting an operation to the leader, and saying clearly why when there
//! is none.
//!
//! [`Shared::on_leader`] runs an operation on this node when it leads, or
//! forwards it to the leader it knows of; on "not the leader", an
//! unreachable leader or no leader at all it waits for Raft's view to
//! change and tries again, until the operation's time limit. When it gives
//! up, or as soon as a leader sees it has lost its quorum, it asks every
//! voter whether it is there and reports [`ClusterError::NoQuorum`] (too
//! few answer), [`ClusterError::NoLeader`] or [`ClusterError::Timeout`].

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;
use vantage_proto::pb;
use vantage_proto::pb::raft_service_client::RaftServiceClient;

use super::error::ClusterError;
use super::forward::{self, CallError, Committed, ForwardError, Forwarded};
use super::Shared;
use crate::raft::types::NodeId;
use crate::state::{CommandResponse, Request};

/// One step of a routing attempt.
enum Step<T> {
    Done(T),
    Retry,
    Fail(ClusterError),
}

impl Shared {
    /// Routes a write to the leader, then waits until this node has
    /// applied it too.
    pub(super) async fn write(&self, request: Request) -> Result<CommandResponse, ClusterError> {
        let payload = forward::encode_write(&request)
            .map_err(|e| ClusterError::Peer { node_id: self.id, reason: e.to_string() })?;
        let timeout = self.options.write_timeout;
        let deadline = Instant::now() + timeout;
        let committed = self
            .on_leader(
                "write",
                timeout,
                || self.lead_write(request.clone()),
                |client, ttl| forward::write(client, payload.clone(), ttl),
            )
            .await?;
        self.wait_applied(committed.log_index, deadline, "applying a committed write").await?;
        Ok(committed.response)
    }

    /// Commits `request` on this node only if it leads: never forwarded.
    /// `Ok(None)` when it does not lead (any more). Returns once this node
    /// has applied it.
    pub(super) async fn write_if_leader(
        &self,
        request: Request,
    ) -> Result<Option<CommandResponse>, ClusterError> {
        let timeout = self.options.write_timeout;
        let deadline = Instant::now() + timeout;
        let committed = match tokio::time::timeout(timeout, self.lead_write(request)).await {
            Err(_) => {
                return Err(ClusterError::Timeout {
                    operation: "a leader-local write".into(),
                    leader_id: Some(self.id),
                    timeout_ms: Shared::millis(timeout),
                })
            }
            Ok(Err(ForwardError::NotLeader { .. })) => return Ok(None),
            Ok(Err(ForwardError::Failed(error))) => return Err(error),
            Ok(Ok(committed)) => committed,
        };
        self.wait_applied(committed.log_index, deadline, "applying a leader-local write").await?;
        Ok(Some(committed.response))
    }

    /// Waits until this node has applied the log up to `index`.
    pub(super) async fn wait_applied(
        &self,
        index: u64,
        deadline: Instant,
        operation: &str,
    ) -> Result<(), ClusterError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft.wait(Some(remaining)).applied_index_at_least(Some(index), operation).await.map_err(
            |e| match e {
                openraft::metrics::WaitError::Timeout(..) => ClusterError::Timeout {
                    operation: format!("{operation} (up to log index {index})"),
                    leader_id: self.leader(),
                    timeout_ms: Shared::millis(self.options.write_timeout),
                },
                openraft::metrics::WaitError::ShuttingDown => ClusterError::ShuttingDown { node_id: self.id },
            },
        )?;
        Ok(())
    }

    /// The read barrier: the leader's read index, then waiting to apply it.
    pub(super) async fn linearize(&self) -> Result<u64, ClusterError> {
        let timeout = self.options.write_timeout;
        let deadline = Instant::now() + timeout;
        let index = self
            .on_leader("linearizable read", timeout, || self.lead_read_index(), forward::read_index)
            .await?;
        if index > 0 {
            self.wait_applied(index, deadline, "applying up to the read index").await?;
        }
        Ok(index)
    }

    /// Builds a snapshot now and waits until one covers what was applied
    /// when called.
    pub(super) async fn trigger_snapshot(&self) -> Result<u64, ClusterError> {
        let applied = self.raft.metrics().borrow().last_applied.map(|id| id.index);
        let Some(applied) = applied else { return Ok(0) };
        let timeout = self.options.write_timeout;
        let deadline = Instant::now() + timeout;
        // openraft ignores a trigger while it is building a snapshot, which
        // may end short of `applied`: trigger again until one covers it.
        let retry = (self.options.heartbeat * 4).max(Duration::from_millis(100));
        loop {
            self.raft.trigger().snapshot().await.map_err(|e| ClusterError::stopped(self.id, &e))?;
            let wait = retry.min(deadline.saturating_duration_since(Instant::now()));
            let built = self
                .raft
                .wait(Some(wait))
                .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied), "snapshot")
                .await;
            match built {
                Ok(metrics) => return Ok(metrics.snapshot.map_or(applied, |s| s.index)),
                Err(openraft::metrics::WaitError::ShuttingDown) => {
                    return Err(ClusterError::ShuttingDown { node_id: self.id })
                }
                Err(openraft::metrics::WaitError::Timeout(..)) if Instant::now() >= deadline => {
                    return Err(ClusterError::Timeout {
                        operation: "building a snapshot".into(),
                        leader_id: self.leader(),
                        timeout_ms: Shared::millis(timeout),
                    })
                }
                Err(openraft::metrics::WaitError::Timeout(..)) => {}
            }
        }
    }

    /// Proposes a write on this node, which must lead.
    pub(super) async fn lead_write(&self, request: Request) -> Forwarded<Committed> {
        let _traffic = self.transfer_gate.read().await;
        self.ensure_leader()?;
        match self.raft.client_write(request).await {
            Ok(response) => Ok(Committed { response: response.data, log_index: response.log_id.index }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Err(ForwardError::NotLeader { leader_id: to.leader_id })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ClusterError::MembershipRefused { reason: e.to_string() }.into())
            }
            Err(RaftError::Fatal(fatal)) => Err(ClusterError::stopped(self.id, &fatal).into()),
        }
    }

    /// Confirms leadership with a quorum and returns the read index.
    pub(super) async fn lead_read_index(&self) -> Forwarded<u64> {
        let _traffic = self.transfer_gate.read().await;
        self.ensure_leader()?;
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _applied)) => Ok(read_log_id.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                Err(ForwardError::NotLeader { leader_id: to.leader_id })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                match self.no_quorum().await {
                    Some(error) => Err(error.into()),
                    // A quorum answers probes, so the failed confirmation was
                    // transient: have the caller route and try again.
                    None => Err(ForwardError::NotLeader { leader_id: Some(self.id) }),
                }
            }
            Err(RaftError::Fatal(fatal)) => Err(ClusterError::stopped(self.id, &fatal).into()),
        }
    }

    /// `Err(NotLeader)` unless this node leads right now (as far as its
    /// Raft knows).
    pub(super) fn ensure_leader(&self) -> Result<(), ForwardError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state == ServerState::Leader && metrics.current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(ForwardError::NotLeader { leader_id: metrics.current_leader })
        }
    }

    /// The leader this node knows of.
    pub(super) fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Runs an operation on the leader: `local` when this node leads,
    /// `remote` (with a client for the leader and the time left) otherwise.
    pub(super) async fn on_leader<T, L, LF, R, RF>(
        &self,
        operation: &'static str,
        timeout: Duration,
        local: L,
        remote: R,
    ) -> Result<T, ClusterError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Forwarded<T>>,
        R: Fn(RaftServiceClient<Channel>, Duration) -> RF,
        RF: Future<Output = Result<Forwarded<T>, CallError>>,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let pause = self.options.heartbeat;
        let mut metrics = self.raft.metrics();
        // When no leader shows up for this long, ask whether a quorum is
        // even there before waiting out the whole time limit.
        let mut next_quorum_check = started + self.options.election_timeout_max;
        let mut last_leader = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(self.gave_up(operation, last_leader, started.elapsed(), timeout).await);
            }
            let (leader, leader_lost_quorum) = {
                let m = metrics.borrow_and_update();
                let lost = m.state == ServerState::Leader
                    && m.millis_since_quorum_ack
                        .is_some_and(|ms| ms > Shared::millis(self.options.election_timeout_max));
                (m.current_leader, lost)
            };
            last_leader = leader.or(last_leader);
            let step = match leader {
                Some(leader) if leader == self.id => {
                    if leader_lost_quorum {
                        if let Some(error) = self.no_quorum().await {
                            return Err(error);
                        }
                    }
                    match tokio::time::timeout_at(deadline, local()).await {
                        Err(_) => Step::Retry,
                        Ok(Ok(value)) => Step::Done(value),
                        Ok(Err(ForwardError::NotLeader { .. })) => Step::Retry,
                        Ok(Err(ForwardError::Failed(error))) => Step::Fail(error),
                    }
                }
                Some(leader) => self.forward_once(leader, deadline, &remote).await,
                None => {
                    if now >= next_quorum_check {
                        next_quorum_check = now + self.options.election_timeout_max;
                        if let Some(error) = self.no_quorum().await {
                            return Err(error);
                        }
                    }
                    Step::Retry
                }
            };
            match step {
                Step::Done(value) => return Ok(value),
                Step::Fail(error) => return Err(error),
                Step::Retry => {
                    // Wake up early when Raft's view changes (a new leader).
                    let wake = (Instant::now() + pause).min(deadline);
                    let _ = tokio::time::timeout_at(wake, metrics.changed()).await;
                }
            }
        }
    }

    /// One attempt to run an operation on the (remote) leader.
    async fn forward_once<T, R, RF>(&self, leader: NodeId, deadline: Instant, remote: &R) -> Step<T>
    where
        R: Fn(RaftServiceClient<Channel>, Duration) -> RF,
        RF: Future<Output = Result<Forwarded<T>, CallError>>,
    {
        let Some(node) = self.member(leader) else {
            // Our membership does not know the leader yet: wait to catch up.
            return Step::Retry;
        };
        let client = match self.peers.client_for(leader, &node.raft_addr) {
            Ok(client) => client,
            Err(error) => {
                return Step::Fail(ClusterError::Peer { node_id: leader, reason: error.to_string() })
            }
        };
        let ttl = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, remote(client, ttl)).await {
            Err(_) => Step::Retry,
            Ok(Ok(Ok(value))) => Step::Done(value),
            Ok(Ok(Err(ForwardError::NotLeader { leader_id }))) => {
                tracing::debug!(node_id = self.id, asked = leader, hint = ?leader_id, "forwarded to a node that no longer leads; routing again");
                Step::Retry
            }
            Ok(Ok(Err(ForwardError::Failed(error)))) if error.is_transient() => {
                tracing::debug!(node_id = self.id, leader, %error, "the leader could not take the operation; routing again");
                Step::Retry
            }
            Ok(Ok(Err(ForwardError::Failed(error)))) => Step::Fail(error),
            Ok(Err(CallError::Unreachable(reason))) => {
                tracing::debug!(node_id = self.id, leader, %reason, "leader unreachable; waiting for a new one");
                Step::Retry
            }
            Ok(Err(CallError::Broken(reason))) => Step::Fail(ClusterError::Peer { node_id: leader, reason }),
        }
    }

    /// The error for an operation that ran out of time.
    async fn gave_up(
        &self,
        operation: &'static str,
        last_leader: Option<NodeId>,
        waited: Duration,
        timeout: Duration,
    ) -> ClusterError {
        let voters = self.voters();
        let reachable = self.reachable_voters(&voters).await;
        let quorum = voters.len() / 2 + 1;
        if reachable < quorum {
            return ClusterError::NoQuorum { reachable, members: voters.len(), quorum };
        }
        match self.leader() {
            None => {
                ClusterError::NoLeader { waited_ms: Shared::millis(waited), reachable, members: voters.len() }
            }
            Some(leader) => ClusterError::Timeout {
                operation: operation.to_string(),
                leader_id: Some(leader).or(last_leader),
                timeout_ms: Shared::millis(timeout),
            },
        }
    }

    /// [`ClusterError::NoQuorum`] if too few voters answer, else `None`.
    pub(super) async fn no_quorum(&self) -> Option<ClusterError> {
        let voters = self.voters();
        if voters.is_empty() {
            return None;
        }
        let reachable = self.reachable_voters(&voters).await;
        let quorum = voters.len() / 2 + 1;
        (reachable < quorum).then_some(ClusterError::NoQuorum { reachable, members: voters.len(), quorum })
    }

    /// The voting members (of every config, during a joint change).
    pub(super) fn voters(&self) -> BTreeSet<NodeId> {
        self.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
    }

    /// A member's addresses.
    pub(super) fn member(&self, node_id: NodeId) -> Option<crate::raft::Node> {
        self.raft.metrics().borrow().membership_config.membership().get_node(&node_id).cloned()
    }

    /// How many of `voters` answer a probe now, this node included.
    async fn reachable_voters(&self, voters: &BTreeSet<NodeId>) -> usize {
        let others = voters.iter().copied().filter(|id| *id != self.id);
        let answered = self.probe(others).await.into_iter().filter(|(_, info)| info.is_some()).count();
        answered + usize::from(voters.contains(&self.id))
    }

    /// Asks each node in `ids` about itself, concurrently, each within the
    /// probe timeout. Ids not in the membership are looked up in the
    /// initial peers.
    pub(super) async fn probe(
        &self,
        ids: impl IntoIterator<Item = NodeId>,
    ) -> Vec<(NodeId, Option<pb::RaftNodeInfoReply>)> {
        let ttl = self.options.probe_timeout();
        let mut probes = JoinSet::new();
        let mut answers = Vec::new();
        for id in ids {
            let addr = self.member(id).or_else(|| self.options.peers.get(&id).cloned()).map(|n| n.raft_addr);
            let client = addr.and_then(|addr| self.peers.client_for(id, &addr).ok());
            match client {
                None => answers.push((id, None)),
                Some(client) => {
                    probes.spawn(async move {
                        let info = tokio::time::timeout(ttl, forward::node_info(client, ttl)).await;
                        (id, info.ok().and_then(Result::ok))
                    });
                }
            }
        }
        while let Some(answer) = probes.join_next().await {
            if let Ok(answer) = answer {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(id, _)| *id);
        answers
    }
}
