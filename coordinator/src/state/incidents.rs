//! Agreement's decisions in the replicated state: each endpoint's agreed
//! state, its incidents (outages, degraded and flapping periods, with the
//! evidence that opened and resolved them), and the alert outbox: one
//! delivery per transition and matching webhook, committed in the same
//! entry as the transition, so an alert is sent only for a committed
//! transition and a new leader resumes what is pending.
//!
//! Raw results never come here: only transitions
//! ([`Command::RecordTransition`](super::Command::RecordTransition)) and
//! delivery outcomes
//! ([`Command::RecordDelivery`](super::Command::RecordDelivery)).

use serde::{Deserialize, Serialize};
use vantage_core::agreement::{alert_event, RegionEvidence, State, Transition};

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{DeliveryId, EndpointId, IncidentId, UnixMillis, WebhookId};
use super::{AlertEvent, MeshState};

/// Resolved incidents are kept this long (the status page's 90 days).
pub const INCIDENT_RETENTION_MS: u64 = 90 * 24 * 3600 * 1000;
/// Finished deliveries are kept this long.
pub const DELIVERY_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
/// The most attempts one delivery records before it is failed.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 1_000;
/// The longest error text a delivery keeps, in bytes.
pub const MAX_ERROR_LEN: usize = 512;

/// An endpoint's agreed state, as the leader last recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointStatus {
    /// The state.
    pub state: State,
    /// Since when.
    pub since: UnixMillis,
    /// Its open incidents (at most one of each kind).
    #[serde(default)]
    pub open: Vec<IncidentId>,
    /// The regions' evidence of the last transition.
    #[serde(default)]
    pub evidence: Vec<RegionEvidence>,
}

/// What kind of trouble an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A quorum of regions saw the endpoint down.
    Outage,
    /// Some regions, fewer than the quorum, saw it down.
    Degraded,
    /// It kept changing state.
    Flapping,
}

impl IncidentKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Outage => "outage",
            IncidentKind::Degraded => "degraded",
            IncidentKind::Flapping => "flapping",
        }
    }

    /// The incident kind a state is in, if any.
    pub fn of(state: State) -> Option<IncidentKind> {
        match state {
            State::Down => Some(IncidentKind::Outage),
            State::Degraded => Some(IncidentKind::Degraded),
            State::Flapping => Some(IncidentKind::Flapping),
            _ => None,
        }
    }
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Assigned by apply, never reused.
    pub id: IncidentId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// What kind of trouble.
    pub kind: IncidentKind,
    /// When it opened (the round that decided it).
    pub opened_at: UnixMillis,
    /// When it resolved; `None` while open.
    #[serde(default)]
    pub resolved_at: Option<UnixMillis>,
    /// The regions' evidence when it opened.
    pub opened_evidence: Vec<RegionEvidence>,
    /// The regions' evidence when it resolved.
    #[serde(default)]
    pub resolved_evidence: Vec<RegionEvidence>,
}

/// A transition the leader's agreement runner decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRecord {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The state before; must be the recorded one.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The round's time.
    pub at: UnixMillis,
    /// Whether it reaches webhooks (not inside a maintenance window).
    pub alert: bool,
    /// Per region, which probe saw what.
    pub evidence: Vec<RegionEvidence>,
}

/// Where one alert delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeliveryStatus {
    /// Not delivered yet; the leader tries (again) from `next_attempt_at`.
    Pending {
        /// When the next attempt may start.
        next_attempt_at: UnixMillis,
    },
    /// The receiver accepted it.
    Delivered {
        /// When.
        at: UnixMillis,
    },
    /// Given up on: attempts or age used up, or the webhook is gone.
    Failed {
        /// When.
        at: UnixMillis,
    },
}

