//! `vantage-coordinator`: the coordinator binary.
//!
//! `run --config FILE` loads and validates the configuration, the TLS
//! material and the bootstrap admin token before anything listens, installs
//! SIGTERM/SIGINT handling, and hands over to the cluster runtime.
//! `certs init` generates a cluster CA and node and admin certificates.
//! `dev` runs a single node, three in-process probes and demo targets with
//! no configuration ([`vantage_coordinator::dev`]).
//!
//! `run` and `dev` install the process's Prometheus recorder first
//! ([`vantage_coordinator::telemetry::install`]); `/metrics` renders it.
//!
//! Exit codes: 0 success, 1 failure, 2 invalid configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vantage_coordinator::auth::{self, AdminAuth};
use vantage_coordinator::certs::{self, InitOptions};
use vantage_coordinator::config::Config;
use vantage_coordinator::dev::DevArgs;
use vantage_coordinator::tls;
use vantage_core::clock::SystemWallClock;

/// The Vantage coordinator: one node of the Raft-replicated cluster.
#[derive(Debug, Parser)]
#[command(name = "vantage-coordinator", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a coordinator node.
    Run(RunArgs),
    /// Generate certificates for a cluster.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Try Vantage: one node, three probes (dev-eu, dev-us, dev-ap) and demo
    /// targets in this process, plaintext, data in a temporary directory.
    Dev(DevArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The node's configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Generate a cluster CA, node certificates node-1..node-N and an admin
    /// client certificate, as PEM files (keys with mode 0600).
    Init(CertsInitArgs),
}

#[derive(Debug, Args)]
struct CertsInitArgs {
    /// The directory to write to (created when missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How many node certificates to generate.
    #[arg(long, value_name = "N")]
    nodes: u32,
    /// A DNS name or IP address peers and clients use to reach the nodes;
    /// added to every node certificate besides localhost, 127.0.0.1 and ::1.
    /// Repeat for more.
    #[arg(long = "host", value_name = "NAME_OR_IP")]
    hosts: Vec<String>,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
    /// Validity of the node and admin certificates, in days.
    #[arg(long, value_name = "DAYS", default_value_t = certs::DEFAULT_VALID_DAYS)]
    valid_days: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dev mode's own output is the point; logs only for what goes wrong.
    let default_filter = if matches!(cli.command, Command::Dev(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VANTAGE_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: never escape codes in journals and files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr (`… 2>&1 | head`) must not turn into a panic: tracing's
        // fallback report of a failed write is eprintln!, which panics on EPIPE.
        .log_internal_errors(false)
        .init();
    // One recorder per process, before anything counts: `/metrics` renders
    // from it. `certs` counts nothing.
    if matches!(cli.command, Command::Run(_) | Command::Dev(_)) {
        if let Err(e) = vantage_coordinator::telemetry::install() {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Certs(CertsCommand::Init(args)) => certs_init(&args),
        Command::Dev(args) => dev(args),
    }
}

fn dev(args: DevArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let _signals = spawn_signal_handler(shutdown.clone())?;
        vantage_coordinator::dev::run(args, shutdown).await
    });
    // Tasks still parked (demo connections) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &RunArgs) -> ExitCode {
    // Everything that can be wrong with the setup is found here, before any
    // port is bound: exit 2 with the error.
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    let tls_configs = match tls::load(&config.tls, config.node_id, &SystemWallClock) {
        Ok(configs) => configs,
        Err(e) => return usage_error(&e),
    };
    if tls_configs.is_none() {
        tracing::warn!("tls.insecure = true: every listener and peer connection is plaintext");
    }
    let bootstrap = match auth::load_or_create_bootstrap_token(&config.admin_token_file) {
        Ok(token) => token,
        Err(e) => return usage_error(&e),
    };
    if bootstrap.created {
        eprintln!(
            "wrote a new admin token to {} (mode 0600); use it with `vantagectl --token-file {}`",
            bootstrap.path.display(),
            bootstrap.path.display()
        );
    }
    let admin_auth = AdminAuth::new(bootstrap.hash);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let _signals = spawn_signal_handler(shutdown.clone())?;
        tracing::info!(node_id = config.node_id, config = %args.config.display(), "configuration ok");
        vantage_coordinator::app::run(config, tls_configs, admin_auth, shutdown).await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT. The task ends then;
/// its handle is returned so the caller owns it.
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            () = shutdown.cancelled() => return,
        };
        tracing::info!(signal = name, "shutting down");
        shutdown.cancel();
    }))
}

fn certs_init(args: &CertsInitArgs) -> ExitCode {
    let options = InitOptions {
        dir: args.dir.clone(),
        nodes: args.nodes,
        hosts: args.hosts.clone(),
        force: args.force,
        valid_days: args.valid_days,
    };
    let written = match certs::init(&options, &SystemWallClock) {
        Ok(written) => written,
        Err(e @ (certs::CertsError::Write { .. } | certs::CertsError::Random | certs::CertsError::Clock)) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        Err(e) => return usage_error(&e),
    };
    // Absolute paths in the next steps: config files resolve relative
    // paths against their own directory, not the current one.
    let dir = std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone());
    println!("Wrote {} files to {}:", written.len(), dir.display());
    let width = written.iter().map(|f| f.path.display().to_string().len()).max().unwrap_or(0);
    for file in &written {
        let mode = if file.secret { "0600" } else { "0644" };
        println!("  {:<width$}  {mode}  {}", file.path.display().to_string(), file.description);
    }
    println!();
    print!("{}", certs::next_steps(&dir, args.nodes));
    ExitCode::SUCCESS
}

fn usage_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}
