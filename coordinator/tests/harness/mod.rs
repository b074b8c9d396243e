//! A cluster of real coordinator nodes on loopback sockets, each in its
//! own tokio runtime, so a node can be killed the way a process is: its
//! runtime is shut down, every task of the node (Raft core, replication,
//! peer listener, forwarding) is dropped wherever it is, and nothing
//! graceful runs. What survives is exactly what the store fsynced, and
//! the data dir is reopened by the restarted node.
//!
//! Every wait is bounded; a condition that is not met in time fails the
//! test with what was expected.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use vantage_coordinator::node::{ClusterError, ClusterNode, NodeOptions};
use vantage_coordinator::raft::{Node, NodeId};
use vantage_coordinator::state::{Command, CommandResponse, IdempotencyKey, Request, UnixMillis};

/// Short timings so the suite runs fast: heartbeat 50 ms, elections
/// 300–600 ms.
pub const HEARTBEAT: Duration = Duration::from_millis(50);
/// The shortest election timeout in tests.
pub const ELECTION_MIN: Duration = Duration::from_millis(300);
/// The longest election timeout (and leader lease) in tests.
pub const ELECTION_MAX: Duration = Duration::from_millis(600);

/// Changes a node's options before it starts.
pub type Tune = Arc<dyn Fn(&mut NodeOptions) + Send + Sync>;

/// A test cluster.
pub struct Cluster {
    dir: TempDir,
    /// Every node ever created: its addresses, for restarts.
    addresses: BTreeMap<NodeId, Node>,
    /// The initial members.
    peers: BTreeMap<NodeId, Node>,
    running: BTreeMap<NodeId, Running>,
    tune: Tune,
}

struct Running {
    runtime: Runtime,
    node: ClusterNode,
    shutdown: CancellationToken,
}

impl Cluster {
    /// Starts `size` nodes (ids 1..=size) from empty data dirs.
    pub fn start(size: u64) -> Cluster {
        Cluster::start_tuned(size, Arc::new(|_| {}))
    }

    /// Starts `size` nodes with `tune` applied to every node's options.
    pub fn start_tuned(size: u64, tune: Tune) -> Cluster {
        init_tracing();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for id in 1..=size {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            let addr = listener.local_addr().expect("a bound address");
            peers.insert(id, node_at(addr));
            listeners.insert(id, listener);
        }
        let mut cluster = Cluster { dir, addresses: peers.clone(), peers, running: BTreeMap::new(), tune };
        for (id, listener) in listeners {
            cluster.launch(id, Some(listener), true);
        }
        cluster
    }

    /// The data dir of node `id`.
    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// The addresses of node `id`.
    pub fn address(&self, id: NodeId) -> Node {
        self.addresses[&id].clone()
    }

