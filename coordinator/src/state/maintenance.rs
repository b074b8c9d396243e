//! Maintenance windows: times when outages of some endpoints are expected
//! and not alerted.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{EndpointId, MaintenanceId, UnixMillis};
use super::{validate, MeshState};

/// The longest maintenance window: 31 days.
pub const MAX_WINDOW_MS: u64 = 31 * 24 * 60 * 60 * 1_000;
/// The longest reason text, in bytes.
pub const MAX_REASON_LEN: usize = 1_024;

/// A maintenance window as stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Assigned by apply, never reused.
    pub id: MaintenanceId,
    /// What the admin asked for.
    pub spec: MaintenanceSpec,
    /// When it was added.
    pub created_at: UnixMillis,
}

/// What an admin specifies for a maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSpec {
    /// Start, inclusive.
    pub starts_at: UnixMillis,
    /// End, exclusive; after the start, at most 31 days later, and not
    /// already past when the command is applied.
    pub ends_at: UnixMillis,
    /// Endpoints covered. With `labels` also empty, the window covers the
    /// whole mesh.
    #[serde(default)]
    pub endpoints: BTreeSet<EndpointId>,
    /// Endpoints carrying all these labels are covered too.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Why, for the status page and the audit trail.
    #[serde(default)]
    pub reason: String,
}

/// Applies [`Command::AddMaintenance`](super::Command::AddMaintenance).
pub(super) fn add_maintenance(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &MaintenanceSpec,
) -> Result<Outcome, CommandError> {
    let bad = |reason: &str| Err(CommandError::InvalidMaintenanceWindow { reason: reason.into() });
    if spec.ends_at <= spec.starts_at {
        return bad("ends_at must be after starts_at");
    }
    if spec.ends_at.0 - spec.starts_at.0 > MAX_WINDOW_MS {
        return bad("longer than 31 days");
    }
    if spec.ends_at <= at {
        return bad("the window is already over");
    }
    if spec.reason.len() > MAX_REASON_LEN || spec.reason.chars().any(|c| c.is_control() && c != '\n') {
        return bad("the reason must be at most 1024 bytes without control characters");
    }
    validate::labels(&spec.labels)?;
    if let Some(missing) = spec.endpoints.iter().find(|id| !state.tables.endpoints.contains_key(id)) {
        return Err(CommandError::NotFound { kind: ObjectKind::Endpoint, id: missing.0 });
    }
    let id = state.tables.ids.next_maintenance();
    state.tables.maintenance.insert(id, MaintenanceWindow { id, spec: spec.clone(), created_at: at });
    Ok(Outcome::MaintenanceAdded { id })
}

/// Applies [`Command::RemoveMaintenance`](super::Command::RemoveMaintenance).
pub(super) fn remove_maintenance(state: &mut MeshState, id: MaintenanceId) -> Result<Outcome, CommandError> {
    state
        .tables
        .maintenance
        .remove(&id)
        .ok_or(CommandError::NotFound { kind: ObjectKind::Maintenance, id: id.0 })?;
    Ok(Outcome::MaintenanceRemoved { id })
}
