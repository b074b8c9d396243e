//! The Vantage coordinator: a 3- or 5-node cluster, replicated with Raft,
//! that holds the mesh's configuration, serves admins over gRPC, holds the
//! probes' streams on its leader, hands their results to consumers, and
//! delivers committed alerts as signed webhooks from its leader; the
//! agreement runner, TSDB export and the status page are built on these
//! rooms next.
//!
//! Modules, by layer (`tests/layers.rs` enforces that none imports upward):
//! - [`state`]: the replicated state ([`state::MeshState`]: regions,
//!   endpoints, probe registrations and their ingest ledgers, pins,
//!   webhooks, maintenance windows, admin tokens), the [`state::Command`]s
//!   that change it, one pure and deterministic apply function per command,
//!   idempotency keys, and the versioned snapshot format. The specs are
//!   `vantage-core`'s.
//! - [`raft`]: the openraft type configuration ([`raft::TypeConfig`]) and
//!   the durable store under a node's `data_dir` ([`raft::store`]: the log
//!   and vote in redb, fsynced before acknowledged; snapshots as atomically
//!   replaced files), the tonic network and peer listener
//!   ([`raft::network`], [`raft::server`], TLS in [`raft::tls`]).
//! - [`node`]: a running cluster node ([`node::ClusterNode`]): bootstrap,
//!   writes and linearizable reads from any node (forwarded to the leader),
//!   membership, leadership transfer, status, graceful shutdown.
//! - [`listener`]: the accept loop (TLS handshakes with deadlines) shared by
//!   the gRPC and HTTP listeners.
//! - [`mesh`]: probes' streams on the leader (`ProbeService`), their
//!   assignments (weighted rendezvous per region), result validation,
//!   exactly-once ingest checkpoints, check-now.
//! - [`agreement`]: the leader's agreement runner: the latest results per
//!   probe, confirmation check-nows, one [`vantage_core::agreement`] step
//!   per endpoint and round, transitions committed through Raft.
//! - [`results`]: where accepted results go: [`results::ResultSink`],
//!   [`results::FanOut`], [`results::MemorySink`].
//! - [`sinks`]: outputs that leave the process, split by concern (retry
//!   policy and the shared HTTP client; the webhook sink: alert, encoder,
//!   request, service and the outbox [`sinks::webhook::Dispatcher`] on the
//!   leader; TSDB export: [`sinks::export::Exporter`], Prometheus
//!   remote-write and InfluxDB line protocol from the leader).
//! - [`admin`]: the AdminService over a [`admin::Cluster`].
//! - [`http`]: `/healthz`, `/api/endpoints`, `/api/incidents` and
//!   `/metrics` on `http_addr`, from this node's own state.
//! - [`telemetry`]: the Prometheus recorder a binary installs once, the
//!   `/metrics` text, and the catalogue of every metric with its unit.
//! - [`gauges`]: the sampled gauges (Raft from openraft's metrics channel,
//!   probes per region, endpoints per agreed state, pending deliveries).
//! - [`config`]: the node's configuration file (`coordinator.toml`), typed
//!   and validated before any port is bound; errors name the key and line.
//! - [`certs`]: `certs init`, a cluster CA and node and admin certificates
//!   generated with rcgen.
//! - [`tls`]: the rustls configurations (API, HTTP, Raft listener requiring
//!   a node certificate from the cluster CA, peer client), ring provider.
//! - [`auth`]: admin bearer tokens, hashed (SHA-256) and compared in
//!   constant time; the bootstrap token file.
//! - [`app`]: the runtime behind `vantage-coordinator run` (wiring only).
//! - [`dev`]: `vantage-coordinator dev`, one process with a node, three
//!   in-process probes (the probe crate's agent library, used nowhere
//!   else) and demo targets, for trying Vantage out.

pub mod admin;
pub mod agreement;
pub mod app;
pub mod auth;
pub mod certs;
pub mod config;
pub mod dev;
pub mod gauges;
pub mod history;
pub mod http;
pub mod listener;
pub mod mesh;
pub mod node;
pub mod raft;
pub mod results;
pub mod sinks;
pub mod state;
pub mod telemetry;
pub mod tls;
