//! The coordinator runtime behind `vantage-coordinator run`, wiring only:
//! binds the three listeners, starts the cluster node, builds the results
//! fan-out ([`crate::results`]), serves the AdminService and the probes'
//! ProbeService (the [`crate::mesh`]) on `api_addr` and the HTTP side
//! ([`crate::http`]) on `http_addr`, and stops within a bound when
//! `shutdown` is cancelled (SIGTERM, SIGINT) — or fails loudly when the
//! node stops by itself (a storage error). The adapters at the end give the
//! admin API its view of the node and the mesh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vantage_core::clock::SystemWallClock;
use vantage_core::history::{EndpointHistory, Window};

use crate::admin::{
    AdminApi, AdminError, Cluster, ClusterError, ClusterStatus, HistoryError, LiveProbe, LiveShards,
    ProbeDirectory, ShardDirectory,
};
use crate::agreement;
use crate::auth::AdminAuth;
use crate::config::Config;
use crate::http::HttpState;
use crate::listener::{self, Acceptance};
use crate::mesh::{CheckReport, Leadership, Mesh, MeshError, RebalanceReport};
use crate::node::{ClusterNode, NodeOptions, PeerTls, StartError};
use crate::raft::types::{Node, NodeId};
use crate::results::{FanOut, MemorySink};
use crate::state::{CommandResponse, MeshState, Request, UnixMillis};
use crate::tls::TlsConfigs;

/// How long in-flight API and HTTP requests may take to finish after
/// shutdown starts (the node has its own grace period).
const API_GRACE: Duration = Duration::from_secs(5);
/// How long the last flushes (history rollups) may take at shutdown
/// before the node stops under them.
const FLUSH_GRACE: Duration = Duration::from_secs(10);
/// Recent results kept per endpoint until the agreement engine and export
/// consume them.
const RECENT_RESULTS_PER_ENDPOINT: usize = 64;

