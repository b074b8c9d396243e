//! `vantagectl`, the Vantage admin CLI: endpoints, regions, probes, shards
//! (who checks what; pins; rebalance), check-now from every region,
//! incidents, endpoint states and alert deliveries, webhooks, maintenance
//! windows and the coordinator cluster, managed over the
//! coordinator's AdminService (gRPC), plus configuration as code (`apply`,
//! `export`).
//!
//! `main.rs` only parses arguments and calls [`run`]; everything else is
//! here, so tests drive it directly.
//!
//! Modules:
//! - [`args`]: the command line (clap), with per-value checks.
//! - [`settings`]: global options and environment → connection options
//!   (server URL, token, TLS files).
//! - [`client`]: the AdminService client: bearer token, per-call deadline,
//!   bounded retries reusing the idempotency key.
//! - [`keys`]: idempotency keys, random or derived from content.
//! - [`error`]: every failure, its message and its exit code; gRPC status
//!   interpretation.
//! - [`model`]: the objects as plain data (also the `--json` shapes): the
//!   specs are `vantage-core`'s (validated with its rules before anything is
//!   sent), plus the records and views the coordinator answers with.
//! - [`wire`]: conversions between [`model`] and the protobuf messages.
//! - [`document`]: the YAML document of `apply`/`export`.
//! - [`diff`]: the pure diff between a document and the live state.
//! - [`output`], [`table`]: tables, detail views, JSON.
//! - [`timefmt`]: durations and RFC 3339 instants.
//! - [`cmd`]: one module per command group.

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod cmd;
pub mod diff;
pub mod document;
pub mod error;
pub mod keys;
pub mod model;
pub mod output;
pub mod settings;
pub mod table;
pub mod timefmt;
pub mod wire;

use std::io::Write;

use vantage_core::clock::WallClock;

use crate::args::{Cli, Command};
use crate::client::AdminClient;
use crate::cmd::Context;
pub use crate::error::Error;

/// Runs one parsed command line: connects (lazily), runs the command and
/// writes its output to `out`. `env` looks up environment variables and
/// `clock` gives the wall-clock time, so tests can set both; `terminal`
/// says whether `out` is a terminal (only there does `endpoint history`
/// draw its sparklines).
pub async fn run(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
    clock: &dyn WallClock,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<(), Error> {
    let options = settings::connect_options(&cli.global, env)?;
    let ctx = Context {
        client: AdminClient::connect(&options)?,
        json: cli.global.json,
        terminal: terminal && !cli.global.json,
        consistent: cli.global.consistent,
        server: options.server.clone(),
        clock,
        env,
    };
    match &cli.command {
        Command::Endpoint(command) => cmd::endpoint::run(&ctx, command, out).await?,
        Command::Region(command) => cmd::region::run(&ctx, command, out).await?,
        Command::Probe(command) => cmd::probe::run(&ctx, command, out).await?,
        Command::Webhook(command) => cmd::webhook::run(&ctx, command, out).await?,
        Command::Maintenance(command) => cmd::maintenance::run(&ctx, command, out).await?,
        Command::Shard(command) => cmd::shard::run(&ctx, command, out).await?,
        Command::Check(args) => cmd::check::run(&ctx, args, out).await?,
        Command::Incident(command) => cmd::incident::run(&ctx, command, out).await?,
        Command::Alert(command) => cmd::alert::run(&ctx, command, out).await?,
        Command::Cluster(command) => cmd::cluster::run(&ctx, command, out).await?,
        Command::Apply(args) => cmd::apply::run(&ctx, args, out).await?,
        Command::Export => cmd::export::run(&ctx, out).await?,
    }
    out.flush()?;
    Ok(())
}
