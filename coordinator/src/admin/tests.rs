//! The admin API over an in-memory cluster double: request mapping,
//! idempotency, errors and their gRPC codes. The end-to-end tests against a
//! real cluster live in `coordinator/tests/`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tonic::{Code, Request as GrpcRequest};
use vantage_core::clock::FixedWallClock;
use vantage_proto::pb;
use vantage_proto::pb::admin_service_server::AdminService;

use super::*;
use crate::state::ProbeId;

// Generated webhook secrets and `TestWebhook`, in their own file.
mod webhooks;

/// A single in-memory "cluster" applying commands directly: a test double
/// for the node, so these tests exercise only the API layer.
#[derive(Default)]
struct MemoryCluster {
    state: Mutex<MeshState>,
    fail_writes: Mutex<Option<ClusterError>>,
    /// Every `endpoint_history` call: name, window, now.
    history_calls: Mutex<Vec<(String, Window, UnixMillis)>>,
    /// Answer `endpoint_history` with this error.
    fail_history: Mutex<Option<HistoryError>>,
}

impl Cluster for MemoryCluster {
    fn read<R>(&self, f: impl FnOnce(&MeshState) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    async fn write(&self, request: Request) -> Result<CommandResponse, ClusterError> {
        if let Some(e) = self.fail_writes.lock().unwrap().clone() {
            return Err(e);
        }
        Ok(self.state.lock().unwrap().apply(&request))
    }

    async fn linearize(&self) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        Ok(ClusterStatus {
            node_id: 1,
            leader_id: Some(1),
            term: 3,
            members: vec![MemberStatus {
                id: 1,
                api_addr: "127.0.0.1:7400".into(),
                raft_addr: "127.0.0.1:7401".into(),
                role: Role::Leader,
                reachable: true,
                last_applied: 9,
            }],
        })
    }

    async fn add_node(&self, id: NodeId, _: Node, _: bool) -> Result<(), ClusterError> {
        Err(ClusterError::NodeIdRetired { node_id: id })
    }

    async fn remove_node(&self, _: NodeId) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn transfer_leader(&self, _: Option<NodeId>) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn snapshot(&self) -> Result<u64, ClusterError> {
        Ok(9)
    }

    /// As the node does, from the state's endpoints, incidents and
    /// maintenance windows; no rollups (they are the storage's).
    fn endpoint_history(
        &self,
        name: &str,
        window: Window,
        now: UnixMillis,
    ) -> Result<EndpointHistory, HistoryError> {
        self.history_calls.lock().unwrap().push((name.to_string(), window, now));
        if let Some(error) = self.fail_history.lock().unwrap().clone() {
            return Err(error);
        }
        let state = self.state.lock().unwrap();
        let endpoint =
            state.endpoint_by_name(name).ok_or_else(|| HistoryError::UnknownEndpoint(name.to_string()))?;
        let inputs = vantage_core::history::HistoryInputs {
            endpoint: endpoint.spec.name.clone(),
            monitored_since: endpoint.created_at,
            incidents: state
                .incidents()
                .values()
                .filter(|i| i.endpoint == endpoint.id)
                .map(|i| vantage_core::history::IncidentSpan {
                    id: i.id.0,
                    kind: i.kind.as_str().to_string(),
                    opened_at: i.opened_at,
                    resolved_at: i.resolved_at,
                })
                .collect(),
            ..Default::default()
        };
        Ok(inputs.build(window, now))
    }
}

