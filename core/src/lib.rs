//! Vantage's domain types and pure, deterministic logic. Nothing here does I/O
//! or reads a clock: time enters as a parameter, so every function can be
//! tested with a table of cases.
//!
//! Modules:
//! - [`spec`]: what one check is ([`spec::CheckSpec`]): the target parsed from a
//!   URL (`http`, `https`, `tcp`, `tls`, `dns`), timeouts, redirect policy and
//!   address-family preference, with validation that names what is wrong.
//! - [`assert`](mod@assert): what a check expects of its answer (status codes, body, JSON
//!   pointer, headers, latency ceilings, certificate lifetime) and the pure
//!   evaluation of those expectations.
//! - [`result`]: what one check produced ([`result::CheckResult`]): timing
//!   phases, the closed set of failure kinds, TLS details, redirect hops.
//! - [`agreement`]: region verdicts from probes' results and the endpoint
//!   state machine (quorum, minimum failure duration, recovery hysteresis,
//!   flapping, maintenance, evidence); time is a parameter.
//! - [`endpoint`]: what the mesh monitors ([`endpoint::EndpointSpec`]): the
//!   target URL, interval, timeout, regions, labels and the expectations in
//!   their text form ([`endpoint::Expectations`]), compiled to assertions;
//!   their limits and validation.
//! - [`webhook`]: where alerts go ([`webhook::WebhookSpec`]): URL, secret,
//!   format, event and label filters.
//! - [`maintenance`]: windows when outages are expected
//!   ([`maintenance::MaintenanceSpec`]).
//! - [`validate`]: the naming and label rules every object obeys, and
//!   [`validate::ValidationError`], the one error naming what breaks a rule.
//! - [`ids`]: object ids (`EndpointId`, `ProbeId`, …) and object kinds.
//! - [`observation`]: what a probe reports for one slot
//!   ([`observation::Observation`]).
//! - [`time`]: Unix milliseconds and microseconds, compact duration text.
//! - [`netguard`]: the SSRF address policy shared by the probe and, later, the
//!   webhook sender.
//! - [`schedule`]: slot arithmetic (`start = k * interval + offset(id)`),
//!   identical in every region.
//! - [`shard`]: which probes check which endpoint in each region (weighted
//!   rendezvous hashing, pins, uncovered regions, per-probe deltas).
//! - [`diagnostics`]: pieces of config-file error messages (`file:line: `,
//!   "did you mean").
//! - [`config_text`]: the one config file loader: TOML text into a typed,
//!   validated value, or an error naming the file, line and key.
//! - [`clock`]: the one wall-clock abstraction.

pub mod agreement;
pub mod assert;
pub mod clock;
pub mod config_text;
pub mod diagnostics;
pub mod endpoint;
pub mod history;
pub mod ids;
pub mod maintenance;
pub mod netguard;
pub mod observation;
pub mod result;
pub mod schedule;
pub mod shard;
pub mod spec;
pub mod time;
pub mod validate;
pub mod webhook;
