//! The subcommands of `vantage-probe`.
//!
//! - [`check`]: run checks now and report each one's timing phases.
//! - [`bench`](mod@bench): sustained cold checks of one URL: checks/s, latency, CPU time
//!   per check and peak memory.
//! - [`run`]: the probe agent (`run --config probe.toml`).

pub mod bench;
pub mod check;
pub mod run;
