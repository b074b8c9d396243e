//! The replicated state machine's data: [`MeshState`], the commands that
//! change it, and the pure, deterministic functions that apply them.
//!
//! Every node applies the same committed [`Request`]s in the same order and
//! must reach the same state, so apply never reads a clock (time comes in
//! the request), never does I/O, never iterates a randomly ordered
//! collection into the state, and assigns ids from counters kept in the
//! state. A refused command returns a [`CommandError`] and changes nothing.
//!
//! Modules, one per family of objects, each with its types and one apply
//! function per command:
//! - [`regions`], [`endpoints`], [`probes`], [`pins`], [`webhooks`],
//!   [`maintenance`], [`admin_tokens`];
//! - [`cluster`]: the coordinator cluster's own bookkeeping (ids of removed
//!   nodes, never reused);
//! - [`incidents`]: agreement's decisions: each endpoint's agreed state,
//!   incidents with their evidence, and the alert outbox (deliveries and
//!   their outcomes);
//! - [`history`]: the numbering of the leader's rollup batches (the
//!   rollups themselves are stored by the state machine, in redb);
//! - [`ingest`]: the ledger of result sequence numbers each probe had
//!   processed, which makes result delivery exactly-once across leaders;
//! - [`command`]: [`Request`], [`Command`], [`CommandResponse`];
//! - [`idempotency`]: the bounded memory of recent requests;
//! - [`snapshot`]: the versioned snapshot format;
//! - [`ids`]: id counters (ids and timestamps are `vantage-core`'s).
//!
//! The specifications themselves (endpoints, webhooks, maintenance windows)
//! and the rules that need nothing but the spec live in `vantage-core`;
//! apply adds the rules that need the rest of the state.
//!
//! Later families add a module, a table in [`MeshState`] with a serde
//! default, and their commands.

pub mod admin_tokens;
pub mod cluster;
pub mod command;
pub mod endpoints;
pub mod history;
pub mod idempotency;
pub mod ids;
pub mod incidents;
pub mod ingest;
pub mod maintenance;
pub mod pins;
pub mod probes;
pub mod regions;
pub mod snapshot;
pub mod webhooks;

/// The naming and label rules, `vantage-core`'s (shared with vantagectl).
use vantage_core::validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::admin_tokens::{AdminToken, AdminTokenSpec};
pub use self::command::{
    Command, CommandError, CommandResponse, IdempotencyKey, ObjectKind, Outcome, Request,
};
pub use self::endpoints::Endpoint;
pub use self::ids::{
    AdminTokenId, DeliveryId, EndpointId, IdCounters, IncidentId, MaintenanceId, ProbeId, UnixMillis,
    WebhookId,
};
pub use self::incidents::{
    Delivery, DeliveryOutcome, DeliveryRecord, DeliveryStatus, EndpointStatus, Incident, IncidentKind,
    TransitionRecord,
};
pub use self::ingest::{IngestEntry, ProbeLedger, SeqRanges};
pub use self::maintenance::MaintenanceWindow;
pub use self::pins::EndpointPins;
pub use self::probes::{ProbeRegistration, ProbeSpec, TokenHash};
pub use self::regions::Region;
pub use self::webhooks::Webhook;
pub use vantage_core::endpoint::{EndpointSpec, Expectations};
pub use vantage_core::maintenance::MaintenanceSpec;
pub use vantage_core::spec::CheckKind;
pub use vantage_core::validate::ValidationError;
pub use vantage_core::webhook::{AlertEvent, WebhookFormat, WebhookSecret, WebhookSpec};

use self::idempotency::{Lookup, RecentRequests};

/// Everything the coordinator cluster agrees on.
///
/// Serialized (for snapshots) as its tables; the lookup indexes are rebuilt
/// on load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshState {
    tables: Tables,
    /// Endpoint name → id, so name checks stay cheap with many endpoints.
    endpoint_names: HashMap<String, EndpointId>,
}

