//! The command line of what agreement decided: `incident list|show`,
//! `endpoint status` and `alert list`.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use crate::timefmt;

/// The `incident` group's long help.
pub const INCIDENT_HELP: &str = "\
An incident is a period of trouble of one endpoint, decided by agreement across
regions (so one probe's bad network never opens one):
  outage    a quorum of the endpoint's regions sees it down (an alert is sent
            when it opens and when it resolves)
  degraded  some regions see it down, fewer than the quorum: a regional problem
  flapping  it keeps changing state; one incident and one alert until it settles
Each incident keeps its evidence: per region, which probe saw what (verdict,
error kind, HTTP status, total time, when the check started, the message).
Resolved incidents are kept for 90 days.

Examples:
  vantagectl incident list --open
  vantagectl incident list --endpoint api --since 24h
  vantagectl incident list --since 2026-12-01T00:00:00Z --json
  vantagectl incident show 12";

/// The `endpoint status` long help.
pub const STATUS_HELP: &str = "\
States: up; degraded (some regions down, fewer than the quorum); down (an
outage: a quorum of regions down); unknown (too few regions with fresh results
to decide, e.g. probes disconnected; never down); flapping; maintenance (inside
a maintenance window: tracked, not alerted); paused.

The verdicts shown per region are those recorded with the endpoint's last
change of state (at SINCE): which probe saw what. `vantagectl check NAME` runs
the endpoint now from every region instead.

Examples:
  vantagectl endpoint status
  vantagectl endpoint status api
  vantagectl endpoint status api --json";

/// The `alert` group's long help.
pub const ALERT_HELP: &str = "\
Every change of state that raises an alert (outage opened or resolved, degraded,
flapping) is committed together with one delivery per matching webhook. The
leader delivers them, retrying with backoff; each attempt carries the same
`webhook-id` header (MESSAGE ID in --json), so a receiver can de-duplicate. A
delivery is pending until the receiver accepts it (delivered) or retries are
used up (failed, with the last error). Finished deliveries are kept for 7 days.

Examples:
  vantagectl alert list --pending
  vantagectl alert list --json";

/// `vantagectl incident …`.
#[derive(Debug, Clone, Subcommand)]
pub enum IncidentCommand {
    /// List incidents: open ones first, then the newest first.
    #[command(visible_alias = "ls")]
    List(IncidentListArgs),
    /// Show one incident with its evidence: per region, which probe saw
    /// what when it opened and when it resolved.
    Show {
        /// The incident's id (see `incident list`).
        id: u64,
    },
}

/// `vantagectl incident list`.
#[derive(Debug, Clone, Args)]
pub struct IncidentListArgs {
    /// Only this endpoint's incidents.
    #[arg(long, value_name = "NAME|ID")]
    pub endpoint: Option<String>,
    /// Only open incidents.
    #[arg(long)]
    pub open: bool,
    /// Only incidents open at some moment since then: a duration ago (24h,
    /// 30m) or an RFC 3339 time (2026-12-01T00:00:00Z). Open incidents are
    /// always included.
    #[arg(long, value_name = "DUR|TIME", value_parser = parse_since)]
    pub since: Option<Since>,
    /// At most N incidents (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

/// `vantagectl endpoint status`.
#[derive(Debug, Clone, Args)]
pub struct EndpointStatusArgs {
    /// One endpoint (name or id): its state, rules, per-region verdicts and
    /// open incidents. Without it: a table of every endpoint's state.
    #[arg(value_name = "NAME|ID")]
    pub endpoint: Option<String>,
}

/// `vantagectl alert …`.
#[derive(Debug, Clone, Subcommand)]
pub enum AlertCommand {
    /// List alert deliveries (pending ones first, then the newest first):
    /// webhook, event, status, attempts and the last error.
    #[command(visible_alias = "ls")]
    List {
        /// Only deliveries not delivered yet.
        #[arg(long)]
        pending: bool,
        /// At most N deliveries (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
}

/// A `--since` value: a time ago or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// This instant, Unix milliseconds.
    At(i64),
}

impl Since {
    /// The instant in Unix milliseconds, `now` given.
    pub fn unix_ms(self, now: SystemTime) -> i64 {
        match self {
            Since::At(ms) => ms,
            Since::Ago(ago) => {
                let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
                timefmt::unix_ms(now).saturating_sub(ago).max(0)
            }
        }
    }
}

fn parse_since(text: &str) -> Result<Since, String> {
    if let Ok(ago) = timefmt::parse_duration(text) {
        return Ok(Since::Ago(ago));
    }
    timefmt::parse_rfc3339_ms(text).map(Since::At).map_err(|_| {
        format!("{text:?} is neither a duration (24h, 30m) nor an RFC 3339 time (2026-12-01T00:00:00Z)")
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn since_takes_a_duration_ago_or_an_instant() {
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        assert_eq!(parse_since("24h").unwrap().unix_ms(now), 100_000_000 - 86_400_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap().unix_ms(now), 1_000);
        assert_eq!(parse_since("1000h").unwrap().unix_ms(now), 0, "never before 1970");
        let err = parse_since("yesterday").unwrap_err();
        assert!(err.contains("neither a duration"), "{err}");
        assert!(parse_since("30").is_err(), "a bare number has no unit");
    }
}
