//! Agreement: whether an endpoint is down, decided from every region's view
//! so that one probe's bad network never pages anyone.
//!
//! Two pure steps, time passed in:
//! 1. [`region_verdict`]: the latest fresh results of the probes assigned to
//!    an endpoint in one region become one [`Verdict`] — Up, Down (with the
//!    error kind) or Unknown. Unknown (no fresh result, probe disconnected,
//!    probe's own canaries failing) is never Down.
//! 2. [`Tracker::step`]: once per round, the regions' verdicts move the
//!    endpoint's [`State`]: an outage (`down`) opens only when at least
//!    `quorum` regions are Down (and have been for `min_failure`), resolves
//!    after `recovery_rounds` rounds below the quorum; fewer Down regions
//!    are `degraded`; too few fresh regions to decide are `unknown`; too
//!    many changes in a window are one `flapping` state (Nagios' percent
//!    state change with hysteresis) instead of one alert per change.
//!
//! Every step keeps its evidence: per region, which probe saw what.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::result::{CheckResult, ErrorKind};
use crate::time::unix_micros;
use crate::webhook::AlertEvent;

/// The default number of rounds below the quorum that resolve an outage.
pub const DEFAULT_RECOVERY_ROUNDS: u32 = 2;
/// How many recent rounds the flapping rule looks at (as Nagios does).
pub const FLAP_WINDOW: usize = 21;
/// Flapping starts above this percent state change (Nagios' defaults are
/// 20 and 5 over every state; counting only outage changes, a single
/// outage with its recovery is two changes, about 10 %).
pub const FLAP_HIGH_PERCENT: f64 = 25.0;
/// Flapping stops below this percent state change.
pub const FLAP_LOW_PERCENT: f64 = 10.0;

/// The quorum of an endpoint checked from `regions` regions: `requested`
/// when given (clamped to 1..=regions), else a majority and at least 2
/// where there are 2 or more regions.
pub fn quorum(regions: usize, requested: Option<u32>) -> usize {
    if regions == 0 {
        return 1;
    }
    match requested {
        Some(q) => (q as usize).clamp(1, regions),
        None => (regions / 2 + 1).max(regions.min(2)),
    }
}

/// One region's verdict on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "reason")]
pub enum Verdict {
    /// The endpoint answered as expected.
    Up,
    /// It failed, for this reason.
    Down(ErrorKind),
    /// Nothing fresh and trustworthy to go by.
    Unknown(UnknownReason),
}

/// Why a region (or a probe) has no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownReason {
    /// No probe is assigned there.
    NoProbe,
    /// The probe's stream is closed.
    Disconnected,
    /// No result recent enough.
    Stale,
    /// The probe's canaries failed: its own network is suspect.
    ProbeUnhealthy,
}

/// What one probe last reported, as the agreement runner hands it in.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport<'a> {
    /// The probe.
    pub probe_id: u64,
    /// Its stream is open now.
    pub connected: bool,
    /// Its canaries failed when it ran the latest check.
    pub probe_unhealthy: bool,
    /// Its latest result for the endpoint, if any.
    pub latest: Option<&'a CheckResult>,
}

/// What one probe saw, kept with the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeEvidence {
    /// The probe.
    pub probe_id: u64,
    /// Its verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The failure's message, for a Down verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP status received, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The whole check, in microseconds (0 without a result).
    pub total_us: u64,
    /// Time to first byte, in microseconds.
    pub ttfb_us: u64,
    /// When the check started, Unix microseconds (0 without a result).
    pub started_at_unix_us: i64,
}

/// One region's verdict with what each of its probes saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionEvidence {
    /// The region.
    pub region: String,
    /// The region's verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Per probe.
    pub probes: Vec<ProbeEvidence>,
}

