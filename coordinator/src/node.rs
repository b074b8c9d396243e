//! A coordinator node of the Raft cluster: storage, openraft, the peer
//! listener, bootstrap, client operations from any node, membership and
//! shutdown.
//!
//! [`ClusterNode::start`] opens the data dir, starts openraft with the
//! tonic network, serves `RaftService` on the peer port and, for a fresh
//! cluster, bootstraps it: the member of `peers` with the lowest id
//! initializes the cluster when its store is empty and no peer already
//! belongs to one; every other node waits to be contacted. A restarted node
//! never initializes again.
//!
//! Every operation may be called on any node. A follower forwards writes,
//! read barriers and membership changes to the leader over the peer port
//! (retrying across a leader change within the operation's time limit),
//! so clients never look for the leader. When no leader can be found the
//! error says why, for example `no leader: 1 of 3 nodes reachable, a
//! quorum needs 2`.
//!
//! Modules: `options` ([`NodeOptions`]), `error` ([`ClusterError`],
//! [`StartError`]), [`forward`] (what crosses the peer port for forwarded
//! operations), `leader` (routing to the leader and diagnosing its
//! absence), `membership` (add, remove, leadership transfer), `status`
//! ([`ClusterStatus`]), `peer` (the node's side of the peer service).

pub mod forward;

mod error;
mod history;
mod leader;
mod membership;
mod options;
mod peer;
mod status;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InitializeError, RaftError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

pub use self::error::{ClusterError, StartError};
pub use self::history::{read_endpoint_history, HistoryError};
pub use self::options::{NodeOptions, OptionsError};
pub use self::status::{ClusterStatus, MemberStatus, Role};
pub use crate::raft::tls::PeerTls;

use crate::raft::network::{PeerNetwork, PeerPool};
use crate::raft::server::{self, RaftGrpc};
use crate::raft::store::{self, AppliedState, StateReader};
use crate::raft::types::{NodeId, Raft};
use crate::state::{CommandResponse, Request};

/// A running coordinator node. Cheap to clone; every clone is the same
/// node.
#[derive(Clone)]
pub struct ClusterNode {
    shared: Arc<Shared>,
}

/// What the node's handles, its peer service and its supervisor share.
pub(crate) struct Shared {
    id: NodeId,
    options: NodeOptions,
    raft: Raft,
    reader: StateReader,
    peers: Arc<PeerPool>,
    raft_addr: SocketAddr,
    /// Cleared when shutdown starts: new operations are refused.
    accepting: AtomicBool,
    /// Client operations in flight; shutdown waits for them.
    operations: TaskTracker,
    /// Held shared by local writes and reads on the leader, exclusively by
    /// a leadership transfer (which must stop the leader's traffic).
    transfer_gate: tokio::sync::RwLock<()>,
    /// Cancelled once the node has stopped.
    stopped: CancellationToken,
    /// Counts leadership transfers this node started as leader (TSDB
    /// export flushes its queues on each).
    transfers: tokio::sync::watch::Sender<u64>,
}

impl ClusterNode {
    /// Binds `options.raft_listen_addr` and starts the node (see
    /// [`ClusterNode::start_with_listener`]).
    pub async fn start(options: NodeOptions, shutdown: CancellationToken) -> Result<ClusterNode, StartError> {
        options.validate()?;
        let addr = options.raft_listen_addr;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        ClusterNode::start_with_listener(options, listener, shutdown).await
    }

    /// Starts the node with its peer listener already bound: validates the
    /// options, opens the data dir, starts Raft and the peer service and
    /// bootstraps a fresh cluster (see the module docs). Cancelling
    /// `shutdown` stops the node gracefully; [`ClusterNode::stopped`]
    /// returns once it has.
    pub async fn start_with_listener(
        options: NodeOptions,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<ClusterNode, StartError> {
        options.validate()?;
        let config = Arc::new(options.raft_config()?);
        let raft_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr: options.raft_listen_addr, source })?;
        let data_dir = options.data_dir.clone();
        let (log, state_machine) = tokio::task::spawn_blocking(move || store::open(&data_dir))
            .await
            .map_err(|e| StartError::Task { reason: e.to_string() })??;
        let reader = state_machine.reader();
        let tls = options.tls.as_ref().map(PeerTls::with_h2_alpn);
        let peers = Arc::new(
            PeerPool::new(tls.as_ref().map(|t| t.client.clone()), options.connect_timeout())
                .with_dial_addrs(options.dial_raft_addrs.clone()),
        );
        let network = PeerNetwork::new(options.node_id, peers.clone(), options.unreachable_backoff());
        let raft = Raft::new(options.node_id, config, network, log, state_machine)
            .await
            .map_err(|e| StartError::Raft { reason: e.to_string() })?;
        let shared = Arc::new(Shared {
            id: options.node_id,
            options,
            raft: raft.clone(),
            reader,
            peers,
            raft_addr,
            accepting: AtomicBool::new(true),
            operations: TaskTracker::new(),
            transfer_gate: tokio::sync::RwLock::new(()),
            stopped: CancellationToken::new(),
            transfers: tokio::sync::watch::channel(0).0,
        });
        let server_shutdown = CancellationToken::new();
        let service = RaftGrpc::into_server(raft.clone(), shared.clone());
        let server =
            tokio::spawn(server::serve(listener, tls.map(|t| t.server), service, server_shutdown.clone()));
        tracing::info!(node_id = shared.id, %raft_addr, advertised = %shared.options.node, "node started");
        if let Err(error) = shared.bootstrap().await {
            shared.shut_down(Some(server), server_shutdown).await;
            shared.stopped.cancel();
            return Err(error);
        }
        tokio::spawn(supervise(shared.clone(), server, server_shutdown, shutdown));
        Ok(ClusterNode { shared })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address the peer listener is bound to.
    pub fn raft_addr(&self) -> SocketAddr {
        self.shared.raft_addr
    }

