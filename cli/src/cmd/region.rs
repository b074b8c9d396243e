//! `vantagectl region list|add|rm`.

use std::io::Write;

use crate::args::RegionCommand;
use crate::cmd::{Context, RemovedJson};
use crate::error::Error;
use crate::output::regions_table;

/// Runs a region command. Several names are several changes, each with its
/// own idempotency key, sent in order; the first failure stops.
pub async fn run(ctx: &Context<'_>, command: &RegionCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    match command {
        RegionCommand::List => {
            let mut regions = client.list_regions(ctx.consistent).await?;
            regions.sort_by(|a, b| a.name.cmp(&b.name));
            ctx.print(out, &regions, &regions_table(&regions).render())
        }
        RegionCommand::Add { names } => {
            let mut added = Vec::new();
            for name in names {
                let region = client.add_region(name, &ctx.new_key()?).await?;
                if !ctx.json {
                    writeln!(out, "added region {}", region.name)?;
                }
                added.push(region);
            }
            if ctx.json {
                ctx.print(out, &added, "")?;
            }
            Ok(())
        }
        RegionCommand::Rm { names } => {
            let mut removed = Vec::new();
            for name in names {
                let region = client.remove_region(name, &ctx.new_key()?).await?;
                if !ctx.json {
                    writeln!(out, "removed {}", region.describe("region"))?;
                }
                removed.push(region);
            }
            if ctx.json {
                let json: Vec<RemovedJson<'_>> =
                    removed.iter().map(|r| RemovedJson { kind: "region", id: r.id, name: &r.name }).collect();
                ctx.print(out, &json, "")?;
            }
            Ok(())
        }
    }
}
