//! The objects vantagectl manages, as plain data: what commands build,
//! what `apply` diffs and what `--json` prints. The protobuf types stay in
//! [`crate::wire`]; everything else works with these.
//!
//! Sets and maps are ordered (`BTreeSet`, `BTreeMap`), so two equal
//! specifications compare equal and print the same way every time.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// The default time between checks (the coordinator's default too).
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// The default check timeout (the coordinator's default too).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// Free-form `key=value` labels.
pub type Labels = BTreeMap<String, String>;

/// What an admin specifies for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointSpec {
    /// Unique among endpoints; never all digits.
    pub name: String,
    /// The target: `http(s)://`, `tcp://`, `tls://` or `dns://`.
    pub url: String,
    /// Time between checks.
    pub interval_ms: u64,
    /// The whole check's deadline, below the interval.
    pub timeout_ms: u64,
    /// What a good answer looks like.
    pub expect: Expectations,
    /// Where to check from; empty: every region.
    pub regions: BTreeSet<String>,
    /// Shown on the public status page.
    pub public: bool,
    /// Lets checks reach private, loopback and link-local addresses.
    pub allow_private: bool,
    /// Free-form labels.
    pub labels: Labels,
    /// Checks are stopped.
    pub paused: bool,
}

impl EndpointSpec {
    /// A specification with the default interval and timeout and no
    /// options.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> EndpointSpec {
        EndpointSpec {
            name: name.into(),
            url: url.into(),
            interval_ms: DEFAULT_INTERVAL_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            expect: Expectations::default(),
            regions: BTreeSet::new(),
            public: false,
            allow_private: false,
            labels: Labels::new(),
            paused: false,
        }
    }
}

/// Expectations in the text forms of `vantage-probe check --expect-*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expectations {
    /// Acceptable status codes, e.g. `200-299,301`; `None`: 200–399.
    pub status: Option<String>,
    /// Texts the body must contain.
    pub body_contains: Vec<String>,
    /// Regular expressions the body must match.
    pub body_matches: Vec<String>,
    /// `POINTER=VALUE` JSON expectations.
    pub json: Vec<String>,
    /// `NAME` or `NAME: REGEX` header expectations.
    pub headers: Vec<String>,
    /// Ceiling on the whole check's duration.
    pub max_total_ms: Option<u64>,
    /// Ceiling on time to first byte.
    pub max_ttfb_ms: Option<u64>,
    /// Minimum days before the certificate expires.
    pub min_cert_days: Option<i64>,
}

impl Expectations {
    /// Whether nothing is expected beyond the defaults.
    pub fn is_empty(&self) -> bool {
        *self == Expectations::default()
    }
}

/// An endpoint as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Assigned by the coordinator, never reused.
    pub id: u64,
    /// `http`, `https`, `tcp`, `tls` or `dns`.
    pub kind: String,
    /// The specification.
    #[serde(flatten)]
    pub spec: EndpointSpec,
    /// When it was added.
    pub created_at_unix_ms: i64,
    /// When its specification last changed.
    pub updated_at_unix_ms: i64,
}

/// A region probes live in and endpoints are checked from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    /// E.g. `eu-west`.
    pub name: String,
    /// When it was added.
    pub created_at_unix_ms: i64,
}

/// What an admin specifies for a webhook, less the secret (which is
/// write-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookSpec {
    /// Unique among webhooks.
    pub name: String,
    /// An `http` or `https` URL.
    pub url: String,
    /// `standard` or `slack`.
    pub format: String,
    /// Alert events delivered; empty: all.
    pub events: BTreeSet<String>,
    /// Only endpoints carrying all these labels; empty: all.
    pub labels: Labels,
}

/// A webhook as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Assigned by the coordinator, never reused.
    pub id: u64,
    /// The specification (without the secret).
    #[serde(flatten)]
    pub spec: WebhookSpec,
    /// Whether a signing secret is stored.
    pub secret_set: bool,
    /// When it was added.
    pub created_at_unix_ms: i64,
}

