//! The coordinator's configuration file (`vantage-coordinator run --config
//! coordinator.toml`): typed, and validated before any port is bound.
//!
//! ```toml
//! node_id = 1
//! data_dir = "/var/lib/vantage"
//! api_addr = "127.0.0.1:7400"     # gRPC for probes and admins
//! raft_addr = "127.0.0.1:7401"    # gRPC for peers only
//! http_addr = "127.0.0.1:8080"    # status page, JSON API, /metrics, /healthz
//! admin_token_file = "admin.token"
//! [[peers]]                       # initial members, including this node
//! id = 1
//! api_addr = "127.0.0.1:7400"
//! raft_addr = "127.0.0.1:7401"
//! # dial_raft_addr = "127.0.0.1:9401"  # optional: where *this* node dials
//! #                                    # that peer's Raft port (proxy, NAT)
//! [tls]
//! insecure = true                 # or: ca_file, cert_file, key_file
//! [raft]                          # optional; these are the defaults
//! heartbeat_ms = 250
//! election_timeout_min_ms = 1000
//! election_timeout_max_ms = 2000
//! snapshot_every_logs = 5000
//! logs_kept_after_snapshot = 1000
//! [mesh]                          # optional; these are the defaults
//! probe_grace_ms = 15000
//! heartbeat_ms = 5000
//! missed_heartbeats = 3
//! max_batch_results = 500
//! max_batch_delay_ms = 100
//! checkpoint_ms = 250
//! max_clock_skew_ms = 5000
//! [history]                       # optional; the default
//! flush_ms = 60000                # how often the leader commits rollups
//! [[export.remote_write]]         # optional, repeatable: TSDB export
//! url = "http://127.0.0.1:9090/api/v1/write"
//! [[export.influx]]               # optional, repeatable
//! url = "http://127.0.0.1:8086"
//! db = "vantage"
//! ```
//!
//! `[export]`'s keys are documented in [`crate::sinks::export::config`].
//!
//! Every error names the file, the line and the key:
//! `coordinator.toml:7: unknown key "raft_adr" in the top level: did you
//! mean "raft_addr"? (expected one of …)`, `coordinator.toml:3: api_addr:
//! invalid socket address "nope": …`, `coordinator.toml:12:
//! raft.heartbeat_ms: 1000 must be below raft.election_timeout_min_ms (1000)`.
//! Loading (TOML, serde, lines and "did you mean") is
//! [`vantage_core::config_text`]'s, shared with the probe's `probe.toml`;
//! semantic checks ([`Config::validate`]) report a key path, which it maps
//! back to the line where the key (or its table) is written.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use vantage_core::config_text::{self, invalid, ConfigFile};
pub use vantage_core::diagnostics::Location;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::raft::{Node, NodeId};
pub use crate::sinks::export::config::{ExportConfig, ExportProblem, InfluxConfig, RemoteWriteConfig};

