//! History: what the cluster remembers of each endpoint once the raw
//! results are gone, and the views read from it.
//!
//! - [`histogram`]: a mergeable log-linear latency histogram (≤ 1.6 %
//!   relative error on quantiles);
//! - [`rollup`]: one endpoint × region × period: checks, failures, total
//!   and ttfb histograms, phase sums;
//! - [`uptime`]: uptime from outage incidents, maintenance excluded;
//! - this module: periods ([`Granularity`]: UTC hours kept 8 days, UTC days
//!   kept 92), windows ([`Window`]: 24h, 7d, 30d, 90d) and the view one
//!   endpoint's history is read as ([`EndpointHistory`], the JSON of
//!   `/api/endpoints/NAME/history` and `vantagectl endpoint history`).
//!
//! Pure: the caller reads the stored rollups and incidents and passes the
//! time.

pub mod histogram;
pub mod rollup;
pub mod uptime;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use self::histogram::Histogram;
pub use self::rollup::{Rollup, PHASES};
pub use self::uptime::{Span, Uptime, UptimeInputs};
use crate::time::UnixMillis;

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// The period a rollup covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// A UTC hour.
    Hour,
    /// A UTC day.
    Day,
}

impl Granularity {
    /// Its length in milliseconds.
    pub fn len_ms(self) -> u64 {
        match self {
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }

    /// The number of the period holding `at` (hours or days since the
    /// epoch).
    pub fn period_of(self, at: UnixMillis) -> u32 {
        u32::try_from(at.0 / self.len_ms()).unwrap_or(u32::MAX)
    }

    /// When period `period` starts.
    pub fn start_of(self, period: u32) -> UnixMillis {
        UnixMillis(u64::from(period) * self.len_ms())
    }

    /// How many periods are kept: 8 days of hours (7 whole days and the
    /// current one), 92 days (90 and the month boundary's slack).
    pub fn retained_periods(self) -> u32 {
        match self {
            Granularity::Hour => 8 * 24,
            Granularity::Day => 92,
        }
    }

    /// The oldest period kept at `now`.
    pub fn oldest_kept(self, now: UnixMillis) -> u32 {
        self.period_of(now).saturating_sub(self.retained_periods() - 1)
    }
}

/// A window a history is read over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Window {
    /// The last 24 hours, by hour.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, by hour.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days, by day.
    #[serde(rename = "30d")]
    Month,
    /// The last 90 days, by day.
    #[serde(rename = "90d")]
    Quarter,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::Day, Window::Week, Window::Month, Window::Quarter];

    /// Its name (`24h`, `7d`, `30d`, `90d`).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
            Window::Quarter => "90d",
        }
    }

    /// Its length in milliseconds.
    pub fn len_ms(self) -> u64 {
        match self {
            Window::Day => DAY_MS,
            Window::Week => 7 * DAY_MS,
            Window::Month => 30 * DAY_MS,
            Window::Quarter => 90 * DAY_MS,
        }
    }

    /// Whether its latency points are hours or days.
    pub fn resolution(self) -> Granularity {
        match self {
            Window::Day | Window::Week => Granularity::Hour,
            Window::Month | Window::Quarter => Granularity::Day,
        }
    }

    /// The periods of [`Window::resolution`] it reads at `now`: the
    /// current (partial) one and those before it, as many as cover the
    /// window.
    pub fn periods(self, now: UnixMillis) -> std::ops::RangeInclusive<u32> {
        let g = self.resolution();
        let last = g.period_of(now);
        let count = u32::try_from(self.len_ms() / g.len_ms()).unwrap_or(u32::MAX);
        last.saturating_sub(count - 1)..=last
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A window name that is not one of `24h`, `7d`, `30d`, `90d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown window {0:?}: expected one of 24h, 7d, 30d, 90d")]
pub struct UnknownWindow(pub String);

impl FromStr for Window {
    type Err = UnknownWindow;

    fn from_str(text: &str) -> Result<Window, UnknownWindow> {
        Window::ALL.into_iter().find(|w| w.as_str() == text).ok_or_else(|| UnknownWindow(text.to_string()))
    }
}

/// Latency quantiles, in milliseconds (microsecond precision).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Quantiles {
    /// From a histogram; `None` when it is empty.
    pub fn of(h: &Histogram) -> Option<Quantiles> {
        Some(Quantiles { p50: ms(h.quantile(0.50)?), p95: ms(h.quantile(0.95)?), p99: ms(h.quantile(0.99)?) })
    }
}

/// One period of one region, as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// When the period starts.
    pub start_unix_ms: u64,
    /// Checks that ran.
    pub checks: u32,
    /// Of those, failed.
    pub failures: u32,
    /// Total time of the successful checks.
    pub total_ms: Option<Quantiles>,
    /// Time to first byte of the successful checks (HTTP only).
    pub ttfb_ms: Option<Quantiles>,
    /// Mean of each phase over successful checks, by name
    /// (dns, connect, tls, ttfb, transfer); empty with no success.
    pub phases_mean_ms: BTreeMap<String, f64>,
}

impl LatencyPoint {
    /// The point of one rollup.
    pub fn of(start: UnixMillis, rollup: &Rollup) -> LatencyPoint {
        let phases_mean_ms = if rollup.successes() == 0 {
            BTreeMap::new()
        } else {
            PHASES
                .iter()
                .zip(rollup.phase_means_micros())
                .map(|(name, us)| (name.to_string(), ms(us)))
                .collect()
        };
        LatencyPoint {
            start_unix_ms: start.0,
            checks: rollup.checks,
            failures: rollup.failures,
            total_ms: Quantiles::of(&rollup.total),
            ttfb_ms: Quantiles::of(&rollup.ttfb),
            phases_mean_ms,
        }
    }
}

/// One region's history over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionHistory {
    /// The region.
    pub region: String,
    /// The whole window merged into one.
    pub summary: LatencyPoint,
    /// One point per period that had checks, oldest first.
    pub points: Vec<LatencyPoint>,
}

/// One UTC day's uptime, for the 90 day-bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayBar {
    /// The day's start (00:00 UTC).
    pub start_unix_ms: u64,
    /// Its uptime; `None` when nothing was counted (before the endpoint
    /// existed, or all in maintenance).
    pub uptime: Option<f64>,
    /// Counted time in an outage.
    pub downtime_ms: u64,
    /// Time in maintenance.
    pub maintenance_ms: u64,
    /// Incidents of any kind that overlap the day.
    pub incidents: Vec<u64>,
}

/// An incident as history knows it: its kind and span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSpan {
    /// The incident's id.
    pub id: u64,
    /// `outage`, `degraded` or `flapping`.
    pub kind: String,
    /// When it opened; `resolved_at` `None` while open.
    pub opened_at: UnixMillis,
    /// When it resolved.
    pub resolved_at: Option<UnixMillis>,
}

impl IncidentSpan {
    fn span(&self, now: UnixMillis) -> Span {
        Span::new(self.opened_at, self.resolved_at.unwrap_or(now).max(self.opened_at))
    }
}

/// Uptime over one standard window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowUptime {
    /// `24h`, `7d`, `30d` or `90d`.
    pub window: Window,
    /// See [`Uptime`].
    #[serde(flatten)]
    pub uptime: UptimeFigures,
}

/// [`Uptime`] without its span, for JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UptimeFigures {
    /// `1 - downtime / counted`; `None` when nothing was counted.
    pub ratio: Option<f64>,
    /// Time that counts: monitored, outside maintenance.
    pub counted_ms: u64,
    /// Counted time inside an outage.
    pub downtime_ms: u64,
    /// Monitored time inside maintenance.
    pub maintenance_ms: u64,
    /// Counted time while flapping (not downtime).
    pub flapping_ms: u64,
}

impl From<Uptime> for UptimeFigures {
    fn from(u: Uptime) -> Self {
        UptimeFigures {
            ratio: u.ratio,
            counted_ms: u.counted_ms,
            downtime_ms: u.downtime_ms,
            maintenance_ms: u.maintenance_ms,
            flapping_ms: u.flapping_ms,
        }
    }
}

/// One endpoint's history over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointHistory {
    /// The endpoint's name.
    pub endpoint: String,
    /// The window read.
    pub window: Window,
    /// `hour` or `day`: what one latency point covers.
    pub resolution: Granularity,
    /// The window's start.
    pub from_unix_ms: u64,
    /// The window's end (the time of reading).
    pub to_unix_ms: u64,
    /// Uptime over the window.
    pub uptime: UptimeFigures,
    /// Uptime over each standard window (24h, 7d, 30d, 90d).
    pub uptime_windows: Vec<WindowUptime>,
    /// One bar per UTC day of the window (the last one partial), oldest
    /// first.
    pub days: Vec<DayBar>,
    /// Per region, latency and counts.
    pub regions: Vec<RegionHistory>,
}

/// What one endpoint's history is built from.
#[derive(Debug, Clone, Default)]
pub struct HistoryInputs {
    /// The endpoint's name.
    pub endpoint: String,
    /// When it was created, its outages, flapping and maintenance.
    pub monitored_since: UnixMillis,
    /// Its incidents (any kind).
    pub incidents: Vec<IncidentSpan>,
    /// Maintenance windows that cover it.
    pub maintenance: Vec<Span>,
    /// Per region, the rollups of the window's resolution: period → rollup.
    pub rollups: BTreeMap<String, BTreeMap<u32, Rollup>>,
}

impl HistoryInputs {
    /// The uptime inputs these carry, at `now`.
    pub fn uptime_inputs(&self, now: UnixMillis) -> UptimeInputs {
        let of_kind = |kind: &str| {
            self.incidents.iter().filter(|i| i.kind == kind).map(|i| i.span(now)).collect::<Vec<_>>()
        };
        UptimeInputs {
            monitored_since: self.monitored_since,
            outages: of_kind("outage"),
            flapping: of_kind("flapping"),
            maintenance: self.maintenance.clone(),
        }
    }

    /// The view over `window` at `now`.
    pub fn build(&self, window: Window, now: UnixMillis) -> EndpointHistory {
        let uptime_inputs = self.uptime_inputs(now);
        let from = UnixMillis(now.0.saturating_sub(window.len_ms()));
        let window_uptime =
            |w: Window| uptime_inputs.uptime(Span::new(UnixMillis(now.0.saturating_sub(w.len_ms())), now));
        let day_count = u32::try_from(window.len_ms() / DAY_MS).unwrap_or(1);
        let today = Granularity::Day.period_of(now);
        let days = (today.saturating_sub(day_count - 1)..=today)
            .map(|day| {
                let start = Granularity::Day.start_of(day);
                let span = Span::new(start, UnixMillis((start.0 + DAY_MS).min(now.0)));
                let u = uptime_inputs.uptime(span);
                DayBar {
                    start_unix_ms: start.0,
                    uptime: u.ratio,
                    downtime_ms: u.downtime_ms,
                    maintenance_ms: u.maintenance_ms,
                    incidents: self
                        .incidents
                        .iter()
                        .filter(|i| {
                            let s = i.span(now);
                            s.start < span.end
                                && (s.end > span.start || (s.len_ms() == 0 && s.start >= span.start))
                        })
                        .map(|i| i.id)
                        .collect(),
                }
            })
            .collect();
        let periods = window.periods(now);
        let regions = self
            .rollups
            .iter()
            .map(|(region, rollups)| {
                let mut summary = Rollup::default();
                let points = rollups
                    .range(periods.clone())
                    .filter(|(_, r)| r.checks > 0)
                    .map(|(&period, r)| {
                        summary.merge(r);
                        LatencyPoint::of(window.resolution().start_of(period), r)
                    })
                    .collect();
                RegionHistory { region: region.clone(), summary: LatencyPoint::of(from, &summary), points }
            })
            .collect();
        EndpointHistory {
            endpoint: self.endpoint.clone(),
            window,
            resolution: window.resolution(),
            from_unix_ms: from.0,
            to_unix_ms: now.0,
            uptime: window_uptime(window).into(),
            uptime_windows: Window::ALL
                .into_iter()
                .map(|w| WindowUptime { window: w, uptime: window_uptime(w).into() })
                .collect(),
            days,
            regions,
        }
    }
}

/// Microseconds as milliseconds.
fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests;
