//! The AdminService client: one connection, the bearer token on every call,
//! a deadline per call, and bounded retries that reuse the change's
//! idempotency key. Calls only the leader answers (the shard calls and
//! `check`) follow a follower's pointer to the leader once.
//!
//! Every method takes and returns [`crate::model`] types; protobuf messages
//! are built and read here (`incidents.rs`: the incident calls) and in
//! [`crate::wire`] only.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint as ChannelEndpoint, Identity};
use tonic::{Code, Request, Response, Status};
use vantage_proto::pb;
use vantage_proto::pb::admin_service_client::AdminServiceClient;

use crate::error::{CallContext, Error};
use crate::keys::IdempotencyKey;
use crate::model::{
    CheckReport, ClusterStatus, Endpoint, EndpointSpec, LiveState, Maintenance, MaintenanceSpec, Pinned,
    Probe, ProbeToken, Rebalance, Region, ShardList, ShardView, Unpinned, Webhook, WebhookSpec,
    WebhookTestReport,
};
use crate::wire::webhook_spec_to_wire;

mod history;
mod incidents;
pub use self::incidents::IncidentFilter;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub server: String,
    /// The admin token, sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// TLS material for `https://`; `None` for `http://`.
    pub tls: Option<TlsFiles>,
    /// How long one attempt of a call may take.
    pub call_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Retries of calls that failed for want of a coordinator.
    pub retry: RetryPolicy,
}

/// PEM files for a TLS connection.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The only CA trusted; `None`: the public roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, at least one.
    pub attempts: u32,
    /// The wait after the first failure; it doubles each time.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, first_backoff: Duration::from_millis(250) }
    }
}

/// What a removal removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The removed object's id (0 for regions, or when unknown).
    pub id: u64,
    /// Its name (empty when unknown).
    pub name: String,
}

impl Removed {
    /// `endpoint api (id 3)`, `region eu-west`, `webhook 4`.
    pub fn describe(&self, kind: &str) -> String {
        match (self.name.is_empty(), self.id) {
            (false, 0) => format!("{kind} {}", self.name),
            (false, id) => format!("{kind} {} (id {id})", self.name),
            (true, id) => format!("{kind} {id}"),
        }
    }

    /// What is known of an object removed by an attempt whose reply was
    /// lost: the reference the caller gave.
    fn from_reference(reference: &str) -> Removed {
        match reference.parse::<u64>() {
            Ok(id) => Removed { id, name: String::new() },
            Err(_) => Removed { id: 0, name: reference.to_string() },
        }
    }
}

type Client = AdminServiceClient<InterceptedService<Channel, BearerToken>>;

/// The metadata key in which a follower names the leader's API address
/// (`HOST:PORT`) when it refuses a call only the leader answers.
pub const LEADER_API_METADATA: &str = "vantage-leader-api";

/// How much longer than `--call-timeout` a `check` call may take: the
/// coordinator waits up to 60 s for the probes' results.
pub const CHECK_EXTRA_TIME: Duration = Duration::from_secs(65);

/// A connection to one coordinator's AdminService.
#[derive(Debug, Clone)]
pub struct AdminClient {
    client: Client,
    context: CallContext,
    retry: RetryPolicy,
    /// Kept to connect to the leader with the same TLS and token settings.
    options: ConnectOptions,
}

impl AdminClient {
    /// Prepares a connection; it is made on the first call, so an
    /// unreachable coordinator is reported by that call.
    pub fn connect(options: &ConnectOptions) -> Result<AdminClient, Error> {
        let usage = |reason: String| Error::usage(format!("invalid --server {:?}: {reason}", options.server));
        let mut endpoint = ChannelEndpoint::from_shared(options.server.clone())
            .map_err(|e| usage(e.to_string()))?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        if let Some(files) = &options.tls {
            let mut tls = ClientTlsConfig::new();
            tls = match &files.ca_pem {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_webpki_roots(),
            };
            if let Some((cert, key)) = &files.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| usage(format!("TLS setup failed: {e}")))?;
        }
        let token = match &options.token {
            Some(token) => {
                let mut value = MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| Error::usage("the admin token is not a valid header value"))?;
                // Keeps it out of HTTP/2 header compression and debug output.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = AdminServiceClient::with_interceptor(endpoint.connect_lazy(), BearerToken(token));
        Ok(AdminClient {
            client,
            context: CallContext {
                server: options.server.clone(),
                token_given: options.token.is_some(),
                call_timeout: options.call_timeout,
            },
            retry: options.retry,
            options: options.clone(),
        })
    }