/// The whole configuration of one coordinator node.
///
/// `Config::default()` is a single-node, plaintext (`insecure = true`)
/// configuration for development and tests; it passes [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's id: at least 1, unique in the cluster and never reused
    /// (a replaced node gets a new id). It must appear in `peers`.
    pub node_id: NodeId,
    /// Where the Raft log, vote and snapshots live. Created when missing.
    /// A relative path is relative to the config file's directory.
    pub data_dir: PathBuf,
    /// The gRPC listener for probes and admins (ProbeService,
    /// AdminService), as `IP:PORT`. Peers reach this node's API here too,
    /// so it must equal this node's `peers` entry.
    #[serde(deserialize_with = "socket_addr")]
    pub api_addr: SocketAddr,
    /// The gRPC listener for Raft peers only, as `IP:PORT`; it accepts only
    /// clients with a cluster certificate. Must differ from `api_addr` and
    /// equal this node's `peers` entry.
    #[serde(deserialize_with = "socket_addr")]
    pub raft_addr: SocketAddr,
    /// The HTTP listener for the status page, JSON API, `/metrics` and
    /// `/healthz`, as `IP:PORT`. Default `127.0.0.1:8080`.
    #[serde(default = "defaults::http_addr", deserialize_with = "socket_addr")]
    pub http_addr: SocketAddr,
    /// The file holding the bootstrap admin bearer token (one line). When it
    /// does not exist, a random token is generated and written there with
    /// mode 0600. A relative path is relative to the config file's
    /// directory. Default `admin.token`.
    #[serde(default = "defaults::admin_token_file")]
    pub admin_token_file: PathBuf,
    /// The cluster's initial members, this node included. A fresh cluster
    /// bootstraps from this list; once initialized, membership changes go
    /// through the admin API and this list is not consulted again, except
    /// for each entry's `dial_raft_addr`, which applies whenever this node
    /// dials that member.
    pub peers: Vec<Peer>,
    /// TLS for every listener and for connections to peers.
    pub tls: TlsConfig,
    /// Raft timing and log compaction.
    #[serde(default)]
    pub raft: RaftConfig,
    /// `[mesh]`: probe streams, sharding and result intake.
    #[serde(default)]
    pub mesh: MeshConfig,
    /// `[history]`: how the leader commits rollups.
    #[serde(default)]
    pub history: HistoryConfig,
    /// `[export]`: TSDB targets for every measurement (Prometheus
    /// remote-write, InfluxDB); see [`crate::sinks::export::config`].
    #[serde(default)]
    pub export: ExportConfig,
}

/// `[history]`: the leader's rollups of results into the cluster's history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// How often the leader commits the rollups it merged, in
    /// milliseconds (1000 to 600000). Also the most of history a leader
    /// crash can lose. Default 60000.
    pub flush_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig { flush_ms: millis(crate::history::HistoryOptions::default().flush_every) }
    }
}

impl HistoryConfig {
    /// Checks the range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (value, min, max) = (self.flush_ms, 1000, 600_000);
        if !(min..=max).contains(&value) {
            return Err(invalid("history.flush_ms", Problem::OutOfRange { value, min, max }));
        }
        Ok(())
    }

    /// The roller's options.
    pub fn options(&self) -> crate::history::HistoryOptions {
        crate::history::HistoryOptions {
            flush_every: std::time::Duration::from_millis(self.flush_ms),
            ..Default::default()
        }
    }
}

/// One initial member of the cluster (`[[peers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The member's node id (at least 1).
    pub id: NodeId,
    /// Where the member serves gRPC for probes and admins, as `IP:PORT`.
    #[serde(deserialize_with = "socket_addr")]
    pub api_addr: SocketAddr,
    /// Where the member serves Raft to its peers, as `IP:PORT`.
    #[serde(deserialize_with = "socket_addr")]
    pub raft_addr: SocketAddr,
    /// The address this node dials to reach the member's Raft port when it
    /// differs from the advertised `raft_addr`: a proxy, a NAT, a sidecar.
    /// Optional; default `raft_addr`. Local to this node (the only key of
    /// `[[peers]]` that may differ between nodes' files) and not
    /// replicated: the membership keeps `raft_addr`, and TLS still checks
    /// that the member's certificate names `raft_addr`'s host. Used for
    /// every connection to the member's Raft port (replication, votes,
    /// forwarded operations, status probes).
    #[serde(default, deserialize_with = "optional_socket_addr")]
    pub dial_raft_addr: Option<SocketAddr>,
}

/// `[tls]`: either `insecure = true` (plaintext everywhere; dev mode and
/// tests only), or all three files. `vantage-coordinator certs init` makes
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Plaintext on every listener and to every peer. Cannot be combined
    /// with the files. Default false.
    #[serde(default)]
    pub insecure: bool,
    /// The cluster CA certificate (PEM). Peers must present a certificate
    /// it signed on the Raft port; it also verifies peers' servers.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This node's certificate chain (PEM), leaf first, signed by the
    /// cluster CA. Presented on every listener and to peers.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// This node's private key (PEM, PKCS#8, SEC1 or PKCS#1).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The three TLS files of a complete, secure `[tls]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate (PEM).
    pub ca_file: PathBuf,
    /// This node's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// This node's private key (PEM).
    pub key_file: PathBuf,
}