/// The alert events a webhook can subscribe to.
pub const WEBHOOK_EVENTS: [&str; 4] = ["outage_opened", "outage_resolved", "degraded", "flapping"];
/// The webhook delivery formats.
pub const WEBHOOK_FORMATS: [&str; 2] = ["standard", "slack"];

/// What an admin specifies for a maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceSpec {
    /// Start, inclusive.
    pub starts_at_unix_ms: i64,
    /// End, exclusive.
    pub ends_at_unix_ms: i64,
    /// Endpoint ids covered; with `labels` also empty: every endpoint.
    pub endpoints: BTreeSet<u64>,
    /// Endpoints carrying all these labels are covered too.
    pub labels: Labels,
    /// Why.
    pub reason: String,
}

/// A maintenance window as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    /// Assigned by the coordinator, never reused.
    pub id: u64,
    /// The specification.
    #[serde(flatten)]
    pub spec: MaintenanceSpec,
    /// When it was added.
    pub created_at_unix_ms: i64,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The current leader, if there is one.
    pub leader_id: Option<u64>,
    /// The current Raft term.
    pub term: u64,
    /// The node that answered.
    pub node_id: u64,
    /// Every member, voters and learners.
    pub members: Vec<ClusterMember>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterMember {
    /// The node id.
    pub id: u64,
    /// Its API address (admins and probes).
    pub api_addr: String,
    /// Its Raft address (peers only).
    pub raft_addr: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// Whether the answering node reaches it.
    pub reachable: bool,
    /// The last log index it applied.
    pub last_applied: u64,
}

/// The whole configuration `apply` and `export` deal with, as the
/// coordinator holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveState {
    /// Regions.
    pub regions: Vec<Region>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Webhooks.
    pub webhooks: Vec<Webhook>,
    /// Maintenance windows.
    pub maintenance: Vec<Maintenance>,
}

/// A registered probe and, when the answering coordinator leads, its live
/// state (`probe list`, `--json` as is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// Assigned by the coordinator.
    pub id: u64,
    /// Its name (`probe_id` in probe.toml).
    pub name: String,
    /// The region it checks from.
    pub region: String,
    /// Its share of the region's endpoints.
    pub weight: u32,
    /// Gets no endpoints.
    pub drained: bool,
    /// A stream is open now.
    pub connected: bool,
    /// Its software version ("" if never connected).
    pub version: String,
    /// When its current (or last) stream opened; 0: never.
    pub connected_since_unix_ms: i64,
    /// When it last sent anything; 0: never.
    pub last_seen_unix_ms: i64,
    /// Endpoints assigned to it now.
    pub endpoints: u32,
    /// Checks per second it reported.
    pub checks_per_second: f64,
    /// Its scheduling lag p99 (ms) it reported.
    pub scheduling_lag_p99_ms: f64,
    /// Results of it the cluster recorded.
    pub results_recorded: u64,
    /// Results of it the cluster refused.
    pub results_refused: u64,
    /// Sequence numbers recorded twice (0 unless something is wrong).
    pub results_duplicated: u64,
    /// The sequence numbers processed, as inclusive ranges.
    pub processed_seqs: Vec<SeqRange>,
}

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    /// The first number.
    pub first: u64,
    /// The last number.
    pub last: u64,
}

/// A token issued by `probe token create` (`--json` as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeToken {
    /// The probe's id.
    pub probe_id: u64,
    /// The bearer token; shown once.
    pub token: String,
    /// An existing probe's token was replaced.
    #[serde(skip)]
    pub rotated: bool,
}

/// `shard list` (`--json` as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardList {
    /// The leader's assignment version.
    pub assignment_version: u64,
    /// One row per endpoint, region and probe.
    pub shards: Vec<ShardRow>,
    /// Endpoint regions nobody checks.
    pub uncovered: Vec<UncoveredShard>,
    /// Regions with no live probe at all.
    pub uncovered_regions: Vec<String>,
}