    /// The ids of running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.running.keys().copied().collect()
    }

    /// Node `id`'s handle.
    pub fn node(&self, id: NodeId) -> &ClusterNode {
        &self.running.get(&id).unwrap_or_else(|| panic!("node {id} is not running")).node
    }

    /// Runs `f` on node `id`'s runtime and waits for it.
    pub fn on<F, Fut>(&self, id: NodeId, f: F) -> Fut::Output
    where
        F: FnOnce(ClusterNode) -> Fut,
        Fut: Future,
    {
        let running = self.running.get(&id).unwrap_or_else(|| panic!("node {id} is not running"));
        let node = running.node.clone();
        running.runtime.block_on(f(node))
    }

    /// Writes through node `id`.
    pub fn write(&self, id: NodeId, request: Request) -> Result<CommandResponse, ClusterError> {
        self.on(id, |node| async move { node.write(request).await })
    }

    /// Starts a node that is not among the initial peers (it waits to be
    /// added), on a fresh port.
    pub fn start_joiner(&mut self, id: NodeId) -> Node {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let node = node_at(listener.local_addr().expect("a bound address"));
        self.addresses.insert(id, node.clone());
        self.launch(id, Some(listener), false);
        node
    }

    /// Kills node `id` as SIGKILL would: no graceful step runs.
    pub fn kill(&mut self, id: NodeId) {
        let running = self.running.remove(&id).unwrap_or_else(|| panic!("node {id} is not running"));
        drop(running.node);
        running.runtime.shutdown_timeout(Duration::from_secs(10));
    }

    /// Stops node `id` gracefully and returns how long that took.
    pub fn stop(&mut self, id: NodeId) -> Duration {
        let running = self.running.remove(&id).unwrap_or_else(|| panic!("node {id} is not running"));
        let started = Instant::now();
        running.shutdown.cancel();
        let node = running.node.clone();
        let stopped = running.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(15), node.stopped()).await.is_ok()
        });
        assert!(stopped, "node {id} did not stop within 15s");
        let took = started.elapsed();
        drop(running.node);
        running.runtime.shutdown_timeout(Duration::from_secs(10));
        took
    }

    /// Restarts node `id` from its data dir, on its old address.
    pub fn restart(&mut self, id: NodeId) {
        assert!(!self.running.contains_key(&id), "node {id} is still running");
        let initial = self.peers.contains_key(&id);
        self.launch(id, None, initial);
    }

    /// Waits until the running nodes in `among` agree on one leader among
    /// them, which knows it leads; returns it.
    pub fn wait_for_leader(&self, among: &[NodeId], within: Duration) -> NodeId {
        let mut leader = None;
        self.wait_until(within, &format!("one leader among {among:?}"), || {
            let views: Vec<Option<NodeId>> = among.iter().map(|id| self.node(*id).current_leader()).collect();
            let first = views[0]?;
            if !among.contains(&first) || views.iter().any(|view| *view != Some(first)) {
                return None;
            }
            leader = Some(first);
            (self.node(first).raft().metrics().borrow().state == ServerState::Leader).then_some(())
        });
        leader.expect("a leader")
    }

    /// Polls `condition` until it returns `Some`, for at most `within`.
    pub fn wait_until<T>(&self, within: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
        wait_until(within, what, &mut condition)
    }

    /// Waits until node `id`'s applied state has every region in `names`.
    pub fn wait_for_regions(&self, id: NodeId, names: &[String], within: Duration) {
        self.wait_until(within, &format!("node {id} to have {} regions", names.len()), || {
            self.node(id)
                .read_local(|applied| names.iter().all(|name| applied.mesh.regions().contains_key(name)))
                .then_some(())
        });
    }

    fn launch(&mut self, id: NodeId, listener: Option<std::net::TcpListener>, initial: bool) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("node-{id}"))
            .enable_all()
            .build()
            .expect("a runtime");
        let node = self.addresses[&id].clone();
        let addr: SocketAddr = node.raft_addr.parse().expect("a socket address");
        let peers = if initial { self.peers.clone() } else { BTreeMap::new() };
        let mut options = NodeOptions::new(id, self.data_dir(id), addr, node, peers);
        options.heartbeat = HEARTBEAT;
        options.election_timeout_min = ELECTION_MIN;
        options.election_timeout_max = ELECTION_MAX;
        options.write_timeout = Duration::from_secs(3);
        options.membership_timeout = Duration::from_secs(10);
        options.shutdown_grace = Duration::from_secs(3);
        (self.tune)(&mut options);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let started = runtime.block_on(async move {
            let listener = match listener {
                Some(listener) => {
                    listener.set_nonblocking(true).expect("a non-blocking listener");
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener")
                }
                None => bind_again(addr).await,
            };
            ClusterNode::start_with_listener(options, listener, token).await
        });
        let node = started.unwrap_or_else(|e| panic!("node {id} failed to start: {e}"));
        self.running.insert(id, Running { runtime, node, shutdown });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, running) in std::mem::take(&mut self.running) {
            running.shutdown.cancel();
            let node = running.node.clone();
            let _ = running
                .runtime
                .block_on(async move { tokio::time::timeout(Duration::from_secs(5), node.stopped()).await });
            drop(running.node);
            running.runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// A node listening at `addr`; its API address is a placeholder (no API
/// server runs in these tests).
fn node_at(addr: SocketAddr) -> Node {
    Node { api_addr: format!("api-of-{addr}"), raft_addr: addr.to_string() }
}

/// Binds a restarted node's old address; the old socket may take a moment
/// to be released.
async fn bind_again(addr: SocketAddr) -> tokio::net::TcpListener {
    let started = Instant::now();
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if started.elapsed() < Duration::from_secs(5) => {
                tracing::debug!(%addr, %error, "address still in use; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot bind {addr} again: {error}"),
        }
    }
}

/// Polls `condition` until it returns `Some`, for at most `within`.
pub fn wait_until<T>(within: Duration, what: &str, condition: &mut dyn FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A request adding region `name`, with idempotency key `name`.
pub fn add_region(name: &str) -> Request {
    Request {
        idempotency_key: IdempotencyKey(format!("key-{name}")),
        issued_at: UnixMillis(1_700_000_000_000),
        command: Command::AddRegion { name: name.to_string() },
    }
}

/// Logs to the test output when `VANTAGE_TEST_LOG` is set (an env filter,
/// e.g. `info` or `vantage_coordinator=debug,openraft=info`).
pub fn init_tracing() {
    if let Ok(filter) = std::env::var("VANTAGE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