/// The replicated tables. Maps are ordered so the serialized form is the
/// same on every node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tables {
    ids: IdCounters,
    regions: BTreeMap<String, Region>,
    endpoints: BTreeMap<EndpointId, Endpoint>,
    probes: BTreeMap<ProbeId, ProbeRegistration>,
    webhooks: BTreeMap<WebhookId, Webhook>,
    maintenance: BTreeMap<MaintenanceId, MaintenanceWindow>,
    admin_tokens: BTreeMap<AdminTokenId, AdminToken>,
    recent_requests: RecentRequests,
    /// Ids of coordinator nodes removed from the cluster; never reused.
    #[serde(default)]
    retired_nodes: BTreeSet<u64>,
    /// Endpoint → region → pinned probe (`shard pin`). Left out of the
    /// snapshot when empty, so a snapshot without pins still loads in a
    /// build that predates them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pins: BTreeMap<EndpointId, EndpointPins>,
    /// Per probe, the result sequence numbers processed.
    #[serde(default)]
    ingest: BTreeMap<ProbeId, ingest::ProbeLedger>,
    /// Each endpoint's agreed state (endpoints never decided are absent).
    #[serde(default)]
    agreement: BTreeMap<EndpointId, incidents::EndpointStatus>,
    /// Incidents, open and recently resolved.
    #[serde(default)]
    incidents: BTreeMap<IncidentId, incidents::Incident>,
    /// The alert outbox: pending and recently finished deliveries.
    #[serde(default)]
    deliveries: BTreeMap<DeliveryId, incidents::Delivery>,
    /// The last rollup batch applied (the rollups live in the state
    /// machine's redb tables, not here).
    #[serde(default)]
    history: history::HistoryLedger,
}

impl MeshState {
    /// An empty mesh.
    pub fn new() -> MeshState {
        MeshState::default()
    }

    /// Applies one committed request and returns its response.
    ///
    /// A request whose idempotency key was already applied with the same
    /// command returns the first response and changes nothing; the same
    /// key with a different command is refused.
    pub fn apply(&mut self, request: &Request) -> CommandResponse {
        if let Err(error) = request.idempotency_key.validate() {
            return CommandResponse::Rejected(error);
        }
        // Ingest checkpoints are idempotent by themselves (the ledger knows
        // every number it recorded) and come several times a second: they
        // would crowd admins' keys out of the bounded memory.
        if let Command::RecordIngest { entries } = &request.command {
            return CommandResponse::Applied(ingest::record_ingest(self, request.issued_at, entries));
        }
        // Rollup batches likewise: their numbers make them idempotent.
        if let Command::RecordRollups(batch) = &request.command {
            return history::record_rollups(self, request.issued_at, batch).into();
        }
        let fingerprint = idempotency::fingerprint(&request.command);
        match self.tables.recent_requests.lookup(&request.idempotency_key, fingerprint) {
            Lookup::Replay(response) => return response.clone(),
            Lookup::Conflict => {
                return CommandResponse::Rejected(CommandError::IdempotencyKeyReused {
                    key: request.idempotency_key.0.clone(),
                })
            }
            Lookup::New => {}
        }
        let response = CommandResponse::from(self.apply_command(request.issued_at, &request.command));
        self.tables.recent_requests.remember(request.idempotency_key.clone(), fingerprint, response.clone());
        response
    }

    /// Dispatches to the one apply function of each command.
    fn apply_command(&mut self, at: UnixMillis, command: &Command) -> Result<Outcome, CommandError> {
        match command {
            Command::AddRegion { name } => regions::add_region(self, at, name),
            Command::RemoveRegion { name } => regions::remove_region(self, name),
            Command::AddEndpoint(spec) => endpoints::add_endpoint(self, at, spec),
            Command::UpdateEndpoint { id, spec } => endpoints::update_endpoint(self, at, *id, spec),
            Command::SetEndpointPaused { id, paused } => {
                endpoints::set_endpoint_paused(self, at, *id, *paused)
            }
            Command::RemoveEndpoint { id } => endpoints::remove_endpoint(self, at, *id),
            Command::RegisterProbe(spec) => probes::register_probe(self, at, spec),
            Command::SetProbeWeight { id, weight } => probes::set_probe_weight(self, at, *id, *weight),
            Command::SetProbeDrained { id, drained } => probes::set_probe_drained(self, at, *id, *drained),
            Command::RotateProbeToken { id, token_hash } => {
                probes::rotate_probe_token(self, at, *id, token_hash)
            }
            Command::RemoveProbe { id } => probes::remove_probe(self, *id),
            Command::AddWebhook(spec) => webhooks::add_webhook(self, at, spec),
            Command::UpdateWebhook { id, spec } => webhooks::update_webhook(self, at, *id, spec),
            Command::RemoveWebhook { id } => webhooks::remove_webhook(self, *id),
            Command::AddMaintenance(spec) => maintenance::add_maintenance(self, at, spec),
            Command::RemoveMaintenance { id } => maintenance::remove_maintenance(self, *id),
            Command::AddAdminToken(spec) => admin_tokens::add_admin_token(self, at, spec),
            Command::RevokeAdminToken { id } => admin_tokens::revoke_admin_token(self, *id),
            Command::PinEndpoint { endpoint, region, probe } => {
                pins::pin_endpoint(self, *endpoint, region, *probe)
            }
            Command::UnpinEndpoint { endpoint, region } => {
                pins::unpin_endpoint(self, *endpoint, region.as_deref())
            }
            Command::RetireNode { node_id } => Ok(cluster::retire_node(self, *node_id)),
            Command::RecordIngest { entries } => Ok(ingest::record_ingest(self, at, entries)),
            Command::RecordTransition(record) => incidents::record_transition(self, record),
            Command::RecordDelivery(record) => incidents::record_delivery(self, record),
            Command::RecordRollups(batch) => history::record_rollups(self, at, batch),
        }
    }

