//! The command line of `endpoint history`.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use vantage_core::history::Window;

/// The `endpoint history` long help.
pub const HISTORY_HELP: &str = "\
What the cluster remembers of an endpoint, read from the answering node's own
replicated state (any node answers, no leader needed):
  uptime   1 - downtime / counted time, where downtime is time inside an outage
           (a quorum of regions down; degraded time is not downtime) and counted
           time is the time since the endpoint was added, minus maintenance.
           Shown over the window and over each standard window (24h 7d 30d 90d),
           rounded down to 3 decimals, so 100.000% means no downtime at all.
  days     one character per UTC day (7d, 30d, 90d), oldest first, today last:
           █ 100%  ▇ ≥99.9%  ▆ ≥99%  ▅ ≥95%  ▄ ≥90%  ▃ ≥75%  ▂ ≥50%  ▁ lower
           · nothing counted (not monitored yet, or all in maintenance)
  regions  per region: checks and failures over the window, and the p50, p95
           and p99 of the total time and of the time to first byte of the
           successful checks, in milliseconds (quantiles within 1.6 %).
On a terminal each region also gets a sparkline of its p50 (▁ fastest to
█ slowest of the row, · no successful check), one character per hour (24h),
4 hours (7d) or day (30d), 2 days (90d); never when the output is piped.
24h and 7d are read by hour, 30d and 90d by day. --json prints the view as
the HTTP port's /api/endpoints/NAME/history does.

Examples:
  vantagectl endpoint history api
  vantagectl endpoint history api --window 90d
  vantagectl endpoint history api --window 7d --json";

/// `vantagectl endpoint history`.
#[derive(Debug, Clone, Args)]
pub struct EndpointHistoryArgs {
    /// The endpoint's name or id.
    #[arg(value_name = "NAME|ID")]
    pub endpoint: String,
    /// The window to read: the last 24h or 7d (by hour), 30d or 90d (by
    /// day).
    #[arg(long, value_name = "WINDOW", default_value = "24h", value_parser = window_parser())]
    pub window: Window,
}

fn window_parser() -> impl TypedValueParser<Value = Window> {
    PossibleValuesParser::new(Window::ALL.map(Window::as_str)).try_map(|name| name.parse::<Window>())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Command, EndpointCommand};

    use super::*;

    fn parse(args: &[&str]) -> Result<EndpointHistoryArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["vantagectl", "endpoint", "history"], args].concat())?;
        let Command::Endpoint(EndpointCommand::History(args)) = cli.command else { panic!("not history") };
        Ok(args)
    }

    #[test]
    fn the_window_defaults_to_24h_and_takes_only_the_four_names() {
        assert_eq!(parse(&["api"]).unwrap().window, Window::Day);
        for w in Window::ALL {
            assert_eq!(parse(&["api", "--window", w.as_str()]).unwrap().window, w);
        }
        let err = parse(&["api", "--window", "1y"]).unwrap_err().to_string();
        assert!(err.contains("[possible values: 24h, 7d, 30d, 90d]"), "{err}");
        assert!(parse(&[]).is_err(), "the endpoint is required");
    }
}
