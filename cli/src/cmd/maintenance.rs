//! `vantagectl maintenance add|list|rm`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::SystemTime;

use crate::args::{MaintenanceAddArgs, MaintenanceCommand};
use crate::cmd::{Context, RemovedJson};
use crate::document::unix_millis;
use crate::error::Error;
use crate::model::MaintenanceSpec;
use crate::output::maintenance_table;
use crate::timefmt::{format_rfc3339_ms, parse_instant_ms};
use vantage_core::ids::EndpointId;

/// Runs a maintenance command.
pub async fn run(ctx: &Context<'_>, command: &MaintenanceCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    match command {
        MaintenanceCommand::Add(args) => {
            // Endpoints are named by name or id; the window stores ids.
            let mut ids = BTreeSet::new();
            for reference in &args.endpoints {
                ids.insert(client.get_endpoint(reference, true).await?.id);
            }
            let spec = spec_from_add(args, ids, ctx.clock.now())?;
            let window = client.add_maintenance(&spec, &ctx.new_key()?).await?;
            let human = format!(
                "added maintenance window {} ({} .. {})",
                window.id,
                format_rfc3339_ms(window.spec.starts_at.as_i64()),
                format_rfc3339_ms(window.spec.ends_at.as_i64())
            );
            ctx.print(out, &window, &human)
        }
        MaintenanceCommand::List => {
            let mut windows = client.list_maintenance(ctx.consistent).await?;
            windows.sort_by_key(|w| w.id);
            if ctx.json {
                return ctx.print(out, &windows, "");
            }
            let names: BTreeMap<u64, String> = client
                .list_endpoints(ctx.consistent)
                .await?
                .into_iter()
                .map(|e| (e.id, e.spec.name))
                .collect();
            ctx.print(out, &windows, &maintenance_table(&windows, &names).render())
        }
        MaintenanceCommand::Rm { id } => {
            let removed = client.remove_maintenance(*id, &ctx.new_key()?).await?;
            let human = format!("removed maintenance window {}", removed.id);
            ctx.print(out, &RemovedJson { kind: "maintenance", id: removed.id, name: &removed.name }, &human)
        }
    }
}

/// The window `maintenance add` sends; `endpoints` are the resolved ids
/// and `now` anchors `now` and `+DUR`.
pub fn spec_from_add(
    args: &MaintenanceAddArgs,
    endpoints: BTreeSet<u64>,
    now: SystemTime,
) -> Result<MaintenanceSpec, Error> {
    let start = parse_instant_ms(&args.start, now).map_err(|e| Error::usage(format!("--start: {e}")))?;
    let end = parse_instant_ms(&args.end, now).map_err(|e| Error::usage(format!("--end: {e}")))?;
    let spec = MaintenanceSpec {
        starts_at: unix_millis(start).map_err(|e| Error::usage(format!("--start: {e}")))?,
        ends_at: unix_millis(end).map_err(|e| Error::usage(format!("--end: {e}")))?,
        endpoints: endpoints.into_iter().map(EndpointId).collect(),
        labels: args.label.iter().cloned().collect(),
        reason: args.reason.clone(),
    };
    spec.validate().map_err(|e| Error::usage(e.to_string()))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use clap::Parser;
    use vantage_proto::pb;

    use super::*;
    use crate::args::{Cli, Command};

    fn add_args(args: &[&str]) -> MaintenanceAddArgs {
        let argv = ["vantagectl", "maintenance", "add"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Maintenance(MaintenanceCommand::Add(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_arguments_map_to_the_request() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let args =
            add_args(&["--start", "now", "--end", "+2h", "--label", "team=core", "--reason", "db upgrade"]);
        let request = pb::MaintenanceSpec::from(&spec_from_add(&args, [7].into(), now).unwrap());
        assert_eq!(request.starts_at_unix_ms, 1_000_000);
        assert_eq!(request.ends_at_unix_ms, 1_000_000 + 7_200_000);
        assert_eq!(request.endpoints, vec![7]);
        assert_eq!(request.labels["team"], "core");
        assert_eq!(request.reason, "db upgrade");
    }

    #[test]
    fn bad_times_are_usage_errors_naming_the_option() {
        let now = UNIX_EPOCH;
        let err =
            spec_from_add(&add_args(&["--start", "soon", "--end", "+1h"]), BTreeSet::new(), now).unwrap_err();
        assert!(err.to_string().starts_with("--start: invalid time \"soon\""), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err =
            spec_from_add(&add_args(&["--start", "+2h", "--end", "+1h"]), BTreeSet::new(), now).unwrap_err();
        assert!(err.to_string().contains("after the start"), "{err}");
    }
}