/// One endpoint checked from one region by one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardRow {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The probe's id.
    pub probe_id: u64,
    /// The probe's name.
    pub probe: String,
    /// Held because of a pin.
    pub pinned: bool,
    /// The probe's stream is open.
    pub connected: bool,
}

/// An endpoint region nobody checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UncoveredShard {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The region.
    pub region: String,
}

/// `shard show` (`--json` as is): `endpoint` and `assignments` (one per
/// region and probe) are the stable core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardView {
    /// The endpoint's name.
    pub endpoint: String,
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The leader's assignment version.
    pub assignment_version: u64,
    /// Paused endpoints are not placed.
    pub paused: bool,
    /// Who checks it, by region then probe.
    pub assignments: Vec<Assignment>,
    /// Regions it is checked from where nobody checks it.
    pub uncovered_regions: Vec<String>,
    /// Its pins, by region.
    pub pins: Vec<Pin>,
}

/// One probe checking an endpoint from one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The region.
    pub region: String,
    /// The probe's name.
    pub probe: String,
    /// The probe's id.
    pub probe_id: u64,
    /// Held because of a pin.
    pub pinned: bool,
    /// The probe's stream is open.
    pub connected: bool,
}

/// A pin of an endpoint in a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// The region.
    pub region: String,
    /// The pinned probe's name.
    pub probe: String,
    /// The pinned probe's id.
    pub probe_id: u64,
    /// Why it is not honoured now; `None` when it is.
    pub problem: Option<String>,
}

/// `shard pin` (`--json` as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pinned {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The probe's id.
    pub probe_id: u64,
    /// The probe's name.
    pub probe: String,
    /// False when that pin was already there.
    pub changed: bool,
}

/// `shard unpin` (`--json` as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unpinned {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The regions whose pins were removed.
    pub regions: Vec<String>,
}

/// `shard rebalance` (`--json` as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rebalance {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Probes whose grace period was (or would be) ended.
    pub expired_probes: Vec<String>,
    /// Endpoints moved per region (regions without moves left out).
    pub moved: BTreeMap<String, u32>,
    /// Every move.
    pub moves: Vec<ShardMove>,
    /// The assignment version after.
    pub assignment_version: u64,
}

/// One endpoint's probes in one region, before and after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardMove {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// Probe names before (empty: uncovered).
    pub from: Vec<String>,
    /// Probe names after (empty: uncovered).
    pub to: Vec<String>,
}

/// `check` (`--json` as is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The request id the probes' results carry.
    pub request_id: String,
    /// Every row is `ok`.
    pub ok: bool,
    /// One row per region and probe asked, plus regions nobody could be
    /// asked in.
    pub regions: Vec<RegionCheck>,
}

/// One region's answer to `check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionCheck {
    /// The region.
    pub region: String,
    /// The probe's name; `None` for an uncovered region.
    pub probe: Option<String>,
    /// The probe's id; `None` for an uncovered region.
    pub probe_id: Option<u64>,
    /// `ok`, `failed`, `timed_out`, `unreachable` or `uncovered`.
    pub outcome: String,
    /// For `failed`: the error kind (`dns`, `connect_refused`, `timeout`, …).
    pub error_kind: Option<String>,
    /// What happened, in one line (empty for `ok`).
    pub message: String,
    /// The HTTP status code, when one was received.
    pub status_code: Option<u32>,
    /// Timing phases in milliseconds, for regions that answered.
    pub phases_ms: Option<PhasesMs>,
}

impl RegionCheck {
    /// The region answered and the check passed.
    pub fn is_ok(&self) -> bool {
        self.outcome == "ok"
    }
}

/// Timing phases of one check, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhasesMs {
    /// Name resolution.
    pub dns: f64,
    /// TCP connect.
    pub connect: f64,
    /// TLS handshake.
    pub tls: f64,
    /// Request written to first response byte.
    pub ttfb: f64,
    /// First response byte to the end of the body.
    pub transfer: f64,
    /// The whole check.
    pub total: f64,
}
