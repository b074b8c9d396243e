//! `vantagectl probe token create|list|revoke|drain|undrain`.

use std::io::Write;

use crate::args::{ProbeCommand, ProbeTokenCommand};
use crate::cmd::{Context, RemovedJson};
use crate::error::Error;
use crate::output::probes_table;

/// Runs a probe command.
pub async fn run(ctx: &Context<'_>, command: &ProbeCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    match command {
        ProbeCommand::Token(ProbeTokenCommand::Create { probe, region, weight }) => {
            let issued = client.create_probe_token(probe, region, *weight, &ctx.new_key()?).await?;
            let verb = if issued.rotated { "rotated the token of" } else { "registered" };
            let human = format!(
                "{verb} probe {probe} (id {}) in region {region}\n\
                 token: {}\n\
                 warning: this token is shown only once and cannot be shown again; put it in the probe's \
                 token_file now (mode 0600). If it is lost, run this command again to replace it.\n",
                issued.probe_id, issued.token
            );
            ctx.print(out, &issued, &human)
        }
        ProbeCommand::List => {
            let mut probes = client.list_probes(ctx.consistent).await?;
            probes.sort_by(|a, b| {
                (a.region.as_str(), a.name.as_str()).cmp(&(b.region.as_str(), b.name.as_str()))
            });
            let table = probes_table(&probes);
            let human = if table.is_empty() {
                "no probes (issue a token with: vantagectl probe token create --probe NAME --region R)\n"
                    .to_string()
            } else {
                table.render()
            };
            ctx.print(out, &probes, &human)
        }
        ProbeCommand::Revoke { probe } => {
            let removed = client.revoke_probe(probe, &ctx.new_key()?).await?;
            let json = RemovedJson { kind: "probe", id: removed.id, name: &removed.name };
            ctx.print(out, &json, &format!("revoked {}", removed.describe("probe")))
        }
        ProbeCommand::Drain { probe } | ProbeCommand::Undrain { probe } => {
            let drained = matches!(command, ProbeCommand::Drain { .. });
            let info = client.drain_probe(probe, drained, &ctx.new_key()?).await?;
            let verb = if drained { "drained" } else { "undrained" };
            ctx.print(out, &info, &format!("{verb} probe {} (id {})", info.name, info.id))
        }
    }
}
