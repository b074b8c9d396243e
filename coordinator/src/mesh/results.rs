//! Results from probes: validation and de-duplication by (probe,
//! sequence). What happens to them next is [`crate::results`]' business.
//!
//! Validation and de-duplication are plain functions over values (time is
//! a parameter), so they are tested with tables; the stream code in
//! `session` only wires them together.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use vantage_core::observation::Observation;
use vantage_core::result::Phases;
use vantage_proto::pb;

use crate::results::AcceptedResult;

/// Why one result was refused. Each reason is a label value of
/// `vantage_mesh_results_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The endpoint is not assigned to the sending probe (in the current
    /// or the previous assignment it was sent).
    UnassignedEndpoint,
    /// A phase longer than the total, an absurd total, or a result that
    /// does not convert (missing phases, `ok` and `error` disagreeing).
    MalformedTimings,
    /// A skipped slot with a result, or a run slot without one.
    MalformedResult,
    /// The check started (or was planned) further in the future than the
    /// allowed clock skew.
    StartedInFuture,
    /// The check started longer ago than results are kept for.
    TooOld,
}

impl RejectReason {
    /// Every reason, for exporting counters.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::UnassignedEndpoint,
        RejectReason::MalformedTimings,
        RejectReason::MalformedResult,
        RejectReason::StartedInFuture,
        RejectReason::TooOld,
    ];

    /// The metric label and the wire `RejectedResult.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnassignedEndpoint => "unassigned_endpoint",
            RejectReason::MalformedTimings => "malformed_timings",
            RejectReason::MalformedResult => "malformed_result",
            RejectReason::StartedInFuture => "started_in_future",
            RejectReason::TooOld => "too_old",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// One refused result: its sequence number, why, and a line for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The result's sequence number.
    pub seq: u64,
    /// Why.
    pub reason: RejectReason,
    /// Details for the probe's log.
    pub detail: String,
}

/// Limits for [`validate`].
#[derive(Debug, Clone, Copy)]
pub struct TimingLimits {
    /// How far in the future a start may be (clock skew between probe and
    /// coordinator).
    pub max_skew: Duration,
    /// How old a result may be (a probe's spool resends old results after
    /// an outage of the coordinators).
    pub max_age: Duration,
    /// The longest plausible check.
    pub max_total: Duration,
}

impl Default for TimingLimits {
    fn default() -> Self {
        TimingLimits {
            max_skew: Duration::from_secs(5),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_total: Duration::from_secs(3600),
        }
    }
}

/// Who sent a result, for [`validate`].
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The probe's id.
    pub probe_id: u64,
    /// The probe's region.
    pub region: &'a str,
}

/// Checks one wire result sent by `sender`, `assigned` telling whether its
/// endpoint is assigned to the probe, and converts it.
pub fn validate(
    wire: &pb::ProbeResult,
    sender: Sender<'_>,
    assigned: impl Fn(u64) -> bool,
    now: SystemTime,
    limits: TimingLimits,
) -> Result<AcceptedResult, Rejection> {
    let reject = |reason: RejectReason, detail: String| Rejection { seq: wire.seq, reason, detail };
    if !assigned(wire.endpoint_id) {
        return Err(reject(
            RejectReason::UnassignedEndpoint,
            format!("endpoint {} is not assigned to probe {}", wire.endpoint_id, sender.probe_id),
        ));
    }
    let observation = Observation::try_from(wire).map_err(|e| {
        let reason = if (e.message(), e.field()) == vantage_proto::probe::SHAPE_FIELD {
            RejectReason::MalformedResult
        } else {
            RejectReason::MalformedTimings
        };
        reject(reason, e.to_string())
    })?;
    check_time("planned_start_unix_us", observation.planned_start, now, limits)
        .map_err(|(r, d)| reject(r, d))?;
    if let Some(result) = &observation.result {
        check_phases(&result.phases_ms, limits).map_err(|d| reject(RejectReason::MalformedTimings, d))?;
        check_time("result.started_at_unix_us", result.started_at, now, limits)
            .map_err(|(r, d)| reject(r, d))?;
    }
    Ok(AcceptedResult {
        probe_id: sender.probe_id,
        region: sender.region.to_owned(),
        observation,
        received_at: now,
    })
}

/// Each phase at most the total (phases are sums over redirect hops; the
/// total spans them all), and the total plausible. The wire carries
/// unsigned microseconds, so negative or NaN phases cannot arrive.
fn check_phases(p: &Phases, limits: TimingLimits) -> Result<(), String> {
    if p.total > limits.max_total {
        return Err(format!("total {:?} exceeds {:?}", p.total, limits.max_total));
    }
    for (name, phase) in
        [("dns", p.dns), ("connect", p.connect), ("tls", p.tls), ("ttfb", p.ttfb), ("transfer", p.transfer)]
    {
        if phase > p.total {
            return Err(format!(
                "phase {name} ({} µs) is longer than the total ({} µs)",
                phase.as_micros(),
                p.total.as_micros()
            ));
        }
    }
    Ok(())
}

fn check_time(
    field: &str,
    at: SystemTime,
    now: SystemTime,
    limits: TimingLimits,
) -> Result<(), (RejectReason, String)> {
    if let Ok(ahead) = at.duration_since(now) {
        if ahead > limits.max_skew {
            return Err((
                RejectReason::StartedInFuture,
                format!("{field} is {ahead:?} in the future (allowed skew {:?})", limits.max_skew),
            ));
        }
    }
    if let Ok(age) = now.duration_since(at) {
        if age > limits.max_age {
            return Err((
                RejectReason::TooOld,
                format!("{field} is {age:?} old (limit {:?})", limits.max_age),
            ));
        }
    }
    Ok(())
}