/// `[raft]`: timing and log compaction. The defaults suit nodes whose
/// round trips to each other stay under about 200 ms.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// How often the leader sends heartbeats, in milliseconds. Must be
    /// below `election_timeout_min_ms`, and above the slowest round trip
    /// between two nodes: openraft 0.9 uses it as the deadline of every
    /// replication call, so a longer round trip commits nothing. Default
    /// 250.
    pub heartbeat_ms: u64,
    /// The shortest time a follower waits without hearing from a leader
    /// before it starts an election, in milliseconds. Default 1000.
    pub election_timeout_min_ms: u64,
    /// The longest such wait (each node picks at random between min and
    /// max, so elections rarely collide), in milliseconds. Must be above
    /// the min. Default 2000.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one;
    /// the log is then purged behind it. Default 5000.
    pub snapshot_every_logs: u64,
    /// How many entries to keep after a snapshot, so a follower that is a
    /// little behind catches up from the log instead of a whole snapshot.
    /// Default 1000.
    pub logs_kept_after_snapshot: u64,
}

/// `[mesh]`: how the leader treats probes and their results.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// How long a disconnected probe keeps its endpoints before they move
    /// to the other probes of its region, in milliseconds. Default 15000.
    pub probe_grace_ms: u64,
    /// How often probes send heartbeats (and streams re-check their
    /// probe's token), in milliseconds. A revoked token ends a stream
    /// within one interval. Default 5000.
    pub heartbeat_ms: u64,
    /// A probe silent for this many heartbeat intervals is disconnected.
    /// Default 3.
    pub missed_heartbeats: u32,
    /// The most results a probe puts in one batch (1 to 500). Default 500.
    pub max_batch_results: u32,
    /// The longest a probe holds results before sending them, in
    /// milliseconds (10 to 100). Default 100.
    pub max_batch_delay_ms: u64,
    /// How often the leader commits which results it processed (and then
    /// acknowledges them to their probes), in milliseconds. Shorter means
    /// quicker acknowledgements and more Raft entries. Default 250.
    pub checkpoint_ms: u64,
    /// How far in the future a result's start may be (clock skew between
    /// probe and coordinator), in milliseconds. Default 5000.
    pub max_clock_skew_ms: u64,
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        let options = crate::mesh::MeshOptions::default();
        MeshConfig {
            probe_grace_ms: millis(options.probe_grace),
            heartbeat_ms: millis(options.heartbeat_interval),
            missed_heartbeats: options.missed_heartbeats,
            max_batch_results: u32::try_from(options.max_batch_results).unwrap_or(u32::MAX),
            max_batch_delay_ms: millis(options.max_batch_delay),
            checkpoint_ms: millis(options.checkpoint_interval),
            max_clock_skew_ms: millis(options.timing.max_skew),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl MeshConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("mesh.probe_grace_ms", self.probe_grace_ms),
            ("mesh.heartbeat_ms", self.heartbeat_ms),
            ("mesh.missed_heartbeats", u64::from(self.missed_heartbeats)),
            ("mesh.checkpoint_ms", self.checkpoint_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, Problem::Zero));
            }
        }
        let ranges = [
            ("mesh.max_batch_results", u64::from(self.max_batch_results), 1, 500),
            ("mesh.max_batch_delay_ms", self.max_batch_delay_ms, 10, 100),
            ("mesh.heartbeat_ms", self.heartbeat_ms, 100, 600_000),
            ("mesh.checkpoint_ms", self.checkpoint_ms, 10, 60_000),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(invalid(key, Problem::OutOfRange { value, min, max }));
            }
        }
        Ok(())
    }

    /// The mesh's options with these values (defaults for the rest).
    pub fn options(&self) -> crate::mesh::MeshOptions {
        use std::time::Duration;
        let defaults = crate::mesh::MeshOptions::default();
        crate::mesh::MeshOptions {
            probe_grace: Duration::from_millis(self.probe_grace_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms),
            missed_heartbeats: self.missed_heartbeats,
            max_batch_results: self.max_batch_results as usize,
            max_batch_delay: Duration::from_millis(self.max_batch_delay_ms),
            checkpoint_interval: Duration::from_millis(self.checkpoint_ms),
            timing: crate::mesh::results::TimingLimits {
                max_skew: Duration::from_millis(self.max_clock_skew_ms),
                ..defaults.timing
            },
            ..defaults
        }
    }
}