/// A region's verdict from its probes' reports at `now`: a result is fresh
/// when it started at most `freshness` ago (about two intervals plus a
/// grace). The region is Up when any probe's fresh result passed, Down when
/// every probe with a fresh, trustworthy result failed (the first one's
/// kind), and Unknown when none has one.
pub fn region_verdict(
    region: &str,
    probes: &[ProbeReport<'_>],
    now: SystemTime,
    freshness: Duration,
) -> RegionEvidence {
    let evidence: Vec<ProbeEvidence> = probes.iter().map(|p| probe_evidence(p, now, freshness)).collect();
    let verdict = if evidence.iter().any(|p| p.verdict == Verdict::Up) {
        Verdict::Up
    } else if let Some(down) = evidence.iter().find(|p| matches!(p.verdict, Verdict::Down(_))) {
        down.verdict
    } else {
        let reason = evidence
            .iter()
            .find_map(|p| match p.verdict {
                Verdict::Unknown(reason) => Some(reason),
                _ => None,
            })
            .unwrap_or(UnknownReason::NoProbe);
        Verdict::Unknown(reason)
    };
    RegionEvidence { region: region.to_string(), verdict, probes: evidence }
}

fn probe_evidence(report: &ProbeReport<'_>, now: SystemTime, freshness: Duration) -> ProbeEvidence {
    let mut evidence = ProbeEvidence {
        probe_id: report.probe_id,
        verdict: Verdict::Unknown(UnknownReason::Stale),
        message: None,
        status_code: None,
        total_us: 0,
        ttfb_us: 0,
        started_at_unix_us: 0,
    };
    if let Some(result) = report.latest {
        evidence.status_code = result.status_code;
        evidence.total_us = micros(result.phases_ms.total);
        evidence.ttfb_us = micros(result.phases_ms.ttfb);
        evidence.started_at_unix_us = unix_micros(result.started_at);
    }
    let fresh =
        report.latest.filter(|r| now.duration_since(r.started_at).map_or(true, |age| age <= freshness));
    evidence.verdict = match fresh {
        _ if !report.connected => Verdict::Unknown(UnknownReason::Disconnected),
        None => Verdict::Unknown(UnknownReason::Stale),
        Some(_) if report.probe_unhealthy => Verdict::Unknown(UnknownReason::ProbeUnhealthy),
        Some(result) => match &result.error {
            None => Verdict::Up,
            Some(error) => {
                evidence.message = Some(error.message.clone());
                Verdict::Down(error.kind)
            }
        },
    };
    evidence
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Enough regions see it up, none down.
    Up,
    /// Some regions see it down, fewer than the quorum: a regional problem.
    Degraded,
    /// An outage: a quorum of regions sees it down.
    Down,
    /// Too few fresh regions to decide either way.
    Unknown,
    /// It keeps changing state; one alert until it settles.
    Flapping,
    /// Inside a maintenance window: tracked, not alerted.
    Maintenance,
    /// Checks are stopped.
    Paused,
}

impl State {
    /// The state's name, as JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unknown => "unknown",
            State::Flapping => "flapping",
            State::Maintenance => "maintenance",
            State::Paused => "paused",
        }
    }
}

/// An endpoint's agreement rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Regions that must be Down for an outage ([`quorum`]).
    pub quorum: usize,
    /// Rounds below the quorum that resolve an outage (at least 1).
    pub recovery_rounds: u32,
    /// How long the quorum must hold before an outage opens
    /// (Datadog's `min_failure_duration`); zero opens at once.
    pub min_failure: Duration,
}

impl Rules {
    /// The default rules for an endpoint checked from `regions` regions.
    pub fn for_regions(regions: usize) -> Rules {
        Rules {
            quorum: quorum(regions, None),
            recovery_rounds: DEFAULT_RECOVERY_ROUNDS,
            min_failure: Duration::ZERO,
        }
    }
}

/// What else bears on a round besides the regions' verdicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// A maintenance window covers the endpoint now.
    pub maintenance: bool,
    /// The endpoint's checks are stopped.
    pub paused: bool,
}

/// A change of state, with when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// When (the round's time).
    pub at: SystemTime,
    /// Whether it should reach webhooks (not inside maintenance).
    pub alert: bool,
}

/// The outcome of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The endpoint's state after the round.
    pub state: State,
    /// What the regions alone say this round, before hysteresis, flapping
    /// and maintenance.
    pub observed: State,
    /// How many regions are Down, Up and Unknown.
    pub counts: Counts,
    /// The change this round caused, if any.
    pub transition: Option<Transition>,
}

/// Regions by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regions that see the endpoint down.
    pub down: usize,
    /// Regions that see it up.
    pub up: usize,
    /// Regions without a verdict.
    pub unknown: usize,
}

/// What the regions alone say: Down at the quorum, Unknown when Up and
/// Down regions together cannot reach it, Degraded with some Down, else Up.
pub fn classify(regions: &[RegionEvidence], quorum: usize) -> (State, Counts) {
    let mut counts = Counts::default();
    for region in regions {
        match region.verdict {
            Verdict::Up => counts.up += 1,
            Verdict::Down(_) => counts.down += 1,
            Verdict::Unknown(_) => counts.unknown += 1,
        }
    }
    let state = if counts.down >= quorum.max(1) {
        State::Down
    } else if counts.up + counts.down < quorum.max(1) {
        State::Unknown
    } else if counts.down > 0 {
        State::Degraded
    } else {
        State::Up
    };
    (state, counts)
}

