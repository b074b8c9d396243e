//! `vantage-probe`: the Vantage probe binary.
//!
//! `check` runs checks now and reports them (like `curl -w`, but cold and
//! strict). Later: `run`, the agent that takes its assignment from the
//! coordinator.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vantage_probe::cmd::check::{self, CheckArgs, Outcome};

/// The Vantage probe: measures endpoints cold, with exact timing phases.
#[derive(Debug, Parser)]
#[command(name = "vantage-probe", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check URLs now and report each one's timing phases.
    Check(CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VANTAGE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Check(args) => run_check(&args),
    }
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let prepared = check::specs(args).and_then(|specs| Ok((specs, check::checker(args)?)));
    let (specs, checker) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(check::run(args, specs, checker, &mut stdout)) {
        Ok(Outcome::AllPassed) => ExitCode::SUCCESS,
        Ok(Outcome::SomeFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