/// The sequence numbers of one probe already stored: a high-water mark and
/// the seen numbers within `window` below it. A number below the window
/// counts as seen: a probe sends in order on one stream and resends from
/// its oldest unacknowledged result, so it cannot be new.
#[derive(Debug, Clone)]
pub struct SeqWindow {
    window: u64,
    highest: Option<u64>,
    seen: BTreeSet<u64>,
}

impl SeqWindow {
    /// An empty window remembering up to `window` numbers below the highest.
    pub fn new(window: u64) -> SeqWindow {
        SeqWindow { window: window.max(1), highest: None, seen: BTreeSet::new() }
    }

    /// Whether `seq` was already stored.
    pub fn contains(&self, seq: u64) -> bool {
        match self.highest {
            None => false,
            Some(highest) => seq <= highest.saturating_sub(self.window) || self.seen.contains(&seq),
        }
    }

    /// Records `seq` as stored.
    pub fn insert(&mut self, seq: u64) {
        self.seen.insert(seq);
        let highest = self.highest.map_or(seq, |h| h.max(seq));
        self.highest = Some(highest);
        let floor = highest.saturating_sub(self.window);
        if floor > 0 {
            self.seen = self.seen.split_off(&(floor + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn us(t: SystemTime) -> i64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as i64
    }

    fn good(seq: u64) -> pb::ProbeResult {
        let started = now() - Duration::from_secs(1);
        pb::ProbeResult {
            seq,
            endpoint_id: 7,
            round: 3,
            planned_start_unix_us: us(started),
            lag_us: 150,
            result: Some(pb::CheckResult {
                url: "https://example.com/".into(),
                kind: pb::CheckKind::Https as i32,
                ok: true,
                phases: Some(pb::Phases {
                    dns_us: 1_000,
                    connect_us: 2_000,
                    tls_us: 3_000,
                    ttfb_us: 4_000,
                    transfer_us: 500,
                    total_us: 10_500,
                }),
                started_at_unix_us: us(started),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn results_are_refused_for_each_cause() {
        let sender = Sender { probe_id: 1, region: "eu" };
        let assigned = |e: u64| e == 7;
        let limits = TimingLimits::default();
        let future = us(now() + Duration::from_secs(60));
        type Change = Box<dyn Fn(&mut pb::ProbeResult)>;
        let cases: Vec<(&str, Change, Option<RejectReason>)> = vec![
            ("good", Box::new(|_| {}), None),
            (
                "skipped without result",
                Box::new(|r| {
                    r.skipped = true;
                    r.result = None;
                }),
                None,
            ),
            ("unassigned", Box::new(|r| r.endpoint_id = 8), Some(RejectReason::UnassignedEndpoint)),
            (
                "phase > total",
                Box::new(|r| {
                    r.result.as_mut().unwrap().phases.as_mut().unwrap().ttfb_us = 20_000;
                }),
                Some(RejectReason::MalformedTimings),
            ),
            (
                "no phases",
                Box::new(|r| r.result.as_mut().unwrap().phases = None),
                Some(RejectReason::MalformedTimings),
            ),
            (
                "absurd total",
                Box::new(|r| {
                    r.result.as_mut().unwrap().phases.as_mut().unwrap().total_us = u64::MAX;
                }),
                Some(RejectReason::MalformedTimings),
            ),
            (
                "started in future",
                Box::new(move |r| r.result.as_mut().unwrap().started_at_unix_us = future),
                Some(RejectReason::StartedInFuture),
            ),
            (
                "planned in future",
                Box::new(move |r| r.planned_start_unix_us = future),
                Some(RejectReason::StartedInFuture),
            ),
            ("too old", Box::new(|r| r.planned_start_unix_us = -5), Some(RejectReason::TooOld)),
            ("skipped with result", Box::new(|r| r.skipped = true), Some(RejectReason::MalformedResult)),
            ("run without result", Box::new(|r| r.result = None), Some(RejectReason::MalformedResult)),
        ];
        for (name, change, expected) in cases {
            let mut wire = good(5);
            change(&mut wire);
            let got = validate(&wire, sender, assigned, now(), limits);
            match expected {
                None => assert!(got.is_ok(), "{name}: {got:?}"),
                Some(reason) => {
                    let rejection = got.expect_err(name);
                    assert_eq!(
                        (rejection.seq, rejection.reason),
                        (5, reason),
                        "{name}: {}",
                        rejection.detail
                    );
                }
            }
        }
    }

    #[test]
    fn a_small_skew_is_tolerated() {
        let mut wire = good(1);
        wire.result.as_mut().unwrap().started_at_unix_us = us(now() + Duration::from_secs(4));
        let sender = Sender { probe_id: 1, region: "eu" };
        assert!(validate(&wire, sender, |_| true, now(), TimingLimits::default()).is_ok());
    }

    #[test]
    fn the_window_remembers_recent_sequence_numbers() {
        let mut w = SeqWindow::new(10);
        assert!(!w.contains(0) && !w.contains(5));
        for seq in [1, 2, 3, 7] {
            w.insert(seq);
        }
        assert!(w.contains(1) && w.contains(7) && !w.contains(4) && !w.contains(8));
        w.insert(30);
        assert!(w.contains(19), "below the window counts as seen");
        assert!(!w.contains(21) && !w.contains(29) && w.contains(30));
        w.insert(25);
        assert!(w.contains(25));
    }
}
