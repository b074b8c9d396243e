//! openraft's network over tonic: how this node sends Raft RPCs to peers.
//!
//! - [`PeerPool`] keeps one lazily connected tonic [`Channel`] per peer
//!   address (reconnecting by itself after a peer restarts), over
//!   the connector in [`super::tls`] (plain TCP, or TLS with the cluster
//!   client config). The node also uses it to forward client operations to
//!   the leader. Every connection the node makes to a peer goes through
//!   [`PeerPool::client_for`] with the peer's id, so a configured dial address
//!   (`[[peers]] dial_raft_addr`: a proxy, a NAT) applies to all of them,
//!   while the advertised `raft_addr` stays the name TLS checks.
//! - [`PeerNetwork`] is openraft's `RaftNetworkFactory`; [`PeerClient`] its
//!   `RaftNetwork` for one target.
//!
//! Every RPC carries openraft's deadline (`RPCOption::hard_ttl`) both as
//! the gRPC timeout header and as a local timeout. A peer that cannot be
//! connected to (refused, reset, no route) is reported as
//! [`Unreachable`], so openraft backs off instead of hammering it; a
//! deadline becomes [`Timeout`]; a peer's own Raft error comes back as
//! [`RemoteError`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use vantage_proto::pb;
use vantage_proto::pb::raft_service_client::RaftServiceClient;
use vantage_proto::raft::MAX_MESSAGE_BYTES;

use super::tls::PeerConnector;
use super::types::{Node, NodeId, TypeConfig};
use super::wire;

/// Lazily connected channels to peers, shared by Raft replication and by
/// request forwarding.
pub struct PeerPool {
    connector: PeerConnector,
    connect_timeout: Duration,
    /// Where to dial a peer, by id, when not at its advertised address.
    dial: BTreeMap<NodeId, String>,
    /// By (advertised address, dialed address).
    channels: Mutex<HashMap<(String, String), Channel>>,
}

/// A peer address that cannot be made into a gRPC endpoint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid peer raft_addr {addr:?}: {reason}")]
pub struct BadPeerAddress {
    /// The address.
    pub addr: String,
    /// Why.
    pub reason: String,
}

