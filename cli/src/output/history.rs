//! `endpoint history` for humans: a header (the endpoint, the window, its
//! uptime and the four standard windows' uptime), one block character per
//! UTC day, and a table per region of checks, failures and latency
//! quantiles, with a sparkline of the p50 when the output is a terminal.
//!
//! Pure: the view and whether to draw sparklines are passed in. Uptime
//! percentages are rounded *down* to 3 decimals from the integer
//! milliseconds, so `100.000%` is shown only when there was no downtime
//! at all.

use vantage_core::history::{DayBar, EndpointHistory, Granularity, LatencyPoint, UptimeFigures};
use vantage_core::time::UnixMillis;

use super::key_values;
use crate::table::Table;
use crate::timefmt::{format_ms, format_rfc3339_ms};

/// The most characters a sparkline takes: longer windows group periods.
pub const SPARKLINE_WIDTH: usize = 48;
/// Shown for a day with nothing counted, or a sparkline column without a
/// successful check.
pub const NO_DATA: char = '·';
/// The sparkline's levels, lowest first.
pub const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// A day's block below 100 %: the first whose floor its uptime reaches.
const DAY_LEVELS: [(f64, char); 6] =
    [(0.999, '▇'), (0.99, '▆'), (0.95, '▅'), (0.90, '▄'), (0.75, '▃'), (0.50, '▂')];
/// What the day characters mean.
pub const DAY_LEGEND: &str = "█ 100%  ▇ ≥99.9%  ▆ ≥99%  ▅ ≥95%  ▄ ≥90%  ▃ ≥75%  ▂ ≥50%  ▁ lower  · no data";

/// The whole view: header, day bars (windows of more than one day) and
/// the regions' table; `sparklines` adds each region's p50 trend.
pub fn history_text(history: &EndpointHistory, sparklines: bool) -> String {
    let u = &history.uptime;
    let uptime = match u.ratio {
        None => "no data (nothing counted: not monitored in this window, or all in maintenance)".to_string(),
        Some(_) => format!(
            "{} (downtime {}, maintenance {}, flapping {})",
            uptime_percent(u),
            format_ms(u.downtime_ms),
            format_ms(u.maintenance_ms),
            format_ms(u.flapping_ms)
        ),
    };
    let windows: Vec<String> = history
        .uptime_windows
        .iter()
        .map(|w| format!("{} {}", w.window, uptime_percent(&w.uptime)))
        .collect();
    let mut out = key_values(&[
        ("endpoint", history.endpoint.clone()),
        (
            "window",
            format!(
                "{} by {}, {} to {}",
                history.window,
                resolution_name(history.resolution),
                format_rfc3339_ms(ms_i64(history.from_unix_ms)),
                format_rfc3339_ms(ms_i64(history.to_unix_ms))
            ),
        ),
        ("uptime", uptime),
        ("windows", windows.join("  ")),
    ]);
    if let (true, Some(first), Some(last)) =
        (history.days.len() > 1, history.days.first(), history.days.last())
    {
        out.push_str(&format!(
            "\ndays (UTC, {} to {}, today last):\n  {}\n  {DAY_LEGEND}\n",
            date(first.start_unix_ms),
            date(last.start_unix_ms),
            day_bars(&history.days)
        ));
    }
    out.push('\n');
    if history.regions.is_empty() {
        out.push_str("no checks recorded in this window\n");
    } else {
        out.push_str(&regions_table(history, sparklines).render());
    }
    out
}

/// REGION CHECKS FAILURES P50 P95 P99 (total) TTFB-P50 TTFB-P99 over the
/// window, and P50 TREND (a sparkline) when asked.
pub fn regions_table(history: &EndpointHistory, sparklines: bool) -> Table {
    let mut headers = vec!["REGION", "CHECKS", "FAILURES", "P50", "P95", "P99", "TTFB-P50", "TTFB-P99"];
    if sparklines {
        headers.push("P50 TREND");
    }
    let mut table = Table::new(headers);
    for region in &history.regions {
        let s = &region.summary;
        let total = |f: fn(&vantage_core::history::Quantiles) -> f64| latency(s.total_ms.as_ref().map(f));
        let ttfb = |f: fn(&vantage_core::history::Quantiles) -> f64| latency(s.ttfb_ms.as_ref().map(f));
        let mut row = vec![
            region.region.clone(),
            s.checks.to_string(),
            s.failures.to_string(),
            total(|q| q.p50),
            total(|q| q.p95),
            total(|q| q.p99),
            ttfb(|q| q.p50),
            ttfb(|q| q.p99),
        ];
        if sparklines {
            row.push(sparkline(&p50_columns(history, &region.points)));
        }
        table.row(row);
    }
    table
}

