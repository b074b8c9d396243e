//! The history call of the AdminService: one endpoint's uptime, day bars
//! and per-region latency over a window, read by
//! [`Cluster::endpoint_history`] from this node's own state machine, so any
//! node answers (with `consistent`, after a read barrier through the
//! leader). The view converts to the wire in `vantage-proto`
//! (`history.rs`); "now" is this API's wall clock.

use vantage_proto::history::request_window;
use vantage_proto::pb;

use super::error::AdminError;
use super::{convert, AdminApi, Cluster};

impl<C: Cluster> AdminApi<C> {
    /// See `EndpointHistoryRequest` in admin.proto: the endpoint by id or
    /// name, the window by name (`""`: 24h).
    pub(super) async fn endpoint_history_inner(
        &self,
        req: pb::EndpointHistoryRequest,
    ) -> Result<pb::EndpointHistoryReply, AdminError> {
        let window = request_window(&req.window).map_err(|e| AdminError::bad("window", e.to_string()))?;
        if req.endpoint.trim().is_empty() {
            return Err(AdminError::bad("endpoint", "missing; name an endpoint by id or name"));
        }
        self.reads(req.consistent).await?;
        let name = self.cluster.read(|state| {
            let id = convert::resolve_endpoint(state, &req.endpoint)?;
            state
                .endpoints()
                .get(&id)
                .map(|e| e.spec.name.clone())
                .ok_or(AdminError::Vanished { what: format!("endpoint {id}") })
        })?;
        let now = convert::now_millis(self.clock.now());
        let history = self.cluster.endpoint_history(&name, window, now)?;
        Ok(pb::EndpointHistoryReply::from(&history))
    }
}