impl PeerPool {
    /// A pool connecting with TLS when `tls_client` is set, plaintext
    /// otherwise, giving up on a connect after `connect_timeout`.
    pub fn new(tls_client: Option<Arc<rustls::ClientConfig>>, connect_timeout: Duration) -> PeerPool {
        PeerPool {
            connector: PeerConnector::new(tls_client),
            connect_timeout,
            dial: BTreeMap::new(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// This pool, dialing the peers in `dial` (by id) at the address given
    /// there instead of their advertised `raft_addr` (see
    /// [`PeerPool::client_for`]).
    pub fn with_dial_addrs(mut self, dial: BTreeMap<NodeId, String>) -> PeerPool {
        self.dial = dial;
        self
    }

    /// A client for the peer at `raft_addr` (`host:port`), dialed there,
    /// sharing one channel per address. Connecting happens on first use.
    pub fn client(&self, raft_addr: &str) -> Result<RaftServiceClient<Channel>, BadPeerAddress> {
        self.channel_client(raft_addr, raft_addr)
    }

    /// A client for peer `id`, advertised at `raft_addr`: dialed at the
    /// peer's dial address if the pool has one, else at `raft_addr`; TLS
    /// checks `raft_addr`'s host either way.
    pub fn client_for(
        &self,
        id: NodeId,
        raft_addr: &str,
    ) -> Result<RaftServiceClient<Channel>, BadPeerAddress> {
        self.channel_client(raft_addr, self.dial.get(&id).map_or(raft_addr, String::as_str))
    }

    fn channel_client(
        &self,
        raft_addr: &str,
        dial: &str,
    ) -> Result<RaftServiceClient<Channel>, BadPeerAddress> {
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (raft_addr.to_string(), dial.to_string());
            match channels.get(&key) {
                Some(channel) => channel.clone(),
                None => {
                    let endpoint = Endpoint::from_shared(format!("http://{raft_addr}"))
                        .map_err(|e| BadPeerAddress { addr: raft_addr.to_string(), reason: e.to_string() })?
                        .connect_timeout(self.connect_timeout)
                        .http2_keep_alive_interval(Duration::from_secs(10))
                        .keep_alive_timeout(Duration::from_secs(10))
                        .keep_alive_while_idle(true);
                    let connector = if dial == raft_addr {
                        self.connector.clone()
                    } else {
                        self.connector.dialing(dial.to_string())
                    };
                    let channel = endpoint.connect_with_connector_lazy(connector);
                    channels.insert(key, channel.clone());
                    channel
                }
            }
        };
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// openraft's network factory: one [`PeerClient`] per replication target.
pub struct PeerNetwork {
    id: NodeId,
    pool: Arc<PeerPool>,
    backoff: Duration,
}

impl PeerNetwork {
    /// The network of node `id`, waiting `backoff` between attempts to
    /// reach an unreachable peer.
    pub fn new(id: NodeId, pool: Arc<PeerPool>, backoff: Duration) -> PeerNetwork {
        PeerNetwork { id, pool, backoff }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            id: self.id,
            target,
            addr: node.raft_addr.clone(),
            client: self.pool.client_for(target, &node.raft_addr),
            backoff: self.backoff,
        }
    }
}

/// openraft's network to one peer.
pub struct PeerClient {
    id: NodeId,
    target: NodeId,
    addr: String,
    client: Result<RaftServiceClient<Channel>, BadPeerAddress>,
    backoff: Duration,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Node, E>>;

impl PeerClient {
    /// Sends one unary RPC with openraft's deadline and decodes the peer's
    /// `Result<T, E>` answer.
    async fn unary<T, E, F, Fut>(&self, action: RPCTypes, option: &RPCOption, call: F) -> RpcResult<T, E>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::RaftPayload>, Status>>,
    {
        let client = self.client.clone().map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let ttl = option.hard_ttl();
        let timeout =
            || RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout: ttl });
        let reply = match tokio::time::timeout(ttl, call(client, ttl)).await {
            Err(_) => return Err(timeout()),
            Ok(Err(status)) => {
                tracing::debug!(target_node = self.target, addr = %self.addr, rpc = %action, code = ?status.code(), error = %status.message(), "raft rpc failed");
                return Err(match status.code() {
                    Code::DeadlineExceeded | Code::Cancelled => timeout(),
                    code if is_unreachable(code) => RPCError::Unreachable(Unreachable::new(&status)),
                    _ => RPCError::Network(NetworkError::new(&status)),
                });
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let answer: Result<T, E> =
            wire::decode("raft rpc reply", &reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Whether a status means the peer could not be reached at all (as opposed
/// to answering with an error).
pub(crate) fn is_unreachable(code: Code) -> bool {
    // tonic reports connect failures, resets and closed connections as
    // Unavailable; Unknown covers transport errors tonic cannot classify.
    matches!(code, Code::Unavailable | Code::Unknown)
}

/// A request carrying openraft's deadline as its gRPC timeout.
fn with_deadline<T>(message: T, ttl: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(ttl);
    request
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let payload =
            wire::encode("append entries", &rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.unary(RPCTypes::AppendEntries, &option, |mut client, ttl| async move {
            client.append_entries(with_deadline(payload, ttl)).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let chunk = wire::encode_chunk(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.unary(RPCTypes::InstallSnapshot, &option, |mut client, ttl| async move {
            client.install_snapshot(with_deadline(chunk, ttl)).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        let payload = wire::encode("vote", &rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.unary(RPCTypes::Vote, &option, |mut client, ttl| async move {
            client.vote(with_deadline(payload, ttl)).await
        })
        .await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(self.backoff))
    }
}
