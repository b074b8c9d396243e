//! Wire ↔ state conversions for the admin API.
//!
//! They live here rather than in `vantage-proto` because the state types
//! belong to the coordinator; the proto crate converts only `vantage-core`
//! types.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use vantage_proto::pb;

use super::error::AdminError;
use super::{ClusterStatus, Role};
use crate::raft::types::Node;
use crate::state::{
    AlertEvent, AssertionSpec, Endpoint, EndpointId, EndpointKind, EndpointSpec, MaintenanceSpec,
    MaintenanceWindow, MeshState, ObjectKind, Region, UnixMillis, Webhook, WebhookFilter, WebhookFormat,
    WebhookId, WebhookSecret, WebhookSpec,
};

pub(super) fn now_millis(now: SystemTime) -> UnixMillis {
    UnixMillis::from(now)
}

pub(super) fn millis(t: UnixMillis) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

fn from_millis(field: &'static str, ms: i64) -> Result<UnixMillis, AdminError> {
    u64::try_from(ms).map(UnixMillis).map_err(|_| AdminError::bad(field, format!("{ms} is before 1970")))
}

/// Finds an endpoint by id (all digits) or name.
pub(super) fn resolve_endpoint(state: &MeshState, text: &str) -> Result<EndpointId, AdminError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AdminError::bad("endpoint.id_or_name", "missing; name an endpoint by id or name"));
    }
    if let Ok(id) = text.parse::<u64>() {
        if state.endpoints().contains_key(&EndpointId(id)) {
            return Ok(EndpointId(id));
        }
    }
    state
        .endpoint_by_name(text)
        .map(|e| e.id)
        .ok_or_else(|| AdminError::UnknownName { kind: ObjectKind::Endpoint, name: text.to_string() })
}

/// Finds a webhook by id (all digits) or name; returns its id and name.
pub(super) fn resolve_webhook(state: &MeshState, text: &str) -> Result<(WebhookId, String), AdminError> {
    let text = text.trim();
    let by_id = text.parse::<u64>().ok().and_then(|id| state.webhooks().get(&WebhookId(id)));
    by_id
        .or_else(|| state.webhooks().values().find(|w| w.spec.name == text))
        .map(|w| (w.id, w.spec.name.clone()))
        .ok_or_else(|| AdminError::UnknownName { kind: ObjectKind::Webhook, name: text.to_string() })
}

pub(super) fn endpoint_spec_from_pb(spec: Option<pb::EndpointSpec>) -> Result<EndpointSpec, AdminError> {
    let spec = spec.ok_or_else(|| AdminError::bad("spec", "missing"))?;
    let a = spec.assertions.unwrap_or_default();
    Ok(EndpointSpec {
        name: spec.name,
        url: spec.url,
        interval_ms: spec.interval_ms,
        timeout_ms: spec.timeout_ms,
        assertions: AssertionSpec {
            status: Some(a.status).filter(|s| !s.trim().is_empty()),
            body_contains: a.body_contains,
            body_matches: a.body_matches,
            json: a.json,
            headers: a.headers,
            max_total_ms: a.max_total_ms,
            max_ttfb_ms: a.max_ttfb_ms,
            min_cert_days: a.min_cert_days,
        },
        regions: spec.regions.into_iter().collect(),
        public: spec.public,
        allow_private: spec.allow_private,
        labels: spec.labels.into_iter().collect(),
        paused: spec.paused,
    })
}

pub(super) fn endpoint_to_pb(e: &Endpoint) -> pb::Endpoint {
    let s = &e.spec;
    let a = &s.assertions;
    pb::Endpoint {
        id: e.id.0,
        kind: kind_name(e.kind).to_string(),
        spec: Some(pb::EndpointSpec {
            name: s.name.clone(),
            url: s.url.clone(),
            interval_ms: s.interval_ms,
            timeout_ms: s.timeout_ms,
            assertions: Some(assertions_to_pb(a)),
            regions: s.regions.iter().cloned().collect(),
            public: s.public,
            allow_private: s.allow_private,
            labels: s.labels.clone().into_iter().collect(),
            paused: s.paused,
        }),
        created_at_unix_ms: millis(e.created_at),
        updated_at_unix_ms: millis(e.updated_at),
    }
}

/// An endpoint's expectations as sent on the wire (admin replies and probe
/// assignments alike).
pub(crate) fn assertions_to_pb(a: &AssertionSpec) -> pb::Assertions {
    pb::Assertions {
        status: a.status.clone().unwrap_or_default(),
        body_contains: a.body_contains.clone(),
        body_matches: a.body_matches.clone(),
        json: a.json.clone(),
        headers: a.headers.clone(),
        max_total_ms: a.max_total_ms,
        max_ttfb_ms: a.max_ttfb_ms,
        min_cert_days: a.min_cert_days,
    }
}

fn kind_name(kind: EndpointKind) -> &'static str {
    match kind {
        EndpointKind::Http => "http",
        EndpointKind::Https => "https",
        EndpointKind::Tcp => "tcp",
        EndpointKind::Tls => "tls",
        EndpointKind::Dns => "dns",
    }
}

