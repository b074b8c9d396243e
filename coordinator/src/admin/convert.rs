//! Wire ↔ state conversions for the admin API: the records around the
//! specs (ids, kinds, timestamps), lookups by id or name, and cluster
//! status. The specs themselves convert in `vantage-proto` (`admin.rs`),
//! shared with vantagectl.

use std::time::SystemTime;

use vantage_core::time::UnixMillis;
use vantage_proto::pb;

use super::error::AdminError;
use super::{ClusterStatus, Role};
use crate::raft::types::Node;
use crate::state::{
    Endpoint, EndpointId, EndpointSpec, MaintenanceSpec, MaintenanceWindow, MeshState, ObjectKind, Region,
    Webhook, WebhookId, WebhookSecret, WebhookSpec,
};

pub(super) fn now_millis(now: SystemTime) -> UnixMillis {
    UnixMillis::from(now)
}

pub(super) fn millis(t: UnixMillis) -> i64 {
    t.as_i64()
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
    Ok(spec.ok_or_else(|| AdminError::bad("spec", "missing"))?.into())
}

pub(super) fn endpoint_to_pb(e: &Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        id: e.id.0,
        kind: e.kind.as_str().to_string(),
        spec: Some((&e.spec).into()),
        created_at_unix_ms: millis(e.created_at),
        updated_at_unix_ms: millis(e.updated_at),
    }
}

pub(super) fn region_to_pb(r: &Region) -> pb::Region {
    pb::Region { name: r.name.clone(), created_at_unix_ms: millis(r.created_at) }
}

pub(super) fn webhook_spec_from_pb(spec: Option<pb::WebhookSpec>) -> Result<WebhookSpec, AdminError> {
    let spec = spec.ok_or_else(|| AdminError::bad("spec", "missing"))?;
    WebhookSpec::try_from(spec).map_err(|e| AdminError::wire("spec", e))
}

/// A webhook as read back: its secret is never sent.
pub(super) fn webhook_to_pb(w: &Webhook) -> pb::Webhook {
    let shown = WebhookSpec { secret: WebhookSecret::default(), ..w.spec.clone() };
    pb::Webhook {
        id: w.id.0,
        spec: Some((&shown).into()),
        secret_set: !w.spec.secret.is_empty(),
        created_at_unix_ms: millis(w.created_at),
        generated_secret: String::new(),
    }
}

pub(super) fn maintenance_spec_from_pb(
    spec: Option<pb::MaintenanceSpec>,
) -> Result<MaintenanceSpec, AdminError> {
    let spec = spec.ok_or_else(|| AdminError::bad("spec", "missing"))?;
    MaintenanceSpec::try_from(spec).map_err(|e| AdminError::wire("spec", e))
}

pub(super) fn maintenance_to_pb(m: &MaintenanceWindow) -> pb::Maintenance {
    pb::Maintenance { id: m.id.0, spec: Some((&m.spec).into()), created_at_unix_ms: millis(m.created_at) }
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
