//! `vantagectl check ENDPOINT`: run it now from every region.

use std::io::Write;

use crate::args::CheckArgs;
use crate::cmd::Context;
use crate::error::Error;
use crate::output::check_text;

/// Runs `check`: prints one row per region, then fails with
/// [`Error::CheckFailed`] (exit 1) when a region did not pass, or
/// [`Error::CheckNotRun`] (exit 2) when the check could not run at all.
pub async fn run(ctx: &Context<'_>, args: &CheckArgs, out: &mut dyn Write) -> Result<(), Error> {
    let report = match ctx.client.check_endpoint(&args.endpoint).await {
        Ok(report) => report,
        Err(error @ Error::Usage { .. }) => return Err(error),
        Err(error) => return Err(Error::CheckNotRun { source: Box::new(error) }),
    };
    ctx.print(out, &report, &check_text(&report))?;
    let failed = report.regions.iter().filter(|r| !r.is_ok()).count();
    if failed > 0 || report.regions.is_empty() {
        out.flush()?;
        return Err(Error::CheckFailed { failed, total: report.regions.len() });
    }
    Ok(())
}
