//! The AdminService: how admins (`vantagectl`) manage the mesh over gRPC.
//!
//! [`AdminApi`] implements the generated `AdminService` over a [`Cluster`]:
//! what the API needs from a coordinator node (propose a change, make the
//! local state current, read it, membership operations). Writes go through
//! Raft — a follower forwards them to the leader — and the answer is read
//! back after the local state has caught up with the write, so a client that
//! talks to any node sees its own writes.
//!
//! Modules: `convert` (wire ↔ state types), `error` (the one mapping of
//! failures to `tonic::Status`), `probes` (probe tokens and the live probe
//! list from a [`ProbeDirectory`]), `shards` (who checks what, pins,
//! rebalance and check-now from a [`ShardDirectory`]), `incidents`
//! (incidents, endpoint states and alert deliveries, from the replicated
//! state), `history` (an endpoint's history, from the node's own state
//! machine), `webhooks` (generated secrets, `TestWebhook` through the webhook
//! sink's service).

mod convert;
mod error;
mod history;
mod incidents;
mod probes;
mod shards;
mod webhooks;

use std::future::Future;
use std::sync::Arc;

use tonic::{Request as GrpcRequest, Response, Status};
use vantage_core::clock::WallClock;
use vantage_core::history::{EndpointHistory, Window};
use vantage_proto::pb;

use crate::raft::types::{Node, NodeId};
use crate::state::{
    Command, CommandResponse, EndpointId, IdempotencyKey, MaintenanceId, MeshState, Outcome, Request,
    UnixMillis, WebhookId,
};

pub use self::error::{AdminError, LEADER_API_METADATA};
pub use self::incidents::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
pub use self::probes::{LiveProbe, ProbeDirectory};
pub use self::shards::{LiveShards, ShardDirectory, CHECK_MARGIN, CHECK_WAIT_CAP};
pub use crate::node::{ClusterError, ClusterStatus, HistoryError, MemberStatus, Role};

/// What the admin API needs from the coordinator node it runs on.
pub trait Cluster: Send + Sync + 'static {
    /// Runs `f` on this node's applied state.
    fn read<R>(&self, f: impl FnOnce(&MeshState) -> R) -> R;

    /// Proposes `request` through Raft (forwarded to the leader when this
    /// node follows) and returns the state machine's answer once committed
    /// and applied on this node, so a read right after sees the write.
    fn write(&self, request: Request) -> impl Future<Output = Result<CommandResponse, ClusterError>> + Send;

    /// Returns once this node's applied state includes every write committed
    /// before the call (a linearizable read barrier).
    fn linearize(&self) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// The cluster as this node sees it.
    fn status(&self) -> impl Future<Output = Result<ClusterStatus, ClusterError>> + Send;

    /// Adds a node as a learner and, unless `learner_only`, promotes it to
    /// voter once it has caught up.
    fn add_node(
        &self,
        id: NodeId,
        node: Node,
        learner_only: bool,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Removes a node from the membership.
    fn remove_node(&self, id: NodeId) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Hands leadership to `to`, or lets the cluster choose.
    fn transfer_leader(&self, to: Option<NodeId>) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Builds a snapshot now; returns the log index it covers.
    fn snapshot(&self) -> impl Future<Output = Result<u64, ClusterError>> + Send;

    /// The endpoint named `name`'s history over `window` as of `now`, from
    /// this node's own state machine (no leader needed).
    fn endpoint_history(
        &self,
        name: &str,
        window: Window,
        now: UnixMillis,
    ) -> Result<EndpointHistory, HistoryError>;

    /// This node's id, reported by calls that act from it (`TestWebhook`).
    fn node_id(&self) -> Option<NodeId> {
        None
    }
}

/// Decides whether a request may administer the mesh.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok(())` to allow; the error is shown to the client. `header` is the
    /// request's `authorization` value (`Bearer <token>`), `state` the
    /// replicated state holding admin tokens added at run time.
    fn authorize(&self, header: Option<&str>, state: &MeshState) -> Result<(), String>;
}