/// Why a configuration was refused: the shared loader's error with this
/// file's [`Problem`]. Each message starts with `ORIGIN:LINE: ` when the
/// origin and line are known.
pub type ConfigError = config_text::ConfigError<Problem>;

/// A semantic problem found by [`Config::validate`].
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A number that must be positive is 0.
    #[error("must be at least 1")]
    Zero,
    /// `[export]` is wrong.
    #[error(transparent)]
    Export(ExportProblem),
    /// A path is empty.
    #[error("must not be empty")]
    EmptyPath,
    /// Two of this node's listeners share an address.
    #[error("same address as {other} ({addr}): every listener needs its own port")]
    SameAddress {
        /// The other key.
        other: String,
        /// The shared address.
        addr: SocketAddr,
    },
    /// `peers` is empty.
    #[error("at least one [[peers]] entry is required, this node included")]
    NoPeers,
    /// Two peers have the same id.
    #[error("duplicate peer id {id} (also at {first})")]
    DuplicatePeerId {
        /// The id.
        id: NodeId,
        /// The path of the first peer with it.
        first: String,
    },
    /// Two peer addresses are equal.
    #[error("{addr} is already {first}")]
    DuplicatePeerAddress {
        /// The address.
        addr: SocketAddr,
        /// The key that has it first.
        first: String,
    },
    /// A peer's address has port 0.
    #[error("port 0 cannot be reached by peers: give a fixed port")]
    PortZero,
    /// This node's id is not among the peers.
    #[error("node {node_id} is not in [[peers]]: list every initial member, this node included")]
    NotAPeer {
        /// This node's id.
        node_id: NodeId,
    },
    /// This node's `peers` entry disagrees with its own listener address.
    #[error("this node's entry says {peer} but {key} is {ours}")]
    PeerMismatch {
        /// `api_addr` or `raft_addr`.
        key: &'static str,
        /// What the peer entry says.
        peer: SocketAddr,
        /// What the top-level key says.
        ours: SocketAddr,
    },
    /// The heartbeat would not keep followers from starting elections.
    #[error("{heartbeat_ms} must be below raft.election_timeout_min_ms ({min_ms})")]
    HeartbeatNotBelowElection {
        /// The heartbeat interval.
        heartbeat_ms: u64,
        /// The election timeout minimum.
        min_ms: u64,
    },
    /// The election timeout range is empty.
    #[error("{min_ms} must be below raft.election_timeout_max_ms ({max_ms})")]
    ElectionRangeEmpty {
        /// The minimum.
        min_ms: u64,
        /// The maximum.
        max_ms: u64,
    },
    /// A value outside its allowed range.
    #[error("{value} is out of range: must be between {min} and {max}")]
    OutOfRange {
        /// The value given.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
    /// openraft refused the derived configuration (should not happen once
    /// the checks above pass).
    #[error("refused by openraft: {message}")]
    RaftRejected {
        /// openraft's message.
        message: String,
    },
    /// Neither plaintext nor complete TLS files.
    #[error(
        "set insecure = true for plaintext, or all of ca_file, cert_file and key_file (missing: {missing})"
    )]
    TlsIncomplete {
        /// The missing file keys, comma-separated.
        missing: String,
    },
    /// Plaintext and TLS files together.
    #[error(
        "insecure = true cannot be combined with ca_file, cert_file or key_file: remove one or the other"
    )]
    TlsConflict,
    /// A file the configuration names cannot be read.
    #[error("cannot read {path:?}: {source}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A path that must be a regular file is something else.
    #[error("{path:?} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A path that must be a directory (or absent) is something else.
    #[error("{path:?} exists but is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory a file would be created in does not exist.
    #[error("directory {dir:?} does not exist")]
    NoParentDirectory {
        /// The directory.
        dir: PathBuf,
    },
}

