//! Tables for verdicts and the state machine, and the property that no
//! outage opens without a quorum of Down regions.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::result::{CheckError, CheckResult};
use crate::spec::CheckKind;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn result(ok: bool, started: SystemTime) -> CheckResult {
    CheckResult {
        url: "https://x/".into(),
        kind: CheckKind::Https,
        ok,
        error: (!ok).then(|| CheckError::new(ErrorKind::ConnectRefused, "connection refused")),
        status_code: ok.then_some(200),
        http_version: None,
        remote_addr: None,
        phases_ms: Default::default(),
        tls: None,
        body_bytes: 0,
        started_at: started,
        hops: Vec::new(),
        dns_answers: Vec::new(),
        attempts: 1,
    }
}

fn region(name: &str, verdict: Verdict) -> RegionEvidence {
    RegionEvidence { region: name.into(), verdict, probes: Vec::new() }
}

/// Regions from a pattern: `U` up, `D` down, `?` unknown.
fn regions(pattern: &str) -> Vec<RegionEvidence> {
    pattern
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let verdict = match c {
                'U' => Verdict::Up,
                'D' => Verdict::Down(ErrorKind::Timeout),
                _ => Verdict::Unknown(UnknownReason::Stale),
            };
            region(&format!("r{i}"), verdict)
        })
        .collect()
}

#[test]
fn quorum_is_a_majority_and_at_least_two_where_there_are_two() {
    for (n, requested, want) in [
        (1, None, 1),
        (2, None, 2),
        (3, None, 2),
        (4, None, 3),
        (5, None, 3),
        (5, Some(5), 5),
        (3, Some(9), 3),
        (3, Some(0), 1),
    ] {
        assert_eq!(quorum(n, requested), want, "{n} regions, requested {requested:?}");
    }
}

#[test]
fn a_region_is_unknown_without_a_fresh_trustworthy_result() {
    let now = t(100);
    let fresh = Duration::from_secs(30);
    let up = result(true, t(90));
    let down = result(false, t(95));
    let old = result(true, t(10));
    let report = |probe_id, connected, probe_unhealthy, latest| ProbeReport {
        probe_id,
        connected,
        probe_unhealthy,
        latest,
    };
    let cases: Vec<(&str, Vec<ProbeReport<'_>>, Verdict)> = vec![
        ("no probe", vec![], Verdict::Unknown(UnknownReason::NoProbe)),
        ("fresh pass", vec![report(1, true, false, Some(&up))], Verdict::Up),
        (
            "fresh failure",
            vec![report(1, true, false, Some(&down))],
            Verdict::Down(ErrorKind::ConnectRefused),
        ),
        ("stale", vec![report(1, true, false, Some(&old))], Verdict::Unknown(UnknownReason::Stale)),
        ("never reported", vec![report(1, true, false, None)], Verdict::Unknown(UnknownReason::Stale)),
        (
            "disconnected",
            vec![report(1, false, false, Some(&down))],
            Verdict::Unknown(UnknownReason::Disconnected),
        ),
        (
            "canary failing",
            vec![report(1, true, true, Some(&down))],
            Verdict::Unknown(UnknownReason::ProbeUnhealthy),
        ),
        (
            "one of two up",
            vec![report(1, true, false, Some(&down)), report(2, true, false, Some(&up))],
            Verdict::Up,
        ),
        (
            "down and unknown",
            vec![report(1, true, false, Some(&down)), report(2, false, false, None)],
            Verdict::Down(ErrorKind::ConnectRefused),
        ),
    ];
    for (what, probes, want) in cases {
        let evidence = region_verdict("eu", &probes, now, fresh);
        assert_eq!(evidence.verdict, want, "{what}");
        assert_eq!(evidence.probes.len(), probes.len(), "{what}: every probe's evidence is kept");
    }
    let evidence = region_verdict("eu", &[report(7, true, false, Some(&down))], now, fresh);
    let probe = &evidence.probes[0];
    assert_eq!((probe.probe_id, probe.message.as_deref()), (7, Some("connection refused")));
    assert_eq!(probe.started_at_unix_us, crate::time::unix_micros(t(95)));
}

