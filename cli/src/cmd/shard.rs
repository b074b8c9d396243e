//! `vantagectl shard list|show|pin|unpin|rebalance`.

use std::io::Write;

use crate::args::ShardCommand;
use crate::cmd::Context;
use crate::error::Error;
use crate::output::{rebalance_text, shard_view_text, shards_text};

/// Runs a shard command.
pub async fn run(ctx: &Context<'_>, command: &ShardCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    match command {
        ShardCommand::List { region, probe } => {
            let list = client.list_shards(region.as_deref(), probe.as_deref()).await?;
            ctx.print(out, &list, &shards_text(&list))
        }
        ShardCommand::Show(args) => {
            let view = client.show_shard(&args.endpoint).await?;
            ctx.print(out, &view, &shard_view_text(&view))
        }
        ShardCommand::Pin { endpoint, region, probe } => {
            let pinned = client.pin_shard(endpoint, region, probe, &ctx.new_key()?).await?;
            let human = if pinned.changed {
                format!(
                    "pinned endpoint {} (id {}) in {} to probe {} (id {}); the leader moves it within a second \
                     (see: vantagectl shard show {})",
                    pinned.endpoint, pinned.endpoint_id, pinned.region, pinned.probe, pinned.probe_id, pinned.endpoint
                )
            } else {
                format!(
                    "endpoint {} was already pinned in {} to probe {}",
                    pinned.endpoint, pinned.region, pinned.probe
                )
            };
            ctx.print(out, &pinned, &human)
        }
        ShardCommand::Unpin { endpoint, region } => {
            let unpinned = client.unpin_shard(endpoint, region.as_deref(), &ctx.new_key()?).await?;
            let human = if unpinned.regions.is_empty() {
                let scope = region.as_deref().map(|r| format!(" in {r}")).unwrap_or_default();
                format!("endpoint {} had no pin{scope}; nothing changed", unpinned.endpoint)
            } else {
                format!(
                    "unpinned endpoint {} (id {}) in {}; hashing places it again",
                    unpinned.endpoint,
                    unpinned.endpoint_id,
                    unpinned.regions.join(", ")
                )
            };
            ctx.print(out, &unpinned, &human)
        }
        ShardCommand::Rebalance { dry_run } => {
            let report = client.rebalance(*dry_run).await?;
            ctx.print(out, &report, &rebalance_text(&report))
        }
    }
}