impl Config {
    /// Checks everything that can be checked before binding a port:
    /// distinct listener addresses, the peer list (this node in it, with
    /// the same addresses; no duplicate ids or addresses), Raft timing,
    /// TLS completeness and that the named files exist. Returns the first
    /// problem found, as [`ConfigError::Invalid`] without a location.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_peers()?;
        self.raft.validate()?;
        self.mesh.validate()?;
        self.history.validate()?;
        self.export.validate().map_err(|(key, problem)| invalid(key, Problem::Export(problem)))?;
        self.tls.validate()?;
        self.validate_paths()
    }

    /// The initial members as openraft nodes, for bootstrapping a fresh
    /// cluster.
    pub fn initial_members(&self) -> BTreeMap<NodeId, Node> {
        self.peers.iter().map(|p| (p.id, p.node())).collect()
    }

    /// Where this node dials peers whose Raft port it reaches at another
    /// address than the advertised one (`[[peers]] dial_raft_addr`), by
    /// node id.
    pub fn dial_raft_addrs(&self) -> BTreeMap<NodeId, String> {
        self.peers.iter().filter_map(|p| Some((p.id, p.dial_raft_addr?.to_string()))).collect()
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node_id", Problem::Zero));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", Problem::EmptyPath));
        }
        if self.admin_token_file.as_os_str().is_empty() {
            return Err(invalid("admin_token_file", Problem::EmptyPath));
        }
        if self.raft_addr == self.api_addr {
            return Err(invalid(
                "raft_addr",
                Problem::SameAddress { other: "api_addr".into(), addr: self.api_addr },
            ));
        }
        // Port 0 means "any free port" and never collides.
        for (other, addr) in [("api_addr", self.api_addr), ("raft_addr", self.raft_addr)] {
            if self.http_addr == addr && addr.port() != 0 {
                return Err(invalid("http_addr", Problem::SameAddress { other: other.into(), addr }));
            }
        }
        Ok(())
    }

    fn validate_peers(&self) -> Result<(), ConfigError> {
        if self.peers.is_empty() {
            return Err(invalid("peers", Problem::NoPeers));
        }
        let mut ids: HashMap<NodeId, String> = HashMap::new();
        let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let at = format!("peers[{i}]");
            if peer.id == 0 {
                return Err(invalid(format!("{at}.id"), Problem::Zero));
            }
            if let Some(first) = ids.get(&peer.id) {
                let problem = Problem::DuplicatePeerId { id: peer.id, first: first.clone() };
                return Err(invalid(format!("{at}.id"), problem));
            }
            ids.insert(peer.id, at.clone());
            for (field, addr) in [("api_addr", peer.api_addr), ("raft_addr", peer.raft_addr)] {
                let key = format!("{at}.{field}");
                if addr.port() == 0 {
                    return Err(invalid(key, Problem::PortZero));
                }
                if let Some(first) = addrs.get(&addr) {
                    let problem = Problem::DuplicatePeerAddress { addr, first: first.clone() };
                    return Err(invalid(key, problem));
                }
                addrs.insert(addr, key);
            }
        }
        // A dial address leads to its peer's Raft port: it must not be
        // another member's advertised address, or another peer's dial
        // address, or this node would reach the wrong node.
        for (i, peer) in self.peers.iter().enumerate() {
            let Some(dial) = peer.dial_raft_addr else { continue };
            let key = format!("peers[{i}].dial_raft_addr");
            if dial.port() == 0 {
                return Err(invalid(key, Problem::PortZero));
            }
            if dial == peer.raft_addr {
                continue;
            }
            if let Some(first) = addrs.get(&dial) {
                let problem = Problem::DuplicatePeerAddress { addr: dial, first: first.clone() };
                return Err(invalid(key, problem));
            }
            addrs.insert(dial, key);
        }
        let Some((i, me)) = self.peers.iter().enumerate().find(|(_, p)| p.id == self.node_id) else {
            return Err(invalid("node_id", Problem::NotAPeer { node_id: self.node_id }));
        };
        for (key, peer, ours) in
            [("api_addr", me.api_addr, self.api_addr), ("raft_addr", me.raft_addr, self.raft_addr)]
        {
            if peer != ours {
                return Err(invalid(format!("peers[{i}].{key}"), Problem::PeerMismatch { key, peer, ours }));
            }
        }
        Ok(())
    }

    fn validate_paths(&self) -> Result<(), ConfigError> {
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            return Err(invalid("data_dir", Problem::NotADirectory { path: self.data_dir.clone() }));
        }
        match std::fs::metadata(&self.admin_token_file) {
            Ok(meta) if !meta.is_file() => {
                let problem = Problem::NotAFile { path: self.admin_token_file.clone() };
                return Err(invalid("admin_token_file", problem));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // It will be created; its directory must exist.
                let dir = match self.admin_token_file.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                if !dir.is_dir() {
                    let problem = Problem::NoParentDirectory { dir: dir.to_path_buf() };
                    return Err(invalid("admin_token_file", problem));
                }
            }
            Err(source) => {
                let problem = Problem::Unreadable { path: self.admin_token_file.clone(), source };
                return Err(invalid("admin_token_file", problem));
            }
        }
        Ok(())
    }
}