#[test]
fn classification_table_for_one_to_five_regions() {
    let cases = [
        ("U", State::Up),
        ("D", State::Down),
        ("?", State::Unknown),
        ("UU", State::Up),
        ("UD", State::Degraded),
        ("DD", State::Down),
        ("D?", State::Unknown),
        ("UUU", State::Up),
        ("UUD", State::Degraded),
        ("UDD", State::Down),
        ("U??", State::Unknown),
        ("D??", State::Unknown),
        ("UD?", State::Degraded),
        ("DD?", State::Down),
        ("UUUD", State::Degraded),
        ("UUDD", State::Degraded),
        ("UDDD", State::Down),
        ("UUUDD", State::Degraded),
        ("UUDDD", State::Down),
        ("??DDD", State::Down),
        ("UU???", State::Unknown),
    ];
    for (pattern, want) in cases {
        let (state, _) = classify(&regions(pattern), quorum(pattern.len(), None));
        assert_eq!(state, want, "{pattern}");
    }
    // A quorum override: one region of three is enough, or all three.
    assert_eq!(classify(&regions("UUD"), 1).0, State::Down);
    assert_eq!(classify(&regions("UDD"), 3).0, State::Degraded);
}

/// Runs `patterns` one round each (10 s apart) and returns the states.
fn run(tracker: &mut Tracker, rules: &Rules, patterns: &[&str], context: Context) -> Vec<State> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| tracker.step(t(10 * i as u64), &regions(p), rules, context).state)
        .collect()
}

#[test]
fn an_outage_opens_at_the_quorum_and_resolves_after_the_recovery_rounds() {
    let rules = Rules::for_regions(3);
    let mut tracker = Tracker::new();
    let states = run(&mut tracker, &rules, &["UUU", "UUD", "UDD", "UUU", "UUU", "UUU"], Context::default());
    use State::*;
    assert_eq!(states, [Up, Degraded, Down, Down, Up, Up]);
}

#[test]
fn unknown_rounds_neither_open_nor_resolve_an_outage() {
    let rules = Rules::for_regions(3);
    let mut tracker = Tracker::new();
    use State::*;
    let states = run(&mut tracker, &rules, &["UUU", "DDD", "???", "???", "UUU", "UUU"], Context::default());
    assert_eq!(states, [Up, Down, Down, Down, Down, Up], "unknown does not count towards recovery");
    let mut tracker = Tracker::new();
    let states = run(&mut tracker, &rules, &["UUU", "D??", "D??", "???"], Context::default());
    assert_eq!(states, [Up, Unknown, Unknown, Unknown], "one Down region with the rest unknown is no outage");
}

#[test]
fn a_minimum_failure_duration_delays_the_outage() {
    let rules = Rules { min_failure: Duration::from_secs(20), ..Rules::for_regions(3) };
    let mut tracker = Tracker::new();
    use State::*;
    // Rounds 10 s apart: Down at 10, 20, 30 s → opens at 30 s (20 s after the first).
    let states = run(&mut tracker, &rules, &["UUU", "DDD", "DDD", "DDD", "UUU", "UUU"], Context::default());
    assert_eq!(states, [Up, Up, Up, Down, Down, Up]);
    // A blip shorter than the minimum never opens.
    let mut tracker = Tracker::new();
    let states = run(&mut tracker, &rules, &["UUU", "DDD", "UUU", "DDD", "UUU"], Context::default());
    assert!(!states.contains(&Down), "{states:?}");
}

#[test]
fn flapping_is_one_state_until_it_settles() {
    let rules = Rules { recovery_rounds: 1, ..Rules::for_regions(2) };
    let mut tracker = Tracker::new();
    let mut patterns = vec!["UU"; 2];
    for i in 0..16 {
        patterns.push(if i % 2 == 0 { "DD" } else { "UU" });
    }
    patterns.extend(["UU"; 20]);
    let mut transitions = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let step = tracker.step(t(10 * i as u64), &regions(p), &rules, Context::default());
        if let Some(change) = step.transition {
            transitions.push((change.from, change.to));
        }
    }
    let into_flapping = transitions.iter().filter(|(_, to)| *to == State::Flapping).count();
    assert_eq!(into_flapping, 1, "{transitions:?}");
    let opened = transitions.iter().filter(|(_, to)| *to == State::Down).count();
    assert!(opened < 8, "flapping stops the per-change transitions: {transitions:?}");
    assert_eq!(tracker.state(), State::Up, "it settles once stable");
    assert_eq!(transitions.last().map(|c| c.0), Some(State::Flapping));
}

