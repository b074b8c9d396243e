//! Test support for driving the real `vantagectl` binary:
//!
//! - [`FakeAdmin`]: a **test double** of the coordinator's AdminService — a
//!   tonic server on `127.0.0.1:0` over in-memory maps. It keeps the
//!   contract's observable rules that vantagectl relies on (bearer token,
//!   idempotency keys answered from memory, unique names, known regions,
//!   consistent-read flag) and counts what it was asked, so tests can say
//!   "the second apply sent no mutation". It is not the coordinator: no
//!   Raft, no validation beyond what these tests need.
//! - [`vantagectl`]: runs the binary with a clean environment.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use vantage_proto::pb;
use vantage_proto::pb::admin_service_server::{AdminService, AdminServiceServer};

/// The token the fake accepts.
pub const TOKEN: &str = "test-token";

/// A running fake AdminService; stops when dropped.
pub struct FakeAdmin {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    shutdown: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Everything the fake holds and has counted.
#[derive(Debug, Default)]
pub struct FakeState {
    next_id: u64,
    /// Region name → created at.
    pub regions: BTreeMap<String, i64>,
    /// Endpoints by id.
    pub endpoints: BTreeMap<u64, pb::Endpoint>,
    /// Webhooks by id, with their secrets.
    pub webhooks: BTreeMap<u64, (pb::Webhook, String)>,
    /// Maintenance windows by id.
    pub maintenance: BTreeMap<u64, pb::Maintenance>,
    /// Probes by id, with their current token (the coordinator keeps only
    /// its hash; the fake keeps it so tests can compare).
    pub probes: BTreeMap<u64, (pb::ProbeInfo, String)>,
    tokens_issued: u64,
    remembered: HashMap<String, (&'static str, Reply)>,
    /// Mutations applied (replays not counted).
    pub mutations_applied: usize,
    /// Mutations answered from memory.
    pub replays: usize,
    /// Every (rpc, idempotency key) received, in order.
    pub keys_seen: Vec<(&'static str, String)>,
    /// Reads with `consistent` set / not set.
    pub consistent_reads: usize,
    /// Reads without `consistent`.
    pub local_reads: usize,
    /// Apply the next N mutations but answer Unavailable, as if the reply
    /// were lost.
    pub lose_replies: usize,
    /// Answer every call with Unavailable and this message (no leader).
    pub unavailable: Option<String>,
    /// The leader's assignment rows (ListShards, ShowShard); PinShard moves
    /// the pinned row to the pinned probe, as the leader would.
    pub shards: Vec<pb::ShardRow>,
    /// Endpoint regions nobody checks.
    pub uncovered: Vec<pb::UncoveredShard>,
    /// Pins: (endpoint id, region) → probe id.
    pub pins: BTreeMap<(u64, String), u64>,
    /// The answer to Rebalance (its `dry_run` is set from the request).
    pub rebalance: Option<pb::RebalanceReply>,
    /// The answer to CheckEndpoint.
    pub check: Option<pb::CheckEndpointReply>,
    /// Act as a follower: the leader-only shard calls answer
    /// FAILED_PRECONDITION with `vantage-leader-api: <this address>`.
    pub follower_of: Option<String>,
    /// Leader-only shard calls received (ListShards, ShowShard, Rebalance,
    /// CheckEndpoint), by rpc name.
    pub leader_calls: Vec<&'static str>,
    /// Incidents with their evidence, in the order ListIncidents answers
    /// them (open first, newest first, as the coordinator does): the fake
    /// filters but does not sort.
    pub incidents: Vec<pb::Incident>,
    /// Every ListIncidents request received.
    pub incident_requests: Vec<pb::ListIncidentsRequest>,
    /// EndpointStatus rows, by endpoint id.
    pub statuses: Vec<pb::EndpointAgreement>,
    /// Deliveries in the order ListDeliveries answers them.
    pub deliveries: Vec<pb::Delivery>,
    /// Every ListDeliveries request received.
    pub delivery_requests: Vec<pb::ListDeliveriesRequest>,
    /// EndpointHistory answers, by endpoint id (the fake answers the same
    /// view whatever the window; the window is checked as the coordinator
    /// does).
    pub histories: BTreeMap<u64, pb::EndpointHistoryReply>,
    /// Every EndpointHistory request received.
    pub history_requests: Vec<pb::EndpointHistoryRequest>,
}

#[derive(Debug, Clone)]
// Short-lived replies of a fake server: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Reply {
    Endpoint(pb::EndpointReply),
    Removed(pb::RemoveReply),
    Region(pb::Region),
    Webhook(pb::Webhook),
    Maintenance(pb::Maintenance),
    ProbeToken(pb::CreateProbeTokenReply),
    Probe(pb::ProbeInfo),
    Pinned(pb::PinShardReply),
    Unpinned(pb::UnpinShardReply),
}

impl FakeAdmin {
    /// Starts the fake on a free loopback port, plaintext.
    pub fn start() -> FakeAdmin {
        FakeAdmin::serve(None)
    }

