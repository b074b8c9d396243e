//! What one alert says, gathered once from the replicated state (or made up
//! for a `test` event), so every body format is a pure function of it (see
//! [`super::encoder`]).

use std::time::SystemTime;

use vantage_core::agreement::{RegionEvidence, State, Verdict};
use vantage_core::validate::Labels;
use vantage_core::webhook::AlertEvent;

use crate::state::{Delivery, Endpoint, Incident, IncidentKind, MeshState};

/// The event an alert reports: one of the replicated alert events, or a
/// `test` sent by `vantagectl webhook test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A committed transition's alert.
    Alert(AlertEvent),
    /// A test event: no incident, no endpoint.
    Test,
}

impl EventType {
    /// The name bodies carry in `type`: the event's name, or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Alert(event) => event.as_str(),
            EventType::Test => "test",
        }
    }
}

/// The incident an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentInfo {
    /// Its id.
    pub id: u64,
    /// Outage, degraded or flapping.
    pub kind: IncidentKind,
    /// When it opened.
    pub opened_at: SystemTime,
    /// When it resolved, if it has.
    pub resolved_at: Option<SystemTime>,
}

/// The endpoint an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Its id.
    pub id: u64,
    /// Its name (`endpoint N (removed)` once removed).
    pub name: String,
    /// Its target URL (empty once removed).
    pub url: String,
    /// Its labels.
    pub labels: Labels,
}

/// Everything a body says about one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The event.
    pub event: EventType,
    /// The `webhook-id` its deliveries carry.
    pub message_id: String,
    /// When the event happened (the transition's round; now for a test).
    pub timestamp: SystemTime,
    /// The endpoint's state after the transition, when known.
    pub state: Option<State>,
    /// The incident (none for a test).
    pub incident: Option<IncidentInfo>,
    /// The endpoint (none for a test).
    pub endpoint: Option<EndpointInfo>,
    /// Per region, what its probes saw: when the incident opened, or when
    /// it resolved for a resolution.
    pub evidence: Vec<RegionEvidence>,
    /// The coordinator's public HTTP base (`https://vantage.example.com`),
    /// when configured: bodies then link to it.
    pub base_url: Option<String>,
}

impl Alert {
    /// The alert of an outbox delivery, from the state it was committed
    /// in. An endpoint or incident that is gone by now leaves what the
    /// delivery itself records.
    pub fn of_delivery(state: &MeshState, delivery: &Delivery, base_url: Option<&str>) -> Alert {
        let incident = state.incidents().get(&delivery.incident);
        let evidence = incident
            .map(|i| match delivery.event {
                AlertEvent::OutageResolved if !i.resolved_evidence.is_empty() => i.resolved_evidence.clone(),
                _ => i.opened_evidence.clone(),
            })
            .unwrap_or_default();
        Alert {
            event: EventType::Alert(delivery.event),
            message_id: delivery.message_id(),
            timestamp: delivery.created_at.to_system_time(),
            state: delivery.state.or(match delivery.event {
                AlertEvent::OutageOpened => Some(State::Down),
                AlertEvent::Degraded => Some(State::Degraded),
                AlertEvent::Flapping => Some(State::Flapping),
                AlertEvent::OutageResolved => None,
            }),
            incident: Some(incident.map_or_else(
                || IncidentInfo {
                    id: delivery.incident.0,
                    kind: kind_of(delivery.event),
                    opened_at: delivery.created_at.to_system_time(),
                    resolved_at: None,
                },
                incident_info,
            )),
            endpoint: Some(endpoint_info(state.endpoints().get(&delivery.endpoint), delivery.endpoint.0)),
            evidence,
            base_url: base_url.map(str::to_string),
        }
    }

    /// The alert an Alertmanager re-post sends for `incident`: its opening
    /// evidence while open, its resolving evidence once resolved.
    pub fn of_incident(
        state: &MeshState,
        incident: &Incident,
        message_id: String,
        base_url: Option<&str>,
    ) -> Alert {
        let resolved = incident.resolved_at.is_some();
        Alert {
            event: EventType::Alert(match (incident.kind, resolved) {
                (IncidentKind::Outage, false) => AlertEvent::OutageOpened,
                (IncidentKind::Outage, true) => AlertEvent::OutageResolved,
                (IncidentKind::Degraded, _) => AlertEvent::Degraded,
                (IncidentKind::Flapping, _) => AlertEvent::Flapping,
            }),
            message_id,
            timestamp: incident.resolved_at.unwrap_or(incident.opened_at).to_system_time(),
            state: state.agreement().get(&incident.endpoint).map(|s| s.state),
            incident: Some(incident_info(incident)),
            endpoint: Some(endpoint_info(state.endpoints().get(&incident.endpoint), incident.endpoint.0)),
            evidence: if resolved && !incident.resolved_evidence.is_empty() {
                incident.resolved_evidence.clone()
            } else {
                incident.opened_evidence.clone()
            },
            base_url: base_url.map(str::to_string),
        }
    }

    /// A `test` event sent at `now`.
    pub fn test(message_id: String, now: SystemTime, base_url: Option<&str>) -> Alert {
        Alert {
            event: EventType::Test,
            message_id,
            timestamp: now,
            state: None,
            incident: None,
            endpoint: None,
            evidence: Vec::new(),
            base_url: base_url.map(str::to_string),
        }
    }

    /// The endpoint's name, or `(test)` for a test event.
    pub fn endpoint_name(&self) -> &str {
        self.endpoint.as_ref().map_or("(test)", |e| e.name.as_str())
    }

    /// Regions by verdict: (down, all) and the names of the Down ones.
    pub fn down_regions(&self) -> (usize, usize, Vec<&str>) {
        let down: Vec<&str> = self
            .evidence
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Down(_)))
            .map(|r| r.region.as_str())
            .collect();
        (down.len(), self.evidence.len(), down)
    }
}

/// The incident kind an event reports.
pub fn kind_of(event: AlertEvent) -> IncidentKind {
    match event {
        AlertEvent::OutageOpened | AlertEvent::OutageResolved => IncidentKind::Outage,
        AlertEvent::Degraded => IncidentKind::Degraded,
        AlertEvent::Flapping => IncidentKind::Flapping,
    }
}

/// The event that opens an incident of `kind`.
pub fn opening_event(kind: IncidentKind) -> AlertEvent {
    match kind {
        IncidentKind::Outage => AlertEvent::OutageOpened,
        IncidentKind::Degraded => AlertEvent::Degraded,
        IncidentKind::Flapping => AlertEvent::Flapping,
    }
}

fn incident_info(incident: &Incident) -> IncidentInfo {
    IncidentInfo {
        id: incident.id.0,
        kind: incident.kind,
        opened_at: incident.opened_at.to_system_time(),
        resolved_at: incident.resolved_at.map(|at| at.to_system_time()),
    }
}

fn endpoint_info(endpoint: Option<&Endpoint>, id: u64) -> EndpointInfo {
    match endpoint {
        Some(e) => EndpointInfo {
            id,
            name: e.spec.name.clone(),
            url: e.spec.url.clone(),
            labels: e.spec.labels.clone(),
        },
        None => EndpointInfo {
            id,
            name: format!("endpoint {id} (removed)"),
            url: String::new(),
            labels: Labels::new(),
        },
    }
}