/// Loading: the shared loader with this file's hints, paths and checks.
impl Config {
    /// Reads, parses and validates the file at `path`. Relative paths in it
    /// are resolved against the file's directory before validation.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        config_text::parse_file(path, std::fs::read_to_string(path))
    }

    /// Parses and validates `text`; `origin` (usually the file name) starts
    /// every error message. Relative paths stay relative to the working
    /// directory.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        config_text::parse(text, origin)
    }
}

impl ConfigFile for Config {
    type Problem = Problem;

    fn missing_key_hint(path: &str) -> &'static str {
        match path {
            "tls" => ": add [tls] with insecure = true for plaintext, or ca_file, cert_file and key_file",
            "peers" => ": add a [[peers]] entry for every initial member, this node included",
            _ => "",
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.admin_token_file);
        for file in
            [&mut self.tls.ca_file, &mut self.tls.cert_file, &mut self.tls.key_file].into_iter().flatten()
        {
            resolve(file);
        }
        self.export.resolve_paths(base);
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Config::validate(self)
    }
}

impl Default for Config {
    fn default() -> Config {
        let api_addr: SocketAddr = ([127, 0, 0, 1], 7400).into();
        let raft_addr: SocketAddr = ([127, 0, 0, 1], 7401).into();
        Config {
            node_id: 1,
            data_dir: PathBuf::from("data"),
            api_addr,
            raft_addr,
            http_addr: defaults::http_addr(),
            admin_token_file: defaults::admin_token_file(),
            peers: vec![Peer { id: 1, api_addr, raft_addr, dial_raft_addr: None }],
            tls: TlsConfig { insecure: true, ..TlsConfig::default() },
            raft: RaftConfig::default(),
            mesh: MeshConfig::default(),
            history: HistoryConfig::default(),
            export: ExportConfig::default(),
        }
    }
}

impl Config {
    /// A one-node, plaintext cluster on this machine with short Raft
    /// timings (heartbeat 50 ms, elections 200–400 ms): what dev mode and
    /// single-node tests run. The node is its own only peer.
    pub fn single_node(
        data_dir: PathBuf,
        api_addr: SocketAddr,
        raft_addr: SocketAddr,
        http_addr: SocketAddr,
    ) -> Config {
        Config {
            data_dir,
            api_addr,
            raft_addr,
            http_addr,
            peers: vec![Peer { id: 1, api_addr, raft_addr, dial_raft_addr: None }],
            raft: RaftConfig {
                heartbeat_ms: 50,
                election_timeout_min_ms: 200,
                election_timeout_max_ms: 400,
                ..RaftConfig::default()
            },
            ..Config::default()
        }
    }
}

