//! The subcommands of `vantage-probe`.
//!
//! - [`check`]: run checks now and report each one's timing phases.
//! - [`bench`](mod@bench): sustained cold checks of one URL: checks/s, latency, CPU time
//!   per check and peak memory.

pub mod bench;
pub mod check;