    /// Lists endpoints.
    pub async fn list_endpoints(&self, consistent: bool) -> Result<Vec<Endpoint>, Error> {
        let reply = self
            .call(pb::ListRequest { consistent }, |mut c, r| async move { c.list_endpoints(r).await })
            .await?;
        reply.endpoints.into_iter().map(Endpoint::try_from).collect()
    }

    /// Fetches one endpoint by name or id.
    pub async fn get_endpoint(&self, id_or_name: &str, consistent: bool) -> Result<Endpoint, Error> {
        let request = pb::GetEndpointRequest { endpoint: Some(endpoint_ref(id_or_name)), consistent };
        self.call(request, |mut c, r| async move { c.get_endpoint(r).await }).await?.try_into()
    }

    /// Adds an endpoint.
    pub async fn add_endpoint(&self, spec: &EndpointSpec, key: &IdempotencyKey) -> Result<Endpoint, Error> {
        let request = pb::AddEndpointRequest { mutation: Some(mutation(key)), spec: Some(spec.into()) };
        self.call(request, |mut c, r| async move { c.add_endpoint(r).await }).await?.try_into()
    }

    /// Replaces an endpoint's whole specification; `bool`: whether it
    /// changed.
    pub async fn update_endpoint(
        &self,
        id_or_name: &str,
        spec: &EndpointSpec,
        key: &IdempotencyKey,
    ) -> Result<(Endpoint, bool), Error> {
        let request = pb::UpdateEndpointRequest {
            mutation: Some(mutation(key)),
            endpoint: Some(endpoint_ref(id_or_name)),
            spec: Some(spec.into()),
        };
        let reply = self.call(request, |mut c, r| async move { c.update_endpoint(r).await }).await?;
        let changed = reply.changed;
        Ok((reply.try_into()?, changed))
    }

    /// Pauses or resumes an endpoint; `bool`: whether it changed.
    pub async fn set_endpoint_paused(
        &self,
        id_or_name: &str,
        paused: bool,
        key: &IdempotencyKey,
    ) -> Result<(Endpoint, bool), Error> {
        let request = pb::SetEndpointPausedRequest {
            mutation: Some(mutation(key)),
            endpoint: Some(endpoint_ref(id_or_name)),
            paused,
        };
        let reply = self.call(request, |mut c, r| async move { c.set_endpoint_paused(r).await }).await?;
        let changed = reply.changed;
        Ok((reply.try_into()?, changed))
    }

    /// Removes an endpoint.
    pub async fn remove_endpoint(&self, id_or_name: &str, key: &IdempotencyKey) -> Result<Removed, Error> {
        let request = pb::RemoveEndpointRequest {
            mutation: Some(mutation(key)),
            endpoint: Some(endpoint_ref(id_or_name)),
        };
        self.call_removal(id_or_name, request, |mut c, r| async move { c.remove_endpoint(r).await }).await
    }

    /// Lists regions.
    pub async fn list_regions(&self, consistent: bool) -> Result<Vec<Region>, Error> {
        let reply = self
            .call(pb::ListRequest { consistent }, |mut c, r| async move { c.list_regions(r).await })
            .await?;
        Ok(reply.regions.into_iter().map(Region::from).collect())
    }

    /// Adds a region.
    pub async fn add_region(&self, name: &str, key: &IdempotencyKey) -> Result<Region, Error> {
        let request = pb::AddRegionRequest { mutation: Some(mutation(key)), name: name.to_string() };
        Ok(self.call(request, |mut c, r| async move { c.add_region(r).await }).await?.into())
    }