/// One endpoint's agreement state across rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    state: State,
    /// The settled state under flapping and maintenance.
    settled: State,
    /// When the observed state first reached the quorum (for
    /// `min_failure`), in the current run of Down rounds.
    down_since: Option<SystemTime>,
    /// Rounds below the quorum while an outage is open.
    below: u32,
    /// Whether each recent round was in an outage (Unknown rounds left
    /// out), newest last: flapping is about outages opening and closing,
    /// not about a region wobbling between up and degraded.
    history: VecDeque<bool>,
    flapping: bool,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// A tracker that knows nothing yet.
    pub fn new() -> Tracker {
        Tracker::resume(State::Unknown)
    }

    /// A tracker continuing from `state` (a new leader resuming an open
    /// incident's state): an open outage needs `recovery_rounds` rounds to
    /// resolve, like any other.
    pub fn resume(state: State) -> Tracker {
        let settled = match state {
            State::Maintenance | State::Paused | State::Flapping => State::Unknown,
            other => other,
        };
        Tracker {
            state,
            settled,
            down_since: None,
            below: 0,
            history: VecDeque::with_capacity(FLAP_WINDOW),
            flapping: state == State::Flapping,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Nagios' weighted percent state change over the recent rounds (of
    /// outage or not): newer changes weigh more (0.8 for the oldest to 1.2
    /// for the newest).
    pub fn percent_state_change(&self) -> f64 {
        let n = self.history.len();
        if n < 2 {
            return 0.0;
        }
        let mut changed = 0.0;
        let mut total = 0.0;
        for i in 1..n {
            let weight = 0.8 + 0.4 * (i - 1) as f64 / (FLAP_WINDOW - 2) as f64;
            total += weight;
            if self.history[i] != self.history[i - 1] {
                changed += weight;
            }
        }
        // Over the full window's weights, so a short history cannot flap
        // on two changes.
        let full: f64 = (1..FLAP_WINDOW).map(|i| 0.8 + 0.4 * (i - 1) as f64 / (FLAP_WINDOW - 2) as f64).sum();
        100.0 * changed / full.max(total)
    }

    /// One round at `at` with the regions' verdicts.
    pub fn step(
        &mut self,
        at: SystemTime,
        regions: &[RegionEvidence],
        rules: &Rules,
        context: Context,
    ) -> Step {
        let (observed, counts) = classify(regions, rules.quorum);
        let before = self.state;
        if context.paused {
            *self = Tracker::resume(State::Unknown);
            self.state = State::Paused;
            return self.finish(before, at, observed, counts, false);
        }
        self.settle(at, observed, rules);
        if self.settled != State::Unknown {
            if self.history.len() == FLAP_WINDOW {
                self.history.pop_front();
            }
            self.history.push_back(self.settled == State::Down);
        }
        let percent = self.percent_state_change();
        if !self.flapping && percent > FLAP_HIGH_PERCENT {
            self.flapping = true;
        } else if self.flapping && percent < FLAP_LOW_PERCENT {
            self.flapping = false;
        }
        self.state = if context.maintenance {
            State::Maintenance
        } else if self.flapping {
            State::Flapping
        } else {
            self.settled
        };
        self.finish(before, at, observed, counts, !context.maintenance)
    }

    /// Moves the settled state by the rules: outages open at the quorum
    /// (after `min_failure`) and resolve after `recovery_rounds` rounds
    /// below it; Unknown rounds neither open, resolve nor count.
    fn settle(&mut self, at: SystemTime, observed: State, rules: &Rules) {
        if observed == State::Down {
            let since = *self.down_since.get_or_insert(at);
            self.below = 0;
            if self.settled != State::Down
                && at.duration_since(since).unwrap_or_default() >= rules.min_failure
            {
                self.settled = State::Down;
            }
            return;
        }
        self.down_since = None;
        match (self.settled, observed) {
            (_, State::Unknown) if self.settled == State::Down => {}
            (State::Down, _) => {
                self.below += 1;
                if self.below >= rules.recovery_rounds.max(1) {
                    self.below = 0;
                    self.settled = observed;
                }
            }
            _ => self.settled = observed,
        }
    }

    fn finish(&self, before: State, at: SystemTime, observed: State, counts: Counts, alert: bool) -> Step {
        let transition =
            (before != self.state).then_some(Transition { from: before, to: self.state, at, alert });
        Step { state: self.state, observed, counts, transition }
    }
}

/// The alert a transition raises, if any: an outage opening or resolving,
/// a region-level problem (`degraded`) starting, flapping starting. Changes
/// into and out of maintenance or pause, and transitions inside a
/// maintenance window, raise none.
pub fn alert_event(transition: &Transition) -> Option<AlertEvent> {
    if !transition.alert || matches!(transition.to, State::Maintenance | State::Paused) {
        return None;
    }
    match (transition.from, transition.to) {
        (_, State::Down) => Some(AlertEvent::OutageOpened),
        (_, State::Flapping) => Some(AlertEvent::Flapping),
        (State::Down, _) => Some(AlertEvent::OutageResolved),
        (State::Up | State::Unknown, State::Degraded) => Some(AlertEvent::Degraded),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