impl Peer {
    /// The member as openraft knows it.
    pub fn node(&self) -> Node {
        Node { api_addr: self.api_addr.to_string(), raft_addr: self.raft_addr.to_string() }
    }
}

impl TlsConfig {
    /// The three files, or `None` for plaintext (`insecure = true`) or an
    /// incomplete table (which [`TlsConfig::validate`] refuses).
    pub fn files(&self) -> Option<TlsFiles> {
        if self.insecure {
            return None;
        }
        Some(TlsFiles {
            ca_file: self.ca_file.clone()?,
            cert_file: self.cert_file.clone()?,
            key_file: self.key_file.clone()?,
        })
    }

    /// Checks that the table is plaintext or complete, and that the files
    /// are readable regular files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let named =
            [("ca_file", &self.ca_file), ("cert_file", &self.cert_file), ("key_file", &self.key_file)];
        if self.insecure {
            if named.iter().any(|(_, p)| p.is_some()) {
                return Err(invalid("tls.insecure", Problem::TlsConflict));
            }
            return Ok(());
        }
        let missing: Vec<&str> = named.iter().filter(|(_, p)| p.is_none()).map(|(k, _)| *k).collect();
        if !missing.is_empty() {
            return Err(invalid("tls", Problem::TlsIncomplete { missing: missing.join(", ") }));
        }
        for (key, path) in named {
            let Some(path) = path else { continue };
            let key = format!("tls.{key}");
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => return Err(invalid(key, Problem::NotAFile { path: path.clone() })),
                Err(source) => return Err(invalid(key, Problem::Unreadable { path: path.clone(), source })),
            }
        }
        Ok(())
    }
}

impl RaftConfig {
    /// Checks that heartbeats come well before elections and the election
    /// timeout range is not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("raft.heartbeat_ms", self.heartbeat_ms),
            ("raft.election_timeout_min_ms", self.election_timeout_min_ms),
            ("raft.snapshot_every_logs", self.snapshot_every_logs),
        ] {
            if value == 0 {
                return Err(invalid(key, Problem::Zero));
            }
        }
        if self.heartbeat_ms >= self.election_timeout_min_ms {
            let problem = Problem::HeartbeatNotBelowElection {
                heartbeat_ms: self.heartbeat_ms,
                min_ms: self.election_timeout_min_ms,
            };
            return Err(invalid("raft.heartbeat_ms", problem));
        }
        if self.election_timeout_min_ms >= self.election_timeout_max_ms {
            let problem = Problem::ElectionRangeEmpty {
                min_ms: self.election_timeout_min_ms,
                max_ms: self.election_timeout_max_ms,
            };
            return Err(invalid("raft.election_timeout_min_ms", problem));
        }
        Ok(())
    }

    /// The openraft configuration with these timings and compaction
    /// settings (openraft's defaults for the rest), validated by openraft.
    pub fn openraft_config(&self) -> Result<openraft::Config, ConfigError> {
        let config = openraft::Config {
            cluster_name: "vantage".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_logs),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..openraft::Config::default()
        };
        config.validate().map_err(|e| invalid("raft", Problem::RaftRejected { message: e.to_string() }))
    }
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            heartbeat_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every_logs: 5000,
            logs_kept_after_snapshot: 1000,
        }
    }
}

mod defaults {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    pub(super) fn http_addr() -> SocketAddr {
        ([127, 0, 0, 1], 8080).into()
    }

    pub(super) fn admin_token_file() -> PathBuf {
        PathBuf::from("admin.token")
    }
}

/// Parses an `IP:PORT` string with a message that names the value. (The
/// standard library's impl says only "invalid socket address syntax".)
fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        D::Error::custom(format!(
            "invalid socket address {text:?}: expected IP:PORT, such as 127.0.0.1:7400 or [::1]:7400"
        ))
    })
}

/// [`socket_addr`] for an optional key.
fn optional_socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(deserializer).map(Some)
}