pub(super) fn region_to_pb(r: &Region) -> pb::Region {
    pb::Region { name: r.name.clone(), created_at_unix_ms: millis(r.created_at) }
}

const FORMATS: [(WebhookFormat, &str); 2] =
    [(WebhookFormat::Standard, "standard"), (WebhookFormat::Slack, "slack")];
const EVENTS: [(AlertEvent, &str); 4] = [
    (AlertEvent::OutageOpened, "outage_opened"),
    (AlertEvent::OutageResolved, "outage_resolved"),
    (AlertEvent::Degraded, "degraded"),
    (AlertEvent::Flapping, "flapping"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table.iter().find(|(v, _)| *v == value).map_or("?", |(_, n)| n)
}

fn parse_named<T: Copy>(
    table: &[(T, &'static str)],
    field: &'static str,
    text: &str,
) -> Result<T, AdminError> {
    table.iter().find(|(_, n)| n.eq_ignore_ascii_case(text.trim())).map(|(v, _)| *v).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(_, n)| *n).collect();
        AdminError::bad(field, format!("unknown value {text:?} (use one of {})", names.join(", ")))
    })
}

pub(super) fn webhook_spec_from_pb(spec: Option<pb::WebhookSpec>) -> Result<WebhookSpec, AdminError> {
    let spec = spec.ok_or_else(|| AdminError::bad("spec", "missing"))?;
    let format = if spec.format.trim().is_empty() {
        WebhookFormat::Standard
    } else {
        parse_named(&FORMATS, "spec.format", &spec.format)?
    };
    let events = spec
        .events
        .iter()
        .map(|e| parse_named(&EVENTS, "spec.events", e))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(WebhookSpec {
        name: spec.name,
        url: spec.url,
        secret: WebhookSecret(spec.secret),
        format,
        filter: WebhookFilter { events, labels: spec.labels.into_iter().collect() },
    })
}

pub(super) fn webhook_to_pb(w: &Webhook) -> pb::Webhook {
    pb::Webhook {
        id: w.id.0,
        spec: Some(pb::WebhookSpec {
            name: w.spec.name.clone(),
            url: w.spec.url.clone(),
            secret: String::new(),
            format: name_of(&FORMATS, w.spec.format).to_string(),
            events: w.spec.filter.events.iter().map(|e| name_of(&EVENTS, *e).to_string()).collect(),
            labels: w.spec.filter.labels.clone().into_iter().collect(),
        }),
        secret_set: !w.spec.secret.0.is_empty(),
        created_at_unix_ms: millis(w.created_at),
    }
}

pub(super) fn maintenance_spec_from_pb(
    spec: Option<pb::MaintenanceSpec>,
) -> Result<MaintenanceSpec, AdminError> {
    let spec = spec.ok_or_else(|| AdminError::bad("spec", "missing"))?;
    Ok(MaintenanceSpec {
        starts_at: from_millis("spec.starts_at_unix_ms", spec.starts_at_unix_ms)?,
        ends_at: from_millis("spec.ends_at_unix_ms", spec.ends_at_unix_ms)?,
        endpoints: spec.endpoints.into_iter().map(EndpointId).collect(),
        labels: spec.labels.into_iter().collect::<BTreeMap<_, _>>(),
        reason: spec.reason,
    })
}

pub(super) fn maintenance_to_pb(m: &MaintenanceWindow) -> pb::Maintenance {
    pb::Maintenance {
        id: m.id.0,
        spec: Some(pb::MaintenanceSpec {
            starts_at_unix_ms: millis(m.spec.starts_at),
            ends_at_unix_ms: millis(m.spec.ends_at),
            endpoints: m.spec.endpoints.iter().map(|id| id.0).collect(),
            labels: m.spec.labels.clone().into_iter().collect(),
            reason: m.spec.reason.clone(),
        }),
        created_at_unix_ms: millis(m.created_at),
    }
}

pub(super) fn node_from_pb(api_addr: &str, raft_addr: &str) -> Result<Node, AdminError> {
    let check = |field: &'static str, addr: &str| {
        addr.trim()
            .parse::<std::net::SocketAddr>()
            .map(|_| addr.trim().to_string())
            .map_err(|_| AdminError::bad(field, format!("{addr:?} is not HOST:PORT with an IP address")))
    };
    Ok(Node { api_addr: check("api_addr", api_addr)?, raft_addr: check("raft_addr", raft_addr)? })
}

pub(super) fn status_to_pb(status: ClusterStatus) -> pb::ClusterStatusReply {
    pb::ClusterStatusReply {
        leader_id: status.leader_id,
        term: status.term,
        node_id: status.node_id,
        members: status
            .members
            .into_iter()
            .map(|m| pb::ClusterMember {
                id: m.id,
                api_addr: m.api_addr,
                raft_addr: m.raft_addr,
                role: match m.role {
                    Role::Leader => "leader",
                    Role::Follower => "follower",
                    Role::Learner => "learner",
                }
                .to_string(),
                reachable: m.reachable,
                last_applied: m.last_applied,
            })
            .collect(),
    }
}
