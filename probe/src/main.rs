//! `vantage-probe`: the Vantage probe binary.
//!
//! `check` runs checks now and reports them (like `curl -w`, but cold and
//! strict); `bench` measures how many cold checks per second this process
//! sustains against one URL. Later: `run`, the agent that takes its
//! assignment from the coordinator.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vantage_probe::cmd::bench::{self, BenchArgs};
use vantage_probe::cmd::check::{self, CheckArgs, Outcome};

/// The Vantage probe: measures endpoints cold, with exact timing phases.
#[derive(Debug, Parser)]
#[command(name = "vantage-probe", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup, so the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Check URLs now and report each one's timing phases.
    Check(CheckArgs),
    /// Run cold checks of one URL back to back and report checks/s, latency,
    /// CPU time per check and peak memory.
    Bench(BenchArgs),
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
        Command::Bench(args) => run_bench(&args),
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

fn run_bench(args: &BenchArgs) -> ExitCode {
    let (spec, checker) = match bench::prepare(args) {
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
    let report = match runtime.block_on(bench::run(args, spec, checker, &mut std::io::stderr())) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let written = if args.json { report.write_json(&mut stdout) } else { report.write_human(&mut stdout) };
    if let Err(e) = written {
        eprintln!("error: writing the report: {e}");
        return ExitCode::from(1);
    }
    if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