/// One alert for one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Assigned by apply, never reused; names the `webhook-id`.
    pub id: DeliveryId,
    /// The webhook.
    pub webhook: WebhookId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The incident the transition opened or resolved.
    pub incident: IncidentId,
    /// The alert.
    pub event: AlertEvent,
    /// The endpoint's state after the transition; `None` in deliveries
    /// recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// When the transition was committed (its round).
    pub created_at: UnixMillis,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Where it stands.
    pub status: DeliveryStatus,
}

impl Delivery {
    /// The `webhook-id` every attempt carries: the same across retries and
    /// leader changes, different for every transition and webhook.
    pub fn message_id(&self) -> String {
        format!("msg_vantage_{}_{}", self.incident.0, self.id.0)
    }
}

/// How one delivery attempt (or the decision to stop) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; try again from `next_attempt_at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When the next attempt may start.
        next_attempt_at: UnixMillis,
    },
    /// It failed for the last time.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// The record of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRecord {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Attempts made in all, this one included.
    pub attempts: u32,
    /// When this attempt ended.
    pub at: UnixMillis,
    /// How.
    pub outcome: DeliveryOutcome,
}

/// Applies [`Command::RecordTransition`](super::Command::RecordTransition):
/// the endpoint's state moves, incidents open and resolve, and each webhook
/// whose filter matches gets one pending delivery — all in this one entry.
pub(super) fn record_transition(
    state: &mut MeshState,
    record: &TransitionRecord,
) -> Result<Outcome, CommandError> {
    let endpoint = state
        .tables
        .endpoints
        .get(&record.endpoint)
        .ok_or(CommandError::NotFound { kind: ObjectKind::Endpoint, id: record.endpoint.0 })?;
    let labels = endpoint.spec.labels.clone();
    let recorded = state.tables.agreement.get(&record.endpoint).map_or(State::Unknown, |s| s.state);
    if recorded != record.from {
        return Err(CommandError::StaleTransition {
            endpoint: record.endpoint.0,
            recorded,
            from: record.from,
        });
    }
    let at = record.at;
    let mut open = state.tables.agreement.get(&record.endpoint).map(|s| s.open.clone()).unwrap_or_default();
    // Maintenance keeps what is open; every other state keeps only the
    // incident of its own kind.
    let keep = match record.to {
        State::Maintenance => None,
        to => Some(IncidentKind::of(to)),
    };
    let mut resolved = Vec::new();
    if let Some(keep) = keep {
        open.retain(|id| {
            let Some(incident) = state.tables.incidents.get_mut(id) else { return false };
            if Some(incident.kind) == keep {
                return true;
            }
            incident.resolved_at = Some(at);
            incident.resolved_evidence = record.evidence.clone();
            resolved.push(*id);
            false
        });
    }
    let mut opened = None;
    if let Some(Some(kind)) = keep {
        let already = open.iter().any(|id| state.tables.incidents.get(id).is_some_and(|i| i.kind == kind));
        if !already {
            let id = state.tables.ids.next_incident();
            state.tables.incidents.insert(
                id,
                Incident {
                    id,
                    endpoint: record.endpoint,
                    kind,
                    opened_at: at,
                    resolved_at: None,
                    opened_evidence: record.evidence.clone(),
                    resolved_evidence: Vec::new(),
                },
            );
            open.push(id);
            opened = Some(id);
        }
    }
    state.tables.agreement.insert(
        record.endpoint,
        EndpointStatus { state: record.to, since: at, open, evidence: record.evidence.clone() },
    );

    let transition =
        Transition { from: record.from, to: record.to, at: at.to_system_time(), alert: record.alert };
    let mut deliveries = Vec::new();
    let event = alert_event(&transition);
    // The incident the alert is about: the outage that resolved for
    // `outage_resolved` (an outage that ends in `degraded` also opens a
    // degraded incident, which is not what the alert reports), else the
    // one that opened.
    let resolved_outage = resolved
        .iter()
        .copied()
        .find(|id| state.tables.incidents.get(id).is_some_and(|i| i.kind == IncidentKind::Outage));
    let incident = match event {
        Some(AlertEvent::OutageResolved) => resolved_outage.or(opened),
        _ => opened.or_else(|| resolved.first().copied()),
    };
    if let (Some(event), Some(incident)) = (event, incident) {
        let webhooks: Vec<WebhookId> = state
            .tables
            .webhooks
            .values()
            .filter(|w| w.spec.events.is_empty() || w.spec.events.contains(&event))
            .filter(|w| w.spec.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|w| w.id)
            .collect();
        for webhook in webhooks {
            let id = state.tables.ids.next_delivery();
            state.tables.deliveries.insert(
                id,
                Delivery {
                    id,
                    webhook,
                    endpoint: record.endpoint,
                    incident,
                    event,
                    state: Some(record.to),
                    created_at: at,
                    attempts: 0,
                    last_error: None,
                    status: DeliveryStatus::Pending { next_attempt_at: at },
                },
            );
            deliveries.push(id);
        }
    }
    prune(state, at);
    Ok(Outcome::TransitionRecorded { opened, resolved, deliveries })
}