    /// The regions, by name.
    pub fn regions(&self) -> &BTreeMap<String, Region> {
        &self.tables.regions
    }

    /// The endpoints, by id.
    pub fn endpoints(&self) -> &BTreeMap<EndpointId, Endpoint> {
        &self.tables.endpoints
    }

    /// The endpoint with this name.
    pub fn endpoint_by_name(&self, name: &str) -> Option<&Endpoint> {
        self.endpoint_names.get(name).and_then(|id| self.tables.endpoints.get(id))
    }

    /// The registered probes, by id.
    pub fn probes(&self) -> &BTreeMap<ProbeId, ProbeRegistration> {
        &self.tables.probes
    }

    /// The probe whose token has this hash.
    pub fn probe_by_token_hash(&self, hash: &TokenHash) -> Option<&ProbeRegistration> {
        self.tables.probes.values().find(|p| p.token_hash == *hash)
    }

    /// The pins (`shard pin`): endpoint → region → probe. Every pin names
    /// an existing endpoint, one of its regions, and a probe of that region.
    pub fn pins(&self) -> &BTreeMap<EndpointId, EndpointPins> {
        &self.tables.pins
    }

    /// The webhooks, by id.
    pub fn webhooks(&self) -> &BTreeMap<WebhookId, Webhook> {
        &self.tables.webhooks
    }

    /// The maintenance windows, by id.
    pub fn maintenance_windows(&self) -> &BTreeMap<MaintenanceId, MaintenanceWindow> {
        &self.tables.maintenance
    }

    /// The admin tokens, by id.
    pub fn admin_tokens(&self) -> &BTreeMap<AdminTokenId, AdminToken> {
        &self.tables.admin_tokens
    }

    /// The admin token with this hash. Callers compare hashes of presented
    /// tokens; the map lookup is on a hash, so its timing reveals nothing
    /// about a valid token.
    pub fn admin_token_by_hash(&self, hash: &TokenHash) -> Option<&AdminToken> {
        self.tables.admin_tokens.values().find(|t| t.token_hash == *hash)
    }

    /// Ids of coordinator nodes that were removed from the cluster; a new
    /// node must not use one of them.
    pub fn retired_nodes(&self) -> &BTreeSet<u64> {
        &self.tables.retired_nodes
    }

    /// Per probe, which result sequence numbers were processed.
    pub fn ingest(&self) -> &BTreeMap<ProbeId, ProbeLedger> {
        &self.tables.ingest
    }

    /// Each endpoint's agreed state, as last recorded.
    pub fn agreement(&self) -> &BTreeMap<EndpointId, incidents::EndpointStatus> {
        &self.tables.agreement
    }

    /// Incidents, open and resolved within the retention.
    pub fn incidents(&self) -> &BTreeMap<IncidentId, incidents::Incident> {
        &self.tables.incidents
    }

    /// Alert deliveries, pending and recently finished.
    pub fn deliveries(&self) -> &BTreeMap<DeliveryId, incidents::Delivery> {
        &self.tables.deliveries
    }

    /// The last rollup batch applied.
    pub fn history_ledger(&self) -> &history::HistoryLedger {
        &self.tables.history
    }

    /// The last id assigned for each kind of object.
    pub fn id_counters(&self) -> &IdCounters {
        &self.tables.ids
    }

    /// The memory of recent requests.
    pub fn recent_requests(&self) -> &RecentRequests {
        &self.tables.recent_requests
    }

    fn from_tables(tables: Tables) -> MeshState {
        let endpoint_names = tables.endpoints.values().map(|e| (e.spec.name.clone(), e.id)).collect();
        MeshState { tables, endpoint_names }
    }
}

impl Serialize for MeshState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.tables.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MeshState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Tables::deserialize(deserializer).map(MeshState::from_tables)
    }
}
