//! The ids of the objects the mesh manages, and their kinds.
//!
//! Ids are assigned by the replicated state from counters it keeps, so
//! every node assigns the same id to the same command and an id is never
//! reused; they are plain numbers on the wire and in JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

object_id!(
    /// The id of a monitored endpoint.
    EndpointId
);
object_id!(
    /// The id of a registered probe.
    ProbeId
);
object_id!(
    /// The id of a webhook.
    WebhookId
);
object_id!(
    /// The id of a maintenance window.
    MaintenanceId
);
object_id!(
    /// The id of an admin token.
    AdminTokenId
);
object_id!(
    /// The id of an incident (an outage, a degraded or a flapping period).
    IncidentId
);
object_id!(
    /// The id of one alert delivery: one transition to one webhook. Every
    /// attempt for it carries the same `webhook-id`.
    DeliveryId
);

/// The kinds of objects the mesh holds, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A region.
    Region,
    /// An endpoint.
    Endpoint,
    /// A probe.
    Probe,
    /// A webhook.
    Webhook,
    /// A maintenance window.
    Maintenance,
    /// An admin token.
    AdminToken,
    /// An incident.
    Incident,
    /// An alert delivery.
    Delivery,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Region => "region",
            ObjectKind::Endpoint => "endpoint",
            ObjectKind::Probe => "probe",
            ObjectKind::Webhook => "webhook",
            ObjectKind::Maintenance => "maintenance window",
            ObjectKind::AdminToken => "admin token",
            ObjectKind::Incident => "incident",
            ObjectKind::Delivery => "alert delivery",
        })
    }
}
