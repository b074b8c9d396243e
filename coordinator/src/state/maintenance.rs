//! Maintenance windows: times when outages of some endpoints are expected
//! and not alerted.

use serde::{Deserialize, Serialize};
use vantage_core::maintenance::MaintenanceSpec;

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{MaintenanceId, UnixMillis};
use super::MeshState;

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

/// Applies [`Command::AddMaintenance`](super::Command::AddMaintenance).
pub(super) fn add_maintenance(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &MaintenanceSpec,
) -> Result<Outcome, CommandError> {
    spec.validate()?;
    spec.check_not_over(at)?;
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
