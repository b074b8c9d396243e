//! `vantage-probe run --config probe.toml`: the probe agent. Loads and
//! validates the configuration (errors name the key and line) before
//! anything connects, then runs [`crate::agent::client::run`] until SIGTERM
//! or SIGINT, which start a bounded drain. The process's Prometheus
//! recorder is installed first ([`crate::agent::telemetry::install`]), so
//! `metrics_addr`, when set, serves the agent's metrics.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::agent::client::{self, Tuning};
use crate::agent::config::Config;
use crate::agent::telemetry;

/// Arguments of `vantage-probe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent's configuration file (see deploy/probe.toml).
    #[arg(long, value_name = "FILE", default_value = "probe.toml")]
    pub config: PathBuf,
}

/// Reads and validates the configuration file.
pub fn load(args: &RunArgs) -> anyhow::Result<Config> {
    Ok(Config::load(&args.config)?)
}

/// Runs the agent until SIGTERM or SIGINT, then drains within the grace
/// period.
pub async fn run(config: Config) -> anyhow::Result<()> {
    telemetry::install()?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
    let upkeep = tokio::spawn(upkeep(shutdown.clone()));
    let outcome = client::run(config, Tuning::default(), shutdown.clone()).await;
    signals.abort();
    upkeep.abort();
    outcome.context("probe agent stopped")
}

/// Drains histogram samples into their buckets every few seconds, so an
/// agent nobody scrapes keeps no samples without bound.
async fn upkeep(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => telemetry::run_upkeep(),
        }
    }
}

/// Cancels `shutdown` at the first SIGTERM or SIGINT.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the agent");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: draining results");
    shutdown.cancel();
}
