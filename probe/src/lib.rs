//! The Vantage probe: the engine that measures one endpoint, cold, with exact
//! timing phases, and the `vantage-probe` command built on it.
//!
//! Modules:
//! - [`agent`]: the probe agent's scheduler (drift-free slots on the wall
//!   clock, bounded concurrency, skipped slots, measured lag) and result spool
//!   (sequence numbers, acknowledgement, CRC-checked segments on disk).
//! - [`check`]: the check engine: resolution (hickory, no cache), TCP
//!   connect, TLS (rustls, no resumption), HTTP/1.1 and HTTP/2 (hyper), DNS
//!   queries, the SSRF guard and assertion evaluation, producing a
//!   [`vantage_core::result::CheckResult`].
//! - [`cmd`]: the subcommands of the `vantage-probe` binary (`check`,
//!   `bench`), kept in the library so tests can drive them.

pub mod agent;
pub mod check;
pub mod cmd;
