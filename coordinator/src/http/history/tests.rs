//! `/api/endpoints/NAME/history` over a stand-in for the node's read: the
//! name and window it is asked for, the JSON, the status codes, the cache
//! headers, and the public port's rule.

use std::cell::RefCell;
use std::collections::BTreeMap;

use http_body_util::BodyExt;
use serde_json::Value;
use vantage_core::history::{HistoryInputs, IncidentSpan, Rollup, Span, HOUR_MS};
use vantage_core::result::CheckResult;

use super::*;

/// 2026-12-01T05:30:00Z.
const NOW: u64 = 1_796_083_200_000 + 5 * HOUR_MS + 1_800_000;

fn result(ok: bool, total_ms: u64) -> CheckResult {
    let mut r = CheckResult {
        url: "https://api.internal.example/health".into(),
        kind: vantage_core::spec::CheckKind::Https,
        ok,
        error: None,
        status_code: Some(200),
        http_version: None,
        remote_addr: Some("10.0.0.7:443".parse().unwrap()),
        phases_ms: Default::default(),
        tls: None,
        body_bytes: 0,
        started_at: std::time::UNIX_EPOCH,
        hops: Vec::new(),
        dns_answers: Vec::new(),
        attempts: 1,
    };
    r.phases_ms.dns = std::time::Duration::from_millis(1);
    r.phases_ms.ttfb = std::time::Duration::from_millis(total_ms / 2);
    r.phases_ms.total = std::time::Duration::from_millis(total_ms);
    r
}

/// A real view: created a week ago, a 10-minute outage yesterday, checks
/// from eu in the last two hours, one failed.
fn view(window: Window) -> EndpointHistory {
    let mut hour = Rollup::default();
    for total in [20, 25, 30] {
        hour.record(&result(true, total));
    }
    hour.record(&result(false, 5_000));
    let this_hour = u32::try_from(NOW / HOUR_MS).unwrap();
    let period = |g: vantage_core::history::Granularity| g.period_of(UnixMillis(NOW));
    let rollups = BTreeMap::from([(
        "eu".to_string(),
        BTreeMap::from([
            (this_hour - 1, hour.clone()),
            (this_hour, hour.clone()),
            (period(window.resolution()), hour),
        ]),
    )]);
    let yesterday = NOW - 24 * HOUR_MS;
    HistoryInputs {
        endpoint: "web shop".into(),
        monitored_since: UnixMillis(NOW - 7 * 24 * HOUR_MS),
        incidents: vec![IncidentSpan {
            id: 4,
            kind: "outage".into(),
            opened_at: UnixMillis(yesterday),
            resolved_at: Some(UnixMillis(yesterday + 600_000)),
        }],
        maintenance: vec![Span::new(UnixMillis(NOW - 3 * HOUR_MS), UnixMillis(NOW - 2 * HOUR_MS))],
        rollups,
    }
    .build(window, UnixMillis(NOW))
}

/// Status, headers and parsed body of a request, and what the node was
/// asked (none when it was not).
async fn get(
    path: &str,
    query: Option<&str>,
    answer: Result<(), HistoryError>,
) -> (StatusCode, String, String, Value, Option<(String, Window)>) {
    let asked = RefCell::new(None);
    let response = respond(path, query, |name, window| {
        *asked.borrow_mut() = Some((name.to_string(), window));
        answer.clone().map(|()| view(window))
    });
    let status = response.status();
    let header = |name| response.headers()[name].to_str().unwrap().to_string();
    let (content_type, cache) = (header(http::header::CONTENT_TYPE), header(http::header::CACHE_CONTROL));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, cache, serde_json::from_slice(&body).unwrap(), asked.into_inner())
}

