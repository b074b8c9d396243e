//! Endpoints in the replicated state: the record around each
//! [`EndpointSpec`] and the apply functions of the endpoint commands. The
//! spec and its rules are `vantage-core`'s; the rules that need the rest
//! of the state (unique names, existing regions) are here.

use serde::{Deserialize, Serialize};
use vantage_core::endpoint::EndpointSpec;
use vantage_core::spec::CheckKind;

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{EndpointId, UnixMillis};
use super::MeshState;

/// A monitored endpoint as stored in the replicated state: what the admin
/// asked for ([`EndpointSpec`], `vantage-core`'s) and the record around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Assigned by apply, never reused.
    pub id: EndpointId,
    /// The kind of check, from the URL's scheme.
    pub kind: CheckKind,
    /// What the admin asked for.
    pub spec: EndpointSpec,
    /// When it was added.
    pub created_at: UnixMillis,
    /// When its specification last changed.
    pub updated_at: UnixMillis,
}

/// Applies [`Command::AddEndpoint`](super::Command::AddEndpoint).
pub(super) fn add_endpoint(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &EndpointSpec,
) -> Result<Outcome, CommandError> {
    let kind = check_spec(state, None, spec)?;
    let id = state.tables.ids.next_endpoint();
    state.endpoint_names.insert(spec.name.clone(), id);
    state
        .tables
        .endpoints
        .insert(id, Endpoint { id, kind, spec: spec.clone(), created_at: at, updated_at: at });
    Ok(Outcome::EndpointAdded { id })
}

/// Applies [`Command::UpdateEndpoint`](super::Command::UpdateEndpoint).
pub(super) fn update_endpoint(
    state: &mut MeshState,
    at: UnixMillis,
    id: EndpointId,
    spec: &EndpointSpec,
) -> Result<Outcome, CommandError> {
    let old_name = match state.tables.endpoints.get(&id) {
        Some(endpoint) if endpoint.spec == *spec => {
            return Ok(Outcome::EndpointUpdated { id, changed: false })
        }
        Some(endpoint) => endpoint.spec.name.clone(),
        None => return Err(not_found(id)),
    };
    let kind = check_spec(state, Some(id), spec)?;
    state.endpoint_names.remove(&old_name);
    state.endpoint_names.insert(spec.name.clone(), id);
    if let Some(endpoint) = state.tables.endpoints.get_mut(&id) {
        endpoint.kind = kind;
        endpoint.spec = spec.clone();
        endpoint.updated_at = at;
    }
    super::pins::forget_unchecked_regions(state, id);
    Ok(Outcome::EndpointUpdated { id, changed: true })
}

/// Applies [`Command::SetEndpointPaused`](super::Command::SetEndpointPaused).
pub(super) fn set_endpoint_paused(
    state: &mut MeshState,
    at: UnixMillis,
    id: EndpointId,
    paused: bool,
) -> Result<Outcome, CommandError> {
    let endpoint = state.tables.endpoints.get_mut(&id).ok_or_else(|| not_found(id))?;
    let changed = endpoint.spec.paused != paused;
    if changed {
        endpoint.spec.paused = paused;
        endpoint.updated_at = at;
    }
    Ok(Outcome::EndpointUpdated { id, changed })
}

/// Applies [`Command::RemoveEndpoint`](super::Command::RemoveEndpoint); the
/// endpoint also leaves every maintenance window that named it.
pub(super) fn remove_endpoint(
    state: &mut MeshState,
    at: UnixMillis,
    id: EndpointId,
) -> Result<Outcome, CommandError> {
    let endpoint = state.tables.endpoints.remove(&id).ok_or_else(|| not_found(id))?;
    state.endpoint_names.remove(&endpoint.spec.name);
    for window in state.tables.maintenance.values_mut() {
        window.spec.endpoints.remove(&id);
    }
    super::pins::forget_endpoint(state, id);
    super::incidents::forget_endpoint(state, id, at);
    Ok(Outcome::EndpointRemoved { id })
}

/// Checks a specification against the rules and the rest of the state;
/// `own_id` is the endpoint being updated, whose name may stay.
fn check_spec(
    state: &MeshState,
    own_id: Option<EndpointId>,
    spec: &EndpointSpec,
) -> Result<CheckKind, CommandError> {
    let kind = spec.validate()?;
    if let Some(&holder) = state.endpoint_names.get(&spec.name) {
        if Some(holder) != own_id {
            return Err(CommandError::DuplicateName { kind: ObjectKind::Endpoint, name: spec.name.clone() });
        }
    }
    if let Some(region) = spec.regions.iter().find(|r| !state.tables.regions.contains_key(*r)) {
        return Err(CommandError::UnknownRegion { region: region.clone() });
    }
    if spec.regions.is_empty() {
        // Checked from every region: the quorum must fit the mesh's regions.
        spec.check_quorum(state.tables.regions.len())?;
    }
    Ok(kind)
}

fn not_found(id: EndpointId) -> CommandError {
    CommandError::NotFound { kind: ObjectKind::Endpoint, id: id.0 }
}