/// Why the runtime stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not bind.
    #[error("cannot listen on {key} = {addr}: {source} (is another process using it?)")]
    Bind {
        /// The config key.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The node could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The TSDB exporter could not start.
    #[error(transparent)]
    Export(#[from] crate::sinks::export::ExportError),
    /// The node stopped without being asked to (see its log lines above).
    #[error("node {node_id} stopped unexpectedly; see the error logged above")]
    NodeStopped {
        /// The node.
        node_id: NodeId,
    },
    /// The API server failed.
    #[error("the API server on {addr} failed: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// What tonic reported.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Runs a coordinator node until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    tls: Option<TlsConfigs>,
    auth: AdminAuth,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let api_listener = bind("api_addr", config.api_addr).await?;
    let http_listener = bind("http_addr", config.http_addr).await?;
    let raft_listener = bind("raft_addr", config.raft_addr).await?;

    // The node stops after the flushes that need it (history's last
    // rollups), not at the same moment as everything else.
    let node_stop = CancellationToken::new();
    let node = ClusterNode::start_with_listener(
        node_options(&config, tls.as_ref()),
        raft_listener,
        node_stop.clone(),
    )
    .await?;
    let tasks = TaskTracker::new();
    let latest = Arc::new(MemorySink::new(RECENT_RESULTS_PER_ENDPOINT));
    let agreement_latest = Arc::new(agreement::Latest::new());
    let roller =
        crate::history::Roller::new(node.clone(), Arc::new(SystemWallClock), config.history.options());
    let consumers = FanOut::new()
        .subscribe("latest", latest.clone())
        .subscribe("agreement", agreement_latest.clone())
        .subscribe("history", roller.clone());
    let flushes = TaskTracker::new();
    flushes.spawn(roller.run(shutdown.child_token()));
    flushes.close();
    // ---- export: every result to the TSDBs (leader only: results reach only it)
    let exporter = crate::sinks::export::Exporter::start(
        &config.export,
        Arc::new(node.clone()),
        shutdown.child_token(),
    )?;
    let consumers = match &exporter {
        Some(exporter) => consumers.subscribe("export", exporter.results_sink()),
        None => consumers,
    };
    // ---- end export
    let mesh_node: Arc<dyn crate::mesh::MeshNode> = Arc::new(node.clone());
    let mesh = Mesh::start(
        mesh_node.clone(),
        Arc::new(SystemWallClock),
        Arc::new(consumers),
        config.mesh.options(),
        shutdown.child_token(),
    );
    let runner = agreement::Runner::new(
        mesh_node,
        mesh.clone(),
        Arc::new(SystemWallClock),
        agreement_latest,
        agreement::AgreementOptions::default(),
    );
    tasks.spawn({
        let shutdown = shutdown.child_token();
        async move {
            runner.run(shutdown).await;
            Ok::<(), AppError>(())
        }
    });
    let api = AdminApi::new(Arc::new(NodeCluster(node.clone())), Arc::new(auth), Arc::new(SystemWallClock))
        .with_probe_directory(Arc::new(MeshDirectory(mesh.clone())))
        .with_shard_directory(Arc::new(MeshDirectory(mesh.clone())));
    let api_acceptance = Acceptance {
        port: "api",
        tls: tls.as_ref().map(|t| t.api_server.clone()),
        require_client_cert: false,
    };
    let api_addr = config.api_addr;
    let api_server = {
        let shutdown = shutdown.clone();
        let mesh = mesh.clone();
        tasks.spawn(async move {
            let (incoming, _accepting) =
                listener::incoming(api_listener, api_acceptance, shutdown.clone()).into_parts();
            tonic::transport::Server::builder()
                .timeout(Duration::from_secs(120))
                .add_service(api.into_service())
                .add_service(mesh.service())
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
                .await
                .map_err(|source| AppError::Serve { addr: api_addr, source })
        })
    };
    let http_tls = tls.as_ref().map(|t| {
        let mut config = (*t.http_server).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    let mesh_for_gauges = mesh.clone();
    tasks.spawn(async move {
        mesh.stopped().await;
        Ok::<(), AppError>(())
    });
    // ---- alerts: the webhook dispatcher (delivers the outbox on the leader)
    let alerts = crate::sinks::webhook::Dispatcher::start(
        node.clone(),
        Arc::new(SystemWallClock),
        crate::sinks::webhook::DispatcherOptions::default(),
        shutdown.child_token(),
    );
    tasks.spawn(async move {
        alerts.stopped().await;
        Ok::<(), AppError>(())
    });
    // ---- end alerts
    // ---- metrics: gauges sampled from the node, the mesh and the state
    let sampler = crate::gauges::Sampler {
        node: node.clone(),
        mesh: mesh_for_gauges,
        snapshot_file: crate::raft::store::current_snapshot_file(&config.data_dir),
        clock: Arc::new(SystemWallClock),
    };
    tasks.spawn({
        let shutdown = shutdown.child_token();
        async move {
            sampler.run(shutdown).await;
            Ok::<(), AppError>(())
        }
    });
    // ---- end metrics
    // ---- export: SIGTERM flushes the queues within export.flush_timeout_ms
    let grace = match &exporter {
        Some(exporter) => {
            let exporter = exporter.clone();
            let flush = exporter.flush_timeout();
            tasks.spawn(async move {
                exporter.stopped().await;
                Ok::<(), AppError>(())
            });
            API_GRACE.max(flush + Duration::from_secs(1))
        }
        None => API_GRACE,
    };
    // ---- end export
    let http = HttpState { node: node.clone(), latest };
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        crate::http::serve(http_listener, http_tls, http, http_shutdown).await;
        Ok::<(), AppError>(())
    });
    tasks.close();
    tracing::info!(
        node_id = config.node_id,
        api = %config.api_addr,
        raft = %config.raft_addr,
        http = %config.http_addr,
        tls = tls.is_some(),
        "coordinator running"
    );

    let stopped_by_itself = tokio::select! {
        () = shutdown.cancelled() => false,
        () = node.stopped() => !shutdown.is_cancelled(),
    };
    shutdown.cancel();
    tracing::info!(node_id = config.node_id, "shutting down");
    if tokio::time::timeout(FLUSH_GRACE, flushes.wait()).await.is_err() {
        tracing::warn!(grace = ?FLUSH_GRACE, "history rollups not flushed within the grace period");
    }
    node_stop.cancel();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(?grace, "requests still running after the grace period; closing them");
    }
    node.stopped().await;
    if stopped_by_itself {
        return Err(AppError::NodeStopped { node_id: config.node_id });
    }
    match api_server.await {
        Ok(Err(error)) => Err(error),
        _ => {
            tracing::info!(node_id = config.node_id, "stopped");
            Ok(())
        }
    }
}

