//! The `vantagectl` binary: parse the command line, run it on a
//! single-threaded runtime, print an error as `error: …` and exit with its
//! code (0 success, 1 failure, 2 usage; clap exits 2 on parse errors
//! itself).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use vantage_core::clock::SystemWallClock;
use vantagectl::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(vantagectl::run(&cli, &env, &SystemWallClock, &mut stdout, terminal)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
