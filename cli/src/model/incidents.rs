//! Agreement's decisions as vantagectl shows them: incidents with their
//! evidence, each endpoint's agreed state, and alert deliveries. These are
//! the `--json` shapes of `incident list|show`, `endpoint status` and
//! `alert list` (README, "vantagectl"): every key is always present, `null`
//! where there is no value, so scripts can rely on the shape.
//!
//! States and alert events are `vantage-core`'s; verdicts are too, written
//! as `"verdict": "down", "reason": "timeout"` (the reason `null` for
//! `up`), the names the wire and the replicated state use.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

pub use vantage_core::agreement::{State, Verdict};

/// An incident in a list (no evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentSummary {
    /// Never reused.
    pub id: u64,
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The endpoint's name; `null` when it has been removed since.
    pub endpoint: Option<String>,
    /// `outage`, `degraded` or `flapping`.
    pub kind: String,
    /// Not resolved yet.
    pub open: bool,
    /// When it opened.
    pub opened_at_unix_ms: i64,
    /// When it resolved; `null` while open.
    pub resolved_at_unix_ms: Option<i64>,
    /// The regions that were down when it opened.
    pub regions_down: Vec<String>,
}

/// One incident with the evidence that opened and resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// What a list shows.
    #[serde(flatten)]
    pub summary: IncidentSummary,
    /// Per region, what its probes saw when it opened.
    pub opened_evidence: Vec<RegionVerdict>,
    /// Per region, what its probes saw when it resolved (empty while open).
    pub resolved_evidence: Vec<RegionVerdict>,
}

/// One region's verdict with what each of its probes saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionVerdict {
    /// The region.
    pub region: String,
    /// `verdict` and `reason`.
    #[serde(flatten)]
    pub verdict: VerdictJson,
    /// Per probe.
    pub probes: Vec<ProbeVerdict>,
}

/// What one probe saw. Probes are named; their addresses are never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeVerdict {
    /// The probe's id.
    pub probe_id: u64,
    /// Its name; `null` when it has been revoked since.
    pub probe: Option<String>,
    /// `verdict` and `reason`.
    #[serde(flatten)]
    pub verdict: VerdictJson,
    /// The failure's one-line message; `null` unless the check failed.
    pub message: Option<String>,
    /// The HTTP status received, if any.
    pub status_code: Option<u16>,
    /// The whole check, in microseconds (0 without a result).
    pub total_us: u64,
    /// Time to first byte, in microseconds.
    pub ttfb_us: u64,
    /// When the check started, Unix microseconds; `null` without a result.
    pub started_at_unix_us: Option<i64>,
}

/// A [`Verdict`] as two JSON keys: `"verdict"` (`up`, `down`, `unknown`)
/// and `"reason"` (the error kind for `down`, why for `unknown`, `null`
/// for `up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictJson(pub Verdict);

impl Serialize for VerdictJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (verdict, reason) = vantage_proto::incidents::verdict_to_wire(self.0);
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("verdict", verdict)?;
        map.serialize_entry("reason", &Some(reason).filter(|r| !r.is_empty()))?;
        map.end()
    }
}

/// An endpoint's agreement rules as they apply now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgreementRules {
    /// The regions it is checked from.
    pub regions: u32,
    /// Regions that must be down for an outage.
    pub quorum: u32,
    /// The endpoint sets the quorum itself (else a majority, at least 2).
    pub quorum_set: bool,
    /// Rounds below the quorum that resolve an outage.
    pub recovery_rounds: u32,
    /// How long the quorum must hold before an outage opens; 0: at once.
    pub min_failure_ms: u64,
}

/// One endpoint's agreed state (`endpoint status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// Its name.
    pub endpoint: String,
    /// `up`, `degraded`, `down`, `unknown`, `flapping`, `maintenance` or
    /// `paused`.
    pub state: State,
    /// When it entered the state; `null`: never decided.
    pub since_unix_ms: Option<i64>,
    /// Its rules.
    pub rules: AgreementRules,
    /// Per region, the verdicts recorded with the last transition.
    pub regions: Vec<RegionVerdict>,
    /// Its open incidents.
    pub open_incidents: Vec<IncidentSummary>,
}

/// Where an alert delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_attempt_at_unix_ms`.
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Given up on (attempts or age used up, or the webhook removed).
    Failed,
}

impl DeliveryStatus {
    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One alert for one webhook (`alert list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The delivery's id.
    pub id: u64,
    /// The `webhook-id` header every attempt carries.
    pub message_id: String,
    /// The webhook's id.
    pub webhook_id: u64,
    /// Its name; `null` when it has been removed since.
    pub webhook: Option<String>,
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// Its name; `null` when it has been removed since.
    pub endpoint: Option<String>,
    /// The incident the alert is about.
    pub incident_id: u64,
    /// The alert event.
    pub event: crate::model::AlertEvent,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last failed attempt's error; `null` when none failed.
    pub last_error: Option<String>,
    /// When the transition was committed.
    pub created_at_unix_ms: i64,
    /// Pending: when the next attempt may start; else `null`.
    pub next_attempt_at_unix_ms: Option<i64>,
    /// Delivered or failed: when; else `null`.
    pub finished_at_unix_ms: Option<i64>,
}

/// A page of a list: the rows and how many matched before the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// How many matched in all.
    pub matched: u32,
}
