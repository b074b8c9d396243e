//! `vantage-probe`: the Vantage probe binary.
//!
//! `check` runs checks now and reports them (like `curl -w`, but cold and
//! strict); `bench` measures how many cold checks per second this process
//! sustains against one URL; `run` is the agent that takes its assignment
//! from the coordinator.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vantage_probe::cmd::bench::{self, BenchArgs};
use vantage_probe::cmd::check::{self, CheckArgs, Outcome};
use vantage_probe::cmd::run::{self, RunArgs};

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
    /// Run the probe agent: take the assignment from the coordinators and
    /// check it on schedule until SIGTERM or SIGINT.
    Run(RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VANTAGE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: never escape codes in journals and files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr (`… 2>&1 | head`) must not turn into a panic: tracing's
        // fallback report of a failed write is eprintln!, which panics on EPIPE.
        .log_internal_errors(false)
        .init();
    match cli.command {
        Command::Check(args) => run_check(&args),
        Command::Bench(args) => run_bench(&args),
        Command::Run(args) => run_agent(&args),
    }
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let prepared = check::specs(args).and_then(|specs| Ok((specs, check::checker(args)?)));
    run_prepared(prepared, |(specs, checker)| async move {
        let mut stdout = std::io::stdout().lock();
        Ok(match check::run(args, specs, checker, &mut stdout).await? {
            Outcome::AllPassed => ExitCode::SUCCESS,
            Outcome::SomeFailed => ExitCode::from(1),
        })
    })
}

fn run_agent(args: &RunArgs) -> ExitCode {
    run_prepared(run::load(args), |config| async move {
        run::run(config).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_bench(args: &BenchArgs) -> ExitCode {
    if args.schedule {
        return run_scheduled_bench(args);
    }
    run_prepared(bench::prepare(args), |(spec, checker)| async move {
        let report = bench::run(args, spec, checker, &mut std::io::stderr()).await?;
        let mut stdout = std::io::stdout().lock();
        if args.json {
            report.write_json(&mut stdout)?;
        } else {
            report.write_human(&mut stdout)?;
        }
        Ok(if report.has_failures() { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

fn run_scheduled_bench(args: &BenchArgs) -> ExitCode {
    run_prepared(bench::prepare(args), |(spec, checker)| async move {
        let report = bench::scheduled::run(args, spec, checker, &mut std::io::stderr()).await?;
        let mut stdout = std::io::stdout().lock();
        if args.json {
            report.write_json(&mut stdout)?;
        } else {
            report.write_human(&mut stdout)?;
        }
        Ok(if report.has_failures() { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

/// Exit 2 when preparing (arguments, configuration) failed; otherwise runs
/// `work` on a multi-threaded runtime, exiting 1 on its error.
fn run_prepared<T, F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    prepared: anyhow::Result<T>,
    work: impl FnOnce(T) -> F,
) -> ExitCode {
    let prepared = match prepared {
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
    runtime.block_on(work(prepared)).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(1)
    })
}