/// Applies [`Command::RecordDelivery`](super::Command::RecordDelivery).
pub(super) fn record_delivery(
    state: &mut MeshState,
    record: &DeliveryRecord,
) -> Result<Outcome, CommandError> {
    let delivery = state
        .tables
        .deliveries
        .get_mut(&record.delivery)
        .ok_or(CommandError::NotFound { kind: ObjectKind::Delivery, id: record.delivery.0 })?;
    if !matches!(delivery.status, DeliveryStatus::Pending { .. }) {
        // A leader that lost its term may report an attempt late: the first
        // final outcome stands.
        return Ok(Outcome::DeliveryRecorded { id: record.delivery, changed: false });
    }
    delivery.attempts = record.attempts.max(delivery.attempts).min(MAX_DELIVERY_ATTEMPTS);
    let clip = |error: &str| {
        let mut end = error.len().min(MAX_ERROR_LEN);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error[..end].to_string()
    };
    match &record.outcome {
        DeliveryOutcome::Delivered => {
            delivery.last_error = None;
            delivery.status = DeliveryStatus::Delivered { at: record.at };
        }
        DeliveryOutcome::Retry { error, next_attempt_at } if delivery.attempts < MAX_DELIVERY_ATTEMPTS => {
            delivery.last_error = Some(clip(error));
            delivery.status = DeliveryStatus::Pending { next_attempt_at: *next_attempt_at };
        }
        DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::Failed { error } => {
            delivery.last_error = Some(clip(error));
            delivery.status = DeliveryStatus::Failed { at: record.at };
        }
    }
    Ok(Outcome::DeliveryRecorded { id: record.delivery, changed: true })
}

/// Drops resolved incidents and finished deliveries past their retention
/// (time from the command, so every node drops the same ones).
fn prune(state: &mut MeshState, now: UnixMillis) {
    let incident_floor = now.0.saturating_sub(INCIDENT_RETENTION_MS);
    state.tables.incidents.retain(|_, i| i.resolved_at.is_none_or(|at| at.0 >= incident_floor));
    let delivery_floor = now.0.saturating_sub(DELIVERY_RETENTION_MS);
    state.tables.deliveries.retain(|_, d| match d.status {
        DeliveryStatus::Pending { .. } => true,
        DeliveryStatus::Delivered { at } | DeliveryStatus::Failed { at } => at.0 >= delivery_floor,
    });
}

/// Forgets what an endpoint's removal leaves behind: its status; its open
/// incidents resolve now; its pending deliveries stay (the alerts were
/// committed and are still owed).
pub(super) fn forget_endpoint(state: &mut MeshState, endpoint: EndpointId, at: UnixMillis) {
    if let Some(status) = state.tables.agreement.remove(&endpoint) {
        for id in status.open {
            if let Some(incident) = state.tables.incidents.get_mut(&id) {
                incident.resolved_at.get_or_insert(at);
            }
        }
    }
}