    /// A handle for reading this node's applied state (local reads: fast,
    /// possibly behind the leader).
    pub fn reader(&self) -> StateReader {
        self.shared.reader.clone()
    }

    /// Runs `f` on this node's applied state, without asking anyone.
    pub fn read_local<R>(&self, f: impl FnOnce(&AppliedState) -> R) -> R {
        self.shared.reader.read(f)
    }

    /// The openraft node, for metrics and diagnostics.
    pub fn raft(&self) -> &Raft {
        &self.shared.raft
    }

    /// The leader this node currently knows of.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.shared.raft.metrics().borrow().current_leader
    }

    /// Commits `request` through the leader (forwarding it when this node
    /// follows) and returns the state machine's answer. This node's state
    /// includes the write when this returns.
    pub async fn write(&self, request: Request) -> Result<CommandResponse, ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared.write(request).await
    }

    /// Commits `request` only if this node leads, without forwarding it
    /// to another leader: for what only the leader may decide (the mesh's
    /// ingest checkpoints). `Ok(None)` when this node does not lead.
    pub async fn write_if_leader(&self, request: Request) -> Result<Option<CommandResponse>, ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared.write_if_leader(request).await
    }

    /// The current term when this node leads and has applied its term's
    /// first entry, hence everything committed before it; `None`
    /// otherwise. Until then a new leader's state may lack what the
    /// previous leader committed.
    pub fn leading_term(&self) -> Option<u64> {
        let (term, leading) = {
            let metrics = self.shared.raft.metrics();
            let m = metrics.borrow();
            (m.current_term, m.current_leader == Some(self.id()) && m.state.is_leader())
        };
        let applied_term = self.read_local(|applied| applied.last_applied.map(|id| id.leader_id.term));
        (leading && applied_term == Some(term)).then_some(term)
    }

    /// Counts the leadership transfers this node has started as leader;
    /// it changes when one starts (the leader has stopped taking writes
    /// and is about to wait out the followers' lease), so a sink can flush
    /// what it holds while the transfer waits.
    pub fn leadership_transfers(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.transfers.subscribe()
    }

    /// A read barrier: returns once this node's applied state includes
    /// every write committed before the call (the leader confirms its
    /// leadership with a quorum; this node then waits to apply up to the
    /// leader's commit index). Returns that index.
    pub async fn linearize(&self) -> Result<u64, ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared.linearize().await
    }

    /// A linearizable read: [`ClusterNode::linearize`], then `f` on the
    /// applied state.
    pub async fn read_linearizable<R>(&self, f: impl FnOnce(&AppliedState) -> R) -> Result<R, ClusterError> {
        self.linearize().await?;
        Ok(self.shared.reader.read(f))
    }

    /// Adds a node: as a learner, then, once it has caught up and unless
    /// `learner_only`, as a voter. Refuses an id that was ever removed.
    /// Adding a member again with the same addresses does nothing.
    pub async fn add_node(
        &self,
        node_id: NodeId,
        node: crate::raft::Node,
        learner_only: bool,
    ) -> Result<(), ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared
            .change_membership(forward::MembershipChange::AddNode { node_id, node, learner_only })
            .await
    }

    /// Removes a node (voter or learner) and retires its id for good. When
    /// the leader itself is removed it first hands leadership over.
    /// Removing a node that is already gone does nothing. Shut the removed
    /// node down afterwards: it is no longer replicated to, and its data
    /// dir cannot rejoin under the retired id.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<(), ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared.change_membership(forward::MembershipChange::RemoveNode { node_id }).await
    }

    /// Hands leadership to `to`, or with `None` to the most up-to-date
    /// other voter; returns the new leader. openraft 0.9 has no transfer
    /// API, so the leader pauses its traffic until the followers' leader
    /// lease lapses and asks the target to stand for election (see
    /// `membership.rs`); this takes about one `election_timeout_max`.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId, ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared.transfer_leadership(to).await
    }

    /// Builds a snapshot of this node's state machine now (the log behind
    /// it is purged as the snapshot policy allows); returns the log index
    /// it covers.
    pub async fn trigger_snapshot(&self) -> Result<u64, ClusterError> {
        let _operation = self.shared.begin()?;
        self.shared.trigger_snapshot().await
    }

    /// The cluster as this node sees it, with every member asked directly
    /// whether it is reachable and how far it has applied.
    pub async fn status(&self) -> ClusterStatus {
        self.shared.status().await
    }

    /// Returns once the node has stopped (after its shutdown token was
    /// cancelled, or Raft stopped on a fatal error).
    pub async fn stopped(&self) {
        self.shared.stopped.cancelled().await;
    }
}

