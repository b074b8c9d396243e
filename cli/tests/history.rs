//! The real `vantagectl` binary's `endpoint history` against the
//! in-process fake AdminService (see `support/mod.rs`): the text when
//! piped and on a terminal (a pty from util-linux's `script`), `--json`
//! as the view's own JSON, the request sent, help, and exit codes.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use serde_json::Value;
use support::{stderr, stdout, vantagectl, FakeAdmin, TOKEN};
use vantage_core::history::{
    DayBar, EndpointHistory, LatencyPoint, Quantiles, RegionHistory, UptimeFigures, Window, WindowUptime,
    DAY_MS, HOUR_MS,
};
use vantage_proto::pb;

/// 2026-12-01T00:00:00Z.
const T: u64 = 1_796_083_200_000;
/// When the views are read: 05:30 that day.
const NOW: u64 = T + 5 * HOUR_MS + 1_800_000;

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

fn figures(counted_ms: u64, downtime_ms: u64) -> UptimeFigures {
    UptimeFigures {
        ratio: Some(1.0 - downtime_ms as f64 / counted_ms as f64),
        counted_ms,
        downtime_ms,
        maintenance_ms: 0,
        flapping_ms: 0,
    }
}

fn point(start: u64, checks: u32, failures: u32, p50: f64) -> LatencyPoint {
    LatencyPoint {
        start_unix_ms: start,
        checks,
        failures,
        total_ms: Some(Quantiles { p50, p95: p50 * 2.0, p99: p50 * 4.0 }),
        ttfb_ms: Some(Quantiles { p50: p50 / 2.0, p95: p50, p99: p50 * 2.0 }),
        phases_mean_ms: BTreeMap::from([("dns".to_string(), 1.5)]),
    }
}

/// Api's last 7 days: 4m40s of outage the day before, eu checked every
/// minute with a slow hour, ap every check failed.
fn week() -> EndpointHistory {
    let window = Window::Week;
    let days = (0..7)
        .map(|n| {
            let start = T - (6 - n) * DAY_MS;
            let (uptime, downtime_ms) = if n == 5 { (Some(0.996_759), 280_000) } else { (Some(1.0), 0) };
            DayBar { start_unix_ms: start, uptime, downtime_ms, maintenance_ms: 0, incidents: vec![] }
        })
        .collect();
    let eu_points: Vec<LatencyPoint> =
        (0..168).map(|n| point(NOW - n * HOUR_MS, 60, 0, if n == 30 { 90.0 } else { 12.0 })).collect();
    EndpointHistory {
        endpoint: "api".into(),
        window,
        resolution: window.resolution(),
        from_unix_ms: NOW - window.len_ms(),
        to_unix_ms: NOW,
        uptime: figures(window.len_ms(), 280_000),
        uptime_windows: Window::ALL
            .into_iter()
            .map(|w| WindowUptime { window: w, uptime: figures(w.len_ms(), 280_000) })
            .collect(),
        days,
        regions: vec![
            RegionHistory {
                region: "ap".into(),
                summary: LatencyPoint {
                    total_ms: None,
                    ttfb_ms: None,
                    ..point(NOW - window.len_ms(), 5, 5, 0.0)
                },
                points: vec![LatencyPoint { total_ms: None, ttfb_ms: None, ..point(NOW, 5, 5, 0.0) }],
            },
            RegionHistory {
                region: "eu".into(),
                summary: point(NOW - window.len_ms(), 10_080, 2, 12.0),
                points: eu_points.into_iter().rev().collect(),
            },
        ],
    }
}