    /// Removes a region.
    pub async fn remove_region(&self, name: &str, key: &IdempotencyKey) -> Result<Removed, Error> {
        let request = pb::RemoveRegionRequest { mutation: Some(mutation(key)), name: name.to_string() };
        self.call_removal(name, request, |mut c, r| async move { c.remove_region(r).await }).await
    }

    /// Issues a probe's token: registers the probe, or rotates the token of
    /// the probe with that name and region. A retry whose first attempt was
    /// applied is refused by the coordinator (the token is not stored, so it
    /// cannot be answered again); the message says to run the command again.
    pub async fn create_probe_token(
        &self,
        probe: &str,
        region: &str,
        weight: Option<u32>,
        key: &IdempotencyKey,
    ) -> Result<ProbeToken, Error> {
        let request = pb::CreateProbeTokenRequest {
            mutation: Some(mutation(key)),
            probe: probe.to_string(),
            region: region.to_string(),
            weight: weight.unwrap_or(0),
        };
        Ok(self.call(request, |mut c, r| async move { c.create_probe_token(r).await }).await?.into())
    }

    /// Removes a probe's registration (its token stops working).
    pub async fn revoke_probe(&self, id_or_name: &str, key: &IdempotencyKey) -> Result<Removed, Error> {
        let request =
            pb::RevokeProbeRequest { mutation: Some(mutation(key)), id_or_name: id_or_name.to_string() };
        self.call_removal(id_or_name, request, |mut c, r| async move { c.revoke_probe(r).await }).await
    }

    /// Drains (no endpoints) or undrains a probe.
    pub async fn drain_probe(
        &self,
        id_or_name: &str,
        drained: bool,
        key: &IdempotencyKey,
    ) -> Result<Probe, Error> {
        let request = pb::DrainProbeRequest {
            mutation: Some(mutation(key)),
            id_or_name: id_or_name.to_string(),
            drained,
        };
        Ok(self.call(request, |mut c, r| async move { c.drain_probe(r).await }).await?.into())
    }

    /// Lists probes with their live state.
    pub async fn list_probes(&self, consistent: bool) -> Result<Vec<Probe>, Error> {
        let reply = self
            .call(pb::ListRequest { consistent }, |mut c, r| async move { c.list_probes(r).await })
            .await?;
        Ok(reply.probes.into_iter().map(Probe::from).collect())
    }

    /// Lists webhooks (without secrets).
    pub async fn list_webhooks(&self, consistent: bool) -> Result<Vec<Webhook>, Error> {
        let reply = self
            .call(pb::ListRequest { consistent }, |mut c, r| async move { c.list_webhooks(r).await })
            .await?;
        reply.webhooks.into_iter().map(Webhook::try_from).collect()
    }

    /// Adds a webhook with its signing secret.
    pub async fn add_webhook(
        &self,
        spec: &WebhookSpec,
        secret: &str,
        key: &IdempotencyKey,
    ) -> Result<Webhook, Error> {
        let request = pb::AddWebhookRequest {
            mutation: Some(mutation(key)),
            spec: Some(webhook_spec_to_wire(spec, secret)),
        };
        self.call(request, |mut c, r| async move { c.add_webhook(r).await }).await?.try_into()
    }

    /// Replaces a webhook's whole specification in place (it keeps its
    /// id). An empty `secret` keeps the stored one.
    pub async fn update_webhook(
        &self,
        id_or_name: &str,
        spec: &WebhookSpec,
        secret: &str,
        key: &IdempotencyKey,
    ) -> Result<Webhook, Error> {
        let request = pb::UpdateWebhookRequest {
            mutation: Some(mutation(key)),
            id_or_name: id_or_name.to_string(),
            spec: Some(webhook_spec_to_wire(spec, secret)),
        };
        self.call(request, |mut c, r| async move { c.update_webhook(r).await }).await?.try_into()
    }

