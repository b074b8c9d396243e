//! The id counters of the replicated state (the id and timestamp types
//! themselves are `vantage-core`'s, re-exported here).
//!
//! Ids are assigned inside apply from counters kept in the state, so every
//! node assigns the same id to the same command, and an id is never reused,
//! even after the object it named is removed.

use serde::{Deserialize, Serialize};

pub use vantage_core::ids::{
    AdminTokenId, DeliveryId, EndpointId, IncidentId, MaintenanceId, ProbeId, WebhookId,
};
pub use vantage_core::time::UnixMillis;

/// The last id assigned for each kind of object (0: none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdCounters {
    /// Last endpoint id assigned.
    pub endpoint: u64,
    /// Last probe id assigned.
    pub probe: u64,
    /// Last webhook id assigned.
    pub webhook: u64,
    /// Last maintenance window id assigned.
    pub maintenance: u64,
    /// Last admin token id assigned.
    pub admin_token: u64,
    /// Last incident id assigned.
    #[serde(default)]
    pub incident: u64,
    /// Last delivery id assigned.
    #[serde(default)]
    pub delivery: u64,
}

impl IdCounters {
    /// Assigns the next endpoint id.
    pub fn next_endpoint(&mut self) -> EndpointId {
        EndpointId(bump(&mut self.endpoint))
    }

    /// Assigns the next probe id.
    pub fn next_probe(&mut self) -> ProbeId {
        ProbeId(bump(&mut self.probe))
    }

    /// Assigns the next webhook id.
    pub fn next_webhook(&mut self) -> WebhookId {
        WebhookId(bump(&mut self.webhook))
    }

    /// Assigns the next maintenance window id.
    pub fn next_maintenance(&mut self) -> MaintenanceId {
        MaintenanceId(bump(&mut self.maintenance))
    }

    /// Assigns the next incident id.
    pub fn next_incident(&mut self) -> IncidentId {
        IncidentId(bump(&mut self.incident))
    }

    /// Assigns the next delivery id.
    pub fn next_delivery(&mut self) -> DeliveryId {
        DeliveryId(bump(&mut self.delivery))
    }

    /// Assigns the next admin token id.
    pub fn next_admin_token(&mut self) -> AdminTokenId {
        AdminTokenId(bump(&mut self.admin_token))
    }
}

fn bump(counter: &mut u64) -> u64 {
    // u64 ids do not run out: one per microsecond lasts half a million years.
    *counter += 1;
    *counter
}
