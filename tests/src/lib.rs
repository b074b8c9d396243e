//! The Vantage integration-test harness: fault-injecting servers that the
//! check engine's tests aim at, deployments of the real binaries, and a
//! network between them that the tests control; all on loopback, all
//! stopped by `Drop`.
//!
//! It owns everything a test needs on the *other* side of a check, so the
//! engine's tests can assert exact timing phases and error kinds without the
//! network, and everything the process-level suites need to run a cluster
//! through crashes, partitions and slow links:
//!
//! - [`pki`] — a throw-away CA and leaf certificates (valid, expired, wrong
//!   host, self-signed) and rustls configurations for them.
//! - [`http_target`] — an HTTP/1.1 server on raw TCP (optionally TLS, and
//!   HTTP/2 by ALPN) whose responses are chosen per request by the query
//!   string: delayed headers, dripped bodies, resets, hangs, redirects,
//!   truncated, malformed and endless responses.
//! - [`dns_target`] — a UDP and TCP DNS server answering from an in-memory
//!   zone, with per-name delays and SERVFAIL.
//! - [`blackhole`] — a TCP address whose connects never complete, and an
//!   address whose connects are refused.
//! - [`process`] — the workspace's binaries as child processes that die with
//!   the test.
//! - [`operator`] — a deployment from those binaries, as an operator runs
//!   it: a TLS coordinator cluster, `vantagectl`, probe agents; optionally
//!   with a fault link on every path between them.
//! - [`webhook_receiver`] — a scripted webhook receiver on loopback and
//!   Standard Webhooks signature checks (ours and the PyPI reference).
//! - [`tsdb`] — real Prometheus, VictoriaMetrics and InfluxDB 1.x servers
//!   from Debian's packages, each in its own temporary directory on free
//!   loopback ports, read back through their own query APIs; and a
//!   line-protocol receiver that keeps everything it is sent.
//! - [`faultnet`] — a network the tests control: [`Link`], a userspace TCP
//!   proxy that delays, blackholes, cuts one direction, refuses, resets and
//!   heals at run time; [`faultnet::Island`], a process in its own network
//!   namespace whose only ways out are links.
//!
//! Architecture invariant: test traffic goes only to loopback addresses, and
//! this crate does not depend on `vantage-probe` or `vantage-core` (the probe
//! crate dev-depends on it).
//!
//! Servers are started by plain (non-`async`) constructors that must be
//! called from within a Tokio runtime, such as a `#[tokio::test]`.

#![forbid(unsafe_code)]

pub mod blackhole;
pub mod dns_target;
pub mod faultnet;
pub mod http_target;
pub mod operator;
pub mod pki;
pub mod process;
pub mod tsdb;
pub mod webhook_receiver;

mod tasks;

pub use blackhole::{refused_addr, Blackhole};
pub use dns_target::{DnsTarget, DnsZone};
pub use faultnet::{Direction, Link, LinkStats};
pub use http_target::{HttpTarget, TargetOptions};
pub use pki::{Leaf, TestPki};
