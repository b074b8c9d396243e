//! `/api/incidents` (and the agreed state in `/api/endpoints`) over state
//! built by applying the agreement runner's commands.

use http_body_util::BodyExt;
use vantage_core::agreement::{ProbeEvidence, RegionEvidence, State, Verdict};
use vantage_core::result::ErrorKind;

use super::*;
use crate::state::{
    Command, EndpointSpec, IdempotencyKey, ProbeSpec, Request, TokenHash, TransitionRecord, UnixMillis,
};

const T0: u64 = 1_800_000_000_000;

fn apply(state: &mut MeshState, key: &str, command: Command) {
    let request = Request { idempotency_key: IdempotencyKey(key.into()), issued_at: UnixMillis(T0), command };
    let response = state.apply(&request);
    assert!(response.clone().into_result().is_ok(), "{key}: {response:?}");
}

fn down(region: &str, probe_id: u64, kind: ErrorKind) -> RegionEvidence {
    RegionEvidence {
        region: region.into(),
        verdict: Verdict::Down(kind),
        probes: vec![ProbeEvidence {
            probe_id,
            verdict: Verdict::Down(kind),
            message: Some("connect to 10.0.0.7:443 timed out".into()),
            status_code: None,
            total_us: 5_000_000,
            ttfb_us: 0,
            started_at_unix_us: (T0 as i64 + 900) * 1_000,
        }],
    }
}

fn up(region: &str, probe_id: u64) -> RegionEvidence {
    RegionEvidence {
        region: region.into(),
        verdict: Verdict::Up,
        probes: vec![ProbeEvidence {
            probe_id,
            verdict: Verdict::Up,
            message: None,
            status_code: Some(200),
            total_us: 12_500,
            ttfb_us: 9_000,
            started_at_unix_us: (T0 as i64 + 1_900) * 1_000,
        }],
    }
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

/// Endpoints api (1) and "web shop" (2), probes eu-1 (1) and us-1 (2);
/// incidents 1 (api, resolved), 2 (web shop, degraded, open), 3 (api, open).
fn state() -> MeshState {
    let mut state = MeshState::new();
    let token = |n: u8| TokenHash(format!("{n:x}").repeat(64));
    let setup = [
        Command::AddRegion { name: "eu".into() },
        Command::AddRegion { name: "us".into() },
        Command::AddEndpoint(EndpointSpec::new("api", "https://api.internal.example/health")),
        Command::AddEndpoint(EndpointSpec::new("web shop", "https://shop.example.com/")),
        Command::RegisterProbe(ProbeSpec {
            name: "eu-1".into(),
            region: "eu".into(),
            weight: 100,
            token_hash: token(1),
        }),
        Command::RegisterProbe(ProbeSpec {
            name: "us-1".into(),
            region: "us".into(),
            weight: 100,
            token_hash: token(2),
        }),
    ];
    for (n, command) in setup.into_iter().enumerate() {
        apply(&mut state, &format!("setup-{n}"), command);
    }
    let outage = || vec![down("eu", 1, ErrorKind::Timeout), down("us", 2, ErrorKind::Timeout)];
    apply(&mut state, "t1", transition(1, State::Unknown, State::Down, 1_000, outage()));
    apply(
        &mut state,
        "t2",
        transition(
            2,
            State::Unknown,
            State::Degraded,
            1_500,
            vec![down("eu", 1, ErrorKind::Tls), up("us", 2)],
        ),
    );
    apply(&mut state, "t3", transition(1, State::Down, State::Up, 2_000, vec![up("eu", 1), up("us", 2)]));
    apply(&mut state, "t4", transition(1, State::Up, State::Down, 3_000, outage()));
    state
}

/// Status, content type and parsed body of `/api/incidents?query`.
async fn get(state: &MeshState, query: Option<&str>) -> (StatusCode, String, Value) {
    let response = respond(state, query);
    let status = response.status();
    let content_type = response.headers()[http::header::CONTENT_TYPE].to_str().unwrap().to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&body).unwrap())
}

