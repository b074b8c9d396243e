//! The real `vantagectl` binary's `incident list|show`, `endpoint status`
//! and `alert list` against the in-process fake AdminService (see
//! `support/mod.rs`): tables, `--json` shapes, the filters sent, help and
//! exit codes.

mod support;

use serde_json::{json, Value};
use support::{stderr, stdout, vantagectl, FakeAdmin};
use vantage_proto::pb;

/// 2026-12-01T02:00:00Z.
const T: i64 = 1_796_090_400_000;

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

fn endpoint(id: u64, name: &str) -> pb::Endpoint {
    pb::Endpoint {
        id,
        kind: "https".into(),
        spec: Some(pb::EndpointSpec {
            name: name.into(),
            url: format!("https://{name}.example.com/"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn probe(id: u64, name: &str, verdict: &str, reason: &str) -> pb::ProbeEvidence {
    pb::ProbeEvidence {
        probe_id: id,
        probe: name.into(),
        verdict: verdict.into(),
        reason: reason.into(),
        message: if verdict == "down" { "no answer within 5s".into() } else { String::new() },
        status_code: (verdict == "up").then_some(200),
        total_us: 5_000_400,
        ttfb_us: 4_000,
        started_at_unix_us: (T - 4_000) * 1_000,
    }
}

fn region(name: &str, probes: Vec<pb::ProbeEvidence>) -> pb::RegionEvidence {
    let first = probes.first().cloned().unwrap_or_else(|| pb::ProbeEvidence {
        verdict: "unknown".into(),
        reason: "no_probe".into(),
        ..Default::default()
    });
    pb::RegionEvidence { region: name.into(), verdict: first.verdict, reason: first.reason, probes }
}

/// Api's outage 7 (resolved after 12m30s) and web's degraded period 5
/// (resolved), both with evidence.
fn incidents() -> Vec<pb::Incident> {
    let opened = vec![
        region("eu", vec![probe(1, "eu-1", "down", "timeout")]),
        region("us", vec![probe(2, "", "down", "connect_refused")]),
        region("ap", vec![]),
    ];
    let resolved = vec![region("eu", vec![probe(1, "eu-1", "up", "")])];
    vec![
        pb::Incident {
            id: 7,
            endpoint_id: 1,
            endpoint: "api".into(),
            kind: "outage".into(),
            opened_at_unix_ms: T,
            resolved_at_unix_ms: T + 750_000,
            regions_down: vec!["eu".into(), "us".into()],
            opened_evidence: opened,
            resolved_evidence: resolved,
        },
        pb::Incident {
            id: 5,
            endpoint_id: 2,
            endpoint: "web".into(),
            kind: "degraded".into(),
            opened_at_unix_ms: T - 3_600_000,
            resolved_at_unix_ms: T - 3_540_000,
            regions_down: vec!["eu".into()],
            ..Default::default()
        },
    ]
}

fn fake() -> FakeAdmin {
    let fake = FakeAdmin::start();
    {
        let mut state = fake.state();
        state.endpoints.insert(1, endpoint(1, "api"));
        state.endpoints.insert(2, endpoint(2, "web"));
        state.incidents = incidents();
    }
    fake
}

#[test]
fn t01_incident_list_as_a_table_and_json_with_the_filters_sent() {
    let fake = fake();
    let table = ok(&vantagectl(&fake.url(), &["incident", "list"], &[]));
    assert_eq!(
        table,
        "ID  ENDPOINT  KIND      STATUS    OPENED                RESOLVED              DURATION  REGIONS DOWN\n\
         7   api       outage    resolved  2026-12-01T02:00:00Z  2026-12-01T02:12:30Z  12m30s    eu,us\n\
         5   web       degraded  resolved  2026-12-01T01:00:00Z  2026-12-01T01:01:00Z  1m        eu\n"
    );
    let json = json_of(&vantagectl(&fake.url(), &["incident", "list", "--json"], &[]));
    assert_eq!(
        json[0],
        json!({"id": 7, "endpoint_id": 1, "endpoint": "api", "kind": "outage", "open": false,
               "opened_at_unix_ms": T, "resolved_at_unix_ms": T + 750_000, "regions_down": ["eu", "us"]})
    );
    assert_eq!(json.as_array().unwrap().len(), 2);

    let args = ["incident", "ls", "--endpoint", "api", "--open", "--since", "2026-12-01T00:00:00Z"];
    assert_eq!(ok(&vantagectl(&fake.url(), &args, &[])), "no open incidents\n");
    let sent = fake.state().incident_requests.last().cloned().unwrap();
    assert_eq!(
        (sent.endpoint.as_str(), sent.open_only, sent.since_unix_ms, sent.limit, sent.consistent),
        ("api", true, T - 7_200_000, 100, false)
    );
    ok(&vantagectl(&fake.url(), &["--consistent", "incident", "list", "--since", "1h"], &[]));
    let sent = fake.state().incident_requests.last().cloned().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((sent.since_unix_ms - (now - 3_600_000)).abs() < 60_000, "1h ago: {}", sent.since_unix_ms);
    assert!(sent.consistent);

    let limited = ok(&vantagectl(&fake.url(), &["incident", "list", "--limit", "1"], &[]));
    assert!(
        limited.ends_with(
            "showing 1 of 2 incidents (raise --limit, or narrow with --endpoint, --open, --since)\n"
        ),
        "{limited}"
    );
    let limited = json_of(&vantagectl(&fake.url(), &["incident", "list", "--limit", "1", "--json"], &[]));
    assert_eq!(limited.as_array().unwrap().len(), 1, "--json prints only the rows");

    let unknown = vantagectl(&fake.url(), &["incident", "list", "--endpoint", "nope"], &[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).starts_with("error: no endpoint"), "{}", stderr(&unknown));
}

#[test]
fn t02_incident_show_prints_the_evidence_as_a_table_and_json() {
    let fake = fake();
    let text = ok(&vantagectl(&fake.url(), &["incident", "show", "7"], &[]));
    assert_eq!(
        text,
        "id:           7\n\
         endpoint:     api (id 1)\n\
         kind:         outage\n\
         status:       resolved after 12m30s\n\
         opened:       2026-12-01T02:00:00Z\n\
         resolved:     2026-12-01T02:12:30Z\n\
         regions down: eu,us\n\
         \n\
         when it opened: eu down (timeout), us down (connect_refused), ap unknown (no_probe)\n\
         REGION  VERDICT                 PROBE  STATUS  MS      STARTED               MESSAGE\n\
         eu      down (timeout)          eu-1   -       5000.4  2026-12-01T01:59:56Z  no answer within 5s\n\
         us      down (connect_refused)  #2     -       5000.4  2026-12-01T01:59:56Z  no answer within 5s\n\
         ap      unknown (no_probe)      -      -       -       -                     -\n\
         \n\
         when it resolved: eu up\n\
         REGION  VERDICT  PROBE  STATUS  MS      STARTED               MESSAGE\n\
         eu      up       eu-1   200     5000.4  2026-12-01T01:59:56Z  -\n"
    );
    let json = json_of(&vantagectl(&fake.url(), &["incident", "show", "7", "--json"], &[]));
    assert_eq!(json["id"], 7);
    assert_eq!(json["regions_down"], json!(["eu", "us"]));
    assert_eq!(
        json["opened_evidence"][1],
        json!({"region": "us", "verdict": "down", "reason": "connect_refused", "probes": [
            {"probe_id": 2, "probe": null, "verdict": "down", "reason": "connect_refused",
             "message": "no answer within 5s", "status_code": null, "total_us": 5_000_400, "ttfb_us": 4_000,
             "started_at_unix_us": (T - 4_000) * 1_000}]})
    );
    assert_eq!(
        json["opened_evidence"][2],
        json!({"region": "ap", "verdict": "unknown", "reason": "no_probe", "probes": []})
    );
    assert_eq!(json["resolved_evidence"][0]["reason"], Value::Null, "up has no reason");

    let missing = vantagectl(&fake.url(), &["incident", "show", "99"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("error: no incident has id 99"), "{}", stderr(&missing));
    let usage = vantagectl(&fake.url(), &["incident", "show", "api"], &[]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

fn status(id: u64, name: &str, state: &str, since: i64) -> pb::EndpointAgreement {
    pb::EndpointAgreement {
        endpoint_id: id,
        endpoint: name.into(),
        state: state.into(),
        since_unix_ms: since,
        rules: Some(pb::AgreementRules {
            regions: 3,
            quorum: 2,
            quorum_set: false,
            recovery_rounds: 2,
            min_failure_ms: 0,
        }),
        ..Default::default()
    }
}

#[test]
fn t03_endpoint_status_for_one_endpoint_and_for_all() {
    let fake = fake();
    let mut api = status(1, "api", "down", T);
    api.regions = incidents()[0].opened_evidence.clone();
    api.open_incidents = vec![pb::Incident {
        resolved_at_unix_ms: 0,
        opened_evidence: vec![],
        resolved_evidence: vec![],
        ..incidents()[0].clone()
    }];
    fake.state().statuses = vec![api, status(2, "web", "unknown", 0)];

    let text = ok(&vantagectl(&fake.url(), &["endpoint", "status", "api"], &[]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "endpoint:       api (id 1)");
    assert!(lines[1].starts_with("state:          down since 2026-12-01T02:00:00Z ("), "{text}");
    assert_eq!(
        lines[2],
        "quorum:         2 of 3 region(s) down for an outage (default: a majority, at least 2)"
    );
    assert_eq!(lines[3], "recovery:       after 2 round(s) below the quorum");
    assert_eq!(lines[4], "min failure:    none: opens at once");
    assert_eq!(lines[5], "open incidents: #7 outage since 2026-12-01T02:00:00Z");
    assert_eq!(
        lines[7],
        "verdicts at the last change (2026-12-01T02:00:00Z): eu down (timeout), us down (connect_refused), ap unknown (no_probe)"
    );
    assert!(lines[8].starts_with("REGION  VERDICT"), "{text}");
    assert_eq!(lines.len(), 12, "{text}");

    let json = json_of(&vantagectl(&fake.url(), &["endpoint", "status", "api", "--json"], &[]));
    assert_eq!(json["endpoint"], "api");
    assert_eq!((json["state"].clone(), json["since_unix_ms"].clone()), (json!("down"), json!(T)));
    assert_eq!(
        json["rules"],
        json!({"regions": 3, "quorum": 2, "quorum_set": false, "recovery_rounds": 2, "min_failure_ms": 0})
    );
    assert_eq!(json["regions"][0]["probes"][0]["probe"], "eu-1");
    assert_eq!(json["open_incidents"][0]["open"], true);
    assert_eq!(json["open_incidents"][0]["id"], 7);

    // FOR (how long since) depends on the clock: compare the other cells.
    let table = ok(&vantagectl(&fake.url(), &["endpoint", "status"], &[]));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ID", "ENDPOINT", "STATE", "SINCE", "FOR", "QUORUM", "DOWN", "IN", "OPEN"]);
    assert_eq!(rows[1][..4], ["1", "api", "down", "2026-12-01T02:00:00Z"], "{table}");
    assert_eq!(rows[1][5..], ["2/3", "eu,us", "#7", "outage"], "{table}");
    assert_eq!(rows[2], ["2", "web", "unknown", "-", "-", "2/3", "-", "-"], "{table}");
    let all = json_of(&vantagectl(&fake.url(), &["--json", "endpoint", "status"], &[]));
    assert_eq!(all.as_array().unwrap().len(), 2, "without NAME: an array");
    assert_eq!(all[1]["since_unix_ms"], Value::Null, "never decided");

    let unknown = vantagectl(&fake.url(), &["endpoint", "status", "nope"], &[]);
    assert_eq!(unknown.status.code(), Some(1));
}

fn delivery(id: u64, status: &str, attempts: u32, error: &str) -> pb::Delivery {
    pb::Delivery {
        id,
        message_id: format!("msg_vantage_7_{id}"),
        webhook_id: 1,
        webhook: "oncall".into(),
        endpoint_id: 1,
        endpoint: "api".into(),
        incident_id: 7,
        event: "outage_opened".into(),
        created_at_unix_ms: T,
        attempts,
        last_error: error.into(),
        status: status.into(),
        next_attempt_at_unix_ms: if status == "pending" { T + 8_000 } else { 0 },
        finished_at_unix_ms: if status == "pending" { 0 } else { T + 1_000 },
    }
}

#[test]
fn t04_alert_list_shows_attempts_and_the_last_error() {
    let fake = fake();
    fake.state().deliveries = vec![
        delivery(3, "pending", 2, "HTTP 500"),
        delivery(2, "failed", 12, "timed out after 10s"),
        delivery(1, "delivered", 1, ""),
    ];
    let table = ok(&vantagectl(&fake.url(), &["alert", "list"], &[]));
    assert_eq!(
        table,
        "ID  WEBHOOK  ENDPOINT  EVENT          INCIDENT  STATUS     ATTEMPTS  CREATED               NEXT/DONE AT          LAST ERROR\n\
         3   oncall   api       outage_opened  7         pending    2         2026-12-01T02:00:00Z  2026-12-01T02:00:08Z  HTTP 500\n\
         2   oncall   api       outage_opened  7         failed     12        2026-12-01T02:00:00Z  2026-12-01T02:00:01Z  timed out after 10s\n\
         1   oncall   api       outage_opened  7         delivered  1         2026-12-01T02:00:00Z  2026-12-01T02:00:01Z  -\n"
    );
    let json = json_of(&vantagectl(&fake.url(), &["alert", "ls", "--pending", "--json"], &[]));
    assert_eq!(
        json,
        json!([{"id": 3, "message_id": "msg_vantage_7_3", "webhook_id": 1, "webhook": "oncall",
                "endpoint_id": 1, "endpoint": "api", "incident_id": 7, "event": "outage_opened",
                "status": "pending", "attempts": 2, "last_error": "HTTP 500", "created_at_unix_ms": T,
                "next_attempt_at_unix_ms": T + 8_000, "finished_at_unix_ms": null}])
    );
    let sent = fake.state().delivery_requests.last().cloned().unwrap();
    assert_eq!((sent.pending_only, sent.limit), (true, 100));
    let limited = ok(&vantagectl(&fake.url(), &["alert", "list", "--limit", "2"], &[]));
    assert!(limited.ends_with("showing 2 of 3 deliveries (raise --limit, or only --pending)\n"), "{limited}");
    fake.state().deliveries.clear();
    assert_eq!(
        ok(&vantagectl(&fake.url(), &["alert", "list", "--pending"], &[])),
        "no pending alert deliveries\n"
    );
}

#[test]
fn t05_help_teaches_and_bad_values_exit_2_without_a_call() {
    let fake = fake();
    let help = ok(&vantagectl(&fake.url(), &["incident", "--help"], &[]));
    assert!(help.contains("outage    a quorum of the endpoint's regions sees it down"), "{help}");
    assert!(help.contains("vantagectl incident list --endpoint api --since 24h"), "{help}");
    let help = ok(&vantagectl(&fake.url(), &["incident", "list", "--help"], &[]));
    assert!(help.contains("--since <DUR|TIME>"), "{help}");
    let help = ok(&vantagectl(&fake.url(), &["endpoint", "status", "--help"], &[]));
    assert!(help.contains("unknown (too few regions with fresh results"), "{help}");
    let help = ok(&vantagectl(&fake.url(), &["alert", "--help"], &[]));
    assert!(help.contains("`webhook-id` header"), "{help}");

    for args in [
        &["incident", "list", "--since", "yesterday"][..],
        &["incident", "list", "--limit", "0"],
        &["alert", "list", "--limit", "5000"],
    ] {
        let output = vantagectl(&fake.url(), args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
    let since = vantagectl(&fake.url(), &["incident", "list", "--since", "yesterday"], &[]);
    assert!(
        stderr(&since).contains("is neither a duration (24h, 30m) nor an RFC 3339 time"),
        "{}",
        stderr(&since)
    );
    assert!(fake.state().incident_requests.is_empty() && fake.state().delivery_requests.is_empty());
}
