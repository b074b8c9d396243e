//! The incident calls (ListIncidents, GetIncident, EndpointStatus,
//! ListDeliveries) over state built by applying the agreement runner's
//! commands (`RecordTransition`, `RecordDelivery`) directly.

use vantage_core::agreement::{ProbeEvidence, RegionEvidence, State, UnknownReason, Verdict};
use vantage_core::result::ErrorKind;

use super::*;
use crate::state::{DeliveryId, DeliveryOutcome, DeliveryRecord, EndpointId, TransitionRecord, UnixMillis};

const T0: u64 = 1_800_000_000_000;

fn probe(probe_id: u64, verdict: Verdict) -> ProbeEvidence {
    ProbeEvidence {
        probe_id,
        verdict,
        message: matches!(verdict, Verdict::Down(_)).then(|| "no answer within 5s".to_string()),
        status_code: matches!(verdict, Verdict::Up).then_some(200),
        total_us: 12_500,
        ttfb_us: 9_000,
        started_at_unix_us: (T0 as i64) * 1_000,
    }
}

fn region(name: &str, probe_id: u64, verdict: Verdict) -> RegionEvidence {
    RegionEvidence { region: name.into(), verdict, probes: vec![probe(probe_id, verdict)] }
}

/// Eu and us down, ap up (probes 1, 2, 3 are eu-1, us-1, ap-1).
fn outage_evidence() -> Vec<RegionEvidence> {
    vec![
        region("ap", 3, Verdict::Up),
        region("eu", 1, Verdict::Down(ErrorKind::Timeout)),
        region("us", 2, Verdict::Down(ErrorKind::ConnectRefused)),
    ]
}

fn all_up() -> Vec<RegionEvidence> {
    ["ap", "eu", "us"].iter().zip(1..).map(|(r, p)| region(r, p, Verdict::Up)).collect()
}

async fn record(cluster: &MemoryCluster, key: &str, command: Command) -> Outcome {
    let request = Request { idempotency_key: IdempotencyKey(key.into()), issued_at: UnixMillis(T0), command };
    cluster.write(request).await.unwrap().into_result().unwrap()
}

fn transition(endpoint: u64, from: State, to: State, at: u64, evidence: Vec<RegionEvidence>) -> Command {
    Command::RecordTransition(TransitionRecord {
        endpoint: EndpointId(endpoint),
        from,
        to,
        at: UnixMillis(T0 + at),
        alert: true,
        evidence,
    })
}

fn delivered(id: u64, attempts: u32, outcome: DeliveryOutcome) -> Command {
    Command::RecordDelivery(DeliveryRecord {
        delivery: DeliveryId(id),
        attempts,
        at: UnixMillis(T0 + 7_000),
        outcome,
    })
}

/// Endpoints api (1, every region) and web (2); probes eu-1, us-1, ap-1;
/// webhook oncall. Incidents: 1 api outage (resolved), 2 web degraded
/// (open), 3 api outage (open). Deliveries, one per transition: 1 (api
/// opened) delivered, 2 (web degraded) retrying, 3 (api resolved) failed,
/// 4 (api opened again) not tried yet.
async fn fixture() -> (AdminApi<MemoryCluster>, Arc<MemoryCluster>) {
    let (api, cluster) = api();
    for name in ["eu", "us", "ap"] {
        with_region(&api, name).await;
    }
    for (key, probe, region) in [("p1", "eu-1", "eu"), ("p2", "us-1", "us"), ("p3", "ap-1", "ap")] {
        api.create_probe_token(create(key, probe, region, 0)).await.unwrap();
    }
    api.add_endpoint(req(add("api", "e1"))).await.unwrap();
    api.add_endpoint(req(add("web", "e2"))).await.unwrap();
    let hook = pb::WebhookSpec {
        name: "oncall".into(),
        url: "https://hooks.example.com/x".into(),
        secret: "s3cret-s3cret-s3cret".into(),
        ..Default::default()
    };
    api.add_webhook(req(pb::AddWebhookRequest { mutation: mutation("w1"), spec: Some(hook) })).await.unwrap();

    let degraded = vec![region("eu", 1, Verdict::Down(ErrorKind::HttpStatus)), region("us", 2, Verdict::Up)];
    for (key, command) in [
        ("t1", transition(1, State::Unknown, State::Down, 1_000, outage_evidence())),
        ("t2", transition(2, State::Unknown, State::Degraded, 3_000, degraded)),
        ("t3", transition(1, State::Down, State::Up, 5_000, all_up())),
        ("t4", transition(1, State::Up, State::Down, 9_000, outage_evidence())),
    ] {
        assert!(matches!(record(&cluster, key, command).await, Outcome::TransitionRecorded { .. }));
    }
    let retry = DeliveryOutcome::Retry { error: "HTTP 500".into(), next_attempt_at: UnixMillis(T0 + 8_000) };
    record(&cluster, "d1", delivered(1, 1, DeliveryOutcome::Delivered)).await;
    record(&cluster, "d2", delivered(2, 1, retry)).await;
    record(&cluster, "d3", delivered(3, 3, DeliveryOutcome::Failed { error: "connection refused".into() }))
        .await;
    (api, cluster)
}