    /// Starts the fake with TLS, presenting this certificate (chain) and
    /// key (PEM); ALPN h2 as tonic offers it.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> FakeAdmin {
        FakeAdmin::serve(Some(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem))))
    }

    fn serve(tls: Option<ServerTlsConfig>) -> FakeAdmin {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let service = AdminServiceServer::with_interceptor(Service { state: state.clone() }, check_token);
        let (shutdown, stopped) = oneshot::channel::<()>();
        runtime.spawn(async move {
            let incoming = TcpIncoming::from(listener);
            let mut builder = Server::builder();
            if let Some(tls) = tls {
                builder = builder.tls_config(tls).unwrap();
            }
            let _ = builder
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeAdmin { addr, state, shutdown: Some(shutdown), runtime: Some(runtime) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn tls_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The state, to inspect or to arrange.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A throw-away CA and a leaf it signed for `127.0.0.1` and `localhost`,
/// all PEM.
pub struct TestCa {
    /// The CA certificate.
    pub ca_pem: String,
    /// The leaf certificate.
    pub leaf_pem: String,
    /// The leaf's private key.
    pub leaf_key_pem: String,
}

impl TestCa {
    /// Generates fresh keys and certificates.
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let leaf_pem = leaf_params.signed_by(&leaf_key, &issuer).unwrap().pem();
        TestCa { ca_pem, leaf_pem, leaf_key_pem: leaf_key.serialize_pem() }
    }
}

/// Runs `vantagectl ARGS` against `server` with the fake's token in
/// `VANTAGE_TOKEN` and no other `VANTAGE_*` variable, plus `env`.
pub fn vantagectl(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vantagectl"));
    for var in ["VANTAGE_SERVER", "VANTAGE_TOKEN", "VANTAGE_TOKEN_FILE"] {
        command.env_remove(var);
    }
    command.env("VANTAGE_TOKEN", TOKEN).arg("--server").arg(server).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[allow(clippy::result_large_err)]
fn check_token(request: Request<()>) -> Result<Request<()>, Status> {
    match request.metadata().get("authorization").and_then(|v| v.to_str().ok()) {
        Some(value) if value == format!("Bearer {TOKEN}") => Ok(request),
        Some(_) => Err(Status::unauthenticated("invalid admin token")),
        None => Err(Status::unauthenticated("missing bearer token")),
    }
}

struct Service {
    state: Arc<Mutex<FakeState>>,
}

type Answer<T> = Result<Response<T>, Status>;

impl Service {
    fn lock(&self) -> Result<MutexGuard<'_, FakeState>, Status> {
        let state = self.state.lock().unwrap();
        if let Some(message) = &state.unavailable {
            return Err(Status::unavailable(message.clone()));
        }
        Ok(state)
    }

    /// The state for a call only the leader answers: refused with the
    /// leader's address when the fake plays a follower.
    #[allow(clippy::result_large_err)]
    fn leader(&self, rpc: &'static str) -> Result<MutexGuard<'_, FakeState>, Status> {
        let mut state = self.lock()?;
        state.leader_calls.push(rpc);
        if let Some(leader) = &state.follower_of {
            let mut status = Status::failed_precondition(format!(
                "this node is not the leader; the leader is node 1 at {leader}"
            ));
            status.metadata_mut().insert("vantage-leader-api", leader.parse().unwrap());
            return Err(status);
        }
        Ok(state)
    }

    fn read(&self, consistent: bool) -> Result<MutexGuard<'_, FakeState>, Status> {
        let mut state = self.lock()?;
        if consistent {
            state.consistent_reads += 1;
        } else {
            state.local_reads += 1;
        }
        Ok(state)
    }

    /// The idempotency rules: a known key replays its first reply (or is
    /// refused for another rpc); a new key applies and is remembered.
    #[allow(clippy::result_large_err)]
    fn mutate<T>(
        &self,
        rpc: &'static str,
        mutation: Option<pb::Mutation>,
        wrap: fn(T) -> Reply,
        unwrap: fn(Reply) -> Option<T>,
        apply: impl FnOnce(&mut FakeState) -> Result<T, Status>,
    ) -> Answer<T>
    where
        T: Clone,
    {
        let key = mutation
            .map(|m| m.idempotency_key)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Status::invalid_argument("invalid idempotency key: empty"))?;
        let mut state = self.lock()?;
        state.keys_seen.push((rpc, key.clone()));
        if let Some((first_rpc, reply)) = state.remembered.get(&key).cloned() {
            if first_rpc != rpc {
                return Err(Status::invalid_argument(format!(
                    "idempotency key {key:?} was already used for a different command"
                )));
            }
            state.replays += 1;
            // Like the coordinator, a replay reads the object back and
            // fails when it has been removed since.
            if let Some(gone) = state.vanished(&reply) {
                return Err(Status::aborted(format!("{gone} was removed by another change; list again")));
            }
            return unwrap(reply).map(Response::new).ok_or_else(|| Status::internal("fake: reply type"));
        }
        let reply = apply(&mut state)?;
        state.mutations_applied += 1;
        state.remembered.insert(key, (rpc, wrap(reply.clone())));
        if state.lose_replies > 0 {
            state.lose_replies -= 1;
            return Err(Status::unavailable("fake: applied, but the reply was lost"));
        }
        Ok(Response::new(reply))
    }
}

impl FakeState {
    /// The object a remembered reply names, when it no longer exists.
    fn vanished(&self, reply: &Reply) -> Option<String> {
        match reply {
            Reply::Endpoint(r) => {
                let id = r.endpoint.as_ref().map_or(0, |e| e.id);
                (!self.endpoints.contains_key(&id)).then(|| format!("endpoint {id}"))
            }
            Reply::Region(r) => (!self.regions.contains_key(&r.name)).then(|| format!("region {}", r.name)),
            Reply::Webhook(r) => (!self.webhooks.contains_key(&r.id)).then(|| format!("webhook {}", r.id)),
            Reply::Maintenance(r) => {
                (!self.maintenance.contains_key(&r.id)).then(|| format!("maintenance window {}", r.id))
            }
            Reply::Probe(r) => (!self.probes.contains_key(&r.id)).then(|| format!("probe {}", r.id)),
            Reply::ProbeToken(_) | Reply::Removed(_) | Reply::Pinned(_) | Reply::Unpinned(_) => None,
        }
    }

    /// A probe by id or name, resolved as the coordinator does.
    #[allow(clippy::result_large_err)]
    fn probe_id(&self, reference: &str) -> Result<u64, Status> {
        let text = reference.trim();
        let by_id = text.parse::<u64>().ok().filter(|id| self.probes.contains_key(id));
        by_id.or_else(|| self.probes.values().find(|(p, _)| p.name == text).map(|(p, _)| p.id)).ok_or_else(
            || Status::not_found(format!("no probe named {text:?} (list them with: vantagectl probe list)")),
        )
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    #[allow(clippy::result_large_err)]
    fn endpoint_id(&self, reference: Option<pb::EndpointRef>) -> Result<u64, Status> {
        let reference = reference.map(|r| r.id_or_name).unwrap_or_default();
        let found = match reference.parse::<u64>() {
            Ok(id) => self.endpoints.contains_key(&id).then_some(id),
            Err(_) => {
                self.endpoints.values().find(|e| e.spec.as_ref().unwrap().name == reference).map(|e| e.id)
            }
        };
        found.ok_or_else(|| Status::not_found(format!("no endpoint is named or numbered {reference:?}")))
    }

    /// A webhook by id or name, resolved as the coordinator does.
    #[allow(clippy::result_large_err)]
    fn webhook_id(&self, reference: &str) -> Result<u64, Status> {
        let text = reference.trim();
        let by_id = text.parse::<u64>().ok().filter(|id| self.webhooks.contains_key(id));
        by_id
            .or_else(|| {
                self.webhooks.values().find(|(w, _)| w.spec.as_ref().unwrap().name == text).map(|(w, _)| w.id)
            })
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no webhook named {text:?} (list them with: vantagectl webhook list)"
                ))
            })
    }

    #[allow(clippy::result_large_err)]
    fn check_endpoint(&self, spec: &pb::EndpointSpec, own: Option<u64>) -> Result<(), Status> {
        if let Some(other) = self.endpoints.values().find(|e| e.spec.as_ref().unwrap().name == spec.name) {
            if Some(other.id) != own {
                return Err(Status::already_exists(format!("endpoint {:?} already exists", spec.name)));
            }
        }
        if let Some(region) = spec.regions.iter().find(|r| !self.regions.contains_key(*r)) {
            return Err(Status::failed_precondition(format!(
                "unknown region {region:?} (add it first: vantagectl region add {region})"
            )));
        }
        Ok(())
    }
}

