//! What a client may ask the replicated state to do, and what it answers.
//!
//! A [`Request`] is the Raft log's application payload: one [`Command`] plus
//! the context every change carries (an idempotency key and the time the
//! proposing node stamped). The state machine answers each with a
//! [`CommandResponse`]: the [`Outcome`] of an applied command, or the
//! [`CommandError`] of a refused one, which changed nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::admin_tokens::AdminTokenSpec;
use super::history::RollupBatch;
use super::ids::{AdminTokenId, EndpointId, MaintenanceId, ProbeId, UnixMillis, WebhookId};
use super::ids::{DeliveryId, IncidentId};
use super::incidents::{DeliveryRecord, TransitionRecord};
use super::ingest::IngestEntry;
use super::probes::{ProbeSpec, TokenHash};
use vantage_core::endpoint::EndpointSpec;
pub use vantage_core::ids::ObjectKind;
use vantage_core::maintenance::MaintenanceSpec;
use vantage_core::validate::ValidationError;
use vantage_core::webhook::WebhookSpec;

/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// One replicated request: a command and the context it was proposed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Chosen by the client, once per intended change and reused on retries,
    /// so a retried request is not applied twice.
    pub idempotency_key: IdempotencyKey,
    /// When the proposing node received the request. The only source of time
    /// for apply.
    pub issued_at: UnixMillis,
    /// What to change.
    pub command: Command,
}

/// A client-chosen key that makes a request safe to retry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    /// Checks the key's length and characters (printable ASCII, no spaces).
    pub fn validate(&self) -> Result<(), CommandError> {
        let bad = |reason: &str| Err(CommandError::InvalidIdempotencyKey { reason: reason.to_string() });
        if self.0.is_empty() {
            return bad("empty; send a unique key (for example a UUID) with every change");
        }
        if self.0.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return bad("longer than 128 bytes");
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("only printable ASCII without spaces is allowed");
        }
        Ok(())
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every change the replicated state accepts. Each variant has one apply
/// function in the module that owns its objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Adds a region probes can live in and endpoints can be checked from.
    AddRegion {
        /// The region's name, e.g. `eu-west`.
        name: String,
    },
    /// Removes a region no endpoint or probe uses.
    RemoveRegion {
        /// The region's name.
        name: String,
    },
    /// Adds an endpoint to monitor.
    AddEndpoint(EndpointSpec),
    /// Replaces an endpoint's whole specification (name included).
    UpdateEndpoint {
        /// The endpoint to change.
        id: EndpointId,
        /// Its new specification.
        spec: EndpointSpec,
    },
    /// Pauses or resumes an endpoint's checks.
    SetEndpointPaused {
        /// The endpoint to change.
        id: EndpointId,
        /// Whether checks stop.
        paused: bool,
    },
    /// Removes an endpoint (and its mentions in maintenance windows).
    RemoveEndpoint {
        /// The endpoint to remove.
        id: EndpointId,
    },
    /// Registers a probe and the hash of the token it authenticates with.
    RegisterProbe(ProbeSpec),
    /// Changes a probe's share of its region's endpoints.
    SetProbeWeight {
        /// The probe to change.
        id: ProbeId,
        /// Its new weight.
        weight: u32,
    },
    /// Drains a probe (it gets no assignments) or puts it back to work.
    SetProbeDrained {
        /// The probe to change.
        id: ProbeId,
        /// Whether the probe is drained.
        drained: bool,
    },
    /// Replaces a probe's token hash; the old token stops working.
    RotateProbeToken {
        /// The probe to change.
        id: ProbeId,
        /// The hash of the new token.
        token_hash: TokenHash,
    },
    /// Removes a probe; its token stops working.
    RemoveProbe {
        /// The probe to remove.
        id: ProbeId,
    },
    /// Adds a webhook alerts are delivered to.
    AddWebhook(WebhookSpec),
    /// Replaces a webhook's whole specification.
    UpdateWebhook {
        /// The webhook to change.
        id: WebhookId,
        /// Its new specification.
        spec: WebhookSpec,
    },
    /// Removes a webhook.
    RemoveWebhook {
        /// The webhook to remove.
        id: WebhookId,
    },
    /// Adds a maintenance window, during which outages are not alerted.
    AddMaintenance(MaintenanceSpec),
    /// Removes a maintenance window.
    RemoveMaintenance {
        /// The window to remove.
        id: MaintenanceId,
    },
    /// Adds an admin token (by its hash).
    AddAdminToken(AdminTokenSpec),
    /// Revokes an admin token.
    RevokeAdminToken {
        /// The token to revoke.
        id: AdminTokenId,
    },
    /// Pins an endpoint in one region to one probe of that region: the
    /// probe takes one of the region's replica slots while it is eligible.
    /// Pinning again in the same region replaces the pin.
    PinEndpoint {
        /// The endpoint to pin.
        endpoint: EndpointId,
        /// A region the endpoint is checked from.
        region: String,
        /// A probe of that region.
        probe: ProbeId,
    },
    /// Removes an endpoint's pin in one region, or all its pins.
    UnpinEndpoint {
        /// The endpoint to unpin.
        endpoint: EndpointId,
        /// The region whose pin to remove; `None`: every region.
        region: Option<String>,
    },
    /// Records that a coordinator node is being removed from the cluster,
    /// so its id is never given to another node. Committed before the
    /// membership change that removes it.
    RetireNode {
        /// The coordinator node's id.
        node_id: u64,
    },
    /// Records the result sequence numbers the leader processed since its
    /// previous checkpoint (see [`super::ingest`]). Not remembered under
    /// its idempotency key: the ledger itself makes it idempotent.
    RecordIngest {
        /// One entry per probe that sent results.
        entries: Vec<IngestEntry>,
    },
    /// Records a transition agreement decided on the leader: the endpoint's
    /// state, the incidents it opens or resolves, and one pending delivery
    /// per matching webhook, together.
    RecordTransition(TransitionRecord),
    /// Records how a delivery attempt ended.
    RecordDelivery(DeliveryRecord),
    /// Records the leader's rollups of the last minute or so (see
    /// [`super::history`]). Not remembered under its idempotency key: the
    /// batch number makes it idempotent, and one a minute would crowd
    /// admins' keys out.
    RecordRollups(RollupBatch),
}