fn api() -> (AdminApi<MemoryCluster>, Arc<MemoryCluster>) {
    let cluster = Arc::new(MemoryCluster::default());
    let clock = Arc::new(FixedWallClock(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
    let auth = crate::auth::AdminAuth::new(crate::auth::token_hash("secret"));
    (AdminApi::new(cluster.clone(), Arc::new(auth), clock), cluster)
}

fn req<T>(message: T) -> GrpcRequest<T> {
    let mut r = GrpcRequest::new(message);
    r.metadata_mut().insert("authorization", "Bearer secret".parse().unwrap());
    r
}

fn mutation(key: &str) -> Option<pb::Mutation> {
    Some(pb::Mutation { idempotency_key: key.to_string() })
}

fn endpoint(name: &str, url: &str) -> pb::EndpointSpec {
    pb::EndpointSpec {
        name: name.into(),
        url: url.into(),
        interval_ms: 30_000,
        timeout_ms: 5_000,
        ..Default::default()
    }
}

fn add(name: &str, key: &str) -> pb::AddEndpointRequest {
    pb::AddEndpointRequest {
        mutation: mutation(key),
        spec: Some(endpoint(name, "https://example.com/health")),
    }
}

fn by(name: &str) -> Option<pb::EndpointRef> {
    Some(pb::EndpointRef { id_or_name: name.into() })
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let (api, _) = api();
    let status = api.list_endpoints(GrpcRequest::new(pb::ListRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "missing admin token: send the header \"authorization: Bearer <token>\"");
    let mut wrong = GrpcRequest::new(pb::ListRequest::default());
    wrong.metadata_mut().insert("authorization", "Bearer nope".parse().unwrap());
    let status = api.list_endpoints(wrong).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "invalid admin token"));
}

#[tokio::test]
async fn admin_tokens_added_at_run_time_are_accepted() {
    let (api, cluster) = api();
    let spec = crate::state::AdminTokenSpec {
        name: "ci".into(),
        token_hash: crate::auth::token_hash("ci-token-0123456789"),
    };
    let request = Request {
        idempotency_key: IdempotencyKey("t1".into()),
        issued_at: crate::state::UnixMillis(1),
        command: Command::AddAdminToken(spec),
    };
    assert!(cluster.write(request).await.unwrap().into_result().is_ok());
    let mut r = GrpcRequest::new(pb::ListRequest::default());
    r.metadata_mut().insert("authorization", "Bearer ci-token-0123456789".parse().unwrap());
    assert!(api.list_endpoints(r).await.is_ok());
}

#[tokio::test]
async fn endpoints_round_trip_through_every_call() {
    let (api, _) = api();
    let added = api.add_endpoint(req(add("api", "k1"))).await.unwrap().into_inner();
    let endpoint = added.endpoint.unwrap();
    assert_eq!(endpoint.id, 1);
    assert_eq!(endpoint.kind, "https");
    assert_eq!(endpoint.created_at_unix_ms, 1_800_000_000_000);

    let mut spec = endpoint.spec.clone().unwrap();
    spec.interval_ms = 60_000;
    let update = |key: &str, spec: pb::EndpointSpec| {
        req(pb::UpdateEndpointRequest { mutation: mutation(key), endpoint: by("api"), spec: Some(spec) })
    };
    let updated = api.update_endpoint(update("k2", spec.clone())).await.unwrap().into_inner();
    assert!(updated.changed);
    assert_eq!(updated.endpoint.unwrap().spec.unwrap().interval_ms, 60_000);
    let again = api.update_endpoint(update("k3", spec)).await.unwrap().into_inner();
    assert!(!again.changed, "the same spec again changes nothing");

    let paused = pb::SetEndpointPausedRequest { mutation: mutation("k4"), endpoint: by("1"), paused: true };
    let paused = api.set_endpoint_paused(req(paused)).await.unwrap().into_inner();
    assert!(paused.endpoint.unwrap().spec.unwrap().paused);

    let got = api
        .get_endpoint(req(pb::GetEndpointRequest { endpoint: by("api"), consistent: true }))
        .await
        .unwrap();
    assert_eq!(got.into_inner().id, 1);
    let list = api.list_endpoints(req(pb::ListRequest { consistent: false })).await.unwrap().into_inner();
    assert_eq!(list.endpoints.len(), 1);

    let removed = api
        .remove_endpoint(req(pb::RemoveEndpointRequest { mutation: mutation("k5"), endpoint: by("api") }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((removed.id, removed.name.as_str()), (1, "api"));
    let list = api.list_endpoints(req(pb::ListRequest::default())).await.unwrap().into_inner();
    assert!(list.endpoints.is_empty());
}

#[tokio::test]
async fn a_retried_call_with_the_same_key_is_applied_once() {
    let (api, cluster) = api();
    let first = api.add_endpoint(req(add("api", "retry-me"))).await.unwrap().into_inner();
    let retry = api.add_endpoint(req(add("api", "retry-me"))).await.unwrap().into_inner();
    assert_eq!(first.endpoint.unwrap().id, retry.endpoint.unwrap().id);
    assert_eq!(cluster.read(|s| s.endpoints().len()), 1);
}

#[tokio::test]
async fn a_removal_retried_after_its_reply_was_lost_answers_as_the_first_time() {
    let (api, _) = api();
    api.add_endpoint(req(add("api", "k1"))).await.unwrap();
    let remove = || req(pb::RemoveEndpointRequest { mutation: mutation("rm-1"), endpoint: by("api") });
    let first = api.remove_endpoint(remove()).await.unwrap().into_inner();
    let retry = api.remove_endpoint(remove()).await.unwrap().into_inner();
    assert_eq!(first.id, retry.id);
    // A new key for the same removal finds nothing to remove.
    let fresh = req(pb::RemoveEndpointRequest { mutation: mutation("rm-2"), endpoint: by("api") });
    assert_eq!(api.remove_endpoint(fresh).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn webhooks_update_in_place_and_keep_their_secret_unless_given() {
    let (api, cluster) = api();
    let spec = pb::WebhookSpec {
        name: "oncall".into(),
        url: "https://hooks.example.com/x".into(),
        secret: "s3cret-s3cret-s3cret".into(),
        ..Default::default()
    };
    let hook =
        api.add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w1"), spec: Some(spec.clone()) }));
    let id = hook.await.unwrap().into_inner().id;
    let changed =
        pb::WebhookSpec { url: "https://hooks.example.com/y".into(), secret: String::new(), ..spec };
    let update = pb::UpdateWebhookRequest {
        mutation: mutation("w2"),
        id_or_name: "oncall".into(),
        spec: Some(changed),
    };
    let updated = api.update_webhook(req(update)).await.unwrap().into_inner();
    assert_eq!(updated.id, id, "updated in place");
    assert_eq!(updated.spec.unwrap().url, "https://hooks.example.com/y");
    let secret = cluster.read(|s| s.webhooks().get(&WebhookId(id)).unwrap().spec.secret.0.clone());
    assert_eq!(secret, "s3cret-s3cret-s3cret");
}

#[tokio::test]
async fn refusals_carry_clear_messages_and_codes_and_change_nothing() {
    let (api, cluster) = api();
    api.add_endpoint(req(add("api", "k1"))).await.unwrap();
    let cases: Vec<(pb::AddEndpointRequest, Code, &str)> = vec![
        (add("api", "k2"), Code::AlreadyExists, "endpoint \"api\" already exists"),
        (
            pb::AddEndpointRequest { mutation: None, ..add("other", "") },
            Code::InvalidArgument,
            "invalid idempotency key: empty; send a unique key (for example a UUID) with every change",
        ),
        (
            pb::AddEndpointRequest {
                mutation: mutation("k3"),
                spec: Some(pb::EndpointSpec {
                    regions: vec!["mars".into()],
                    ..endpoint("x", "https://x.example/")
                }),
            },
            Code::InvalidArgument,
            "unknown region \"mars\" (add it first: vantagectl region add mars)",
        ),
        (
            pb::AddEndpointRequest { mutation: mutation("k4"), spec: Some(endpoint("y", "htp:/x")) },
            Code::InvalidArgument,
            "invalid URL \"htp:/x\": unsupported scheme \"htp\" (use http, https, tcp, tls or dns)",
        ),
        (
            pb::AddEndpointRequest {
                mutation: mutation("k5"),
                spec: Some(pb::EndpointSpec { interval_ms: 500, ..endpoint("z", "https://z.example/") }),
            },
            Code::InvalidArgument,
            "invalid interval 500ms: must be between 1s and 24h",
        ),
        (
            pb::AddEndpointRequest { mutation: mutation("k6"), spec: None },
            Code::InvalidArgument,
            "spec: missing",
        ),
    ];
    for (request, code, message) in cases {
        let status = api.add_endpoint(req(request)).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (code, message));
    }
    assert_eq!(cluster.read(|s| s.endpoints().len()), 1, "no refusal changed anything");

    let status =
        api.get_endpoint(req(pb::GetEndpointRequest { endpoint: by("nope"), consistent: false })).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no endpoint named \"nope\" (list them with: vantagectl endpoint list)");
}

#[tokio::test]
async fn cluster_failures_map_to_unavailable_with_the_quorum_message() {
    let (api, cluster) = api();
    *cluster.fail_writes.lock().unwrap() =
        Some(ClusterError::NoQuorum { reachable: 1, members: 3, quorum: 2 });
    let status = api.add_endpoint(req(add("api", "k1"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "no leader: 1 of 3 nodes reachable, a quorum needs 2");
    // Local reads still answer.
    assert!(api.list_endpoints(req(pb::ListRequest::default())).await.is_ok());
}

#[tokio::test]
async fn regions_webhooks_and_maintenance() {
    let (api, _) = api();
    let region =
        api.add_region(req(pb::AddRegionRequest { mutation: mutation("r1"), name: "eu-west".into() })).await;
    assert_eq!(region.unwrap().into_inner().name, "eu-west");
    let regions = api.list_regions(req(pb::ListRequest::default())).await.unwrap().into_inner();
    assert_eq!(regions.regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["eu-west"]);

    let spec = pb::WebhookSpec {
        name: "oncall".into(),
        url: "https://hooks.example.com/x".into(),
        secret: "s3cret-s3cret-s3cret".into(),
        format: "slack".into(),
        events: vec!["outage_opened".into()],
        ..Default::default()
    };
    let hook = api
        .add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w1"), spec: Some(spec.clone()) }))
        .await;
    let hook = hook.unwrap().into_inner();
    assert!(hook.secret_set);
    assert_eq!(hook.spec.as_ref().unwrap().secret, "", "secrets are never read back");
    assert_eq!(hook.spec.as_ref().unwrap().format, "slack");
    let bad = pb::WebhookSpec { format: "teams".into(), ..spec };
    let status =
        api.add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w2"), spec: Some(bad) })).await;
    assert_eq!(
        status.unwrap_err().message(),
        "spec.format: invalid webhook format \"teams\": use one of standard, slack, alertmanager"
    );
    let removed = api
        .remove_webhook(req(pb::RemoveWebhookRequest {
            mutation: mutation("w3"),
            id_or_name: "oncall".into(),
        }))
        .await
        .unwrap();
    assert_eq!(removed.into_inner().name, "oncall");

    let window = pb::MaintenanceSpec {
        starts_at_unix_ms: 1_800_000_000_000,
        ends_at_unix_ms: 1_800_003_600_000,
        reason: "db upgrade".into(),
        ..Default::default()
    };
    let added =
        api.add_maintenance(req(pb::AddMaintenanceRequest { mutation: mutation("m1"), spec: Some(window) }));
    let added = added.await.unwrap().into_inner();
    let list = api.list_maintenance(req(pb::ListRequest::default())).await.unwrap().into_inner();
    assert_eq!(list.windows.len(), 1);
    api.remove_maintenance(req(pb::RemoveMaintenanceRequest { mutation: mutation("m2"), id: added.id }))
        .await
        .unwrap();
}

#[tokio::test]
async fn cluster_calls_pass_through() {
    let (api, _) = api();
    let status = api.cluster_status(req(pb::ClusterStatusRequest {})).await.unwrap().into_inner();
    assert_eq!(status.leader_id, Some(1));
    assert_eq!(status.members[0].role, "leader");
    let refused = api
        .add_node(req(pb::AddNodeRequest {
            id: 2,
            api_addr: "127.0.0.1:7410".into(),
            raft_addr: "127.0.0.1:7411".into(),
            learner_only: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(refused.message().contains("ids are never reused"), "{}", refused.message());
    let bad = api
        .add_node(req(pb::AddNodeRequest {
            id: 4,
            api_addr: "nope".into(),
            raft_addr: "127.0.0.1:1".into(),
            learner_only: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.message(), "api_addr: \"nope\" is not HOST:PORT with an IP address");
    let snap = api.trigger_snapshot(req(pb::TriggerSnapshotRequest {})).await.unwrap().into_inner();
    assert_eq!(snap.last_included_index, 9);
}

// ---- probes ----------------------------------------------------------------

struct FixedDirectory(Vec<LiveProbe>);

impl ProbeDirectory for FixedDirectory {
    fn live_probes(&self) -> Vec<LiveProbe> {
        self.0.clone()
    }
}

async fn with_region(api: &AdminApi<MemoryCluster>, name: &str) {
    let add = pb::AddRegionRequest { mutation: mutation(&format!("region-{name}")), name: name.into() };
    api.add_region(req(add)).await.unwrap();
}

fn create(key: &str, probe: &str, region: &str, weight: u32) -> GrpcRequest<pb::CreateProbeTokenRequest> {
    req(pb::CreateProbeTokenRequest {
        mutation: mutation(key),
        probe: probe.into(),
        region: region.into(),
        weight,
    })
}

#[tokio::test]
async fn a_probe_token_is_returned_once_and_stored_only_hashed() {
    let (api, cluster) = api();
    with_region(&api, "eu").await;
    let reply = api.create_probe_token(create("t1", "eu-1", "eu", 0)).await.unwrap().into_inner();
    assert_eq!(reply.probe_id, 1);
    assert!(!reply.rotated);
    assert_eq!(reply.token.len(), 64, "32 random bytes as hex");
    let stored = cluster.read(|s| s.probes()[&ProbeId(1)].clone());
    assert_eq!((stored.name.as_str(), stored.region.as_str(), stored.weight), ("eu-1", "eu", 100));
    assert_eq!(stored.token_hash, crate::auth::token_hash(&reply.token));
    assert_ne!(stored.token_hash.0, reply.token);
    assert_eq!(
        cluster.read(|s| s.probe_by_token_hash(&crate::auth::token_hash(&reply.token)).map(|p| p.id)),
        Some(ProbeId(1))
    );
}

#[tokio::test]
async fn a_replayed_create_probe_token_is_refused_instead_of_answered_with_a_token() {
    let (api, cluster) = api();
    with_region(&api, "eu").await;
    let first = api.create_probe_token(create("t1", "eu-1", "eu", 7)).await.unwrap().into_inner();
    let status = api.create_probe_token(create("t1", "eu-1", "eu", 7)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("already applied"), "{}", status.message());
    assert!(status.message().contains("probe id 1"), "{}", status.message());
    // The first token still works: the replay changed nothing.
    let hash = cluster.read(|s| s.probes()[&ProbeId(1)].token_hash.clone());
    assert_eq!(hash, crate::auth::token_hash(&first.token));
}

#[tokio::test]
async fn creating_a_token_for_an_existing_probe_rotates_it() {
    let (api, cluster) = api();
    with_region(&api, "eu").await;
    with_region(&api, "us").await;
    let first = api.create_probe_token(create("t1", "eu-1", "eu", 7)).await.unwrap().into_inner();
    let second = api.create_probe_token(create("t2", "eu-1", "eu", 0)).await.unwrap().into_inner();
    assert_eq!(second.probe_id, first.probe_id);
    assert!(second.rotated);
    assert_ne!(second.token, first.token);
    let stored = cluster.read(|s| s.probes()[&ProbeId(1)].clone());
    assert_eq!(stored.token_hash, crate::auth::token_hash(&second.token));
    assert_eq!(stored.weight, 7, "rotation keeps the weight");

    let moved = api.create_probe_token(create("t3", "eu-1", "us", 0)).await.unwrap_err();
    assert_eq!(moved.code(), Code::FailedPrecondition);
    assert!(moved.message().contains("revoke it first"), "{}", moved.message());
    let reweighted = api.create_probe_token(create("t4", "eu-1", "eu", 9)).await.unwrap_err();
    assert_eq!(reweighted.code(), Code::InvalidArgument);
    assert_eq!(cluster.read(|s| s.probes().len()), 1);
}

#[tokio::test]
async fn create_probe_token_refuses_bad_input() {
    let (api, cluster) = api();
    with_region(&api, "eu").await;
    let unknown_region = api.create_probe_token(create("t1", "eu-1", "mars", 0)).await.unwrap_err();
    assert_eq!(unknown_region.code(), Code::InvalidArgument);
    let no_name = api.create_probe_token(create("t2", " ", "eu", 0)).await.unwrap_err();
    assert_eq!(no_name.code(), Code::InvalidArgument);
    let heavy = api.create_probe_token(create("t3", "eu-1", "eu", 1_000_000)).await.unwrap_err();
    assert_eq!(heavy.code(), Code::InvalidArgument);
    let unauthenticated =
        api.create_probe_token(GrpcRequest::new(pb::CreateProbeTokenRequest::default())).await.unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    assert!(cluster.read(|s| s.probes().is_empty()));
}

#[tokio::test]
async fn a_revoked_probe_is_gone_and_a_retried_revoke_answers_as_the_first_time() {
    let (api, cluster) = api();
    with_region(&api, "eu").await;
    api.create_probe_token(create("t1", "eu-1", "eu", 0)).await.unwrap();
    let revoke = |key: &str, who: &str| {
        req(pb::RevokeProbeRequest { mutation: mutation(key), id_or_name: who.into() })
    };
    let removed = api.revoke_probe(revoke("r1", "eu-1")).await.unwrap().into_inner();
    assert_eq!((removed.id, removed.name.as_str()), (1, "eu-1"));
    assert!(cluster.read(|s| s.probes().is_empty()));
    let retry = api.revoke_probe(revoke("r1", "eu-1")).await.unwrap().into_inner();
    assert_eq!(retry.id, 1);
    let fresh = api.revoke_probe(revoke("r2", "1")).await.unwrap_err();
    assert_eq!(fresh.code(), Code::NotFound);
    assert!(fresh.message().contains("vantagectl probe list"), "{}", fresh.message());
}

#[tokio::test]
async fn probes_are_listed_with_their_live_state() {
    let (api, _) = api();
    with_region(&api, "eu").await;
    with_region(&api, "us").await;
    api.create_probe_token(create("t1", "eu-1", "eu", 0)).await.unwrap();
    api.create_probe_token(create("t2", "us-1", "us", 50)).await.unwrap();
    let plain = api.list_probes(req(pb::ListRequest::default())).await.unwrap().into_inner();
    assert_eq!(plain.probes.len(), 2);
    assert!(plain.probes.iter().all(|p| !p.connected && p.endpoints == 0 && p.last_seen_unix_ms == 0));

    let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
    let live = LiveProbe {
        id: 2,
        version: "0.1.0".into(),
        connected: true,
        connected_since: Some(since),
        last_seen: Some(since + Duration::from_secs(5)),
        endpoints: 3,
        checks_per_second: 1.5,
        scheduling_lag_p99_ms: 2.0,
    };
    let api = api.with_probe_directory(Arc::new(FixedDirectory(vec![live])));
    let list = api.list_probes(req(pb::ListRequest { consistent: true })).await.unwrap().into_inner();
    let us = list.probes.iter().find(|p| p.name == "us-1").unwrap();
    assert_eq!(
        (us.id, us.region.as_str(), us.weight, us.connected, us.endpoints, us.version.as_str()),
        (2, "us", 50, true, 3, "0.1.0")
    );
    assert_eq!((us.connected_since_unix_ms, us.last_seen_unix_ms), (1_700_000_000_000, 1_700_000_005_000));
    assert_eq!((us.checks_per_second, us.scheduling_lag_p99_ms), (1.5, 2.0));
    let eu = list.probes.iter().find(|p| p.name == "eu-1").unwrap();
    assert!(!eu.connected);

    let drain = pb::DrainProbeRequest { mutation: mutation("d1"), id_or_name: "us-1".into(), drained: true };
    let drained = api.drain_probe(req(drain)).await.unwrap().into_inner();
    assert!(drained.drained && drained.connected);
}

// ---------------------------------------------------------------- shards

/// The leader's live view, as a test double of the mesh.
struct FakeShards {
    live: Mutex<Result<LiveShards, AdminError>>,
    check: Mutex<Option<crate::mesh::CheckReport>>,
    waits: Mutex<Vec<(u64, Duration)>>,
}

impl FakeShards {
    fn leading(live: LiveShards) -> Arc<FakeShards> {
        Arc::new(FakeShards { live: Mutex::new(Ok(live)), check: Mutex::new(None), waits: Mutex::default() })
    }

    fn following(leader_api_addr: Option<&str>) -> Arc<FakeShards> {
        let error =
            AdminError::NotLeader { leader_id: Some(2), leader_api_addr: leader_api_addr.map(Into::into) };
        Arc::new(FakeShards {
            live: Mutex::new(Err(error)),
            check: Mutex::new(None),
            waits: Mutex::default(),
        })
    }
}

impl ShardDirectory for FakeShards {
    fn shards(&self) -> Result<LiveShards, AdminError> {
        self.live.lock().unwrap().clone()
    }

    fn rebalance(&self, dry_run: bool) -> Result<crate::mesh::RebalanceReport, AdminError> {
        self.shards()?;
        Ok(crate::mesh::RebalanceReport {
            dry_run,
            expired: vec![2],
            moves: vec![
                crate::mesh::ShardMove { endpoint_id: 1, region: "eu".into(), from: vec![2], to: vec![3] },
                crate::mesh::ShardMove { endpoint_id: 2, region: "eu".into(), from: vec![2], to: vec![3] },
            ],
            version: 8,
        })
    }

    fn check_endpoint(
        &self,
        endpoint_id: u64,
        wait: Duration,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<crate::mesh::CheckReport, AdminError>> + Send + '_>,
    > {
        Box::pin(async move {
            self.shards()?;
            self.waits.lock().unwrap().push((endpoint_id, wait));
            Ok(self.check.lock().unwrap().clone().expect("a check report arranged"))
        })
    }
}

/// Regions eu and us; endpoints 1 "web" (every region) and 2 "api" (eu
/// only); probes 1 eu-1, 2 eu-2, 3 us-1.
async fn shard_fixture() -> (AdminApi<MemoryCluster>, Arc<MemoryCluster>) {
    let (api, cluster) = api();
    with_region(&api, "eu").await;
    with_region(&api, "us").await;
    api.add_endpoint(req(add("web", "e1"))).await.unwrap();
    let mut only_eu = add("api", "e2");
    only_eu.spec.as_mut().unwrap().regions = vec!["eu".into()];
    api.add_endpoint(req(only_eu)).await.unwrap();
    for (key, probe, region) in [("p1", "eu-1", "eu"), ("p2", "eu-2", "eu"), ("p3", "us-1", "us")] {
        api.create_probe_token(create(key, probe, region, 0)).await.unwrap();
    }
    (api, cluster)
}

fn pin(key: &str, endpoint: &str, region: &str, probe: &str) -> GrpcRequest<pb::PinShardRequest> {
    req(pb::PinShardRequest {
        mutation: mutation(key),
        endpoint: by(endpoint),
        region: region.into(),
        probe: probe.into(),
    })
}

/// The assignment the mesh would publish for the fixture's state with
/// every probe live.
fn live_shards(cluster: &MemoryCluster, connected: &[u64]) -> LiveShards {
    let inputs = cluster.read(|s| crate::mesh::placement::inputs(s, |_| true));
    LiveShards {
        version: 7,
        assignment: crate::mesh::placement::assign(&inputs),
        uncovered_regions: Default::default(),
        connected: connected.iter().copied().collect(),
    }
}

#[tokio::test]
async fn pins_are_validated_replicated_and_retried_by_key() {
    let (api, cluster) = shard_fixture().await;
    let pinned = api.pin_shard(pin("k1", "web", "eu", "eu-2")).await.unwrap().into_inner();
    assert_eq!(
        (
            pinned.endpoint_id,
            pinned.endpoint.as_str(),
            pinned.region.as_str(),
            pinned.probe_id,
            pinned.probe.as_str()
        ),
        (1, "web", "eu", 2, "eu-2")
    );
    assert!(pinned.changed);
    let retry = api.pin_shard(pin("k1", "web", "eu", "eu-2")).await.unwrap().into_inner();
    assert_eq!(retry, pinned, "a retry answers from the remembered outcome");
    let again = api.pin_shard(pin("k2", "1", "eu", "2")).await.unwrap().into_inner();
    assert!(!again.changed, "by id, the same pin again changes nothing");
    assert_eq!(cluster.read(|s| s.pins().len()), 1);

    let refusals = [
        (
            pin("k3", "api", "us", "us-1"),
            Code::InvalidArgument,
            "endpoint \"api\" is not checked from region \"us\"",
        ),
        (
            pin("k4", "web", "eu", "us-1"),
            Code::InvalidArgument,
            "probe \"us-1\" is in region \"us\", not \"eu\"",
        ),
        (pin("k5", "web", "eu", "nope"), Code::NotFound, "no probe named \"nope\""),
        (pin("k6", "nope", "eu", "eu-1"), Code::NotFound, "no endpoint named \"nope\""),
        (pin("k7", "web", "mars", "eu-1"), Code::InvalidArgument, "unknown region \"mars\""),
        (pin("k8", "web", " ", "eu-1"), Code::InvalidArgument, "region: missing"),
    ];
    for (request, code, message) in refusals {
        let status = api.pin_shard(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
        assert!(status.message().starts_with(message), "{}", status.message());
    }
    assert_eq!(cluster.read(|s| s.pins().len()), 1, "refusals change nothing");

    let unpin = |key: &str, region: &str| {
        req(pb::UnpinShardRequest { mutation: mutation(key), endpoint: by("web"), region: region.into() })
    };
    let removed = api.unpin_shard(unpin("u1", "eu")).await.unwrap().into_inner();
    assert_eq!((removed.endpoint.as_str(), removed.regions), ("web", vec!["eu".to_string()]));
    let nothing = api.unpin_shard(unpin("u2", "")).await.unwrap().into_inner();
    assert!(nothing.regions.is_empty(), "unpinning what is not pinned removes nothing");
    assert!(cluster.read(|s| s.pins().is_empty()));
}

#[tokio::test]
async fn shards_are_listed_and_shown_from_the_leaders_assignment_with_pins() {
    let (api, cluster) = shard_fixture().await;
    api.pin_shard(pin("k1", "web", "eu", "eu-2")).await.unwrap();
    let api = api.with_shard_directory(FakeShards::leading(live_shards(&cluster, &[2, 3])));

    let list =
        |region: &str, probe: &str| req(pb::ListShardsRequest { region: region.into(), probe: probe.into() });
    let all = api.list_shards(list("", "")).await.unwrap().into_inner();
    assert_eq!(all.assignment_version, 7);
    // web from eu and us, api from eu only.
    assert_eq!(all.shards.len(), 3, "{:?}", all.shards);
    let web_eu = all.shards.iter().find(|r| r.endpoint == "web" && r.region == "eu").unwrap();
    assert_eq!((web_eu.probe.as_str(), web_eu.pinned, web_eu.connected), ("eu-2", true, true));
    assert!(all.shards.iter().filter(|r| r.endpoint != "web" || r.region != "eu").all(|r| !r.pinned));
    assert!(all.uncovered.is_empty());

    let us = api.list_shards(list("us", "")).await.unwrap().into_inner();
    assert_eq!(
        us.shards.iter().map(|r| (r.endpoint.as_str(), r.probe.as_str())).collect::<Vec<_>>(),
        [("web", "us-1")]
    );
    let by_probe = api.list_shards(list("", "eu-2")).await.unwrap().into_inner();
    assert!(by_probe.shards.iter().all(|r| r.probe_id == 2) && !by_probe.shards.is_empty());
    let unknown = api.list_shards(list("", "nope")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = api.list_shards(list("mars", "")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);

    let show = api.show_shard(req(pb::ShowShardRequest { endpoint: by("web") })).await.unwrap().into_inner();
    assert_eq!((show.endpoint_id, show.endpoint.as_str(), show.assignment_version), (1, "web", 7));
    let regions: Vec<_> = show.regions.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(regions, ["eu", "us"]);
    let eu = &show.regions[0];
    assert_eq!((eu.pinned_probe_id, eu.pinned_probe.as_str(), eu.pin_problem.as_str()), (2, "eu-2", ""));
    assert_eq!(eu.probes.len(), 1);
    assert!(eu.probes[0].pinned && eu.probes[0].connected && eu.probes[0].probe == "eu-2");
}

#[tokio::test]
async fn an_unsatisfied_pin_says_why_and_an_uncovered_region_has_no_probes() {
    let (api, cluster) = shard_fixture().await;
    api.pin_shard(pin("k1", "web", "eu", "eu-2")).await.unwrap();
    // eu-2 and us-1 are gone beyond grace: eu falls back to eu-1, us is uncovered.
    let inputs = cluster.read(|s| crate::mesh::placement::inputs(s, |id| id == 1));
    let live = LiveShards {
        version: 9,
        assignment: crate::mesh::placement::assign(&inputs),
        uncovered_regions: ["us".to_string()].into(),
        connected: [1].into(),
    };
    let api = api.with_shard_directory(FakeShards::leading(live));
    let show = api.show_shard(req(pb::ShowShardRequest { endpoint: by("web") })).await.unwrap().into_inner();
    let eu = &show.regions[0];
    assert_eq!(eu.probes.iter().map(|p| (p.probe.as_str(), p.pinned)).collect::<Vec<_>>(), [("eu-1", false)]);
    assert!(eu.pin_problem.contains("not eligible"), "{}", eu.pin_problem);
    assert!(show.regions[1].probes.is_empty(), "us is uncovered");
    let list = api.list_shards(req(pb::ListShardsRequest::default())).await.unwrap().into_inner();
    assert_eq!(
        list.uncovered.iter().map(|u| (u.endpoint.as_str(), u.region.as_str())).collect::<Vec<_>>(),
        [("web", "us")]
    );
    assert_eq!(list.uncovered_regions, ["us"]);
}

#[tokio::test]
async fn shard_calls_on_a_follower_name_the_leader_and_its_address() {
    let (api, _) = shard_fixture().await;
    let follower = api.with_shard_directory(FakeShards::following(Some("10.0.0.2:7400")));
    let status = follower.list_shards(req(pb::ListShardsRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "this node is not the leader; the leader is node 2 at 10.0.0.2:7400");
    assert_eq!(status.metadata().get(LEADER_API_METADATA).unwrap(), "10.0.0.2:7400");
    for status in [
        follower.show_shard(req(pb::ShowShardRequest { endpoint: by("web") })).await.unwrap_err(),
        follower.rebalance(req(pb::RebalanceRequest { dry_run: true })).await.unwrap_err(),
        follower.check_endpoint(req(pb::CheckEndpointRequest { endpoint: by("web") })).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition, "{}", status.message());
        assert!(status.metadata().get(LEADER_API_METADATA).is_some());
    }
    // Pins are replicated writes: a follower forwards them.
    assert!(follower.pin_shard(pin("k1", "web", "eu", "eu-1")).await.is_ok());

    let (api, _) = shard_fixture().await;
    let leaderless = api.with_shard_directory(FakeShards::following(None));
    let status = leaderless.list_shards(req(pb::ListShardsRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "retryable while an election runs");
    assert!(status.metadata().get(LEADER_API_METADATA).is_none());

    let (plain, _) = shard_fixture().await;
    let status = plain.list_shards(req(pb::ListShardsRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("does not run the probe mesh"), "{}", status.message());
}

#[tokio::test]
async fn rebalance_reports_moves_by_region_with_names() {
    let (api, cluster) = shard_fixture().await;
    let api = api.with_shard_directory(FakeShards::leading(live_shards(&cluster, &[1, 2, 3])));
    let reply = api.rebalance(req(pb::RebalanceRequest { dry_run: true })).await.unwrap().into_inner();
    assert!(reply.dry_run);
    assert_eq!(reply.expired_probes, ["eu-2"]);
    assert_eq!(reply.regions, [pb::RegionMoves { region: "eu".into(), endpoints_moved: 2 }]);
    let first = &reply.moves[0];
    assert_eq!(
        (first.endpoint.as_str(), first.from.clone(), first.to.clone()),
        ("web", vec!["eu-2".into()], vec!["us-1".into()])
    );
    assert_eq!(reply.assignment_version, 8);
}

#[tokio::test]
async fn check_endpoint_answers_one_row_per_region_and_waits_for_the_timeout_plus_a_margin() {
    use crate::mesh::{CheckReport, ProbeOutcome};
    use crate::results::AcceptedResult;
    use vantage_core::result::{CheckError, CheckResult, ErrorKind, Phases};
    use vantage_core::spec::CheckKind;

    let (api, cluster) = shard_fixture().await;
    let shards = FakeShards::leading(live_shards(&cluster, &[1, 3]));
    let result = |ok: bool| CheckResult {
        url: "https://example.com/health".into(),
        kind: CheckKind::Https,
        ok,
        error: (!ok).then(|| CheckError {
            kind: ErrorKind::ConnectRefused,
            message: "connection refused".into(),
            phase: None,
            tls_reason: None,
        }),
        status_code: ok.then_some(200),
        http_version: None,
        remote_addr: None,
        phases_ms: Phases {
            dns: Duration::from_micros(1_500),
            connect: Duration::from_millis(2),
            tls: Duration::from_millis(3),
            ttfb: Duration::from_millis(4),
            transfer: Duration::from_millis(5),
            total: Duration::from_micros(15_500),
        },
        tls: None,
        body_bytes: 0,
        started_at: SystemTime::UNIX_EPOCH,
        hops: Vec::new(),
        dns_answers: Vec::new(),
        attempts: 1,
    };
    let accepted = |probe_id: u64, region: &str, ok: bool| {
        ProbeOutcome::Answered(Box::new(AcceptedResult {
            probe_id,
            region: region.into(),
            observation: vantage_core::observation::Observation {
                seq: 1,
                endpoint_id: 1,
                round: 0,
                probe_unhealthy: false,
                planned_start: SystemTime::UNIX_EPOCH,
                lag: Duration::ZERO,
                out_of_slot: true,
                request_id: Some("chk-7-1".into()),
                result: Some(result(ok)),
            },
            received_at: SystemTime::UNIX_EPOCH,
        }))
    };
    *shards.check.lock().unwrap() = Some(CheckReport {
        endpoint_id: 1,
        request_id: "chk-7-1".into(),
        regions: [
            ("ap".to_string(), vec![ProbeOutcome::Uncovered]),
            ("eu".to_string(), vec![accepted(1, "eu", true)]),
            ("sa".to_string(), vec![ProbeOutcome::Unreachable { probe_id: 2 }]),
            ("us".to_string(), vec![accepted(3, "us", false)]),
            ("zz".to_string(), vec![ProbeOutcome::TimedOut { probe_id: 2 }]),
        ]
        .into(),
    });
    let api = api.with_shard_directory(shards.clone());
    let reply =
        api.check_endpoint(req(pb::CheckEndpointRequest { endpoint: by("web") })).await.unwrap().into_inner();
    assert_eq!(
        (reply.endpoint_id, reply.endpoint.as_str(), reply.request_id.as_str()),
        (1, "web", "chk-7-1")
    );
    let rows: Vec<_> =
        reply.regions.iter().map(|r| (r.region.as_str(), r.probe.as_str(), r.outcome.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("ap", "", "uncovered"),
            ("eu", "eu-1", "ok"),
            ("sa", "eu-2", "unreachable"),
            ("us", "us-1", "failed"),
            ("zz", "eu-2", "timed_out")
        ]
    );
    let eu = &reply.regions[1];
    assert_eq!(
        (eu.dns_ms, eu.connect_ms, eu.tls_ms, eu.ttfb_ms, eu.transfer_ms, eu.total_ms),
        (1.5, 2.0, 3.0, 4.0, 5.0, 15.5)
    );
    assert_eq!(eu.status_code, Some(200));
    let us = &reply.regions[3];
    assert_eq!(
        (us.error_kind.as_str(), us.message.as_str(), us.status_code),
        ("connect_refused", "connection refused", None)
    );
    assert!(reply.regions[4].message.contains("10000 ms"), "{}", reply.regions[4].message);
    // The fixture's timeout is 5 s: wait 5 s + the margin.
    assert_eq!(*shards.waits.lock().unwrap(), [(1, Duration::from_secs(5) + CHECK_MARGIN)]);

    let paused =
        pb::SetEndpointPausedRequest { mutation: mutation("pause"), endpoint: by("web"), paused: true };
    api.set_endpoint_paused(req(paused)).await.unwrap();
    let status = api.check_endpoint(req(pb::CheckEndpointRequest { endpoint: by("web") })).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("vantagectl endpoint resume web"), "{}", status.message());
}

mod incidents;

// EndpointHistory, in its own file.
mod history;