    /// Sends a signed `test` event to a webhook from the node answering.
    pub async fn test_webhook(&self, id_or_name: &str) -> Result<WebhookTestReport, Error> {
        let request = pb::TestWebhookRequest { id_or_name: id_or_name.to_string() };
        let reply = self.call(request, |mut c, r| async move { c.test_webhook(r).await }).await?;
        Ok(reply.into())
    }

    /// Removes a webhook by name or id.
    pub async fn remove_webhook(&self, id_or_name: &str, key: &IdempotencyKey) -> Result<Removed, Error> {
        let request =
            pb::RemoveWebhookRequest { mutation: Some(mutation(key)), id_or_name: id_or_name.to_string() };
        self.call_removal(id_or_name, request, |mut c, r| async move { c.remove_webhook(r).await }).await
    }

    /// Lists maintenance windows.
    pub async fn list_maintenance(&self, consistent: bool) -> Result<Vec<Maintenance>, Error> {
        let reply = self
            .call(pb::ListRequest { consistent }, |mut c, r| async move { c.list_maintenance(r).await })
            .await?;
        reply.windows.into_iter().map(Maintenance::try_from).collect()
    }

    /// Adds a maintenance window.
    pub async fn add_maintenance(
        &self,
        spec: &MaintenanceSpec,
        key: &IdempotencyKey,
    ) -> Result<Maintenance, Error> {
        let request = pb::AddMaintenanceRequest { mutation: Some(mutation(key)), spec: Some(spec.into()) };
        self.call(request, |mut c, r| async move { c.add_maintenance(r).await }).await?.try_into()
    }

    /// Removes a maintenance window.
    pub async fn remove_maintenance(&self, id: u64, key: &IdempotencyKey) -> Result<Removed, Error> {
        let request = pb::RemoveMaintenanceRequest { mutation: Some(mutation(key)), id };
        self.call_removal(&id.to_string(), request, |mut c, r| async move { c.remove_maintenance(r).await })
            .await
    }

    /// Everything `apply` and `export` manage, read in four calls.
    pub async fn live_state(&self, consistent: bool) -> Result<LiveState, Error> {
        Ok(LiveState {
            regions: self.list_regions(consistent).await?,
            endpoints: self.list_endpoints(consistent).await?,
            webhooks: self.list_webhooks(consistent).await?,
            maintenance: self.list_maintenance(consistent).await?,
        })
    }

    /// Who checks what, from the leader's assignment; `region` and `probe`
    /// filter.
    pub async fn list_shards(&self, region: Option<&str>, probe: Option<&str>) -> Result<ShardList, Error> {
        let request = pb::ListShardsRequest {
            region: region.unwrap_or_default().to_string(),
            probe: probe.unwrap_or_default().to_string(),
        };
        let timeout = self.context.call_timeout;
        Ok(self.leader_call(request, timeout, |mut c, r| async move { c.list_shards(r).await }).await?.into())
    }

    /// One endpoint's probes, region by region.
    pub async fn show_shard(&self, id_or_name: &str) -> Result<ShardView, Error> {
        let request = pb::ShowShardRequest { endpoint: Some(endpoint_ref(id_or_name)) };
        let timeout = self.context.call_timeout;
        Ok(self.leader_call(request, timeout, |mut c, r| async move { c.show_shard(r).await }).await?.into())
    }

    /// Pins an endpoint in a region to a probe.
    pub async fn pin_shard(
        &self,
        id_or_name: &str,
        region: &str,
        probe: &str,
        key: &IdempotencyKey,
    ) -> Result<Pinned, Error> {
        let request = pb::PinShardRequest {
            mutation: Some(mutation(key)),
            endpoint: Some(endpoint_ref(id_or_name)),
            region: region.to_string(),
            probe: probe.to_string(),
        };
        Ok(self.call(request, |mut c, r| async move { c.pin_shard(r).await }).await?.into())
    }

