//! The Vantage coordinator: a 3- or 5-node cluster, replicated with Raft,
//! that holds the mesh's configuration and serves admins over gRPC; later
//! also probes' streams, the agreement runner that declares outages only on
//! a quorum of regions, alert delivery, TSDB export and the status page.
//!
//! Built so far: the replicated state on durable storage, the Raft network
//! and node runtime, TLS, admin tokens, the AdminService and the
//! `vantage-coordinator` binary (`run`, `certs init`).
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
//!   replaced files), the tonic network and peer listener
//!   ([`raft::network`], [`raft::server`], TLS in [`raft::tls`]).
//! - [`node`]: a running cluster node ([`node::ClusterNode`]): bootstrap,
//!   writes and linearizable reads from any node (forwarded to the leader),
//!   membership, leadership transfer, status, graceful shutdown.
//! - [`config`]: the node's configuration file (`coordinator.toml`), typed
//!   and validated before any port is bound; errors name the key and line.
//! - [`certs`]: `certs init`, a cluster CA and node and admin certificates
//!   generated with rcgen.
//! - [`tls`]: the rustls configurations (API, HTTP, Raft listener requiring
//!   a node certificate from the cluster CA, peer client), ring provider.
//! - [`auth`]: admin bearer tokens, hashed (SHA-256) and compared in
//!   constant time; the bootstrap token file.
//! - [`admin`]: the AdminService over a [`admin::Cluster`].
//! - [`mesh`]: probes' streams on the leader (`ProbeService`), their
//!   assignments (weighted rendezvous per region) and results.
//! - [`listener`]: the accept loop (TLS handshakes with deadlines) shared by
//!   the gRPC and HTTP listeners.
//! - [`app`]: the runtime behind `vantage-coordinator run`.
//! - [`dev`]: `vantage-coordinator dev`, one process with a node, three
//!   in-process probes and demo targets, for trying Vantage out.

pub mod admin;
pub mod app;
pub mod auth;
pub mod certs;
pub mod config;
pub mod dev;
pub mod http;
pub mod listener;
pub mod mesh;
pub mod node;
pub mod raft;
pub mod results;
pub mod sinks;
pub mod state;
pub mod tls;
