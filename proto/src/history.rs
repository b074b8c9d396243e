//! Conversions for endpoint history: the AdminService's
//! `EndpointHistoryReply` and its parts ⇄ `vantage-core`'s
//! [`history`](vantage_core::history) view ([`EndpointHistory`]), whose
//! JSON is also the HTTP port's `/api/endpoints/NAME/history`.
//!
//! The messages mirror the core types field for field: windows and
//! resolutions travel as their names (`24h`, `hour`), the ones the core
//! types have in JSON, so the wire, `--json` and the HTTP body agree. A
//! name this build does not know (a newer server's) is refused with the
//! field named, never misread. Times are Unix milliseconds: `uint64` in
//! the core, `int64` on the wire as elsewhere in admin.proto; a negative
//! one is refused.

use vantage_core::history::{
    DayBar, EndpointHistory, Granularity, LatencyPoint, Quantiles, RegionHistory, UnknownWindow,
    UptimeFigures, Window, WindowUptime,
};

use crate::{pb, ConvertError};

/// The window an `EndpointHistoryRequest` asks for: its name, `""` meaning
/// `24h`. The error's text is the core's (`unknown window "1y": expected
/// one of 24h, 7d, 30d, 90d`).
pub fn request_window(text: &str) -> Result<Window, UnknownWindow> {
    match text.trim() {
        "" => Ok(Window::Day),
        name => name.parse(),
    }
}

/// The request for `endpoint`'s history over `window`; `consistent` reads
/// it through the leader.
pub fn history_request(endpoint: &str, window: Window, consistent: bool) -> pb::EndpointHistoryRequest {
    pb::EndpointHistoryRequest {
        endpoint: endpoint.to_string(),
        window: window.as_str().to_string(),
        consistent,
    }
}

/// A resolution's name, as the core writes it in JSON.
pub fn granularity_name(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Hour => "hour",
        Granularity::Day => "day",
    }
}

