//! The Vantage probe: the engine that measures one endpoint, cold, with exact
//! timing phases, and the `vantage-probe` command built on it.
//!
//! Modules:
//! - [`agent`]: the probe agent behind `vantage-probe run`: its config, the
//!   session with the coordinators (one ProbeService stream, reconnect with
//!   backoff and jitter, redirects to the leader, orphan TTL, canaries), the
//!   drift-free scheduler and the result spool.
//! - [`check`]: the check engine: resolution (hickory, no cache), TCP
//!   connect, TLS (rustls, no resumption), HTTP/1.1 and HTTP/2 (hyper), DNS
//!   queries, the SSRF guard and assertion evaluation, producing a
//!   [`vantage_core::result::CheckResult`].
//! - [`cmd`]: the subcommands of the `vantage-probe` binary (`check`,
//!   `bench`, `run`), kept in the library so tests can drive them.

pub mod agent;
pub mod check;
pub mod cmd;
