//! Reading one endpoint's history from this node's own state machine:
//! the incidents and maintenance windows of the replicated state, and the
//! rollup tables the state machine writes. Any node answers, leader or
//! not, and every node answers the same for the same applied index.

use vantage_core::history::{EndpointHistory, HistoryInputs, IncidentSpan, Span, Window};

use super::ClusterNode;
use crate::raft::store::StateReader;
use crate::state::UnixMillis;

/// Why a history could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// No endpoint has this name.
    #[error("no endpoint is named {0:?}")]
    UnknownEndpoint(String),
    /// The rollup tables could not be read.
    #[error("cannot read history: {0}")]
    Storage(String),
}

impl ClusterNode {
    /// `name`'s history over `window`, as of `now`.
    pub fn endpoint_history(
        &self,
        name: &str,
        window: Window,
        now: UnixMillis,
    ) -> Result<EndpointHistory, HistoryError> {
        read_endpoint_history(&self.reader(), name, window, now)
    }
}

/// `name`'s history over `window`, as of `now`, from a state machine's
/// reader (what [`ClusterNode::endpoint_history`] does; the history
/// benchmark calls it on a bare store).
pub fn read_endpoint_history(
    reader: &StateReader,
    name: &str,
    window: Window,
    now: UnixMillis,
) -> Result<EndpointHistory, HistoryError> {
    let (id, mut inputs) = reader
        .read(|applied| {
            let mesh = &applied.mesh;
            let endpoint = mesh.endpoint_by_name(name)?;
            let incidents = mesh
                .incidents()
                .values()
                .filter(|i| i.endpoint == endpoint.id)
                .map(|i| IncidentSpan {
                    id: i.id.0,
                    kind: i.kind.as_str().to_string(),
                    opened_at: i.opened_at,
                    resolved_at: i.resolved_at,
                })
                .collect();
            let maintenance = mesh
                .maintenance_windows()
                .values()
                .filter(|w| w.spec.applies_to(endpoint.id, &endpoint.spec.labels))
                .map(|w| Span::new(w.spec.starts_at, w.spec.ends_at))
                .collect();
            Some((
                endpoint.id,
                HistoryInputs {
                    endpoint: endpoint.spec.name.clone(),
                    monitored_since: endpoint.created_at,
                    incidents,
                    maintenance,
                    rollups: Default::default(),
                },
            ))
        })
        .ok_or_else(|| HistoryError::UnknownEndpoint(name.to_string()))?;
    inputs.rollups = reader
        .history()
        .read(id, window.resolution(), window.periods(now))
        .map_err(|e| HistoryError::Storage(e.to_string()))?;
    Ok(inputs.build(window, now))
}
