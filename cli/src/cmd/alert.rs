//! `vantagectl alert list`: the alert outbox, from any coordinator.

use std::io::Write;

use crate::args::AlertCommand;
use crate::cmd::Context;
use crate::error::Error;
use crate::output::incidents::deliveries_table;

/// Runs an alert command.
pub async fn run(ctx: &Context<'_>, command: &AlertCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        AlertCommand::List { pending, limit } => {
            let page = ctx.client.list_deliveries(*pending, *limit, ctx.consistent).await?;
            let mut human = if page.rows.is_empty() {
                if *pending { "no pending alert deliveries\n" } else { "no alert deliveries\n" }.to_string()
            } else {
                deliveries_table(&page.rows).render()
            };
            if page.matched as usize > page.rows.len() {
                human.push_str(&format!(
                    "showing {} of {} deliveries (raise --limit, or only --pending)\n",
                    page.rows.len(),
                    page.matched
                ));
            }
            ctx.print(out, &page.rows, &human)
        }
    }
}
