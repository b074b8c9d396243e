//! The incident calls of the AdminService: incidents, each endpoint's
//! agreed state, and the alert outbox (deliveries), read from the
//! replicated state, so any node answers (with `consistent`, after a read
//! barrier through the leader).
//!
//! Probes appear in evidence by id and registered name; their addresses
//! are not in the state and never in a reply. Objects removed since a
//! decision (an endpoint, a probe, a webhook) are named `""`, their ids
//! kept. The verdict and state names, and the evidence itself, convert in
//! `vantage-proto` (`incidents.rs`).

use std::cmp::Reverse;

use vantage_core::agreement::{State, Verdict};
use vantage_proto::incidents::{region_evidence_to_pb, rules_to_pb};
use vantage_proto::pb;

use super::error::AdminError;
use super::{convert, AdminApi, Cluster};
use crate::state::{
    Delivery, DeliveryStatus, Endpoint, EndpointId, Incident, IncidentId, MeshState, ProbeId, WebhookId,
};

/// The rows a list call answers when it asks for no limit.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// The most rows a list call may ask for.
pub const MAX_LIST_LIMIT: u32 = 1000;

impl<C: Cluster> AdminApi<C> {
    /// Incidents, open first, then newest first; see
    /// `ListIncidentsRequest` in admin.proto.
    pub(super) async fn list_incidents_inner(
        &self,
        req: pb::ListIncidentsRequest,
    ) -> Result<pb::ListIncidentsReply, AdminError> {
        let limit = list_limit(req.limit)?;
        if req.since_unix_ms < 0 {
            return Err(AdminError::bad("since_unix_ms", format!("{} is before 1970", req.since_unix_ms)));
        }
        let since = u64::try_from(req.since_unix_ms).unwrap_or(0);
        self.reads(req.consistent).await?;
        self.cluster.read(|state| {
            let endpoint = match req.endpoint.trim() {
                "" => None,
                text => Some(incident_endpoint(state, text)?),
            };
            let mut matched: Vec<&Incident> = state
                .incidents()
                .values()
                .filter(|i| endpoint.is_none_or(|e| i.endpoint == e))
                .filter(|i| !req.open_only || i.resolved_at.is_none())
                .filter(|i| i.resolved_at.is_none_or(|at| at.0 >= since))
                .collect();
            matched.sort_by_key(|i| (i.resolved_at.is_some(), Reverse(i.opened_at), Reverse(i.id)));
            Ok(pb::ListIncidentsReply {
                matched: u32::try_from(matched.len()).unwrap_or(u32::MAX),
                incidents: matched.iter().take(limit).map(|i| incident_to_pb(state, i, false)).collect(),
            })
        })
    }

    /// One incident with its evidence.
    pub(super) async fn get_incident_inner(
        &self,
        req: pb::GetIncidentRequest,
    ) -> Result<pb::Incident, AdminError> {
        self.reads(req.consistent).await?;
        self.cluster.read(|state| {
            let incident = state
                .incidents()
                .get(&IncidentId(req.id))
                .ok_or(AdminError::UnknownIncident { id: req.id })?;
            Ok(incident_to_pb(state, incident, true))
        })
    }

    /// One endpoint's agreed state, or every endpoint's.
    pub(super) async fn endpoint_status_inner(
        &self,
        req: pb::EndpointStatusRequest,
    ) -> Result<pb::EndpointStatusReply, AdminError> {
        self.reads(req.consistent).await?;
        self.cluster.read(|state| {
            let endpoints: Vec<&Endpoint> = match req.endpoint.trim() {
                "" => state.endpoints().values().collect(),
                text => {
                    let id = convert::resolve_endpoint(state, text)?;
                    state.endpoints().get(&id).into_iter().collect()
                }
            };
            Ok(pb::EndpointStatusReply {
                endpoints: endpoints.into_iter().map(|e| agreement_to_pb(state, e)).collect(),
            })
        })
    }

    /// Alert deliveries, pending first, then newest first.
    pub(super) async fn list_deliveries_inner(
        &self,
        req: pb::ListDeliveriesRequest,
    ) -> Result<pb::ListDeliveriesReply, AdminError> {
        let limit = list_limit(req.limit)?;
        self.reads(req.consistent).await?;
        Ok(self.cluster.read(|state| {
            let mut matched: Vec<&Delivery> = state
                .deliveries()
                .values()
                .filter(|d| !req.pending_only || matches!(d.status, DeliveryStatus::Pending { .. }))
                .collect();
            matched.sort_by_key(|d| (!matches!(d.status, DeliveryStatus::Pending { .. }), Reverse(d.id)));
            pb::ListDeliveriesReply {
                matched: u32::try_from(matched.len()).unwrap_or(u32::MAX),
                deliveries: matched.iter().take(limit).map(|d| delivery_to_pb(state, d)).collect(),
            }
        }))
    }
}

