use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::result::CheckResult;
use crate::spec::CheckKind;

const NOW: UnixMillis = UnixMillis(1_796_000_000_000 + 5 * HOUR_MS); // a Monday, 05:53 UTC

fn result(ok: bool, total_ms: u64, ttfb_ms: u64) -> CheckResult {
    let mut r = CheckResult {
        url: "http://127.0.0.1/".into(),
        kind: CheckKind::Http,
        ok,
        error: None,
        status_code: Some(200),
        http_version: None,
        remote_addr: None,
        phases_ms: Default::default(),
        tls: None,
        body_bytes: 0,
        started_at: UNIX_EPOCH,
        hops: Vec::new(),
        dns_answers: Vec::new(),
        attempts: 1,
    };
    r.phases_ms.total = Duration::from_millis(total_ms);
    r.phases_ms.ttfb = Duration::from_millis(ttfb_ms);
    r.phases_ms.dns = Duration::from_millis(1);
    r
}

#[test]
fn windows_parse_by_name_and_cover_their_length_in_periods() {
    for w in Window::ALL {
        assert_eq!(w.as_str().parse::<Window>(), Ok(w));
        let periods = w.periods(NOW);
        let n = u64::from(periods.end() - periods.start() + 1);
        assert_eq!(n * w.resolution().len_ms(), w.len_ms(), "{w}");
    }
    assert_eq!(
        "1y".parse::<Window>().unwrap_err().to_string(),
        "unknown window \"1y\": expected one of 24h, 7d, 30d, 90d"
    );
    assert!(Granularity::Hour.retained_periods() as u64 * HOUR_MS >= 7 * DAY_MS + HOUR_MS);
    assert!(Granularity::Day.retained_periods() > 90);
}

#[test]
fn a_rollup_records_latency_of_successes_and_counts_failures() {
    let mut r = Rollup::default();
    r.record(&result(true, 100, 80));
    r.record(&result(true, 200, 150));
    r.record(&result(false, 10_000, 0));
    assert_eq!((r.checks, r.failures, r.successes()), (3, 1, 2));
    assert_eq!(r.total.count(), 2);
    assert_eq!(r.total.max_micros(), Some(200_000));
    assert_eq!(r.phase_means_micros()[0], 1_000);
    assert_eq!(r.phase_means_micros()[3], 115_000);
    let bytes = r.encode();
    assert_eq!(Rollup::decode(&bytes), Some(r.clone()));
    assert_eq!(Rollup::decode(&bytes[..bytes.len() - 1]), None);
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(Rollup::decode(&extra), None, "trailing bytes are damage");
}

#[test]
fn ninety_day_uptime_with_one_known_incident_is_the_hand_computed_figure() {
    let created = UnixMillis(NOW.0 - 100 * DAY_MS);
    let opened = UnixMillis(NOW.0 - 10 * DAY_MS);
    let inputs = HistoryInputs {
        endpoint: "api".into(),
        monitored_since: created,
        incidents: vec![
            IncidentSpan {
                id: 7,
                kind: "outage".into(),
                opened_at: opened,
                resolved_at: Some(UnixMillis(opened.0 + 45 * 60_000)),
            },
            IncidentSpan {
                id: 8,
                kind: "degraded".into(),
                opened_at: UnixMillis(NOW.0 - DAY_MS),
                resolved_at: None,
            },
        ],
        maintenance: vec![],
        rollups: BTreeMap::new(),
    };
    let h = inputs.build(Window::Quarter, NOW);
    let expected = 1.0 - (45.0 * 60.0) / (90.0 * 86_400.0);
    assert!((h.uptime.ratio.unwrap() - expected).abs() < 1e-12, "{:?}", h.uptime);
    assert_eq!(h.uptime.downtime_ms, 45 * 60_000);
    assert_eq!(h.days.len(), 90);
    let bar = h.days.iter().find(|d| d.incidents.contains(&7)).expect("the incident's day");
    assert!(bar.downtime_ms > 0 && bar.uptime.unwrap() < 1.0);
    assert_eq!(h.days.iter().filter(|d| d.downtime_ms > 0).map(|d| d.downtime_ms).sum::<u64>(), 45 * 60_000);
    let day = &h.uptime_windows[0];
    assert_eq!(day.window, Window::Day);
    assert_eq!(day.uptime.ratio, Some(1.0), "degraded time is not downtime");
    // Before the endpoint existed nothing counts.
    let young = HistoryInputs { monitored_since: UnixMillis(NOW.0 - 2 * DAY_MS), ..inputs.clone() };
    let h = young.build(Window::Quarter, NOW);
    assert_eq!(h.days.iter().filter(|d| d.uptime.is_some()).count(), 3);
    assert_eq!(h.uptime.counted_ms, 2 * DAY_MS);
}

#[test]
fn latency_points_come_from_the_windows_periods_and_merge_into_a_summary() {
    let now_hour = Granularity::Hour.period_of(NOW);
    let mut eu = BTreeMap::new();
    for (age, total) in [(0u32, 100), (1, 200), (30, 300)] {
        let mut r = Rollup::default();
        r.record(&result(true, total, total / 2));
        eu.insert(now_hour - age, r);
    }
    let inputs = HistoryInputs {
        endpoint: "api".into(),
        rollups: BTreeMap::from([("eu".to_string(), eu)]),
        ..Default::default()
    };
    let day = inputs.build(Window::Day, NOW);
    assert_eq!(day.resolution, Granularity::Hour);
    let eu = &day.regions[0];
    assert_eq!(eu.points.len(), 2, "the point 30 hours ago is outside 24h");
    assert_eq!(eu.summary.checks, 2);
    assert!(eu.points[0].start_unix_ms < eu.points[1].start_unix_ms);
    let p99 = eu.summary.total_ms.unwrap().p99;
    assert!((p99 - 200.0).abs() <= 200.0 * histogram::RELATIVE_ERROR, "{p99}");
    assert_eq!(eu.points[1].phases_mean_ms["dns"], 1.0);
    let json = serde_json::to_value(&day).unwrap();
    assert_eq!(json["window"], "24h");
    assert_eq!(json["resolution"], "hour");
    assert_eq!(inputs.build(Window::Week, NOW).regions[0].points.len(), 3);
}