fn kind_of(url: &str) -> String {
    url.split("://").next().unwrap_or_default().to_string()
}

#[tonic::async_trait]
impl AdminService for Service {
    async fn add_endpoint(&self, request: Request<pb::AddEndpointRequest>) -> Answer<pb::EndpointReply> {
        let request = request.into_inner();
        let spec = request.spec.unwrap_or_default();
        let unwrap = |r| if let Reply::Endpoint(r) = r { Some(r) } else { None };
        self.mutate("AddEndpoint", request.mutation, Reply::Endpoint, unwrap, |state| {
            state.check_endpoint(&spec, None)?;
            let id = state.next_id();
            let endpoint = pb::Endpoint {
                id,
                kind: kind_of(&spec.url),
                spec: Some(spec),
                created_at_unix_ms: 1_000,
                updated_at_unix_ms: 1_000,
            };
            state.endpoints.insert(id, endpoint.clone());
            Ok(pb::EndpointReply { endpoint: Some(endpoint), changed: true })
        })
    }

    async fn update_endpoint(
        &self,
        request: Request<pb::UpdateEndpointRequest>,
    ) -> Answer<pb::EndpointReply> {
        let request = request.into_inner();
        let spec = request.spec.unwrap_or_default();
        let unwrap = |r| if let Reply::Endpoint(r) = r { Some(r) } else { None };
        self.mutate("UpdateEndpoint", request.mutation, Reply::Endpoint, unwrap, |state| {
            let id = state.endpoint_id(request.endpoint)?;
            state.check_endpoint(&spec, Some(id))?;
            let endpoint = state.endpoints.get_mut(&id).unwrap();
            let changed = endpoint.spec.as_ref() != Some(&spec);
            endpoint.kind = kind_of(&spec.url);
            endpoint.spec = Some(spec);
            Ok(pb::EndpointReply { endpoint: Some(endpoint.clone()), changed })
        })
    }