fn fake() -> FakeAdmin {
    let fake = FakeAdmin::start();
    {
        let mut state = fake.state();
        state.endpoints.insert(
            1,
            pb::Endpoint {
                id: 1,
                kind: "https".into(),
                spec: Some(pb::EndpointSpec {
                    name: "api".into(),
                    url: "https://api.example.com/".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        state.histories.insert(1, pb::EndpointHistoryReply::from(&week()));
    }
    fake
}

#[test]
fn t01_piped_the_history_is_a_header_day_bars_and_a_region_table_without_sparklines() {
    let fake = fake();
    let text = ok(&vantagectl(&fake.url(), &["endpoint", "history", "api", "--window", "7d"], &[]));
    assert_eq!(
        text,
        "\
endpoint: api
window:   7d by hour, 2026-11-24T05:30:00Z to 2026-12-01T05:30:00Z
uptime:   99.953% (downtime 4m40s, maintenance 0s, flapping 0s)
windows:  24h 99.675%  7d 99.953%  30d 99.989%  90d 99.996%

days (UTC, 2026-11-25 to 2026-12-01, today last):
  █████▆█
  █ 100%  ▇ ≥99.9%  ▆ ≥99%  ▅ ≥95%  ▄ ≥90%  ▃ ≥75%  ▂ ≥50%  ▁ lower  · no data

REGION  CHECKS  FAILURES  P50     P95     P99     TTFB-P50  TTFB-P99
ap      5       5         -       -       -       -         -
eu      10080   2         12.0ms  24.0ms  48.0ms  6.0ms     24.0ms
"
    );
    let requests = fake.state().history_requests.clone();
    assert_eq!(
        requests,
        [pb::EndpointHistoryRequest { endpoint: "api".into(), window: "7d".into(), consistent: false }]
    );
}

#[test]
fn t02_on_a_terminal_each_region_gets_a_p50_sparkline() {
    let fake = fake();
    // `script` runs vantagectl on a pseudo-terminal (util-linux, essential
    // in Debian), so its stdout is a terminal.
    let command = format!(
        "{} --server {} endpoint history api --window 7d",
        env!("CARGO_BIN_EXE_vantagectl"),
        fake.url()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("VANTAGE_SERVER")
        .env_remove("VANTAGE_TOKEN_FILE")
        .env("VANTAGE_TOKEN", TOKEN)
        .output()
        .expect("util-linux's script runs");
    let text = ok(&output).replace("\r\n", "\n");
    assert!(text.contains("TTFB-P99  P50 TREND\n"), "{text}");
    let eu = text.lines().find(|l| l.starts_with("eu ")).unwrap();
    let trend = eu.rsplit("  ").next().unwrap();
    // 168 hours in columns of 4: one column holds the slow hour.
    assert_eq!(trend.chars().count(), 42, "{eu}");
    assert_eq!(trend.chars().filter(|c| *c == '█').count(), 1, "{trend}");
    assert_eq!(trend.chars().filter(|c| *c == '▁').count(), 41, "{trend}");
    let ap = text.lines().find(|l| l.starts_with("ap ")).unwrap();
    assert!(ap.ends_with(&format!("-{}{}", " ".repeat(9), "·".repeat(42))), "every ap check failed: {ap}");
}

#[test]
fn t03_json_is_the_views_own_json_and_consistent_reads_through_the_leader() {
    let fake = fake();
    let output = vantagectl(
        &fake.url(),
        &["endpoint", "history", "1", "--window", "90d", "--json", "--consistent"],
        &[],
    );
    let text = ok(&output);
    // Byte for byte the view's own JSON (compared as text: serde_json's
    // default float parsing may be off by one ulp).
    assert_eq!(text, format!("{}\n", serde_json::to_string_pretty(&week()).unwrap()));
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["uptime_windows"][3]["window"], "90d");
    assert_eq!(json["regions"][0]["summary"]["total_ms"], Value::Null);
    let state = fake.state();
    assert_eq!(state.history_requests[0].window, "90d");
    assert_eq!(state.history_requests[0].endpoint, "1");
    assert_eq!(state.consistent_reads, 1);
}

#[test]
fn t04_an_unknown_endpoint_fails_with_the_coordinators_message_and_bad_windows_are_usage_errors() {
    let fake = fake();
    let output = vantagectl(&fake.url(), &["endpoint", "history", "nope"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: no endpoint is named or numbered \"nope\"\n");
    assert_eq!(stdout(&output), "");
    let output = vantagectl(&fake.url(), &["endpoint", "history", "api", "--window", "1y"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("[possible values: 24h, 7d, 30d, 90d]"), "{}", stderr(&output));
    assert!(fake.state().history_requests.len() == 1, "a usage error sends nothing");
}

#[test]
fn t05_help_explains_the_figures_with_examples() {
    let fake = fake();
    let help = ok(&vantagectl(&fake.url(), &["endpoint", "history", "--help"], &[]));
    for needle in [
        "--window <WINDOW>",
        "[default: 24h]",
        "rounded down to 3 decimals",
        "█ 100%  ▇ ≥99.9%",
        "never when the output is piped",
        "vantagectl endpoint history api --window 90d",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
    let help = ok(&vantagectl(&fake.url(), &["endpoint", "--help"], &[]));
    assert!(help.contains("history"), "{help}");
}
