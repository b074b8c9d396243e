//! The objects vantagectl manages, as plain data: what commands build,
//! what `apply` diffs and what `--json` prints. The specifications
//! (endpoints, webhooks, maintenance windows) are `vantage-core`'s, the same
//! types the coordinator validates and stores; this module adds the records
//! the coordinator answers with (ids, kinds, timestamps) and the views of
//! probes, shards and the cluster; `incidents.rs` those of incidents,
//! endpoint states and alert deliveries. The protobuf types stay in
//! [`crate::wire`]; everything else works with these.
//!
//! Sets and maps are ordered (`BTreeSet`, `BTreeMap`), so two equal
//! specifications compare equal and print the same way every time.

use std::collections::BTreeMap;

use serde::Serialize;

pub use vantage_core::endpoint::{EndpointSpec, Expectations};
/// `endpoint history`: the view itself is `vantage-core`'s, so `--json`
/// prints the HTTP API's body.
pub use vantage_core::history::{EndpointHistory, Window};
pub use vantage_core::maintenance::MaintenanceSpec;
pub use vantage_core::spec::CheckKind;
pub use vantage_core::validate::Labels;
pub use vantage_core::webhook::{AlertEvent, WebhookFormat, WebhookSpec};

mod incidents;
pub use self::incidents::{
    AgreementRules, Delivery, DeliveryStatus, EndpointStatus, Incident, IncidentSummary, Page, ProbeVerdict,
    RegionVerdict, State, Verdict, VerdictJson,
};

/// An endpoint as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Assigned by the coordinator, never reused.
    pub id: u64,
    /// `http`, `https`, `tcp`, `tls` or `dns`.
    pub kind: CheckKind,
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

/// A webhook as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Assigned by the coordinator, never reused.
    pub id: u64,
    /// The specification; its secret is empty (write-only), so it is left
    /// out of `--json`.
    #[serde(flatten)]
    pub spec: WebhookSpec,
    /// Whether a signing secret is stored.
    pub secret_set: bool,
    /// When it was added.
    pub created_at_unix_ms: i64,
    /// The secret the coordinator generated for a webhook added without
    /// one: in the reply to that `webhook add` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
}

/// What `webhook test` reports: one signed `test` event sent by the
/// coordinator that answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookTestReport {
    /// The webhook's id.
    pub webhook_id: u64,
    /// Its name.
    pub name: String,
    /// The URL posted to.
    pub url: String,
    /// Whether the receiver accepted it (2xx).
    pub delivered: bool,
    /// The receiver's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// From the start of the attempt to its end, in milliseconds.
    pub latency_ms: f64,
    /// Why it was not accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `webhook-id` it carried.
    pub message_id: String,
    /// The node that sent it.
    pub node_id: u64,
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
