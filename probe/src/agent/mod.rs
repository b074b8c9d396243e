//! The probe agent's parts: what runs checks on the schedule the coordinator
//! assigns, and what keeps their results until the coordinator has them.
//!
//! Modules:
//! - [`scheduler`]: the drift-free scheduler. Each endpoint runs at its slots
//!   on the wall clock, `start = k * interval + offset(endpoint_id)`; a check
//!   still running at its next slot makes that slot skipped; concurrency is
//!   bounded and scheduling lag is measured. One driver task and a heap of
//!   next-due slots, not a task per endpoint.
//! - [`spool`]: the loss-free result spool. Sequence numbers, unacknowledged
//!   records kept in memory and (with a spool directory) in CRC-checked
//!   segment files with group commit, acknowledgement by sequence number,
//!   recovery after a restart, a size bound that drops the oldest and counts
//!   the loss.
//!
//! - [`config`]: `probe.toml`, typed and validated, errors with key and line.
//! - [`assignment`]: assigned endpoints (wire) into scheduler entries.
//! - [`client`]: the agent itself: the `ProbeService.Connect` session state
//!   machine, reconnection with backoff across coordinators, redirects to the
//!   leader, batching and resending, heartbeats, canaries, orphan timeout and
//!   draining at shutdown.
//! - [`telemetry`]: the agent's metrics (recorder, catalogue, events,
//!   gauges that add up across agents in one process); [`metrics_server`]:
//!   the bounded `/metrics` listener on `metrics_addr`.

pub mod assignment;
pub mod client;
pub mod config;
pub mod metrics_server;
pub mod scheduler;
pub mod spool;
pub mod telemetry;
