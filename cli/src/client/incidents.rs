//! The incident calls: incidents, endpoint states and alert deliveries.
//! They read replicated state, so any coordinator answers (`--consistent`:
//! through the leader).

use vantage_proto::pb;

use super::AdminClient;
use crate::error::Error;
use crate::model::{Delivery, EndpointStatus, Incident, IncidentSummary, Page};

/// What `incident list` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Only this endpoint's incidents (name or id).
    pub endpoint: Option<String>,
    /// Only open incidents.
    pub open_only: bool,
    /// Only incidents open at some moment since then (Unix ms).
    pub since_unix_ms: Option<i64>,
    /// At most this many (0: the coordinator's default, 100).
    pub limit: u32,
}

impl AdminClient {
    /// Incidents, open ones first, then the newest first.
    pub async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        consistent: bool,
    ) -> Result<Page<IncidentSummary>, Error> {
        let request = pb::ListIncidentsRequest {
            endpoint: filter.endpoint.clone().unwrap_or_default(),
            open_only: filter.open_only,
            since_unix_ms: filter.since_unix_ms.unwrap_or(0),
            limit: filter.limit,
            consistent,
        };
        let reply = self.call(request, |mut c, r| async move { c.list_incidents(r).await }).await?;
        Ok(Page {
            matched: reply.matched,
            rows: reply.incidents.into_iter().map(IncidentSummary::from).collect(),
        })
    }

    /// One incident with its evidence.
    pub async fn get_incident(&self, id: u64, consistent: bool) -> Result<Incident, Error> {
        let request = pb::GetIncidentRequest { id, consistent };
        self.call(request, |mut c, r| async move { c.get_incident(r).await }).await?.try_into()
    }

    /// One endpoint's agreed state (by name or id), or every endpoint's.
    pub async fn endpoint_status(
        &self,
        endpoint: Option<&str>,
        consistent: bool,
    ) -> Result<Vec<EndpointStatus>, Error> {
        let request =
            pb::EndpointStatusRequest { endpoint: endpoint.unwrap_or_default().to_string(), consistent };
        let reply = self.call(request, |mut c, r| async move { c.endpoint_status(r).await }).await?;
        reply.endpoints.into_iter().map(EndpointStatus::try_from).collect()
    }

    /// Alert deliveries, pending ones first, then the newest first.
    pub async fn list_deliveries(
        &self,
        pending_only: bool,
        limit: u32,
        consistent: bool,
    ) -> Result<Page<Delivery>, Error> {
        let request = pb::ListDeliveriesRequest { pending_only, limit, consistent };
        let reply = self.call(request, |mut c, r| async move { c.list_deliveries(r).await }).await?;
        Ok(Page {
            matched: reply.matched,
            rows: reply.deliveries.into_iter().map(Delivery::try_from).collect::<Result<_, _>>()?,
        })
    }
}
