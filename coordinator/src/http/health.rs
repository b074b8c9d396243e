//! `/healthz`: whether this node sees a leader, for load balancers and
//! process supervisors.

use hyper::StatusCode;

use super::response::{json, Response};
use crate::node::ClusterNode;

/// `200` with the node's view when a leader is known, `503` otherwise:
/// `{"status":"ok"|"no_leader","node_id":…,"leader_id":…,"term":…,"last_applied":…}`.
pub fn healthz(node: &ClusterNode) -> Response {
    let metrics = node.raft().metrics();
    let (leader, term, last_applied) = {
        let m = metrics.borrow();
        (m.current_leader, m.current_term, m.last_applied.map_or(0, |id| id.index))
    };
    let body = serde_json::json!({
        "status": if leader.is_some() { "ok" } else { "no_leader" },
        "node_id": node.id(),
        "leader_id": leader,
        "term": term,
        "last_applied": last_applied,
    });
    let status = if leader.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, &body)
}
