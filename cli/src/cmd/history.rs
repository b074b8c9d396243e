//! `vantagectl endpoint history NAME`: an endpoint's uptime and latency
//! over a window, read from any coordinator.

use std::io::Write;

use crate::args::EndpointHistoryArgs;
use crate::cmd::Context;
use crate::error::Error;
use crate::output::history::history_text;

/// Runs `endpoint history`: the view as text (sparklines only on a
/// terminal), or as the HTTP API's JSON with `--json`.
pub async fn run(ctx: &Context<'_>, args: &EndpointHistoryArgs, out: &mut dyn Write) -> Result<(), Error> {
    let history = ctx.client.endpoint_history(&args.endpoint, args.window, ctx.consistent).await?;
    ctx.print(out, &history, &history_text(&history, ctx.terminal))
}
