//! The peer listener: `RaftService` on a node's `raft_addr`.
//!
//! [`serve`] runs its own accept loop so TLS is done by tokio-rustls with
//! the given [`PeerTls`](super::tls::PeerTls) server config (see
//! [`super::tls`]); each handshake runs in its own task with a deadline, so
//! a slow or hostile client cannot stall the accept loop. Raft RPCs go
//! straight to the local [`Raft`]; forwarded client operations go to a
//! [`PeerHandler`] (the node), which runs them only if this node leads.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request as GrpcRequest, Response, Status};
use vantage_proto::pb;
use vantage_proto::pb::raft_service_server::{RaftService, RaftServiceServer};
use vantage_proto::raft::MAX_MESSAGE_BYTES;

use super::types::{NodeId, Raft};
use super::wire::{self, WireError};
use crate::listener::{self, Acceptance};
use crate::node::forward::{Committed, Forwarded, MembershipChange};
use crate::state::Request;

/// The longest any one peer request may run, whatever deadline it asks
/// for (forwarded membership changes are the slowest).
const MAX_REQUEST_DURATION: Duration = Duration::from_secs(300);
/// HTTP/2 keepalive on peer connections, so a dead peer's connection is
/// noticed and dropped.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// What the peer service asks of the node for operations a follower
/// forwards. Each runs only when this node is the leader and answers
/// [`ForwardError::NotLeader`](crate::node::forward::ForwardError::NotLeader)
/// otherwise; it never forwards again, so requests cannot loop.
pub trait PeerHandler: Send + Sync + 'static {
    /// Proposes a client write; answers once it is applied on the leader.
    fn client_write(&self, request: Request) -> impl Future<Output = Forwarded<Committed>> + Send;
    /// Confirms leadership with a quorum and returns the log index a
    /// linearizable read must wait for.
    fn read_index(&self) -> impl Future<Output = Forwarded<u64>> + Send;
    /// Adds or removes a member; returns the log index of the change.
    fn change_membership(&self, change: MembershipChange) -> impl Future<Output = Forwarded<u64>> + Send;
    /// Hands leadership to `to` (or a node of the leader's choice); returns
    /// the new leader.
    fn transfer_leader(&self, to: Option<NodeId>) -> impl Future<Output = Forwarded<NodeId>> + Send;
    /// Starts an election if this node still follows `leader_id` in `term`.
    fn start_election(&self, leader_id: NodeId, term: u64) -> impl Future<Output = bool> + Send;
    /// What this node knows about itself.
    fn node_info(&self) -> pb::RaftNodeInfoReply;
}

/// The tonic service: Raft RPCs into `raft`, forwarded operations into the
/// handler.
pub struct RaftGrpc<H> {
    raft: Raft,
    handler: Arc<H>,
}

impl<H: PeerHandler> RaftGrpc<H> {
    /// The service with explicit message size limits on both directions.
    pub fn into_server(raft: Raft, handler: Arc<H>) -> RaftServiceServer<RaftGrpc<H>> {
        RaftServiceServer::new(RaftGrpc { raft, handler })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// Serves `service` on `listener` until `shutdown` is cancelled, then
/// stops accepting and lets open requests finish.
pub async fn serve<H: PeerHandler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: RaftServiceServer<RaftGrpc<H>>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let acceptance = Acceptance { port: "raft", tls, require_client_cert: true };
    let (incoming, _accepting) = listener::incoming(listener, acceptance, shutdown.clone()).into_parts();
    tonic::transport::Server::builder()
        .timeout(MAX_REQUEST_DURATION)
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .serve_with_incoming_shutdown(service, incoming, shutdown.cancelled())
        .await
}

fn bad_request(error: &WireError) -> Status {
    Status::invalid_argument(error.to_string())
}

fn reply<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Response<pb::RaftPayload>, Status> {
    wire::encode(what, value).map(Response::new).map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl<H: PeerHandler> RaftService for RaftGrpc<H> {
    async fn append_entries(
        &self,
        request: GrpcRequest<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc = wire::decode("append entries", request.get_ref()).map_err(|e| bad_request(&e))?;
        reply("append entries reply", &self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: GrpcRequest<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc = wire::decode("vote", request.get_ref()).map_err(|e| bad_request(&e))?;
        reply("vote reply", &self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: GrpcRequest<pb::RaftSnapshotChunk>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc = wire::decode_chunk(request.into_inner()).map_err(|e| bad_request(&e))?;
        reply("install snapshot reply", &self.raft.install_snapshot(rpc).await)
    }

    async fn client_write(
        &self,
        request: GrpcRequest<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let request: Request =
            wire::decode("client request", request.get_ref()).map_err(|e| bad_request(&e))?;
        reply("client write reply", &self.handler.client_write(request).await)
    }

    async fn read_index(
        &self,
        _request: GrpcRequest<pb::RaftReadIndexRequest>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        reply("read index reply", &self.handler.read_index().await)
    }

    async fn change_membership(
        &self,
        request: GrpcRequest<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let change: MembershipChange =
            wire::decode("membership change", request.get_ref()).map_err(|e| bad_request(&e))?;
        reply("membership change reply", &self.handler.change_membership(change).await)
    }

    async fn transfer_leader(
        &self,
        request: GrpcRequest<pb::RaftTransferLeaderRequest>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let to = request.into_inner().to;
        reply("transfer leader reply", &self.handler.transfer_leader(to).await)
    }

    async fn start_election(
        &self,
        request: GrpcRequest<pb::RaftStartElectionRequest>,
    ) -> Result<Response<pb::RaftStartElectionReply>, Status> {
        let request = request.into_inner();
        let started = self.handler.start_election(request.leader_id, request.term).await;
        Ok(Response::new(pb::RaftStartElectionReply { started }))
    }

    async fn node_info(
        &self,
        _request: GrpcRequest<pb::RaftNodeInfoRequest>,
    ) -> Result<Response<pb::RaftNodeInfoReply>, Status> {
        Ok(Response::new(self.handler.node_info()))
    }
}