fn ids(body: &Value) -> Vec<u64> {
    body["incidents"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn incidents_come_open_first_then_newest_with_names_and_the_documented_shape() {
    let state = state();
    let (status, content_type, body) = get(&state, None).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(ids(&body), [3, 2, 1]);
    assert_eq!(body["matched"], 3);
    assert_eq!(
        body["incidents"][2],
        json!({
            "id": 1, "endpoint_id": 1, "endpoint": "api", "kind": "outage", "open": false,
            "opened_at_unix_ms": T0 + 1_000, "resolved_at_unix_ms": T0 + 2_000,
            "regions_down": ["eu", "us"],
            "opened_evidence": [
                {"region": "eu", "verdict": "down", "reason": "timeout", "probes": [
                    {"probe": "eu-1", "verdict": "down", "reason": "timeout", "status_code": null,
                     "total_ms": 5000.0, "ttfb_ms": 0.0, "started_at_unix_ms": T0 + 900}]},
                {"region": "us", "verdict": "down", "reason": "timeout", "probes": [
                    {"probe": "us-1", "verdict": "down", "reason": "timeout", "status_code": null,
                     "total_ms": 5000.0, "ttfb_ms": 0.0, "started_at_unix_ms": T0 + 900}]}],
            "resolved_evidence": [
                {"region": "eu", "verdict": "up", "reason": null, "probes": [
                    {"probe": "eu-1", "verdict": "up", "reason": null, "status_code": 200,
                     "total_ms": 12.5, "ttfb_ms": 9.0, "started_at_unix_ms": T0 + 1_900}]},
                {"region": "us", "verdict": "up", "reason": null, "probes": [
                    {"probe": "us-1", "verdict": "up", "reason": null, "status_code": 200,
                     "total_ms": 12.5, "ttfb_ms": 9.0, "started_at_unix_ms": T0 + 1_900}]}],
        })
    );
    assert_eq!(body["incidents"][1]["endpoint"], "web shop");
    assert_eq!(body["incidents"][1]["kind"], "degraded");
    assert_eq!(body["incidents"][1]["regions_down"], json!(["eu"]));
}

#[tokio::test]
async fn the_public_port_shows_no_probe_ids_addresses_urls_or_messages() {
    let text = serde_json::to_string(&get(&state(), None).await.2).unwrap();
    for secret in ["probe_id", "10.0.0.7", "api.internal.example", "timed out", "message"] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
}

#[tokio::test]
async fn filters_by_endpoint_name_or_id_open_and_limit() {
    let state = state();
    for (query, expected) in [
        ("endpoint=web%20shop", vec![2]),
        ("endpoint=web+shop&open=1", vec![2]),
        ("endpoint=1", vec![3, 1]),
        ("endpoint=api&open=0", vec![3, 1]),
        ("open=1", vec![3, 2]),
        ("open", vec![3, 2]),
        ("open=true&limit=1", vec![3]),
        ("", vec![3, 2, 1]),
    ] {
        let (status, _, body) = get(&state, Some(query)).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(ids(&body), expected, "{query}");
    }
    let (_, _, limited) = get(&state, Some("limit=1")).await;
    assert_eq!(limited["matched"], 3, "matched counts before the limit");
}

#[tokio::test]
async fn bad_parameters_are_400_and_unknown_endpoints_404_with_a_json_error() {
    let state = state();
    for (query, status, error) in [
        ("endpoint=nope", StatusCode::NOT_FOUND, "no endpoint named \"nope\""),
        ("endpoint=7", StatusCode::NOT_FOUND, "no endpoint named \"7\""),
        ("opn=1", StatusCode::BAD_REQUEST, "unknown parameter \"opn\"; use endpoint=NAME, open=1 or limit=N"),
        ("open=maybe", StatusCode::BAD_REQUEST, "open=maybe: use open=1 or open=0"),
        ("limit=0", StatusCode::BAD_REQUEST, "limit=0: use a number from 1 to 1000"),
        ("limit=1001", StatusCode::BAD_REQUEST, "limit=1001: use a number from 1 to 1000"),
    ] {
        let (got, content_type, body) = get(&state, Some(query)).await;
        assert_eq!((got, content_type.as_str()), (status, "application/json"), "{query}");
        assert_eq!(body, json!({ "error": error }), "{query}");
    }
}

#[tokio::test]
async fn a_removed_endpoints_incidents_stay_listed_by_id_without_a_name() {
    let mut state = state();
    apply(&mut state, "rm", Command::RemoveEndpoint { id: EndpointId(1) });
    let (_, _, body) = get(&state, Some("endpoint=1")).await;
    assert_eq!(ids(&body), [3, 1]);
    assert_eq!(body["incidents"][0]["endpoint"], Value::Null);
    assert_eq!(body["incidents"][0]["open"], false, "removing the endpoint resolved it");
}

#[test]
fn api_endpoints_carries_each_endpoints_agreed_state_and_since() {
    let mut state = state();
    let mut db = EndpointSpec::new("db", "tcp://db.example.com:5432");
    db.paused = true;
    apply(&mut state, "db", Command::AddEndpoint(db));
    let body = crate::http::api::endpoints_json(&state, &crate::results::MemorySink::new(4));
    let rows: Vec<(&str, &str, Value)> = body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["state"].as_str().unwrap(), e["since_unix_ms"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("api", "down", json!(T0 + 3_000)),
            ("web shop", "degraded", json!(T0 + 1_500)),
            ("db", "paused", Value::Null),
        ]
    );
}