impl From<&EndpointHistory> for pb::EndpointHistoryReply {
    fn from(h: &EndpointHistory) -> Self {
        pb::EndpointHistoryReply {
            endpoint: h.endpoint.clone(),
            window: h.window.as_str().to_string(),
            resolution: granularity_name(h.resolution).to_string(),
            from_unix_ms: wire_ms(h.from_unix_ms),
            to_unix_ms: wire_ms(h.to_unix_ms),
            uptime: Some(uptime_to_pb(&h.uptime)),
            uptime_windows: h
                .uptime_windows
                .iter()
                .map(|w| pb::WindowUptime {
                    window: w.window.as_str().to_string(),
                    uptime: Some(uptime_to_pb(&w.uptime)),
                })
                .collect(),
            days: h.days.iter().map(day_to_pb).collect(),
            regions: h
                .regions
                .iter()
                .map(|r| pb::RegionHistory {
                    region: r.region.clone(),
                    summary: Some(point_to_pb(&r.summary)),
                    points: r.points.iter().map(point_to_pb).collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<&pb::EndpointHistoryReply> for EndpointHistory {
    type Error = ConvertError;
    fn try_from(h: &pb::EndpointHistoryReply) -> Result<Self, ConvertError> {
        const MSG: &str = "EndpointHistoryReply";
        Ok(EndpointHistory {
            endpoint: h.endpoint.clone(),
            window: parse_window(MSG, "window", &h.window)?,
            resolution: parse_granularity(MSG, "resolution", &h.resolution)?,
            from_unix_ms: core_ms(MSG, "from_unix_ms", h.from_unix_ms)?,
            to_unix_ms: core_ms(MSG, "to_unix_ms", h.to_unix_ms)?,
            uptime: uptime_from_pb(
                h.uptime.as_ref().ok_or(ConvertError::Missing { message: MSG, field: "uptime" })?,
            ),
            uptime_windows: h.uptime_windows.iter().map(WindowUptime::try_from).collect::<Result<_, _>>()?,
            days: h.days.iter().map(DayBar::try_from).collect::<Result<_, _>>()?,
            regions: h.regions.iter().map(RegionHistory::try_from).collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<&pb::WindowUptime> for WindowUptime {
    type Error = ConvertError;
    fn try_from(w: &pb::WindowUptime) -> Result<Self, ConvertError> {
        const MSG: &str = "WindowUptime";
        Ok(WindowUptime {
            window: parse_window(MSG, "window", &w.window)?,
            uptime: uptime_from_pb(
                w.uptime.as_ref().ok_or(ConvertError::Missing { message: MSG, field: "uptime" })?,
            ),
        })
    }
}

impl TryFrom<&pb::DayBar> for DayBar {
    type Error = ConvertError;
    fn try_from(d: &pb::DayBar) -> Result<Self, ConvertError> {
        Ok(DayBar {
            start_unix_ms: core_ms("DayBar", "start_unix_ms", d.start_unix_ms)?,
            uptime: d.uptime,
            downtime_ms: d.downtime_ms,
            maintenance_ms: d.maintenance_ms,
            incidents: d.incidents.clone(),
        })
    }
}

impl TryFrom<&pb::RegionHistory> for RegionHistory {
    type Error = ConvertError;
    fn try_from(r: &pb::RegionHistory) -> Result<Self, ConvertError> {
        let summary =
            r.summary.as_ref().ok_or(ConvertError::Missing { message: "RegionHistory", field: "summary" })?;
        Ok(RegionHistory {
            region: r.region.clone(),
            summary: LatencyPoint::try_from(summary)?,
            points: r.points.iter().map(LatencyPoint::try_from).collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<&pb::HistoryPoint> for LatencyPoint {
    type Error = ConvertError;
    fn try_from(p: &pb::HistoryPoint) -> Result<Self, ConvertError> {
        Ok(LatencyPoint {
            start_unix_ms: core_ms("HistoryPoint", "start_unix_ms", p.start_unix_ms)?,
            checks: p.checks,
            failures: p.failures,
            total_ms: p.total_ms.as_ref().map(quantiles_from_pb),
            ttfb_ms: p.ttfb_ms.as_ref().map(quantiles_from_pb),
            phases_mean_ms: p.phases_mean_ms.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        })
    }
}

/// The window named `name`, in `field` of `message`; the reason is the
/// core's text.
fn parse_window(message: &'static str, field: &'static str, name: &str) -> Result<Window, ConvertError> {
    name.parse().map_err(|e: UnknownWindow| ConvertError::Invalid { message, field, reason: e.to_string() })
}

fn parse_granularity(
    message: &'static str,
    field: &'static str,
    name: &str,
) -> Result<Granularity, ConvertError> {
    [Granularity::Hour, Granularity::Day].into_iter().find(|g| granularity_name(*g) == name).ok_or_else(
        || ConvertError::Invalid {
            message,
            field,
            reason: format!("unknown resolution {name:?}: expected hour or day"),
        },
    )
}

fn wire_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn core_ms(message: &'static str, field: &'static str, ms: i64) -> Result<u64, ConvertError> {
    u64::try_from(ms).map_err(|_| ConvertError::Invalid {
        message,
        field,
        reason: format!("{ms} is before 1970"),
    })
}

fn uptime_to_pb(u: &UptimeFigures) -> pb::UptimeFigures {
    pb::UptimeFigures {
        ratio: u.ratio,
        counted_ms: u.counted_ms,
        downtime_ms: u.downtime_ms,
        maintenance_ms: u.maintenance_ms,
        flapping_ms: u.flapping_ms,
    }
}

fn uptime_from_pb(u: &pb::UptimeFigures) -> UptimeFigures {
    UptimeFigures {
        ratio: u.ratio,
        counted_ms: u.counted_ms,
        downtime_ms: u.downtime_ms,
        maintenance_ms: u.maintenance_ms,
        flapping_ms: u.flapping_ms,
    }
}

fn day_to_pb(d: &DayBar) -> pb::DayBar {
    pb::DayBar {
        start_unix_ms: wire_ms(d.start_unix_ms),
        uptime: d.uptime,
        downtime_ms: d.downtime_ms,
        maintenance_ms: d.maintenance_ms,
        incidents: d.incidents.clone(),
    }
}

fn point_to_pb(p: &LatencyPoint) -> pb::HistoryPoint {
    pb::HistoryPoint {
        start_unix_ms: wire_ms(p.start_unix_ms),
        checks: p.checks,
        failures: p.failures,
        total_ms: p.total_ms.as_ref().map(quantiles_to_pb),
        ttfb_ms: p.ttfb_ms.as_ref().map(quantiles_to_pb),
        phases_mean_ms: p.phases_mean_ms.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    }
}

fn quantiles_to_pb(q: &Quantiles) -> pb::HistoryQuantiles {
    pb::HistoryQuantiles { p50: q.p50, p95: q.p95, p99: q.p99 }
}

fn quantiles_from_pb(q: &pb::HistoryQuantiles) -> Quantiles {
    Quantiles { p50: q.p50, p95: q.p95, p99: q.p99 }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prost::Message;

    use super::*;

    const DAY: u64 = 86_400_000;
    const T: u64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn point(start: u64, checks: u32, failures: u32, p50: Option<f64>) -> LatencyPoint {
        let quantiles = p50.map(|p50| Quantiles { p50, p95: p50 * 2.0, p99: p50 * 3.5 + 0.001 });
        LatencyPoint {
            start_unix_ms: start,
            checks,
            failures,
            total_ms: quantiles,
            ttfb_ms: quantiles.map(|q| Quantiles { p50: q.p50 / 2.0, ..q }),
            phases_mean_ms: if p50.is_some() {
                BTreeMap::from([("dns".to_string(), 1.25), ("ttfb".to_string(), 40.125)])
            } else {
                BTreeMap::new()
            },
        }
    }

    fn figures(ratio: Option<f64>, downtime_ms: u64) -> UptimeFigures {
        UptimeFigures { ratio, counted_ms: 3 * DAY, downtime_ms, maintenance_ms: 600_000, flapping_ms: 7 }
    }

    /// A 30-day view: days with and without data, a region whose every
    /// check failed (no quantiles), another with latency.
    fn history() -> EndpointHistory {
        EndpointHistory {
            endpoint: "web shop".into(),
            window: Window::Month,
            resolution: Granularity::Day,
            from_unix_ms: T - 30 * DAY,
            to_unix_ms: T + 3_600_000,
            uptime: figures(Some(0.999_537), 120_000),
            uptime_windows: Window::ALL
                .into_iter()
                .map(|w| WindowUptime {
                    window: w,
                    uptime: figures((w != Window::Day).then_some(0.99), 60_000),
                })
                .collect(),
            days: vec![
                DayBar {
                    start_unix_ms: T - DAY,
                    uptime: None,
                    downtime_ms: 0,
                    maintenance_ms: 0,
                    incidents: vec![],
                },
                DayBar {
                    start_unix_ms: T,
                    uptime: Some(0.986_111),
                    downtime_ms: 1_200_000,
                    maintenance_ms: 600_000,
                    incidents: vec![3, 9],
                },
            ],
            regions: vec![
                RegionHistory {
                    region: "eu-west".into(),
                    summary: point(T - 30 * DAY, 2_880, 4, Some(12.5)),
                    points: vec![point(T - DAY, 1_440, 0, Some(11.0)), point(T, 1_440, 4, Some(14.75))],
                },
                RegionHistory {
                    region: "us-east".into(),
                    summary: point(T - 30 * DAY, 60, 60, None),
                    points: vec![point(T, 60, 60, None)],
                },
            ],
        }
    }

    #[test]
    fn a_history_round_trips_through_the_wire_and_its_bytes() {
        let view = history();
        let wire = pb::EndpointHistoryReply::from(&view);
        assert_eq!((wire.window.as_str(), wire.resolution.as_str()), ("30d", "day"));
        assert_eq!(
            wire.uptime_windows.iter().map(|w| w.window.as_str()).collect::<Vec<_>>(),
            ["24h", "7d", "30d", "90d"]
        );
        assert_eq!(wire.days[0].uptime, None, "a day without data stays absent, not 0");
        assert_eq!(wire.regions[1].summary.as_ref().unwrap().total_ms, None);
        let decoded = pb::EndpointHistoryReply::decode(wire.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, wire);
        assert_eq!(EndpointHistory::try_from(&decoded).unwrap(), view);
    }

    #[test]
    fn the_wire_names_are_the_json_names_of_vantage_core() {
        let view = history();
        let json = serde_json::to_value(&view).unwrap();
        let wire = pb::EndpointHistoryReply::from(&view);
        assert_eq!(json["window"], wire.window);
        assert_eq!(json["resolution"], wire.resolution);
        for g in [Granularity::Hour, Granularity::Day] {
            assert_eq!(serde_json::to_value(g).unwrap(), granularity_name(g));
        }
    }

    #[test]
    fn request_windows_default_to_24h_and_unknown_ones_carry_the_core_text() {
        assert_eq!(request_window(""), Ok(Window::Day));
        assert_eq!(request_window(" 90d "), Ok(Window::Quarter));
        for w in Window::ALL {
            assert_eq!(request_window(&history_request("api", w, false).window), Ok(w));
        }
        assert_eq!(
            request_window("1y").unwrap_err().to_string(),
            "unknown window \"1y\": expected one of 24h, 7d, 30d, 90d"
        );
    }

    #[test]
    fn unknown_names_negative_times_and_missing_parts_are_refused_with_the_field_named() {
        let good = pb::EndpointHistoryReply::from(&history());
        let refused = |edit: &dyn Fn(&mut pb::EndpointHistoryReply)| {
            let mut wire = good.clone();
            edit(&mut wire);
            EndpointHistory::try_from(&wire).unwrap_err()
        };
        let err = refused(&|w| w.window = "1y".into());
        assert_eq!(
            err.to_string(),
            "EndpointHistoryReply: field window is invalid: unknown window \"1y\": expected one of 24h, 7d, 30d, 90d"
        );
        assert_eq!(refused(&|w| w.resolution = "minute".into()).field(), "resolution");
        assert_eq!(refused(&|w| w.from_unix_ms = -1).field(), "from_unix_ms");
        assert_eq!(
            refused(&|w| w.uptime = None),
            ConvertError::Missing { message: "EndpointHistoryReply", field: "uptime" }
        );
        let err = refused(&|w| w.uptime_windows[2].window = "month".into());
        assert_eq!((err.message(), err.field()), ("WindowUptime", "window"));
        let err = refused(&|w| w.days[1].start_unix_ms = -5);
        assert_eq!((err.message(), err.field()), ("DayBar", "start_unix_ms"));
        let err = refused(&|w| w.regions[0].summary = None);
        assert_eq!((err.message(), err.field()), ("RegionHistory", "summary"));
        let err = refused(&|w| w.regions[0].points[1].start_unix_ms = i64::MIN);
        assert_eq!((err.message(), err.field()), ("HistoryPoint", "start_unix_ms"));
    }
}