    /// Removes an endpoint's pin in `region`, or all its pins.
    pub async fn unpin_shard(
        &self,
        id_or_name: &str,
        region: Option<&str>,
        key: &IdempotencyKey,
    ) -> Result<Unpinned, Error> {
        let request = pb::UnpinShardRequest {
            mutation: Some(mutation(key)),
            endpoint: Some(endpoint_ref(id_or_name)),
            region: region.unwrap_or_default().to_string(),
        };
        Ok(self.call(request, |mut c, r| async move { c.unpin_shard(r).await }).await?.into())
    }

    /// Ends the grace period of disconnected probes and recomputes now
    /// (`dry_run`: only reports what would move).
    pub async fn rebalance(&self, dry_run: bool) -> Result<Rebalance, Error> {
        let request = pb::RebalanceRequest { dry_run };
        let timeout = self.context.call_timeout;
        Ok(self.leader_call(request, timeout, |mut c, r| async move { c.rebalance(r).await }).await?.into())
    }

    /// Checks an endpoint now from every region. The call may take up to
    /// [`CHECK_EXTRA_TIME`] longer than `--call-timeout`: the coordinator
    /// waits for the probes.
    pub async fn check_endpoint(&self, id_or_name: &str) -> Result<CheckReport, Error> {
        let request = pb::CheckEndpointRequest { endpoint: Some(endpoint_ref(id_or_name)) };
        let timeout = self.context.call_timeout + CHECK_EXTRA_TIME;
        Ok(self
            .leader_call(request, timeout, |mut c, r| async move { c.check_endpoint(r).await })
            .await?
            .into())
    }