impl Authorize for crate::auth::AdminAuth {
    fn authorize(&self, header: Option<&str>, state: &MeshState) -> Result<(), String> {
        self.check_with(header, state.admin_tokens().values().map(|t| &t.token_hash))
            .map_err(|e| e.to_string())
    }
}

/// The AdminService over a [`Cluster`].
pub struct AdminApi<C> {
    cluster: Arc<C>,
    auth: Arc<dyn Authorize>,
    clock: Arc<dyn WallClock>,
    probes: Option<Arc<dyn ProbeDirectory>>,
    shards: Option<Arc<dyn ShardDirectory>>,
    /// Sends `TestWebhook`'s event.
    webhooks: crate::sinks::webhook::WebhookService,
}

impl<C: Cluster> AdminApi<C> {
    /// An API over `cluster`, admitting requests `auth` allows and stamping
    /// changes with `clock`.
    pub fn new(cluster: Arc<C>, auth: Arc<dyn Authorize>, clock: Arc<dyn WallClock>) -> Self {
        Self {
            cluster,
            auth,
            clock,
            probes: None,
            shards: None,
            webhooks: crate::sinks::webhook::WebhookService::default(),
        }
    }

    /// Sends `TestWebhook`'s events with `service` (its timeout, body cap
    /// and trusted roots) instead of the defaults.
    pub fn with_webhook_service(mut self, service: crate::sinks::webhook::WebhookService) -> Self {
        self.webhooks = service;
        self
    }

    /// Adds the live state of probe streams to `ListProbes` (the node's
    /// mesh). Without it probes are listed as registered, never connected.
    pub fn with_probe_directory(mut self, probes: Arc<dyn ProbeDirectory>) -> Self {
        self.probes = Some(probes);
        self
    }

    /// Serves the shard calls (ListShards, ShowShard, Rebalance,
    /// CheckEndpoint) from the node's mesh. Without it they fail with
    /// [`AdminError::NoMesh`]; pins work either way.
    pub fn with_shard_directory(mut self, shards: Arc<dyn ShardDirectory>) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The tonic service, with explicit message size limits.
    pub fn into_service(self) -> pb::admin_service_server::AdminServiceServer<Self> {
        pb::admin_service_server::AdminServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_REPLY_BYTES)
    }

    fn authorize<T>(&self, request: &GrpcRequest<T>) -> Result<(), Status> {
        let bearer = match request.metadata().get("authorization") {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| AdminError::Unauthenticated {
                reason: "the authorization header is not text".into(),
            })?),
        };
        self.cluster
            .read(|state| self.auth.authorize(bearer, state))
            .map_err(|reason| AdminError::Unauthenticated { reason }.into())
    }

    /// Proposes `command` and returns the outcome once this node's state
    /// includes it.
    async fn change(&self, mutation: Option<pb::Mutation>, command: Command) -> Result<Outcome, AdminError> {
        let key = mutation.map(|m| m.idempotency_key).unwrap_or_default();
        let request = Request {
            idempotency_key: IdempotencyKey(key),
            issued_at: convert::now_millis(self.clock.now()),
            command,
        };
        // `write` answers after this node applied the entry: reading the
        // changed object back needs no extra barrier.
        Ok(self.cluster.write(request).await?.into_result()?)
    }

    /// The remembered outcome when `mutation`'s key was already applied on
    /// this node.
    ///
    /// Calls that name their target (update, pause, remove) resolve the
    /// name before proposing; a retry of a removal whose reply was lost
    /// would find the name gone. No read barrier is needed: one apply both
    /// removes the name and remembers the key, so when the name is gone
    /// here the key is known here; and when this node lags, the name still
    /// resolves and the state machine replays the same-key command itself.
    async fn replayed(&self, mutation: &Option<pb::Mutation>) -> Result<Option<Outcome>, AdminError> {
        let Some(key) = mutation.as_ref().map(|m| IdempotencyKey(m.idempotency_key.clone())) else {
            return Ok(None);
        };
        match self.cluster.read(|s| s.recent_requests().response(&key).cloned()) {
            Some(response) => Ok(Some(response.into_result()?)),
            None => Ok(None),
        }
    }

    async fn reads(&self, consistent: bool) -> Result<(), AdminError> {
        if consistent {
            self.cluster.linearize().await?;
        }
        Ok(())
    }

    fn endpoint_id(&self, reference: Option<pb::EndpointRef>) -> Result<EndpointId, AdminError> {
        let text = reference.map(|r| r.id_or_name).unwrap_or_default();
        self.cluster.read(|state| convert::resolve_endpoint(state, &text))
    }

    fn endpoint_reply(&self, id: EndpointId, changed: bool) -> Result<pb::EndpointReply, AdminError> {
        let endpoint = self.cluster.read(|state| state.endpoints().get(&id).map(convert::endpoint_to_pb));
        let endpoint = endpoint.ok_or(AdminError::Vanished { what: format!("endpoint {id}") })?;
        Ok(pb::EndpointReply { endpoint: Some(endpoint), changed })
    }
}

