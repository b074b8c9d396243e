//! Uptime from agreed outage intervals, with maintenance excluded.
//!
//! For a window `[from, to)`, the *counted* time is the part of the window
//! since the endpoint was created, minus every maintenance window that
//! covers the endpoint; the *downtime* is the part of the counted time
//! inside an outage incident (a quorum of regions down). Uptime is
//! `1 - downtime / counted`, and unknown (`None`) when nothing was
//! counted. Degraded time (fewer regions than the quorum down) is not
//! downtime, and flapping time is reported beside it, not in it: the
//! outage incidents a flapping endpoint opens are counted as they are.

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

/// A half-open interval of time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// Inclusive.
    pub start: UnixMillis,
    /// Exclusive.
    pub end: UnixMillis,
}

impl Span {
    /// `[start, end)`; empty when `end <= start`.
    pub fn new(start: UnixMillis, end: UnixMillis) -> Span {
        Span { start, end }
    }

    /// Its length in milliseconds.
    pub fn len_ms(self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }

    fn clip(self, to: Span) -> Span {
        Span { start: self.start.max(to.start), end: self.end.min(to.end) }
    }
}

/// What uptime is computed from, for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UptimeInputs {
    /// When the endpoint was created: nothing before counts.
    pub monitored_since: UnixMillis,
    /// Outage incidents (an open one ends at "now").
    pub outages: Vec<Span>,
    /// Flapping incidents.
    pub flapping: Vec<Span>,
    /// Maintenance windows covering the endpoint.
    pub maintenance: Vec<Span>,
}

/// Uptime over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Uptime {
    /// The window.
    pub span: Span,
    /// `1 - downtime / counted`; `None` when nothing was counted.
    pub ratio: Option<f64>,
    /// Time that counts: monitored, outside maintenance.
    pub counted_ms: u64,
    /// Counted time inside an outage.
    pub downtime_ms: u64,
    /// Monitored time inside maintenance (not counted).
    pub maintenance_ms: u64,
    /// Counted time inside a flapping incident (shown, not downtime).
    pub flapping_ms: u64,
}

impl UptimeInputs {
    /// Uptime over `span`.
    pub fn uptime(&self, span: Span) -> Uptime {
        let monitored = span.clip(Span::new(self.monitored_since, UnixMillis(u64::MAX)));
        let maintenance = normalize(&self.maintenance, monitored);
        let maintenance_ms = total(&maintenance);
        let counted =
            subtract(&[monitored].into_iter().filter(|s| s.len_ms() > 0).collect::<Vec<_>>(), &maintenance);
        let counted_ms = total(&counted);
        let downtime_ms = total(&intersect(&counted, &normalize(&self.outages, monitored)));
        let flapping_ms = total(&intersect(&counted, &normalize(&self.flapping, monitored)));
        let ratio = (counted_ms > 0).then(|| 1.0 - downtime_ms as f64 / counted_ms as f64);
        Uptime { span, ratio, counted_ms, downtime_ms, maintenance_ms, flapping_ms }
    }
}

/// Sorted, merged, clipped to `to`, empty spans dropped.
fn normalize(spans: &[Span], to: Span) -> Vec<Span> {
    let mut clipped: Vec<Span> = spans.iter().map(|s| s.clip(to)).filter(|s| s.len_ms() > 0).collect();
    clipped.sort();
    let mut merged: Vec<Span> = Vec::with_capacity(clipped.len());
    for span in clipped {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

fn total(spans: &[Span]) -> u64 {
    spans.iter().map(|s| s.len_ms()).sum()
}

/// `a ∩ b`, both normalized.
fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let piece = a[i].clip(b[j]);
        if piece.len_ms() > 0 {
            out.push(piece);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a \ b`, both normalized.
fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &span in a {
        let mut start = span.start;
        for cut in b.iter().filter(|c| c.end > span.start && c.start < span.end) {
            if cut.start > start {
                out.push(Span::new(start, cut.start));
            }
            start = start.max(cut.end);
        }
        if start < span.end {
            out.push(Span::new(start, span.end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn span(a: u64, b: u64) -> Span {
        Span::new(UnixMillis(a), UnixMillis(b))
    }

    #[test]
    fn one_outage_in_a_day_is_its_share_of_the_day() {
        let inputs = UptimeInputs { outages: vec![span(2 * H, 2 * H + 36 * 60_000)], ..Default::default() };
        let u = inputs.uptime(span(0, 24 * H));
        assert_eq!(u.downtime_ms, 36 * 60_000);
        assert_eq!(u.counted_ms, 24 * H);
        assert!((u.ratio.unwrap() - (1.0 - 0.6 / 24.0)).abs() < 1e-12);
    }

    #[test]
    fn maintenance_is_left_out_of_both_sides_and_overlaps_count_once() {
        let inputs = UptimeInputs {
            monitored_since: UnixMillis(H),
            outages: vec![span(2 * H, 4 * H), span(3 * H, 5 * H)],
            flapping: vec![span(9 * H, 10 * H)],
            maintenance: vec![span(4 * H, 6 * H), span(5 * H, 7 * H)],
        };
        let u = inputs.uptime(span(0, 11 * H));
        // monitored 1h..11h = 10h, maintenance 4h..7h = 3h, counted 7h;
        // down 2h..5h minus maintenance = 2h..4h = 2h.
        assert_eq!((u.counted_ms, u.maintenance_ms, u.downtime_ms, u.flapping_ms), (7 * H, 3 * H, 2 * H, H));
        assert!((u.ratio.unwrap() - 5.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_counted_is_unknown_not_full_uptime() {
        let inputs = UptimeInputs { monitored_since: UnixMillis(10 * H), ..Default::default() };
        assert_eq!(inputs.uptime(span(0, 5 * H)).ratio, None);
        let all_maintenance = UptimeInputs { maintenance: vec![span(0, 10 * H)], ..Default::default() };
        assert_eq!(all_maintenance.uptime(span(H, 2 * H)).ratio, None);
    }
}
