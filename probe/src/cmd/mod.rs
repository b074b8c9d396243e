//! The subcommands of `vantage-probe`.

pub mod check;