/// What applying one log entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandResponse {
    /// The entry carried no command (a leader's blank entry or a membership
    /// change).
    Empty,
    /// The command was applied (or had been: a retry returns the original
    /// response).
    Applied(Outcome),
    /// The command was refused and changed nothing.
    Rejected(CommandError),
}

impl CommandResponse {
    /// The outcome, or why the command was refused. `Empty` is an outcome
    /// of its own.
    pub fn into_result(self) -> Result<Outcome, CommandError> {
        match self {
            CommandResponse::Empty => Ok(Outcome::Nothing),
            CommandResponse::Applied(outcome) => Ok(outcome),
            CommandResponse::Rejected(error) => Err(error),
        }
    }
}

impl From<Result<Outcome, CommandError>> for CommandResponse {
    fn from(result: Result<Outcome, CommandError>) -> Self {
        match result {
            Ok(outcome) => CommandResponse::Applied(outcome),
            Err(error) => CommandResponse::Rejected(error),
        }
    }
}

/// What an applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to report (blank and membership entries).
    Nothing,
    /// A region was added.
    RegionAdded {
        /// Its name.
        name: String,
    },
    /// A region was removed.
    RegionRemoved {
        /// Its name.
        name: String,
    },
    /// An endpoint was added.
    EndpointAdded {
        /// Its new id.
        id: EndpointId,
    },
    /// An endpoint was updated, paused or resumed.
    EndpointUpdated {
        /// Its id.
        id: EndpointId,
        /// False when the command asked for what was already there.
        changed: bool,
    },
    /// An endpoint was removed.
    EndpointRemoved {
        /// Its id.
        id: EndpointId,
    },
    /// A probe was registered.
    ProbeRegistered {
        /// Its new id.
        id: ProbeId,
    },
    /// A probe's weight, drain flag or token changed.
    ProbeUpdated {
        /// Its id.
        id: ProbeId,
        /// False when the command asked for what was already there.
        changed: bool,
    },
    /// A probe was removed.
    ProbeRemoved {
        /// Its id.
        id: ProbeId,
    },
    /// A webhook was added.
    WebhookAdded {
        /// Its new id.
        id: WebhookId,
    },
    /// A webhook was updated.
    WebhookUpdated {
        /// Its id.
        id: WebhookId,
        /// False when the command asked for what was already there.
        changed: bool,
    },
    /// A webhook was removed.
    WebhookRemoved {
        /// Its id.
        id: WebhookId,
    },
    /// A maintenance window was added.
    MaintenanceAdded {
        /// Its new id.
        id: MaintenanceId,
    },
    /// A maintenance window was removed.
    MaintenanceRemoved {
        /// Its id.
        id: MaintenanceId,
    },
    /// An admin token was added.
    AdminTokenAdded {
        /// Its new id.
        id: AdminTokenId,
    },
    /// An admin token was revoked.
    AdminTokenRevoked {
        /// Its id.
        id: AdminTokenId,
    },
    /// An endpoint was pinned in a region.
    EndpointPinned {
        /// The endpoint.
        endpoint: EndpointId,
        /// The region.
        region: String,
        /// The pinned probe.
        probe: ProbeId,
        /// False when that pin was already there.
        changed: bool,
    },
    /// Pins of an endpoint were removed.
    EndpointUnpinned {
        /// The endpoint.
        endpoint: EndpointId,
        /// The regions whose pins were removed; empty when none was pinned.
        regions: Vec<String>,
    },
    /// A coordinator node id was retired.
    NodeRetired {
        /// The node's id.
        node_id: u64,
        /// False when it already was.
        changed: bool,
    },
    /// A transition was recorded.
    TransitionRecorded {
        /// The incident it opened.
        opened: Option<IncidentId>,
        /// The incidents it resolved.
        resolved: Vec<IncidentId>,
        /// The deliveries it queued.
        deliveries: Vec<DeliveryId>,
    },
    /// A delivery attempt was recorded.
    DeliveryRecorded {
        /// The delivery.
        id: DeliveryId,
        /// False when the delivery had already finished.
        changed: bool,
    },
    /// A rollup batch was recorded.
    RollupsRecorded {
        /// The batch's number.
        batch: u64,
        /// Rows stored (of endpoints that exist, in periods still kept).
        rows: u64,
        /// True when the batch was already applied: nothing changed.
        duplicate: bool,
    },
    /// An ingest checkpoint was recorded.
    IngestRecorded {
        /// Numbers the ledger already had (zero unless a result was
        /// processed twice).
        duplicates: u64,
    },
}

