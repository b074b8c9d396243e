//! Regions: where probes live and from where endpoints are checked.

use serde::{Deserialize, Serialize};

use super::command::{CommandError, Outcome};
use super::ids::UnixMillis;
use super::{validate, MeshState};

/// A region of the mesh. Probes belong to one; endpoints are checked from
/// the regions they list (all regions when they list none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// The region's name, its key.
    pub name: String,
    /// When it was added.
    pub created_at: UnixMillis,
}

/// Applies [`Command::AddRegion`](super::Command::AddRegion).
pub(super) fn add_region(state: &mut MeshState, at: UnixMillis, name: &str) -> Result<Outcome, CommandError> {
    validate::region_name(name)?;
    if state.tables.regions.contains_key(name) {
        return Err(CommandError::DuplicateName { kind: super::ObjectKind::Region, name: name.to_string() });
    }
    state.tables.regions.insert(name.to_string(), Region { name: name.to_string(), created_at: at });
    Ok(Outcome::RegionAdded { name: name.to_string() })
}

/// Applies [`Command::RemoveRegion`](super::Command::RemoveRegion). Refused
/// while an endpoint lists the region or a probe lives in it: removing it
/// would silently change where those are checked from.
pub(super) fn remove_region(state: &mut MeshState, name: &str) -> Result<Outcome, CommandError> {
    if !state.tables.regions.contains_key(name) {
        return Err(CommandError::UnknownRegion { region: name.to_string() });
    }
    let endpoints = state.tables.endpoints.values().filter(|e| e.spec.regions.contains(name)).count();
    let probes = state.tables.probes.values().filter(|p| p.region == name).count();
    if endpoints > 0 || probes > 0 {
        return Err(CommandError::RegionInUse { region: name.to_string(), endpoints, probes });
    }
    state.tables.regions.remove(name);
    // A pin needs a probe in its region, so none should be left; dropping
    // them anyway keeps "pins name existing regions" true by construction.
    super::pins::forget_region(state, name);
    Ok(Outcome::RegionRemoved { name: name.to_string() })
}