#[tokio::test]
async fn a_history_is_the_core_views_json_for_the_decoded_name_and_window() {
    let (status, content_type, cache, body, asked) =
        get("/api/endpoints/web%20shop/history", Some("window=7d"), Ok(())).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(cache, "max-age=30");
    assert_eq!(asked, Some(("web shop".to_string(), Window::Week)));
    assert_eq!(body, serde_json::to_value(view(Window::Week)).unwrap());
    assert_eq!(body["regions"][0]["summary"]["checks"], 8, "{body}");
    assert_eq!(body["days"].as_array().unwrap().len(), 7);

    let (_, _, _, body, asked) = get("/api/endpoints/web%20shop/history", None, Ok(())).await;
    assert_eq!(asked.unwrap().1, Window::Day, "the default window");
    assert_eq!((body["window"].as_str(), body["resolution"].as_str()), (Some("24h"), Some("hour")));
    for w in Window::ALL {
        let (status, _, _, body, _) =
            get("/api/endpoints/api/history", Some(&format!("window={w}")), Ok(())).await;
        assert_eq!((status, body["window"].as_str()), (StatusCode::OK, Some(w.as_str())));
    }
    // In a path `+` is a plus, not a space.
    let (_, _, _, _, asked) = get("/api/endpoints/a+b%2Fc/history", None, Ok(())).await;
    assert_eq!(asked.unwrap().0, "a+b/c");
}

#[tokio::test]
async fn bad_windows_parameters_and_names_are_400_naming_the_fix_without_a_read() {
    let cases = [
        (
            "/api/endpoints/api/history",
            "window=1y",
            "window=1y: unknown window \"1y\": expected one of 24h, 7d, 30d, 90d",
        ),
        (
            "/api/endpoints/api/history",
            "window=",
            "window=: unknown window \"\": expected one of 24h, 7d, 30d, 90d",
        ),
        (
            "/api/endpoints/api/history",
            "windows=7d",
            "unknown parameter \"windows\"; use window=24h, 7d, 30d or 90d",
        ),
        ("/api/endpoints//history", "", "no endpoint named in the path; use /api/endpoints/NAME/history"),
        ("/api/endpoints/%FF/history", "", "the endpoint's name is not UTF-8"),
    ];
    for (path, query, error) in cases {
        let (status, _, cache, body, asked) = get(path, Some(query), Ok(())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{query}");
        assert_eq!(body, json!({ "error": error }));
        assert_eq!(cache, "no-cache");
        assert_eq!(asked, None, "{path}?{query} was not read");
    }
}

#[tokio::test]
async fn unknown_endpoints_are_404_and_a_storage_failure_is_500_without_its_details() {
    let unknown = Err(HistoryError::UnknownEndpoint("nope".into()));
    let (status, _, cache, body, _) = get("/api/endpoints/nope/history", None, unknown).await;
    assert_eq!((status, cache.as_str()), (StatusCode::NOT_FOUND, "no-cache"));
    assert_eq!(body, json!({ "error": "no endpoint is named \"nope\"" }));

    let long = format!("/api/endpoints/{}/history", "x".repeat(5_000));
    let (status, _, _, body, asked) = get(&long, None, Ok(())).await;
    assert_eq!((status, asked), (StatusCode::NOT_FOUND, None), "no name is that long");
    assert!(body["error"].as_str().unwrap().len() < 200, "not echoed whole");

    let broken = Err(HistoryError::Storage("/var/lib/vantage/history.redb: checksum mismatch".into()));
    let (status, _, cache, body, _) = get("/api/endpoints/api/history", None, broken).await;
    assert_eq!((status, cache.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "no-cache"));
    assert_eq!(body, json!({ "error": "this node cannot read its history now; ask another node" }));
}

#[test]
fn history_paths_are_recognised_and_nothing_else() {
    for path in ["/api/endpoints/api/history", "/api/endpoints/web%20shop/history", "/api/endpoints//history"]
    {
        assert!(is_history_path(path), "{path}");
    }
    for path in
        ["/api/endpoints", "/api/endpoints/", "/api/endpoints/history", "/api/endpoints/api", "/api/history"]
    {
        assert!(!is_history_path(path), "{path}");
    }
}

/// The public port's rule: nothing about probes, addresses, URLs or
/// failure messages, whatever the view grows.
#[test]
fn the_body_carries_no_probe_address_url_or_message() {
    fn keys(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    into.push(k.clone());
                    keys(v, into);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, into)),
            _ => {}
        }
    }
    for w in Window::ALL {
        let body = serde_json::to_value(view(w)).unwrap();
        let text = body.to_string();
        for secret in ["10.0.0.7", "api.internal.example", "https://"] {
            assert!(!text.contains(secret), "{secret} in {w}");
        }
        let mut found = Vec::new();
        keys(&body, &mut found);
        for key in found {
            assert!(
                !["probe", "addr", "url", "message", "error"].iter().any(|bad| key.contains(bad)),
                "{key} in the {w} view"
            );
        }
    }
}