impl Shared {
    /// Admits a client operation unless shutdown has started; the token
    /// keeps shutdown waiting until the operation ends.
    fn begin(&self) -> Result<TaskTrackerToken, ClusterError> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(ClusterError::ShuttingDown { node_id: self.id });
        }
        Ok(self.operations.token())
    }

    /// Initializes a fresh cluster if this node is the one to do it.
    async fn bootstrap(&self) -> Result<(), StartError> {
        let initialized =
            self.raft.is_initialized().await.map_err(|e| StartError::Initialize { reason: e.to_string() })?;
        if initialized {
            tracing::info!(
                node_id = self.id,
                "found an existing cluster state in the data dir; not bootstrapping"
            );
            return Ok(());
        }
        let peers = &self.options.peers;
        if !peers.contains_key(&self.id) {
            tracing::info!(
                node_id = self.id,
                "not among the initial peers; waiting to be added to a cluster"
            );
            return Ok(());
        }
        let Some(&initializer) = peers.keys().next() else { return Ok(()) };
        if initializer != self.id {
            tracing::info!(
                node_id = self.id,
                initializer,
                "waiting for the initializing node to contact this one"
            );
            return Ok(());
        }
        // A node that lost its data dir must not found a second cluster:
        // ask the others first. Unreachable peers are a fresh cluster
        // starting up, the usual case.
        for (peer_id, info) in self.probe(peers.keys().copied().filter(|id| *id != self.id)).await {
            if let Some(info) = info.filter(|info| info.initialized) {
                tracing::warn!(
                    node_id = self.id,
                    peer_id,
                    peer_term = info.term,
                    "a peer already belongs to a cluster; not initializing (this node waits to be contacted)"
                );
                return Ok(());
            }
        }
        match self.raft.initialize(peers.clone()).await {
            Ok(()) => {
                tracing::info!(node_id = self.id, members = ?peers.keys().collect::<Vec<_>>(), "initialized a new cluster");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!(node_id = self.id, "cluster already initialized; nothing to do");
                Ok(())
            }
            Err(error) => Err(StartError::Initialize { reason: error.to_string() }),
        }
    }

    /// Stops the node: refuse new operations, let in-flight ones finish,
    /// stop Raft, stop the peer listener; all within `shutdown_grace`.
    async fn shut_down(
        &self,
        server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
        server_shutdown: CancellationToken,
    ) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.options.shutdown_grace;
        self.accepting.store(false, Ordering::SeqCst);
        self.operations.close();
        let in_flight = self.operations.len();
        if tokio::time::timeout_at(deadline, self.operations.wait()).await.is_err() {
            tracing::warn!(
                node_id = self.id,
                in_flight = self.operations.len(),
                "operations still running at the shutdown deadline"
            );
        }
        match tokio::time::timeout_at(deadline, self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(node_id = self.id, %error, "raft stopped with an error"),
            Err(_) => tracing::warn!(node_id = self.id, "raft did not stop before the shutdown deadline"),
        }
        server_shutdown.cancel();
        let Some(mut server) = server else {
            tracing::info!(
                node_id = self.id,
                in_flight,
                took_ms = Shared::millis(started.elapsed()),
                "node stopped"
            );
            return;
        };
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                tracing::warn!(node_id = self.id, %error, "peer listener stopped with an error")
            }
            Ok(Err(error)) => tracing::warn!(node_id = self.id, %error, "peer listener task failed"),
            Err(_) => {
                tracing::warn!(
                    node_id = self.id,
                    "peer listener did not stop before the shutdown deadline; closing it"
                );
                server.abort();
            }
        }
        tracing::info!(
            node_id = self.id,
            in_flight,
            took_ms = Shared::millis(started.elapsed()),
            "node stopped"
        );
    }

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Waits for the shutdown token, a fatal Raft error or the peer listener
/// dying, then stops the node.
async fn supervise(
    shared: Arc<Shared>,
    mut server: JoinHandle<Result<(), tonic::transport::Error>>,
    server_shutdown: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut metrics = shared.raft.metrics();
    let raft_failed = async {
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "raft stopped".to_string();
            }
        }
    };
    let server_ended = tokio::select! {
        () = shutdown.cancelled() => {
            tracing::info!(node_id = shared.id, "shutting down");
            false
        }
        reason = raft_failed => {
            tracing::error!(node_id = shared.id, %reason, "raft stopped; stopping this node");
            false
        }
        result = &mut server => {
            let reason = match result {
                Ok(Ok(())) => "ended".to_string(),
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            tracing::error!(node_id = shared.id, %reason, "peer listener failed; stopping this node");
            true
        }
    };
    shared.shut_down((!server_ended).then_some(server), server_shutdown).await;
    shared.stopped.cancel();
}