    async fn set_endpoint_paused(
        &self,
        request: Request<pb::SetEndpointPausedRequest>,
    ) -> Answer<pb::EndpointReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Endpoint(r) = r { Some(r) } else { None };
        self.mutate("SetEndpointPaused", request.mutation, Reply::Endpoint, unwrap, |state| {
            let id = state.endpoint_id(request.endpoint)?;
            let endpoint = state.endpoints.get_mut(&id).unwrap();
            let spec = endpoint.spec.as_mut().unwrap();
            let changed = spec.paused != request.paused;
            spec.paused = request.paused;
            Ok(pb::EndpointReply { endpoint: Some(endpoint.clone()), changed })
        })
    }

    async fn remove_endpoint(&self, request: Request<pb::RemoveEndpointRequest>) -> Answer<pb::RemoveReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Removed(r) = r { Some(r) } else { None };
        // Like the coordinator: the name is resolved before the key is
        // looked up, so a retry after a lost reply finds nothing.
        let id = self.lock()?.endpoint_id(request.endpoint)?;
        self.mutate("RemoveEndpoint", request.mutation, Reply::Removed, unwrap, |state| {
            let endpoint = state
                .endpoints
                .remove(&id)
                .ok_or_else(|| Status::not_found(format!("no endpoint has id {id}")))?;
            for window in state.maintenance.values_mut() {
                window.spec.as_mut().unwrap().endpoints.retain(|e| *e != id);
            }
            Ok(pb::RemoveReply { id, name: endpoint.spec.unwrap().name })
        })
    }

    async fn get_endpoint(&self, request: Request<pb::GetEndpointRequest>) -> Answer<pb::Endpoint> {
        let request = request.into_inner();
        let state = self.read(request.consistent)?;
        let id = state.endpoint_id(request.endpoint)?;
        Ok(Response::new(state.endpoints[&id].clone()))
    }

    async fn list_endpoints(&self, request: Request<pb::ListRequest>) -> Answer<pb::ListEndpointsReply> {
        let state = self.read(request.into_inner().consistent)?;
        Ok(Response::new(pb::ListEndpointsReply { endpoints: state.endpoints.values().cloned().collect() }))
    }

    async fn add_region(&self, request: Request<pb::AddRegionRequest>) -> Answer<pb::Region> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Region(r) = r { Some(r) } else { None };
        self.mutate("AddRegion", request.mutation, Reply::Region, unwrap, |state| {
            if state.regions.contains_key(&request.name) {
                return Err(Status::already_exists(format!("region {:?} already exists", request.name)));
            }
            state.regions.insert(request.name.clone(), 1_000);
            Ok(pb::Region { name: request.name, created_at_unix_ms: 1_000 })
        })
    }

    async fn remove_region(&self, request: Request<pb::RemoveRegionRequest>) -> Answer<pb::RemoveReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Removed(r) = r { Some(r) } else { None };
        self.mutate("RemoveRegion", request.mutation, Reply::Removed, unwrap, |state| {
            let users =
                state.endpoints.values().filter(|e| e.spec.as_ref().unwrap().regions.contains(&request.name));
            if users.count() > 0 {
                return Err(Status::failed_precondition(format!("region {:?} is still used", request.name)));
            }
            state
                .regions
                .remove(&request.name)
                .ok_or_else(|| Status::not_found(format!("no region {:?}", request.name)))?;
            Ok(pb::RemoveReply { id: 0, name: request.name })
        })
    }

    async fn list_regions(&self, request: Request<pb::ListRequest>) -> Answer<pb::ListRegionsReply> {
        let state = self.read(request.into_inner().consistent)?;
        let regions = state
            .regions
            .iter()
            .map(|(name, at)| pb::Region { name: name.clone(), created_at_unix_ms: *at })
            .collect();
        Ok(Response::new(pb::ListRegionsReply { regions }))
    }

    async fn add_webhook(&self, request: Request<pb::AddWebhookRequest>) -> Answer<pb::Webhook> {
        let request = request.into_inner();
        let mut spec = request.spec.unwrap_or_default();
        let unwrap = |r| if let Reply::Webhook(r) = r { Some(r) } else { None };
        self.mutate("AddWebhook", request.mutation, Reply::Webhook, unwrap, |state| {
            if state.webhooks.values().any(|(w, _)| w.spec.as_ref().unwrap().name == spec.name) {
                return Err(Status::already_exists(format!("webhook {:?} already exists", spec.name)));
            }
            let mut secret = std::mem::take(&mut spec.secret);
            // Like the coordinator: no secret given, one is generated and
            // shown in this reply only.
            let generated = if secret.is_empty() {
                secret = GENERATED_SECRET.to_string();
                secret.clone()
            } else {
                String::new()
            };
            let id = state.next_id();
            let webhook = pb::Webhook {
                id,
                spec: Some(spec),
                secret_set: !secret.is_empty(),
                created_at_unix_ms: 1_000,
                generated_secret: String::new(),
            };
            state.webhooks.insert(id, (webhook.clone(), secret));
            Ok(pb::Webhook { generated_secret: generated, ..webhook })
        })
    }

    async fn update_webhook(&self, request: Request<pb::UpdateWebhookRequest>) -> Answer<pb::Webhook> {
        let request = request.into_inner();
        let mut spec = request.spec.unwrap_or_default();
        let unwrap = |r| if let Reply::Webhook(r) = r { Some(r) } else { None };
        // Like the coordinator: a known key is answered before the webhook
        // is resolved, so a retry finds it even if this call renamed it.
        self.mutate("UpdateWebhook", request.mutation, Reply::Webhook, unwrap, |state| {
            let id = state.webhook_id(&request.id_or_name)?;
            if state.webhooks.values().any(|(w, _)| w.id != id && w.spec.as_ref().unwrap().name == spec.name)
            {
                return Err(Status::already_exists(format!("webhook {:?} already exists", spec.name)));
            }
            // In place: same id and creation time; an empty secret keeps
            // the stored one.
            let (webhook, stored) = state.webhooks.get_mut(&id).unwrap();
            let secret = std::mem::take(&mut spec.secret);
            if !secret.is_empty() {
                *stored = secret;
            }
            webhook.spec = Some(spec);
            webhook.secret_set = !stored.is_empty();
            Ok(webhook.clone())
        })
    }

    async fn remove_webhook(&self, request: Request<pb::RemoveWebhookRequest>) -> Answer<pb::RemoveReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Removed(r) = r { Some(r) } else { None };
        self.mutate("RemoveWebhook", request.mutation, Reply::Removed, unwrap, |state| {
            let reference = request.id_or_name;
            let id = state
                .webhooks
                .values()
                .find(|(w, _)| w.id.to_string() == reference || w.spec.as_ref().unwrap().name == reference)
                .map(|(w, _)| w.id)
                .ok_or_else(|| Status::not_found(format!("no webhook {reference:?}")))?;
            let (webhook, _) = state.webhooks.remove(&id).unwrap();
            Ok(pb::RemoveReply { id, name: webhook.spec.unwrap().name })
        })
    }

    async fn list_webhooks(&self, request: Request<pb::ListRequest>) -> Answer<pb::ListWebhooksReply> {
        let state = self.read(request.into_inner().consistent)?;
        Ok(Response::new(pb::ListWebhooksReply {
            webhooks: state.webhooks.values().map(|(w, _)| w.clone()).collect(),
        }))
    }

    async fn add_maintenance(&self, request: Request<pb::AddMaintenanceRequest>) -> Answer<pb::Maintenance> {
        let request = request.into_inner();
        let spec = request.spec.unwrap_or_default();
        let unwrap = |r| if let Reply::Maintenance(r) = r { Some(r) } else { None };
        self.mutate("AddMaintenance", request.mutation, Reply::Maintenance, unwrap, |state| {
            if let Some(missing) = spec.endpoints.iter().find(|id| !state.endpoints.contains_key(id)) {
                return Err(Status::not_found(format!("no endpoint has id {missing}")));
            }
            let id = state.next_id();
            let window = pb::Maintenance { id, spec: Some(spec), created_at_unix_ms: 1_000 };
            state.maintenance.insert(id, window.clone());
            Ok(window)
        })
    }

    async fn remove_maintenance(
        &self,
        request: Request<pb::RemoveMaintenanceRequest>,
    ) -> Answer<pb::RemoveReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Removed(r) = r { Some(r) } else { None };
        self.mutate("RemoveMaintenance", request.mutation, Reply::Removed, unwrap, |state| {
            state
                .maintenance
                .remove(&request.id)
                .ok_or_else(|| Status::not_found(format!("no maintenance window has id {}", request.id)))?;
            Ok(pb::RemoveReply { id: request.id, name: String::new() })
        })
    }

    async fn list_maintenance(&self, request: Request<pb::ListRequest>) -> Answer<pb::ListMaintenanceReply> {
        let state = self.read(request.into_inner().consistent)?;
        Ok(Response::new(pb::ListMaintenanceReply { windows: state.maintenance.values().cloned().collect() }))
    }

    async fn create_probe_token(
        &self,
        request: Request<pb::CreateProbeTokenRequest>,
    ) -> Answer<pb::CreateProbeTokenReply> {
        let request = request.into_inner();
        // Like the coordinator: only the token's hash is kept, so a replay
        // cannot be answered with the token; it is refused.
        {
            let mut state = self.lock()?;
            let key = request.mutation.as_ref().map(|m| m.idempotency_key.clone()).unwrap_or_default();
            if state.remembered.contains_key(&key) {
                state.keys_seen.push(("CreateProbeToken", key));
                state.replays += 1;
                return Err(Status::failed_precondition(
                    "this request was already applied and its token was shown only in the first reply, which \
                     was lost; run `vantagectl probe token create` again to rotate the token",
                ));
            }
        }
        let unwrap = |r| if let Reply::ProbeToken(r) = r { Some(r) } else { None };
        self.mutate("CreateProbeToken", request.mutation, Reply::ProbeToken, unwrap, |state| {
            if !state.regions.contains_key(&request.region) {
                return Err(Status::invalid_argument(format!("unknown region {:?}", request.region)));
            }
            state.tokens_issued += 1;
            let token = format!("token-{:02}", state.tokens_issued);
            if let Some((probe, stored)) = state.probes.values_mut().find(|(p, _)| p.name == request.probe) {
                if probe.region != request.region {
                    return Err(Status::failed_precondition(format!(
                        "probe {:?} is registered in region {:?}",
                        probe.name, probe.region
                    )));
                }
                stored.clone_from(&token);
                return Ok(pb::CreateProbeTokenReply { probe_id: probe.id, token, rotated: true });
            }
            let id = state.next_id();
            let info = pb::ProbeInfo {
                id,
                name: request.probe,
                region: request.region,
                weight: if request.weight == 0 { 100 } else { request.weight },
                created_at_unix_ms: 1_000,
                ..Default::default()
            };
            state.probes.insert(id, (info, token.clone()));
            Ok(pb::CreateProbeTokenReply { probe_id: id, token, rotated: false })
        })
    }

    async fn revoke_probe(&self, request: Request<pb::RevokeProbeRequest>) -> Answer<pb::RemoveReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Removed(r) = r { Some(r) } else { None };
        self.mutate("RevokeProbe", request.mutation, Reply::Removed, unwrap, |state| {
            let id = state.probe_id(&request.id_or_name)?;
            let (probe, _) = state.probes.remove(&id).unwrap();
            Ok(pb::RemoveReply { id, name: probe.name })
        })
    }

    async fn drain_probe(&self, request: Request<pb::DrainProbeRequest>) -> Answer<pb::ProbeInfo> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Probe(r) = r { Some(r) } else { None };
        self.mutate("DrainProbe", request.mutation, Reply::Probe, unwrap, |state| {
            let id = state.probe_id(&request.id_or_name)?;
            let (probe, _) = state.probes.get_mut(&id).unwrap();
            probe.drained = request.drained;
            Ok(probe.clone())
        })
    }

    async fn list_probes(&self, request: Request<pb::ListRequest>) -> Answer<pb::ListProbesReply> {
        let state = self.read(request.into_inner().consistent)?;
        Ok(Response::new(pb::ListProbesReply {
            probes: state.probes.values().map(|(p, _)| p.clone()).collect(),
        }))
    }

    async fn list_shards(&self, request: Request<pb::ListShardsRequest>) -> Answer<pb::ListShardsReply> {
        let request = request.into_inner();
        let state = self.leader("ListShards")?;
        let probe = match request.probe.as_str() {
            "" => None,
            text => Some(state.probe_id(text)?),
        };
        let shards = state
            .shards
            .iter()
            .filter(|r| request.region.is_empty() || r.region == request.region)
            .filter(|r| probe.is_none_or(|p| p == r.probe_id))
            .cloned()
            .collect();
        let uncovered = state
            .uncovered
            .iter()
            .filter(|u| probe.is_none() && (request.region.is_empty() || u.region == request.region))
            .cloned()
            .collect();
        Ok(Response::new(pb::ListShardsReply {
            assignment_version: 7,
            shards,
            uncovered,
            uncovered_regions: Vec::new(),
        }))
    }

    async fn show_shard(&self, request: Request<pb::ShowShardRequest>) -> Answer<pb::ShowShardReply> {
        let request = request.into_inner();
        let state = self.leader("ShowShard")?;
        let id = state.endpoint_id(request.endpoint)?;
        let endpoint = &state.endpoints[&id];
        let mut regions: BTreeMap<String, pb::RegionShard> = BTreeMap::new();
        for row in state.shards.iter().filter(|r| r.endpoint_id == id) {
            let region = regions
                .entry(row.region.clone())
                .or_insert_with(|| pb::RegionShard { region: row.region.clone(), ..Default::default() });
            region.probes.push(pb::ShardProbe {
                probe_id: row.probe_id,
                probe: row.probe.clone(),
                pinned: row.pinned,
                connected: row.connected,
            });
        }
        for u in state.uncovered.iter().filter(|u| u.endpoint_id == id) {
            regions
                .entry(u.region.clone())
                .or_insert_with(|| pb::RegionShard { region: u.region.clone(), ..Default::default() });
        }
        for ((endpoint_id, region), probe_id) in &state.pins {
            if let (true, Some(shard)) = (*endpoint_id == id, regions.get_mut(region)) {
                shard.pinned_probe_id = *probe_id;
                shard.pinned_probe = state.probes[probe_id].0.name.clone();
            }
        }
        Ok(Response::new(pb::ShowShardReply {
            endpoint_id: id,
            endpoint: endpoint.spec.as_ref().unwrap().name.clone(),
            assignment_version: 7,
            paused: endpoint.spec.as_ref().unwrap().paused,
            regions: regions.into_values().collect(),
        }))
    }

    async fn pin_shard(&self, request: Request<pb::PinShardRequest>) -> Answer<pb::PinShardReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Pinned(r) = r { Some(r) } else { None };
        self.mutate("PinShard", request.mutation, Reply::Pinned, unwrap, |state| {
            let endpoint_id = state.endpoint_id(request.endpoint)?;
            let probe_id = state.probe_id(&request.probe)?;
            let probe = state.probes[&probe_id].0.clone();
            if probe.region != request.region {
                return Err(Status::invalid_argument(format!(
                    "probe {:?} is in region {:?}, not {:?}",
                    probe.name, probe.region, request.region
                )));
            }
            let changed =
                state.pins.insert((endpoint_id, request.region.clone()), probe_id) != Some(probe_id);
            for row in
                state.shards.iter_mut().filter(|r| r.endpoint_id == endpoint_id && r.region == request.region)
            {
                row.probe_id = probe_id;
                row.probe.clone_from(&probe.name);
                row.pinned = true;
            }
            let endpoint = state.endpoints[&endpoint_id].spec.as_ref().unwrap().name.clone();
            Ok(pb::PinShardReply {
                endpoint_id,
                endpoint,
                region: request.region,
                probe_id,
                probe: probe.name,
                changed,
            })
        })
    }

    async fn unpin_shard(&self, request: Request<pb::UnpinShardRequest>) -> Answer<pb::UnpinShardReply> {
        let request = request.into_inner();
        let unwrap = |r| if let Reply::Unpinned(r) = r { Some(r) } else { None };
        self.mutate("UnpinShard", request.mutation, Reply::Unpinned, unwrap, |state| {
            let endpoint_id = state.endpoint_id(request.endpoint)?;
            let removed: Vec<String> = state
                .pins
                .keys()
                .filter(|(e, r)| *e == endpoint_id && (request.region.is_empty() || *r == request.region))
                .map(|(_, r)| r.clone())
                .collect();
            for region in &removed {
                state.pins.remove(&(endpoint_id, region.clone()));
            }
            for row in state
                .shards
                .iter_mut()
                .filter(|r| r.endpoint_id == endpoint_id && removed.contains(&r.region))
            {
                row.pinned = false;
            }
            let endpoint = state.endpoints[&endpoint_id].spec.as_ref().unwrap().name.clone();
            Ok(pb::UnpinShardReply { endpoint_id, endpoint, regions: removed })
        })
    }

    async fn rebalance(&self, request: Request<pb::RebalanceRequest>) -> Answer<pb::RebalanceReply> {
        let dry_run = request.into_inner().dry_run;
        let state = self.leader("Rebalance")?;
        let mut reply = state.rebalance.clone().unwrap_or_default();
        reply.dry_run = dry_run;
        Ok(Response::new(reply))
    }

    async fn check_endpoint(
        &self,
        request: Request<pb::CheckEndpointRequest>,
    ) -> Answer<pb::CheckEndpointReply> {
        let request = request.into_inner();
        let state = self.leader("CheckEndpoint")?;
        let id = state.endpoint_id(request.endpoint)?;
        let mut reply =
            state.check.clone().ok_or_else(|| Status::internal("fake: no check reply arranged"))?;
        reply.endpoint_id = id;
        Ok(Response::new(reply))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Answer<pb::ListIncidentsReply> {
        let request = request.into_inner();
        let mut state = self.read(request.consistent)?;
        state.incident_requests.push(request.clone());
        let endpoint = match request.endpoint.as_str() {
            "" => None,
            text => Some(state.endpoint_id(Some(pb::EndpointRef { id_or_name: text.into() }))?),
        };
        let since = request.since_unix_ms;
        let matched: Vec<pb::Incident> = state
            .incidents
            .iter()
            .filter(|i| endpoint.is_none_or(|id| i.endpoint_id == id))
            .filter(|i| !request.open_only || i.resolved_at_unix_ms == 0)
            .filter(|i| i.resolved_at_unix_ms == 0 || i.resolved_at_unix_ms >= since)
            .map(|i| pb::Incident { opened_evidence: vec![], resolved_evidence: vec![], ..i.clone() })
            .collect();
        let limit = if request.limit == 0 { 100 } else { request.limit as usize };
        Ok(Response::new(pb::ListIncidentsReply {
            matched: matched.len() as u32,
            incidents: matched.into_iter().take(limit).collect(),
        }))
    }

    async fn get_incident(&self, request: Request<pb::GetIncidentRequest>) -> Answer<pb::Incident> {
        let request = request.into_inner();
        let state = self.read(request.consistent)?;
        let incident = state.incidents.iter().find(|i| i.id == request.id).cloned();
        incident.map(Response::new).ok_or_else(|| {
            Status::not_found(format!(
                "no incident has id {} (resolved incidents are kept for 90 days; list them with: vantagectl \
                 incident list)",
                request.id
            ))
        })
    }

    async fn endpoint_status(
        &self,
        request: Request<pb::EndpointStatusRequest>,
    ) -> Answer<pb::EndpointStatusReply> {
        let request = request.into_inner();
        let state = self.read(request.consistent)?;
        let endpoints = match request.endpoint.as_str() {
            "" => state.statuses.clone(),
            text => {
                let id = state.endpoint_id(Some(pb::EndpointRef { id_or_name: text.into() }))?;
                state.statuses.iter().filter(|s| s.endpoint_id == id).cloned().collect()
            }
        };
        Ok(Response::new(pb::EndpointStatusReply { endpoints }))
    }

    async fn endpoint_history(
        &self,
        request: Request<pb::EndpointHistoryRequest>,
    ) -> Answer<pb::EndpointHistoryReply> {
        let request = request.into_inner();
        let mut state = self.read(request.consistent)?;
        state.history_requests.push(request.clone());
        vantage_proto::history::request_window(&request.window)
            .map_err(|e| Status::invalid_argument(format!("window: {e}")))?;
        let id = state.endpoint_id(Some(pb::EndpointRef { id_or_name: request.endpoint.clone() }))?;
        let reply = state.histories.get(&id).cloned();
        Ok(Response::new(reply.ok_or_else(|| Status::internal("the fake has no history for it"))?))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Answer<pb::ListDeliveriesReply> {
        let request = request.into_inner();
        let mut state = self.read(request.consistent)?;
        state.delivery_requests.push(request);
        let matched: Vec<pb::Delivery> = state
            .deliveries
            .iter()
            .filter(|d| !request.pending_only || d.status == "pending")
            .cloned()
            .collect();
        let limit = if request.limit == 0 { 100 } else { request.limit as usize };
        Ok(Response::new(pb::ListDeliveriesReply {
            matched: matched.len() as u32,
            deliveries: matched.into_iter().take(limit).collect(),
        }))
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Answer<pb::ClusterStatusReply> {
        let _state = self.lock()?;
        Ok(Response::new(cluster()))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> Answer<pb::ClusterStatusReply> {
        let request = request.into_inner();
        let mut reply = cluster();
        reply.members.push(pb::ClusterMember {
            id: request.id,
            api_addr: request.api_addr,
            raft_addr: request.raft_addr,
            role: "learner".into(),
            reachable: true,
            last_applied: 0,
        });
        Ok(Response::new(reply))
    }

    async fn remove_node(&self, _request: Request<pb::RemoveNodeRequest>) -> Answer<pb::ClusterStatusReply> {
        Ok(Response::new(cluster()))
    }

    async fn transfer_leader(
        &self,
        _request: Request<pb::TransferLeaderRequest>,
    ) -> Answer<pb::ClusterStatusReply> {
        Ok(Response::new(cluster()))
    }

    async fn trigger_snapshot(
        &self,
        _request: Request<pb::TriggerSnapshotRequest>,
    ) -> Answer<pb::TriggerSnapshotReply> {
        Ok(Response::new(pb::TriggerSnapshotReply { last_included_index: 42 }))
    }

    /// A webhook whose URL contains `broken` answers 500; others 204.
    async fn test_webhook(&self, request: Request<pb::TestWebhookRequest>) -> Answer<pb::TestWebhookReply> {
        let request = request.into_inner();
        let state = self.read(false)?;
        let id = state.webhook_id(&request.id_or_name)?;
        let spec = state.webhooks[&id].0.spec.clone().unwrap_or_default();
        let broken = spec.url.contains("broken");
        Ok(Response::new(pb::TestWebhookReply {
            webhook_id: id,
            name: spec.name,
            url: spec.url,
            delivered: !broken,
            status_code: if broken { 500 } else { 204 },
            latency_us: 12_345,
            error: if broken {
                "the receiver answered 500 Internal Server Error".into()
            } else {
                String::new()
            },
            message_id: "msg_vantage_test_00000000000000ff".into(),
            node_id: 1,
        }))
    }
}

/// The secret the fake "generates" for a webhook added without one.
pub const GENERATED_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A fixed three-node status: 1 leads, 3 is unreachable.
fn cluster() -> pb::ClusterStatusReply {
    let member = |id: u64, role: &str, reachable: bool| pb::ClusterMember {
        id,
        api_addr: format!("127.0.0.1:74{id}0"),
        raft_addr: format!("127.0.0.1:74{id}1"),
        role: role.into(),
        reachable,
        last_applied: if reachable { 17 } else { 9 },
    };
    pb::ClusterStatusReply {
        leader_id: Some(1),
        term: 4,
        members: vec![member(1, "leader", true), member(2, "follower", true), member(3, "follower", false)],
        node_id: 1,
    }
}