/// The largest request accepted (a bulky endpoint spec is a few KiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The largest reply sent (lists of many endpoints).
pub const MAX_REPLY_BYTES: usize = 64 << 20;

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<C: Cluster> pb::admin_service_server::AdminService for AdminApi<C> {
    async fn add_endpoint(&self, request: GrpcRequest<pb::AddEndpointRequest>) -> Reply<pb::EndpointReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let spec = convert::endpoint_spec_from_pb(req.spec)?;
        match self.change(req.mutation, Command::AddEndpoint(spec)).await? {
            Outcome::EndpointAdded { id } => Ok(Response::new(self.endpoint_reply(id, true)?)),
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn update_endpoint(
        &self,
        request: GrpcRequest<pb::UpdateEndpointRequest>,
    ) -> Reply<pb::EndpointReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        if let Some(Outcome::EndpointUpdated { id, changed }) = self.replayed(&req.mutation).await? {
            return Ok(Response::new(self.endpoint_reply(id, changed)?));
        }
        let id = self.endpoint_id(req.endpoint)?;
        let spec = convert::endpoint_spec_from_pb(req.spec)?;
        match self.change(req.mutation, Command::UpdateEndpoint { id, spec }).await? {
            Outcome::EndpointUpdated { id, changed } => Ok(Response::new(self.endpoint_reply(id, changed)?)),
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn set_endpoint_paused(
        &self,
        request: GrpcRequest<pb::SetEndpointPausedRequest>,
    ) -> Reply<pb::EndpointReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        if let Some(Outcome::EndpointUpdated { id, changed }) = self.replayed(&req.mutation).await? {
            return Ok(Response::new(self.endpoint_reply(id, changed)?));
        }
        let id = self.endpoint_id(req.endpoint)?;
        match self.change(req.mutation, Command::SetEndpointPaused { id, paused: req.paused }).await? {
            Outcome::EndpointUpdated { id, changed } => Ok(Response::new(self.endpoint_reply(id, changed)?)),
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn remove_endpoint(
        &self,
        request: GrpcRequest<pb::RemoveEndpointRequest>,
    ) -> Reply<pb::RemoveReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        if let Some(Outcome::EndpointRemoved { id }) = self.replayed(&req.mutation).await? {
            let name = req.endpoint.map(|r| r.id_or_name).unwrap_or_default();
            return Ok(Response::new(pb::RemoveReply { id: id.0, name }));
        }
        let id = self.endpoint_id(req.endpoint)?;
        let name =
            self.cluster.read(|s| s.endpoints().get(&id).map(|e| e.spec.name.clone())).unwrap_or_default();
        match self.change(req.mutation, Command::RemoveEndpoint { id }).await? {
            Outcome::EndpointRemoved { id } => Ok(Response::new(pb::RemoveReply { id: id.0, name })),
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn get_endpoint(&self, request: GrpcRequest<pb::GetEndpointRequest>) -> Reply<pb::Endpoint> {
        self.authorize(&request)?;
        let req = request.into_inner();
        self.reads(req.consistent).await?;
        let id = self.endpoint_id(req.endpoint)?;
        let reply = self.endpoint_reply(id, false)?;
        Ok(Response::new(reply.endpoint.unwrap_or_default()))
    }

    async fn list_endpoints(&self, request: GrpcRequest<pb::ListRequest>) -> Reply<pb::ListEndpointsReply> {
        self.authorize(&request)?;
        self.reads(request.get_ref().consistent).await?;
        let endpoints = self.cluster.read(|s| s.endpoints().values().map(convert::endpoint_to_pb).collect());
        Ok(Response::new(pb::ListEndpointsReply { endpoints }))
    }

    async fn add_region(&self, request: GrpcRequest<pb::AddRegionRequest>) -> Reply<pb::Region> {
        self.authorize(&request)?;
        let req = request.into_inner();
        match self.change(req.mutation, Command::AddRegion { name: req.name }).await? {
            Outcome::RegionAdded { name } => {
                let region = self.cluster.read(|s| s.regions().get(&name).map(convert::region_to_pb));
                Ok(Response::new(region.ok_or(AdminError::Vanished { what: format!("region {name}") })?))
            }
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn remove_region(&self, request: GrpcRequest<pb::RemoveRegionRequest>) -> Reply<pb::RemoveReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        match self.change(req.mutation, Command::RemoveRegion { name: req.name }).await? {
            Outcome::RegionRemoved { name } => Ok(Response::new(pb::RemoveReply { id: 0, name })),
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn list_regions(&self, request: GrpcRequest<pb::ListRequest>) -> Reply<pb::ListRegionsReply> {
        self.authorize(&request)?;
        self.reads(request.get_ref().consistent).await?;
        let regions = self.cluster.read(|s| s.regions().values().map(convert::region_to_pb).collect());
        Ok(Response::new(pb::ListRegionsReply { regions }))
    }

    async fn add_webhook(&self, request: GrpcRequest<pb::AddWebhookRequest>) -> Reply<pb::Webhook> {
        self.authorize(&request)?;
        Ok(Response::new(self.add_webhook_inner(request.into_inner()).await?))
    }

    async fn update_webhook(&self, request: GrpcRequest<pb::UpdateWebhookRequest>) -> Reply<pb::Webhook> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let id = match self.replayed(&req.mutation).await? {
            Some(Outcome::WebhookUpdated { id, .. }) => id,
            _ => {
                let (id, _) = self.cluster.read(|s| convert::resolve_webhook(s, &req.id_or_name))?;
                let mut spec = convert::webhook_spec_from_pb(req.spec)?;
                if spec.secret.0.is_empty() {
                    let stored = self.cluster.read(|s| s.webhooks().get(&id).map(|w| w.spec.secret.clone()));
                    spec.secret = stored.ok_or(AdminError::Vanished { what: format!("webhook {id}") })?;
                }
                match self.change(req.mutation, Command::UpdateWebhook { id, spec }).await? {
                    Outcome::WebhookUpdated { id, .. } => id,
                    other => return Err(AdminError::unexpected(&other).into()),
                }
            }
        };
        let hook = self.cluster.read(|s| s.webhooks().get(&id).map(convert::webhook_to_pb));
        Ok(Response::new(hook.ok_or(AdminError::Vanished { what: format!("webhook {id}") })?))
    }

    async fn remove_webhook(&self, request: GrpcRequest<pb::RemoveWebhookRequest>) -> Reply<pb::RemoveReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        if let Some(Outcome::WebhookRemoved { id }) = self.replayed(&req.mutation).await? {
            return Ok(Response::new(pb::RemoveReply { id: id.0, name: req.id_or_name }));
        }
        let (id, name): (WebhookId, String) =
            self.cluster.read(|s| convert::resolve_webhook(s, &req.id_or_name))?;
        match self.change(req.mutation, Command::RemoveWebhook { id }).await? {
            Outcome::WebhookRemoved { id } => Ok(Response::new(pb::RemoveReply { id: id.0, name })),
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn list_webhooks(&self, request: GrpcRequest<pb::ListRequest>) -> Reply<pb::ListWebhooksReply> {
        self.authorize(&request)?;
        self.reads(request.get_ref().consistent).await?;
        let webhooks = self.cluster.read(|s| s.webhooks().values().map(convert::webhook_to_pb).collect());
        Ok(Response::new(pb::ListWebhooksReply { webhooks }))
    }

    async fn add_maintenance(
        &self,
        request: GrpcRequest<pb::AddMaintenanceRequest>,
    ) -> Reply<pb::Maintenance> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let spec = convert::maintenance_spec_from_pb(req.spec)?;
        match self.change(req.mutation, Command::AddMaintenance(spec)).await? {
            Outcome::MaintenanceAdded { id } => {
                let window =
                    self.cluster.read(|s| s.maintenance_windows().get(&id).map(convert::maintenance_to_pb));
                Ok(Response::new(
                    window.ok_or(AdminError::Vanished { what: format!("maintenance window {id}") })?,
                ))
            }
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn remove_maintenance(
        &self,
        request: GrpcRequest<pb::RemoveMaintenanceRequest>,
    ) -> Reply<pb::RemoveReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let command = Command::RemoveMaintenance { id: MaintenanceId(req.id) };
        match self.change(req.mutation, command).await? {
            Outcome::MaintenanceRemoved { id } => {
                Ok(Response::new(pb::RemoveReply { id: id.0, name: String::new() }))
            }
            other => Err(AdminError::unexpected(&other).into()),
        }
    }

    async fn list_maintenance(
        &self,
        request: GrpcRequest<pb::ListRequest>,
    ) -> Reply<pb::ListMaintenanceReply> {
        self.authorize(&request)?;
        self.reads(request.get_ref().consistent).await?;
        let windows =
            self.cluster.read(|s| s.maintenance_windows().values().map(convert::maintenance_to_pb).collect());
        Ok(Response::new(pb::ListMaintenanceReply { windows }))
    }

    async fn create_probe_token(
        &self,
        request: GrpcRequest<pb::CreateProbeTokenRequest>,
    ) -> Reply<pb::CreateProbeTokenReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.create_probe_token_inner(request.into_inner()).await?))
    }

    async fn revoke_probe(&self, request: GrpcRequest<pb::RevokeProbeRequest>) -> Reply<pb::RemoveReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.revoke_probe_inner(request.into_inner()).await?))
    }

    async fn drain_probe(&self, request: GrpcRequest<pb::DrainProbeRequest>) -> Reply<pb::ProbeInfo> {
        self.authorize(&request)?;
        Ok(Response::new(self.drain_probe_inner(request.into_inner()).await?))
    }

    async fn list_probes(&self, request: GrpcRequest<pb::ListRequest>) -> Reply<pb::ListProbesReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.list_probes_inner(request.get_ref().consistent).await?))
    }

    async fn list_shards(&self, request: GrpcRequest<pb::ListShardsRequest>) -> Reply<pb::ListShardsReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.list_shards_inner(request.into_inner())?))
    }

    async fn show_shard(&self, request: GrpcRequest<pb::ShowShardRequest>) -> Reply<pb::ShowShardReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.show_shard_inner(request.into_inner())?))
    }

    async fn pin_shard(&self, request: GrpcRequest<pb::PinShardRequest>) -> Reply<pb::PinShardReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.pin_shard_inner(request.into_inner()).await?))
    }

    async fn unpin_shard(&self, request: GrpcRequest<pb::UnpinShardRequest>) -> Reply<pb::UnpinShardReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.unpin_shard_inner(request.into_inner()).await?))
    }

    async fn rebalance(&self, request: GrpcRequest<pb::RebalanceRequest>) -> Reply<pb::RebalanceReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.rebalance_inner(request.into_inner())?))
    }

    async fn check_endpoint(
        &self,
        request: GrpcRequest<pb::CheckEndpointRequest>,
    ) -> Reply<pb::CheckEndpointReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.check_endpoint_inner(request.into_inner()).await?))
    }

    async fn list_incidents(
        &self,
        request: GrpcRequest<pb::ListIncidentsRequest>,
    ) -> Reply<pb::ListIncidentsReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.list_incidents_inner(request.into_inner()).await?))
    }

    async fn get_incident(&self, request: GrpcRequest<pb::GetIncidentRequest>) -> Reply<pb::Incident> {
        self.authorize(&request)?;
        Ok(Response::new(self.get_incident_inner(request.into_inner()).await?))
    }

    async fn endpoint_status(
        &self,
        request: GrpcRequest<pb::EndpointStatusRequest>,
    ) -> Reply<pb::EndpointStatusReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.endpoint_status_inner(request.into_inner()).await?))
    }

    async fn list_deliveries(
        &self,
        request: GrpcRequest<pb::ListDeliveriesRequest>,
    ) -> Reply<pb::ListDeliveriesReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.list_deliveries_inner(request.into_inner()).await?))
    }

    async fn endpoint_history(
        &self,
        request: GrpcRequest<pb::EndpointHistoryRequest>,
    ) -> Reply<pb::EndpointHistoryReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.endpoint_history_inner(request.into_inner()).await?))
    }

    async fn cluster_status(
        &self,
        request: GrpcRequest<pb::ClusterStatusRequest>,
    ) -> Reply<pb::ClusterStatusReply> {
        self.authorize(&request)?;
        Ok(Response::new(convert::status_to_pb(self.cluster.status().await.map_err(AdminError::from)?)))
    }

    async fn add_node(&self, request: GrpcRequest<pb::AddNodeRequest>) -> Reply<pb::ClusterStatusReply> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let node = convert::node_from_pb(&req.api_addr, &req.raft_addr)?;
        self.cluster.add_node(req.id, node, req.learner_only).await.map_err(AdminError::from)?;
        Ok(Response::new(convert::status_to_pb(self.cluster.status().await.map_err(AdminError::from)?)))
    }

    async fn remove_node(
        &self,
        request: GrpcRequest<pb::RemoveNodeRequest>,
    ) -> Reply<pb::ClusterStatusReply> {
        self.authorize(&request)?;
        self.cluster.remove_node(request.get_ref().id).await.map_err(AdminError::from)?;
        Ok(Response::new(convert::status_to_pb(self.cluster.status().await.map_err(AdminError::from)?)))
    }

    async fn transfer_leader(
        &self,
        request: GrpcRequest<pb::TransferLeaderRequest>,
    ) -> Reply<pb::ClusterStatusReply> {
        self.authorize(&request)?;
        let to = Some(request.get_ref().to).filter(|id| *id != 0);
        self.cluster.transfer_leader(to).await.map_err(AdminError::from)?;
        Ok(Response::new(convert::status_to_pb(self.cluster.status().await.map_err(AdminError::from)?)))
    }

    async fn trigger_snapshot(
        &self,
        request: GrpcRequest<pb::TriggerSnapshotRequest>,
    ) -> Reply<pb::TriggerSnapshotReply> {
        self.authorize(&request)?;
        let index = self.cluster.snapshot().await.map_err(AdminError::from)?;
        Ok(Response::new(pb::TriggerSnapshotReply { last_included_index: index }))
    }

    async fn test_webhook(
        &self,
        request: GrpcRequest<pb::TestWebhookRequest>,
    ) -> Reply<pb::TestWebhookReply> {
        self.authorize(&request)?;
        Ok(Response::new(self.test_webhook_inner(request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests;