/// A request's `limit`: 0 is the default, above the maximum is refused.
fn list_limit(limit: u32) -> Result<usize, AdminError> {
    match limit {
        0 => Ok(DEFAULT_LIST_LIMIT as usize),
        n if n > MAX_LIST_LIMIT => {
            Err(AdminError::bad("limit", format!("{n} is above the maximum of {MAX_LIST_LIMIT}")))
        }
        n => Ok(n as usize),
    }
}

/// The endpoint an incident filter names: an existing endpoint by id or
/// name, or the id of a removed one whose incidents are still kept.
fn incident_endpoint(state: &MeshState, text: &str) -> Result<EndpointId, AdminError> {
    convert::resolve_endpoint(state, text).or_else(|error| {
        let removed = text.parse::<u64>().ok().map(EndpointId);
        match removed {
            Some(id) if state.incidents().values().any(|i| i.endpoint == id) => Ok(id),
            _ => Err(error),
        }
    })
}

fn endpoint_name(state: &MeshState, id: EndpointId) -> String {
    state.endpoints().get(&id).map(|e| e.spec.name.clone()).unwrap_or_default()
}

fn probe_name(state: &MeshState, id: u64) -> String {
    state.probes().get(&ProbeId(id)).map(|p| p.name.clone()).unwrap_or_default()
}

fn unix_ms(at: Option<crate::state::UnixMillis>) -> i64 {
    at.map_or(0, convert::millis)
}

/// An incident for the wire; the evidence only when asked (lists leave it
/// out to stay small).
fn incident_to_pb(state: &MeshState, incident: &Incident, with_evidence: bool) -> pb::Incident {
    let names = |id: u64| probe_name(state, id);
    let evidence = |regions: &[vantage_core::agreement::RegionEvidence]| {
        if with_evidence {
            regions.iter().map(|r| region_evidence_to_pb(r, &names)).collect()
        } else {
            Vec::new()
        }
    };
    pb::Incident {
        id: incident.id.0,
        endpoint_id: incident.endpoint.0,
        endpoint: endpoint_name(state, incident.endpoint),
        kind: incident.kind.as_str().to_string(),
        opened_at_unix_ms: convert::millis(incident.opened_at),
        resolved_at_unix_ms: unix_ms(incident.resolved_at),
        regions_down: incident
            .opened_evidence
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Down(_)))
            .map(|r| r.region.clone())
            .collect(),
        opened_evidence: evidence(&incident.opened_evidence),
        resolved_evidence: evidence(&incident.resolved_evidence),
    }
}

/// An endpoint's recorded state, its rules as they apply now, the last
/// transition's evidence and its open incidents. An endpoint never decided
/// is `unknown` (`paused` when it is paused) since 0.
fn agreement_to_pb(state: &MeshState, endpoint: &Endpoint) -> pb::EndpointAgreement {
    let status = state.agreement().get(&endpoint.id);
    let regions =
        if endpoint.spec.regions.is_empty() { state.regions().len() } else { endpoint.spec.regions.len() };
    let undecided = if endpoint.spec.paused { State::Paused } else { State::Unknown };
    let names = |id: u64| probe_name(state, id);
    pb::EndpointAgreement {
        endpoint_id: endpoint.id.0,
        endpoint: endpoint.spec.name.clone(),
        state: status.map_or(undecided, |s| s.state).as_str().to_string(),
        since_unix_ms: status.map_or(0, |s| convert::millis(s.since)),
        rules: Some(rules_to_pb(&endpoint.spec.rules(regions), regions, endpoint.spec.quorum.is_some())),
        regions: status
            .map_or_else(Vec::new, |s| s.evidence.iter().map(|r| region_evidence_to_pb(r, &names)).collect()),
        open_incidents: status.map_or_else(Vec::new, |s| {
            s.open
                .iter()
                .filter_map(|id| state.incidents().get(id))
                .map(|i| incident_to_pb(state, i, false))
                .collect()
        }),
    }
}

fn delivery_to_pb(state: &MeshState, d: &Delivery) -> pb::Delivery {
    let webhook = |id: WebhookId| state.webhooks().get(&id).map(|w| w.spec.name.clone()).unwrap_or_default();
    let (status, next_attempt_at, finished_at) = match d.status {
        DeliveryStatus::Pending { next_attempt_at } => ("pending", convert::millis(next_attempt_at), 0),
        DeliveryStatus::Delivered { at } => ("delivered", 0, convert::millis(at)),
        DeliveryStatus::Failed { at } => ("failed", 0, convert::millis(at)),
    };
    pb::Delivery {
        id: d.id.0,
        message_id: d.message_id(),
        webhook_id: d.webhook.0,
        webhook: webhook(d.webhook),
        endpoint_id: d.endpoint.0,
        endpoint: endpoint_name(state, d.endpoint),
        incident_id: d.incident.0,
        event: d.event.as_str().to_string(),
        created_at_unix_ms: convert::millis(d.created_at),
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        status: status.to_string(),
        next_attempt_at_unix_ms: next_attempt_at,
        finished_at_unix_ms: finished_at,
    }
}
