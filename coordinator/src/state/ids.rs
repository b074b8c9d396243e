//! Identifiers and timestamps used across the replicated state.
//!
//! Ids are assigned inside apply from counters kept in the state, so every
//! node assigns the same id to the same command, and an id is never reused,
//! even after the object it named is removed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Wall-clock time as milliseconds since the Unix epoch.
///
/// Time enters the state machine only inside a command (stamped by the node
/// that proposed it); apply never reads a clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl From<std::time::SystemTime> for UnixMillis {
    /// Milliseconds since the epoch; 0 before it, saturating far after.
    fn from(t: std::time::SystemTime) -> Self {
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

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
