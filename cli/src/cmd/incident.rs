//! `vantagectl incident list|show` and `vantagectl endpoint status`: what
//! agreement decided, read from any coordinator.

use std::io::Write;

use crate::args::{EndpointStatusArgs, IncidentCommand};
use crate::client::IncidentFilter;
use crate::cmd::Context;
use crate::error::Error;
use crate::output::incidents::{endpoint_states_table, endpoint_status_text, incident_text, incidents_table};
use crate::timefmt::unix_ms;

/// Runs an incident command.
pub async fn run(ctx: &Context<'_>, command: &IncidentCommand, out: &mut dyn Write) -> Result<(), Error> {
    let now = unix_ms(ctx.clock.now());
    match command {
        IncidentCommand::List(args) => {
            let filter = IncidentFilter {
                endpoint: args.endpoint.clone(),
                open_only: args.open,
                since_unix_ms: args.since.map(|since| since.unix_ms(ctx.clock.now())),
                limit: args.limit,
            };
            let page = ctx.client.list_incidents(&filter, ctx.consistent).await?;
            let mut human = if page.rows.is_empty() {
                let open = if args.open { "open " } else { "" };
                format!("no {open}incidents\n")
            } else {
                incidents_table(&page.rows, now).render()
            };
            if page.matched as usize > page.rows.len() {
                human.push_str(&format!(
                    "showing {} of {} incidents (raise --limit, or narrow with --endpoint, --open, --since)\n",
                    page.rows.len(),
                    page.matched
                ));
            }
            ctx.print(out, &page.rows, &human)
        }
        IncidentCommand::Show { id } => {
            let incident = ctx.client.get_incident(*id, ctx.consistent).await?;
            ctx.print(out, &incident, &incident_text(&incident, now))
        }
    }
}

/// `endpoint status [NAME]`: one endpoint in detail (an object in
/// `--json`), or every endpoint's state as a table (an array).
pub async fn endpoint_status(
    ctx: &Context<'_>,
    args: &EndpointStatusArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let now = unix_ms(ctx.clock.now());
    let statuses = ctx.client.endpoint_status(args.endpoint.as_deref(), ctx.consistent).await?;
    match &args.endpoint {
        Some(name) => {
            let status = statuses.into_iter().next().ok_or_else(|| Error::BadReply {
                reason: format!("EndpointStatus for {name:?} has no endpoint"),
            })?;
            ctx.print(out, &status, &endpoint_status_text(&status, now))
        }
        None => {
            let human = if statuses.is_empty() {
                "no endpoints (add one with: vantagectl endpoint add NAME URL)\n".to_string()
            } else {
                endpoint_states_table(&statuses, now).render()
            };
            ctx.print(out, &statuses, &human)
        }
    }
}