/// Why a command was refused. A refused command changes nothing; the
/// refusal is replicated (and remembered under its idempotency key) like
/// any other response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum CommandError {
    /// The idempotency key is empty, too long or has odd characters.
    #[error("invalid idempotency key: {reason}")]
    InvalidIdempotencyKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The key was already used for a different command.
    #[error("idempotency key {key:?} was already used for a different command; send a new key with every new change")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// Another object of the same kind already has this name.
    #[error("{kind} {name:?} already exists")]
    DuplicateName {
        /// What the name is for.
        kind: ObjectKind,
        /// The name given.
        name: String,
    },
    /// A region named in the command does not exist.
    #[error("unknown region {region:?} (add it first: vantagectl region add {region})")]
    UnknownRegion {
        /// The region named.
        region: String,
    },
    /// No object of this kind has this id.
    #[error("no {kind} has id {id}")]
    NotFound {
        /// What was looked for.
        kind: ObjectKind,
        /// The id given.
        id: u64,
    },
    /// A region cannot be removed while something uses it.
    #[error("region {region:?} is still used by {endpoints} endpoint(s) and {probes} probe(s); move or remove them first")]
    RegionInUse {
        /// The region.
        region: String,
        /// How many endpoints list it.
        endpoints: usize,
        /// How many probes live in it.
        probes: usize,
    },
    /// A probe weight is out of range.
    #[error("invalid probe weight {weight}: must be between 1 and {max}")]
    InvalidWeight {
        /// The weight given.
        weight: u32,
        /// The largest weight allowed.
        max: u32,
    },
    /// A token hash is not a SHA-256 in lowercase hex.
    #[error("invalid token hash: {reason}")]
    InvalidTokenHash {
        /// What is wrong.
        reason: String,
    },
    /// Another token of the same kind has the same hash.
    #[error("the {kind} token is already registered; generate a new token")]
    DuplicateTokenHash {
        /// Whose tokens were compared.
        kind: ObjectKind,
    },
    /// A pin names a region the endpoint is not checked from.
    #[error("endpoint {endpoint:?} is not checked from region {region:?} (it is checked from {}); pin it in one of those, or add the region to the endpoint first", regions.join(", "))]
    RegionNotChecked {
        /// The endpoint's name.
        endpoint: String,
        /// The region of the pin.
        region: String,
        /// The regions it is checked from.
        regions: Vec<String>,
    },
    /// A pin names a probe of another region than the pin's.
    #[error("probe {probe:?} is in region {probe_region:?}, not {region:?}; pin a probe of region {region:?} (list them with: vantagectl probe list)")]
    PinProbeInOtherRegion {
        /// The probe's name.
        probe: String,
        /// The probe's region.
        probe_region: String,
        /// The region of the pin.
        region: String,
    },
    /// A transition from a state other than the recorded one (a leader
    /// acting on an out-of-date view).
    #[error("endpoint {endpoint} is recorded as {}, not {}; the transition is stale", recorded.as_str(), from.as_str())]
    StaleTransition {
        /// The endpoint.
        endpoint: u64,
        /// Its recorded state.
        recorded: vantage_core::agreement::State,
        /// The state the transition starts from.
        from: vantage_core::agreement::State,
    },
    /// A command carries more than its limit.
    #[error("too many {what}: at most {max}")]
    TooLarge {
        /// What was counted.
        what: String,
        /// The limit.
        max: u64,
    },
    /// A specification breaks the rules of its kind (names, URLs,
    /// intervals, expectations, labels, secrets, windows). Replicated in
    /// the form these refusals always had (`{"invalid_interval": …}`).
    #[error(transparent)]
    #[serde(untagged)]
    Invalid(#[from] ValidationError),
}