/// Uptime as a percentage with 3 decimals, rounded down (`99.954%`); `-`
/// when nothing was counted.
pub fn uptime_percent(uptime: &UptimeFigures) -> String {
    if uptime.ratio.is_none() || uptime.counted_ms == 0 {
        return "-".to_string();
    }
    let up = u128::from(uptime.counted_ms.saturating_sub(uptime.downtime_ms));
    let thousandths = up * 100_000 / u128::from(uptime.counted_ms);
    format!("{}.{:03}%", thousandths / 1000, thousandths % 1000)
}

/// One character per day, oldest first (see [`DAY_LEGEND`]).
pub fn day_bars(days: &[DayBar]) -> String {
    days.iter().map(day_char).collect()
}

/// A day's character: `█` without downtime, lower blocks for less (see
/// [`DAY_LEGEND`]), [`NO_DATA`] when nothing was counted.
pub fn day_char(day: &DayBar) -> char {
    match day.uptime {
        None => NO_DATA,
        Some(_) if day.downtime_ms == 0 => '█',
        Some(ratio) => DAY_LEVELS.iter().find(|(floor, _)| ratio >= *floor).map_or('▁', |(_, c)| *c),
    }
}

/// A sparkline: `▁` for the lowest value of the row to `█` for its
/// highest, in eight equal steps; `▁` throughout when they are all equal;
/// [`NO_DATA`] for a missing (or non-finite) value.
pub fn sparkline(values: &[Option<f64>]) -> String {
    let finite = || values.iter().flatten().copied().filter(|v| v.is_finite());
    let low = finite().fold(f64::INFINITY, f64::min);
    let high = finite().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|value| match value {
            Some(v) if v.is_finite() => {
                let step = if high > low { ((v - low) / (high - low) * 8.0) as usize } else { 0 };
                LEVELS[step.min(LEVELS.len() - 1)]
            }
            _ => NO_DATA,
        })
        .collect()
}

/// A region's p50 total time per sparkline column: the window's periods
/// in order, grouped so that there are at most [`SPARKLINE_WIDTH`]
/// columns (7d: 4 hours a column, 90d: 2 days), each column the highest
/// p50 among its periods so a spike shows; `None` where no period of it
/// had a successful check.
pub fn p50_columns(history: &EndpointHistory, points: &[LatencyPoint]) -> Vec<Option<f64>> {
    let periods = history.window.periods(UnixMillis(history.to_unix_ms));
    let first = *periods.start();
    let count = (periods.end() - first) as usize + 1;
    let mut slots: Vec<Option<f64>> = vec![None; count];
    for point in points {
        let period = history.resolution.period_of(UnixMillis(point.start_unix_ms));
        let Some(slot) = period.checked_sub(first).map(|i| i as usize).filter(|i| *i < count) else {
            continue;
        };
        let p50 = point.total_ms.map(|q| q.p50);
        slots[slot] = max(slots[slot], p50);
    }
    slots.chunks(count.div_ceil(SPARKLINE_WIDTH).max(1)).map(|c| c.iter().copied().fold(None, max)).collect()
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Milliseconds with one decimal (`12.3ms`), `-` for none.
fn latency(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}ms"))
}

fn resolution_name(g: Granularity) -> &'static str {
    vantage_proto::history::granularity_name(g)
}

fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// `2026-12-01` of a day's start.
fn date(ms: u64) -> String {
    format_rfc3339_ms(ms_i64(ms)).chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vantage_core::history::{Quantiles, RegionHistory, Window, WindowUptime, DAY_MS, HOUR_MS};

    use super::*;

    /// 2026-12-01T00:00:00Z.
    const T: u64 = 1_796_083_200_000;

    fn figures(counted_ms: u64, downtime_ms: u64) -> UptimeFigures {
        UptimeFigures {
            ratio: (counted_ms > 0).then(|| 1.0 - downtime_ms as f64 / counted_ms as f64),
            counted_ms,
            downtime_ms,
            maintenance_ms: 0,
            flapping_ms: 0,
        }
    }

    fn day(start: u64, uptime: Option<f64>, downtime_ms: u64) -> DayBar {
        DayBar { start_unix_ms: start, uptime, downtime_ms, maintenance_ms: 0, incidents: vec![] }
    }

    fn point(start: u64, checks: u32, failures: u32, p50: Option<f64>) -> LatencyPoint {
        let q = |p50: f64| Quantiles { p50, p95: p50 * 2.0, p99: p50 * 3.0 };
        LatencyPoint {
            start_unix_ms: start,
            checks,
            failures,
            total_ms: p50.map(q),
            ttfb_ms: p50.map(|p| q(p / 2.0)),
            phases_mean_ms: BTreeMap::new(),
        }
    }

    fn view(window: Window, now: u64, regions: Vec<RegionHistory>, days: Vec<DayBar>) -> EndpointHistory {
        EndpointHistory {
            endpoint: "api".into(),
            window,
            resolution: window.resolution(),
            from_unix_ms: now - window.len_ms(),
            to_unix_ms: now,
            uptime: figures(window.len_ms(), 280_000),
            uptime_windows: Window::ALL
                .into_iter()
                .map(|w| WindowUptime { window: w, uptime: figures(w.len_ms(), 280_000) })
                .collect(),
            days,
            regions,
        }
    }

    #[test]
    fn uptime_is_rounded_down_to_three_decimals_so_100_means_no_downtime() {
        assert_eq!(uptime_percent(&figures(7 * DAY_MS, 280_000)), "99.953%", "99.9537… rounds down");
        assert_eq!(uptime_percent(&figures(90 * DAY_MS, 1)), "99.999%", "1 ms down is not 100%");
        assert_eq!(uptime_percent(&figures(DAY_MS, 0)), "100.000%");
        assert_eq!(uptime_percent(&figures(DAY_MS, DAY_MS)), "0.000%");
        assert_eq!(uptime_percent(&figures(DAY_MS, DAY_MS / 2)), "50.000%");
        assert_eq!(uptime_percent(&figures(0, 0)), "-", "nothing counted");
    }

    #[test]
    fn day_characters_follow_the_legend() {
        let cases = [
            (Some(1.0), 0, '█'),
            (Some(0.9995), 43_200, '▇'),
            (Some(0.999), 86_400, '▇'),
            (Some(0.995), 432_000, '▆'),
            (Some(0.96), 1, '▅'),
            (Some(0.92), 1, '▄'),
            (Some(0.80), 1, '▃'),
            (Some(0.50), 1, '▂'),
            (Some(0.49), 1, '▁'),
            (Some(0.0), DAY_MS, '▁'),
            (None, 0, NO_DATA),
        ];
        for (uptime, downtime, expected) in cases {
            assert_eq!(day_char(&day(T, uptime, downtime)), expected, "{uptime:?}");
        }
        let days = [day(T, None, 0), day(T + DAY_MS, Some(1.0), 0), day(T + 2 * DAY_MS, Some(0.97), 9)];
        assert_eq!(day_bars(&days), "·█▅");
        for (_, c) in DAY_LEVELS {
            assert!(DAY_LEGEND.contains(c), "{c} is explained");
        }
    }

    #[test]
    fn sparklines_scale_from_the_lowest_to_the_highest_value_of_the_row() {
        let values: Vec<Option<f64>> = (0..8).map(|n| Some(10.0 + f64::from(n) * 5.0)).collect();
        assert_eq!(sparkline(&values), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[Some(1.0), None, Some(3.0), Some(f64::NAN)]), "▁·█·");
        assert_eq!(sparkline(&[Some(7.0), Some(7.0)]), "▁▁", "a flat line");
        assert_eq!(sparkline(&[None, None]), "··");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn p50_columns_follow_the_windows_periods_and_group_long_windows() {
        // 24h by hour, read at 05:30: 24 columns, the last one the current hour.
        let now = T + 5 * HOUR_MS + 1_800_000;
        let points = vec![point(T + 5 * HOUR_MS, 60, 0, Some(20.0)), point(T - 2 * HOUR_MS, 60, 60, None)];
        let h = view(Window::Day, now, vec![], vec![]);
        let columns = p50_columns(&h, &points);
        assert_eq!(columns.len(), 24);
        assert_eq!(columns[23], Some(20.0));
        assert!(columns[..23].iter().all(Option::is_none), "a failed hour has no p50: {columns:?}");
        // 7d: 168 hours in columns of 4, the highest p50 of each.
        let points: Vec<LatencyPoint> =
            (0..8).map(|n| point(now - n * HOUR_MS, 60, 0, Some(10.0 + n as f64))).collect();
        let columns = p50_columns(&view(Window::Week, now, vec![], vec![]), &points);
        assert_eq!(columns.len(), 42);
        assert_eq!(columns[41], Some(13.0));
        assert_eq!(columns[40], Some(17.0));
        // 90d: 90 days in columns of 2; a point outside the window is ignored.
        let points = vec![point(T, 1440, 0, Some(9.0)), point(T - 200 * DAY_MS, 1440, 0, Some(99.0))];
        let columns = p50_columns(&view(Window::Quarter, now, vec![], vec![]), &points);
        assert_eq!(columns.len(), 45);
        assert_eq!(columns.iter().flatten().collect::<Vec<_>>(), [&9.0]);
    }

    #[test]
    fn the_text_has_the_header_days_and_a_row_per_region_with_a_trend_only_when_asked() {
        let now = T + 5 * HOUR_MS + 1_800_000;
        let regions = vec![
            RegionHistory {
                region: "eu-west".into(),
                summary: point(now - 7 * DAY_MS, 10_080, 3, Some(12.25)),
                points: vec![point(now - 8 * HOUR_MS, 60, 0, Some(11.0)), point(now, 30, 3, Some(14.0))],
            },
            RegionHistory {
                region: "us-east".into(),
                summary: point(now - 7 * DAY_MS, 4, 4, None),
                points: vec![point(now, 4, 4, None)],
            },
        ];
        let days =
            (0..7).map(|n| day(T - (6 - n) * DAY_MS, if n == 0 { None } else { Some(1.0) }, 0)).collect();
        let mut h = view(Window::Week, now, regions, days);
        h.days[5] = day(T - DAY_MS, Some(0.9968), 280_000);
        let text = history_text(&h, false);
        let expected = "\
endpoint: api
window:   7d by hour, 2026-11-24T05:30:00Z to 2026-12-01T05:30:00Z
uptime:   99.953% (downtime 4m40s, maintenance 0s, flapping 0s)
windows:  24h 99.675%  7d 99.953%  30d 99.989%  90d 99.996%

days (UTC, 2026-11-25 to 2026-12-01, today last):
  ·████▆█
  █ 100%  ▇ ≥99.9%  ▆ ≥99%  ▅ ≥95%  ▄ ≥90%  ▃ ≥75%  ▂ ≥50%  ▁ lower  · no data

REGION   CHECKS  FAILURES  P50     P95     P99     TTFB-P50  TTFB-P99
eu-west  10080   3         12.2ms  24.5ms  36.8ms  6.1ms     18.4ms
us-east  4       4         -       -       -       -         -
";
        assert_eq!(text, expected);
        assert!(!text.contains("TREND"), "no sparkline when not asked");
        let on_a_terminal = history_text(&h, true);
        let eu = on_a_terminal.lines().find(|l| l.starts_with("eu-west")).unwrap();
        assert!(on_a_terminal.contains("TTFB-P99  P50 TREND"), "{on_a_terminal}");
        let trend = eu.rsplit("  ").next().unwrap();
        assert_eq!(trend.chars().count(), 42);
        assert_eq!(trend, format!("{}▁·█", "·".repeat(39)));
        let us = on_a_terminal.lines().find(|l| l.starts_with("us-east")).unwrap();
        assert!(us.ends_with(&NO_DATA.to_string().repeat(42)), "{us}");
    }

    #[test]
    fn a_day_window_has_no_day_bars_and_an_empty_one_says_so() {
        let mut h = view(Window::Day, T + HOUR_MS, vec![], vec![day(T, Some(1.0), 0)]);
        h.uptime = UptimeFigures { ratio: None, ..figures(0, 0) };
        let text = history_text(&h, true);
        assert!(!text.contains("days ("), "{text}");
        assert!(text.contains("uptime:   no data (nothing counted"), "{text}");
        assert!(text.ends_with("\nno checks recorded in this window\n"), "{text}");
    }
}