fn node_options(config: &Config, tls: Option<&TlsConfigs>) -> NodeOptions {
    let this = Node { api_addr: config.api_addr.to_string(), raft_addr: config.raft_addr.to_string() };
    let mut options = NodeOptions::new(
        config.node_id,
        config.data_dir.clone(),
        config.raft_addr,
        this,
        config.initial_members(),
    );
    options.dial_raft_addrs = config.dial_raft_addrs();
    options.heartbeat = Duration::from_millis(config.raft.heartbeat_ms);
    options.election_timeout_min = Duration::from_millis(config.raft.election_timeout_min_ms);
    options.election_timeout_max = Duration::from_millis(config.raft.election_timeout_max_ms);
    options.snapshot_every_logs = config.raft.snapshot_every_logs;
    options.max_in_snapshot_log_to_keep = config.raft.logs_kept_after_snapshot;
    options.tls = tls.map(|t| PeerTls { server: t.raft_server.clone(), client: t.peer_client.clone() });
    options
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { key, addr, source })
}

/// The admin API's view of a [`ClusterNode`].
struct NodeCluster(ClusterNode);

impl Cluster for NodeCluster {
    fn read<R>(&self, f: impl FnOnce(&MeshState) -> R) -> R {
        self.0.read_local(|applied| f(&applied.mesh))
    }

    async fn write(&self, request: Request) -> Result<CommandResponse, ClusterError> {
        self.0.write(request).await
    }

    async fn linearize(&self) -> Result<(), ClusterError> {
        self.0.linearize().await.map(|_| ())
    }

    async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        Ok(self.0.status().await)
    }

    async fn add_node(&self, id: NodeId, node: Node, learner_only: bool) -> Result<(), ClusterError> {
        self.0.add_node(id, node, learner_only).await
    }

    async fn remove_node(&self, id: NodeId) -> Result<(), ClusterError> {
        self.0.remove_node(id).await
    }

    async fn transfer_leader(&self, to: Option<NodeId>) -> Result<(), ClusterError> {
        self.0.transfer_leadership(to).await.map(|_| ())
    }

    async fn snapshot(&self) -> Result<u64, ClusterError> {
        self.0.trigger_snapshot().await
    }

    fn endpoint_history(
        &self,
        name: &str,
        window: Window,
        now: UnixMillis,
    ) -> Result<EndpointHistory, HistoryError> {
        self.0.endpoint_history(name, window, now)
    }

    fn node_id(&self) -> Option<NodeId> {
        Some(self.0.id())
    }
}

/// The admin API's view of the probes' streams held by this node's mesh.
struct MeshDirectory(Mesh);

impl ProbeDirectory for MeshDirectory {
    fn live_probes(&self) -> Vec<LiveProbe> {
        let seen = |t: SystemTime| Some(t).filter(|t| *t > SystemTime::UNIX_EPOCH);
        self.0
            .probes()
            .into_iter()
            .map(|p| LiveProbe {
                id: p.id,
                version: p.version,
                connected: p.connected,
                connected_since: seen(p.connected_since),
                last_seen: seen(p.last_seen),
                endpoints: p.endpoints,
                checks_per_second: p.stats.map_or(0.0, |s| s.checks_per_second),
                scheduling_lag_p99_ms: p.stats.map_or(0.0, |s| s.scheduling_lag_p99_ms),
            })
            .collect()
    }
}

impl ShardDirectory for MeshDirectory {
    fn shards(&self) -> Result<LiveShards, AdminError> {
        self.leading()?;
        let published = self.0.assignment();
        let connected = self.0.probes().into_iter().filter(|p| p.connected).map(|p| p.id).collect();
        Ok(LiveShards {
            version: published.version,
            assignment: published.assignment.clone(),
            uncovered_regions: published.uncovered_regions.clone(),
            connected,
        })
    }

    fn rebalance(&self, dry_run: bool) -> Result<RebalanceReport, AdminError> {
        self.0.rebalance(dry_run).map_err(|e| self.mesh_error(e))
    }

    fn check_endpoint(
        &self,
        endpoint_id: u64,
        wait: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<CheckReport, AdminError>> + Send + '_>>
    {
        Box::pin(
            async move { self.0.check_endpoint(endpoint_id, wait).await.map_err(|e| self.mesh_error(e)) },
        )
    }
}

impl MeshDirectory {
    /// `Ok` on the leader; otherwise where the leader is.
    fn leading(&self) -> Result<(), AdminError> {
        match self.0.leadership() {
            Leadership::Leader => Ok(()),
            Leadership::Follower { leader_id, leader_api_addr } => {
                Err(AdminError::NotLeader { leader_id, leader_api_addr })
            }
        }
    }

    /// The mesh's refusal, with the leader's address when it is "not the
    /// leader".
    fn mesh_error(&self, error: MeshError) -> AdminError {
        match error {
            MeshError::NotLeader => self.leading().err().unwrap_or(AdminError::Mesh(MeshError::NotLeader)),
            other => AdminError::Mesh(other),
        }
    }
}