    /// The cluster as the answering node sees it.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, Error> {
        let reply = self
            .call(pb::ClusterStatusRequest {}, |mut c, r| async move { c.cluster_status(r).await })
            .await?;
        Ok(reply.into())
    }

    /// Adds a node (learner first, then voter unless `learner_only`).
    pub async fn add_node(
        &self,
        id: u64,
        api_addr: &str,
        raft_addr: &str,
        learner_only: bool,
    ) -> Result<ClusterStatus, Error> {
        let request = pb::AddNodeRequest {
            id,
            api_addr: api_addr.to_string(),
            raft_addr: raft_addr.to_string(),
            learner_only,
        };
        Ok(self.call(request, |mut c, r| async move { c.add_node(r).await }).await?.into())
    }

    /// Removes a node.
    pub async fn remove_node(&self, id: u64) -> Result<ClusterStatus, Error> {
        let request = pb::RemoveNodeRequest { id };
        Ok(self.call(request, |mut c, r| async move { c.remove_node(r).await }).await?.into())
    }

    /// Hands leadership to `to` (`None`: the cluster chooses).
    pub async fn transfer_leader(&self, to: Option<u64>) -> Result<ClusterStatus, Error> {
        let request = pb::TransferLeaderRequest { to: to.unwrap_or(0) };
        Ok(self.call(request, |mut c, r| async move { c.transfer_leader(r).await }).await?.into())
    }

    /// Builds a snapshot now; returns the log index it covers.
    pub async fn trigger_snapshot(&self) -> Result<u64, Error> {
        let reply = self
            .call(pb::TriggerSnapshotRequest {}, |mut c, r| async move { c.trigger_snapshot(r).await })
            .await?;
        Ok(reply.last_included_index)
    }

    /// One call with a deadline per attempt, retried with backoff while the
    /// coordinator is unavailable or slow. The request, idempotency key
    /// included, is the same on every attempt, so a change whose reply was
    /// lost is answered from the coordinator's memory, not applied again.
    async fn call<Req, Resp, Fut>(
        &self,
        request: Req,
        send: impl Fn(Client, Request<Req>) -> Fut,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        self.attempts(request, send).await.map_err(|failure| failure.error)
    }

    /// A removal. The coordinator resolves the object before it looks the
    /// idempotency key up, so when an attempt's reply was lost the retry
    /// finds nothing: "not found" after a transient failure means the
    /// earlier attempt removed it.
    async fn call_removal<Req, Fut>(
        &self,
        reference: &str,
        request: Req,
        send: impl Fn(Client, Request<Req>) -> Fut,
    ) -> Result<Removed, Error>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<pb::RemoveReply>, Status>>,
    {
        match self.attempts(request, send).await {
            Ok(reply) => Ok(Removed { id: reply.id, name: reply.name }),
            Err(Failure { code: Some(Code::NotFound), after_transient: true, .. }) => {
                Ok(Removed::from_reference(reference))
            }
            Err(failure) => Err(failure.error),
        }
    }

    /// A call only the leader can answer. A follower refuses it naming the
    /// leader's address; the call is then sent once more, to the leader,
    /// over a new connection with the same TLS files and token.
    async fn leader_call<Req, Resp, Fut>(
        &self,
        request: Req,
        timeout: Duration,
        send: impl Fn(Client, Request<Req>) -> Fut,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        match self.attempts_within(request.clone(), timeout, &send).await {
            Ok(reply) => Ok(reply),
            Err(Failure { leader: Some(addr), error, .. }) => match self.at_leader(&addr) {
                Some(leader) => leader.attempts_within(request, timeout, &send).await.map_err(|f| f.error),
                None => Err(error),
            },
            Err(failure) => Err(failure.error),
        }
    }

    /// A client for the leader at `addr` (`HOST:PORT`) with this client's
    /// scheme, TLS files, token and timeouts; `None` when that is where
    /// this client already goes, or the address is unusable.
    fn at_leader(&self, addr: &str) -> Option<AdminClient> {
        let scheme = self.options.server.split_once("://").map_or("http", |(scheme, _)| scheme);
        let server = format!("{scheme}://{addr}");
        if server.trim_end_matches('/') == self.options.server.trim_end_matches('/') {
            return None;
        }
        AdminClient::connect(&ConnectOptions { server, ..self.options.clone() }).ok()
    }

    async fn attempts<Req, Resp, Fut>(
        &self,
        request: Req,
        send: impl Fn(Client, Request<Req>) -> Fut,
    ) -> Result<Resp, Failure>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        self.attempts_within(request, self.context.call_timeout, send).await
    }

    async fn attempts_within<Req, Resp, Fut>(
        &self,
        request: Req,
        timeout: Duration,
        send: impl Fn(Client, Request<Req>) -> Fut,
    ) -> Result<Resp, Failure>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let context = CallContext { call_timeout: timeout, ..self.context.clone() };
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        let mut after_transient = false;
        loop {
            let mut message = Request::new(request.clone());
            message.set_timeout(timeout);
            let answer = tokio::time::timeout(timeout, send(self.client.clone(), message)).await;
            let error = match answer {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if is_transient(&status) => context.error_from_status(&status),
                Ok(Err(status)) => {
                    let error = context.error_from_status(&status);
                    let leader = (status.code() == Code::FailedPrecondition)
                        .then(|| status.metadata().get(LEADER_API_METADATA))
                        .flatten()
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    return Err(Failure { error, code: Some(status.code()), after_transient, leader });
                }
                Err(_elapsed) => context.timed_out(),
            };
            if attempt >= self.retry.attempts.max(1) {
                return Err(Failure { error, code: None, after_transient, leader: None });
            }
            after_transient = true;
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }
}

/// A call that failed for good.
struct Failure {
    error: Error,
    /// The status code of the final answer, when the coordinator answered.
    code: Option<Code>,
    /// Whether an earlier attempt failed transiently (so its change may
    /// have been applied).
    after_transient: bool,
    /// The leader's API address, when a follower refused the call for not
    /// leading.
    leader: Option<String>,
}

/// Failures worth another attempt: no coordinator (yet), or no answer in
/// time. Everything else is an answer and is final.
fn is_transient(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
}

fn mutation(key: &IdempotencyKey) -> pb::Mutation {
    pb::Mutation { idempotency_key: key.as_str().to_string() }
}

fn endpoint_ref(id_or_name: &str) -> pb::EndpointRef {
    pb::EndpointRef { id_or_name: id_or_name.to_string() }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}