fn list(endpoint: &str, open_only: bool, since: u64, limit: u32) -> GrpcRequest<pb::ListIncidentsRequest> {
    req(pb::ListIncidentsRequest {
        endpoint: endpoint.into(),
        open_only,
        since_unix_ms: since as i64,
        limit,
        consistent: false,
    })
}

fn ids(reply: &pb::ListIncidentsReply) -> Vec<u64> {
    reply.incidents.iter().map(|i| i.id).collect()
}

#[tokio::test]
async fn incidents_are_listed_open_first_then_newest_and_filtered() {
    let (api, _) = fixture().await;
    let all = api.list_incidents(list("", false, 0, 0)).await.unwrap().into_inner();
    assert_eq!(ids(&all), [3, 2, 1], "open ones first (newest first), then resolved");
    assert_eq!(all.matched, 3);
    let newest = &all.incidents[0];
    assert_eq!((newest.endpoint_id, newest.endpoint.as_str(), newest.kind.as_str()), (1, "api", "outage"));
    assert_eq!((newest.opened_at_unix_ms, newest.resolved_at_unix_ms), ((T0 + 9_000) as i64, 0));
    assert_eq!(newest.regions_down, ["eu", "us"]);
    assert!(newest.opened_evidence.is_empty(), "lists leave the evidence out");
    assert_eq!(all.incidents[2].resolved_at_unix_ms, (T0 + 5_000) as i64);

    let by_name = api.list_incidents(list("web", false, 0, 0)).await.unwrap().into_inner();
    assert_eq!(ids(&by_name), [2]);
    let by_id = api.list_incidents(list("1", false, 0, 0)).await.unwrap().into_inner();
    assert_eq!(ids(&by_id), [3, 1]);
    let open = api.list_incidents(list("", true, 0, 0)).await.unwrap().into_inner();
    assert_eq!(ids(&open), [3, 2]);
    let since = api.list_incidents(list("", false, T0 + 6_000, 0)).await.unwrap().into_inner();
    assert_eq!(ids(&since), [3, 2], "incident 1 resolved before the bound");
    let since = api.list_incidents(list("", false, T0 + 5_000, 0)).await.unwrap().into_inner();
    assert_eq!(ids(&since), [3, 2, 1], "resolved at the bound: still open at that moment");
    let limited = api.list_incidents(list("", false, 0, 1)).await.unwrap().into_inner();
    assert_eq!((ids(&limited), limited.matched), (vec![3], 3));

    let unknown = api.list_incidents(list("nope", false, 0, 0)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), "no endpoint named \"nope\" (list them with: vantagectl endpoint list)");
    let too_many = api.list_incidents(list("", false, 0, 5_000)).await.unwrap_err();
    assert_eq!(
        (too_many.code(), too_many.message()),
        (Code::InvalidArgument, "limit: 5000 is above the maximum of 1000")
    );
    let mut before_1970 = list("", false, 0, 0);
    before_1970.get_mut().since_unix_ms = -5;
    assert_eq!(api.list_incidents(before_1970).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_incident_shows_its_evidence_with_probe_names() {
    let (api, _) = fixture().await;
    let get = |id| req(pb::GetIncidentRequest { id, consistent: true });
    let resolved = api.get_incident(get(1)).await.unwrap().into_inner();
    assert_eq!(resolved.kind, "outage");
    assert_eq!(resolved.regions_down, ["eu", "us"]);
    let eu = &resolved.opened_evidence[1];
    assert_eq!((eu.region.as_str(), eu.verdict.as_str(), eu.reason.as_str()), ("eu", "down", "timeout"));
    let seen = &eu.probes[0];
    assert_eq!((seen.probe_id, seen.probe.as_str()), (1, "eu-1"));
    assert_eq!((seen.message.as_str(), seen.total_us, seen.ttfb_us), ("no answer within 5s", 12_500, 9_000));
    assert_eq!(seen.started_at_unix_us, (T0 as i64) * 1_000);
    assert_eq!(resolved.resolved_evidence.len(), 3, "the evidence that resolved it");
    assert!(resolved.resolved_evidence.iter().all(|r| r.verdict == "up"));
    assert_eq!(resolved.resolved_evidence[0].probes[0].status_code, Some(200));

    // A probe revoked since keeps its id in the evidence, without a name.
    api.revoke_probe(req(pb::RevokeProbeRequest { mutation: mutation("rv"), id_or_name: "us-1".into() }))
        .await
        .unwrap();
    let after = api.get_incident(get(1)).await.unwrap().into_inner();
    assert_eq!(
        (after.opened_evidence[2].probes[0].probe_id, after.opened_evidence[2].probes[0].probe.as_str()),
        (2, "")
    );

    let missing = api.get_incident(get(42)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        missing.message(),
        "no incident has id 42 (resolved incidents are kept for 90 days; list them with: vantagectl incident list)"
    );
}

#[tokio::test]
async fn endpoint_status_has_the_state_rules_verdicts_and_open_incidents() {
    let (api, cluster) = fixture().await;
    let mut spec = endpoint("db", "tcp://db.example.com:5432");
    spec.regions = vec!["eu".into(), "us".into()];
    spec.quorum = Some(1);
    spec.min_failure_ms = Some(60_000);
    api.add_endpoint(req(pb::AddEndpointRequest { mutation: mutation("e3"), spec: Some(spec) }))
        .await
        .unwrap();
    let status =
        |endpoint: &str| req(pb::EndpointStatusRequest { endpoint: endpoint.into(), consistent: false });

    let every = api.endpoint_status(status("")).await.unwrap().into_inner();
    let names: Vec<(&str, &str)> =
        every.endpoints.iter().map(|e| (e.endpoint.as_str(), e.state.as_str())).collect();
    assert_eq!(names, [("api", "down"), ("web", "degraded"), ("db", "unknown")]);

    let api_status = &every.endpoints[0];
    assert_eq!(api_status.since_unix_ms, (T0 + 9_000) as i64);
    assert_eq!(
        api_status.rules,
        Some(pb::AgreementRules {
            regions: 3,
            quorum: 2,
            quorum_set: false,
            recovery_rounds: 2,
            min_failure_ms: 0
        })
    );
    let verdicts: Vec<(&str, &str, &str)> = api_status
        .regions
        .iter()
        .map(|r| (r.region.as_str(), r.verdict.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(verdicts, [("ap", "up", ""), ("eu", "down", "timeout"), ("us", "down", "connect_refused")]);
    assert_eq!(api_status.regions[2].probes[0].probe, "us-1");
    assert_eq!(api_status.open_incidents.iter().map(|i| i.id).collect::<Vec<_>>(), [3]);

    let db = &every.endpoints[2];
    assert_eq!(db.since_unix_ms, 0, "never decided");
    assert!(db.regions.is_empty() && db.open_incidents.is_empty());
    assert_eq!(
        db.rules,
        Some(pb::AgreementRules {
            regions: 2,
            quorum: 1,
            quorum_set: true,
            recovery_rounds: 2,
            min_failure_ms: 60_000
        })
    );

    let one = api.endpoint_status(status("web")).await.unwrap().into_inner();
    assert_eq!(one.endpoints.len(), 1);
    assert_eq!(one.endpoints[0].open_incidents[0].kind, "degraded");

    // A paused endpoint never decided says so.
    let pause = pb::SetEndpointPausedRequest { mutation: mutation("ps"), endpoint: by("db"), paused: true };
    api.set_endpoint_paused(req(pause)).await.unwrap();
    let db = api.endpoint_status(status("db")).await.unwrap().into_inner();
    assert_eq!(db.endpoints[0].state, "paused");

    // Unknown regions evidence (a region without probes) travels as such.
    let unknown = vec![RegionEvidence {
        region: "ap".into(),
        verdict: Verdict::Unknown(UnknownReason::NoProbe),
        probes: Vec::new(),
    }];
    record(&cluster, "t5", transition(2, State::Degraded, State::Unknown, 11_000, unknown)).await;
    let web = api.endpoint_status(status("web")).await.unwrap().into_inner();
    let web = &web.endpoints[0];
    assert_eq!(
        (web.state.as_str(), web.regions[0].verdict.as_str(), web.regions[0].reason.as_str()),
        ("unknown", "unknown", "no_probe")
    );
    assert!(web.open_incidents.is_empty(), "unknown resolves the degraded period");

    assert_eq!(api.endpoint_status(status("nope")).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn deliveries_are_listed_pending_first_with_names_attempts_and_errors() {
    let (api, _) = fixture().await;
    let list =
        |pending_only, limit| req(pb::ListDeliveriesRequest { pending_only, limit, consistent: false });
    let all = api.list_deliveries(list(false, 0)).await.unwrap().into_inner();
    let rows: Vec<(u64, &str, &str)> =
        all.deliveries.iter().map(|d| (d.id, d.status.as_str(), d.event.as_str())).collect();
    assert_eq!(
        rows,
        [
            (4, "pending", "outage_opened"),
            (2, "pending", "degraded"),
            (3, "failed", "outage_resolved"),
            (1, "delivered", "outage_opened"),
        ]
    );
    assert_eq!(all.matched, 4);
    let retrying = &all.deliveries[1];
    assert_eq!(
        (retrying.webhook_id, retrying.webhook.as_str(), retrying.endpoint.as_str(), retrying.incident_id),
        (1, "oncall", "web", 2)
    );
    assert_eq!((retrying.attempts, retrying.last_error.as_str()), (1, "HTTP 500"));
    assert_eq!((retrying.next_attempt_at_unix_ms, retrying.finished_at_unix_ms), ((T0 + 8_000) as i64, 0));
    assert_eq!(retrying.message_id, "msg_vantage_2_2");
    assert_eq!(retrying.created_at_unix_ms, (T0 + 3_000) as i64);
    let failed = &all.deliveries[2];
    assert_eq!((failed.attempts, failed.last_error.as_str()), (3, "connection refused"));
    assert_eq!((failed.next_attempt_at_unix_ms, failed.finished_at_unix_ms), (0, (T0 + 7_000) as i64));
    assert_eq!(all.deliveries[3].last_error, "", "delivered: no error");

    let pending = api.list_deliveries(list(true, 0)).await.unwrap().into_inner();
    assert_eq!(pending.deliveries.iter().map(|d| d.id).collect::<Vec<_>>(), [4, 2]);
    let one = api.list_deliveries(list(false, 1)).await.unwrap().into_inner();
    assert_eq!((one.deliveries.len(), one.matched), (1, 4));
    assert_eq!(api.list_deliveries(list(false, 1_001)).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_incident_calls_need_an_admin_token() {
    let (api, _) = fixture().await;
    let status = api.list_incidents(GrpcRequest::new(pb::ListIncidentsRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status =
        api.list_deliveries(GrpcRequest::new(pb::ListDeliveriesRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