#[test]
fn maintenance_records_the_state_without_alerting_and_pause_stops_it() {
    let rules = Rules::for_regions(3);
    let mut tracker = Tracker::new();
    tracker.step(t(0), &regions("UUU"), &rules, Context::default());
    let window = Context { maintenance: true, paused: false };
    let step = tracker.step(t(10), &regions("DDD"), &rules, window);
    assert_eq!((step.state, step.observed), (State::Maintenance, State::Down));
    assert!(!step.transition.unwrap().alert, "entering maintenance is not alerted");
    let step = tracker.step(t(20), &regions("DDD"), &rules, Context::default());
    let change = step.transition.unwrap();
    assert_eq!(
        (change.from, change.to, change.alert),
        (State::Maintenance, State::Down, true),
        "still down after it"
    );
    let step = tracker.step(t(30), &regions("DDD"), &rules, Context { paused: true, maintenance: false });
    assert_eq!(step.state, State::Paused);
    let step = tracker.step(t(40), &regions("UUU"), &rules, Context::default());
    assert_eq!(step.state, State::Up, "resumed endpoints start afresh");
}

#[test]
fn a_resumed_outage_needs_its_recovery_rounds() {
    let rules = Rules::for_regions(3);
    let mut tracker = Tracker::resume(State::Down);
    assert_eq!(tracker.step(t(0), &regions("UUU"), &rules, Context::default()).state, State::Down);
    assert_eq!(tracker.step(t(10), &regions("UUU"), &rules, Context::default()).state, State::Up);
}

fn verdict_strategy() -> impl Strategy<Value = char> {
    prop_oneof![Just('U'), Just('D'), Just('?')]
}

proptest! {
    /// Whatever the verdicts, rules and timing, the tracker enters Down only
    /// in a round where at least a quorum of regions is Down.
    #[test]
    fn no_outage_opens_without_a_quorum_of_down_regions(
        n in 1usize..=5,
        requested in proptest::option::of(1u32..=5),
        recovery in 1u32..=4,
        min_failure_secs in 0u64..=40,
        rounds in proptest::collection::vec(proptest::collection::vec(verdict_strategy(), 5), 1..60),
        maintenance in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let rules = Rules { quorum: quorum(n, requested), recovery_rounds: recovery, min_failure: Duration::from_secs(min_failure_secs) };
        let mut tracker = Tracker::new();
        for (i, round) in rounds.iter().enumerate() {
            let pattern: String = round[..n].iter().collect();
            let context = Context { maintenance: maintenance[i % maintenance.len()] && i % 7 == 0, paused: false };
            let step = tracker.step(t(10 * i as u64), &regions(&pattern), &rules, context);
            if let Some(change) = &step.transition {
                if change.to == State::Down && change.from != State::Maintenance && change.from != State::Flapping {
                    prop_assert!(step.counts.down >= rules.quorum, "opened with {:?} at quorum {}", step.counts, rules.quorum);
                }
            }
            if step.state == State::Down && step.counts.down < rules.quorum {
                // Only an outage already open may stay Down below the quorum.
                prop_assert!(step.transition.as_ref().is_none_or(|c| c.from == State::Down || c.from == State::Maintenance || c.from == State::Flapping));
            }
        }
    }
}

#[test]
fn transitions_raise_the_alerts_a_pager_expects() {
    use crate::webhook::AlertEvent as A;
    let change = |from, to, alert| Transition { from, to, at: t(0), alert };
    let cases = [
        (State::Up, State::Down, true, Some(A::OutageOpened)),
        (State::Degraded, State::Down, true, Some(A::OutageOpened)),
        (State::Maintenance, State::Down, true, Some(A::OutageOpened)),
        (State::Down, State::Up, true, Some(A::OutageResolved)),
        (State::Down, State::Degraded, true, Some(A::OutageResolved)),
        (State::Up, State::Degraded, true, Some(A::Degraded)),
        (State::Degraded, State::Up, true, None),
        (State::Up, State::Flapping, true, Some(A::Flapping)),
        (State::Down, State::Flapping, true, Some(A::Flapping)),
        (State::Flapping, State::Up, true, None),
        (State::Down, State::Maintenance, false, None),
        (State::Up, State::Down, false, None),
        (State::Down, State::Paused, false, None),
    ];
    for (from, to, alert, want) in cases {
        assert_eq!(alert_event(&change(from, to, alert)), want, "{from:?} -> {to:?} (alert {alert})");
    }
}

#[test]
fn one_outage_with_regions_wobbling_around_it_is_not_flapping() {
    let rules = Rules::for_regions(3);
    let mut tracker = Tracker::new();
    let patterns =
        ["UUU", "UUD", "UUU", "UUD", "UDD", "DDD", "DDD", "UDD", "UUD", "UUU", "UUU", "UUD", "UUU"];
    let states = run(&mut tracker, &rules, &patterns, Context::default());
    assert!(!states.contains(&State::Flapping), "{states:?}");
    assert!(states.contains(&State::Down));
}
