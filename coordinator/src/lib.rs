//! The Vantage coordinator: the Raft-replicated mesh state and, in later
//! increments, the gRPC services for probes and admins, the agreement runner
//! that declares outages only on a quorum of regions, alert delivery, TSDB
//! export and the HTTP status page.
//!
//! What is built so far is the cluster's foundation: the replicated state
//! machine and its durable storage. There is no network and no binary yet.
//!
//! Modules:
//! - [`state`]: the replicated state ([`state::MeshState`]: regions,
//!   endpoints, probe registrations, webhooks, maintenance windows, admin
//!   tokens), the [`state::Command`]s that change it, one pure and
//!   deterministic apply function per command, idempotency keys, and the
//!   versioned snapshot format.
//! - [`raft`]: the openraft type configuration ([`raft::TypeConfig`]) and
//!   the durable store under a node's `data_dir` ([`raft::store`]: the log
//!   and vote in redb, fsynced before acknowledged; snapshots as atomically
//!   replaced files).

pub mod raft;
pub mod state;
