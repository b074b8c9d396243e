//! Pins (`vantagectl shard pin`): an endpoint checked from a region by a
//! chosen probe instead of the one rendezvous hashing would pick.
//!
//! A pin names an endpoint, one of the regions it is checked from, and a
//! probe of that region. It is replicated so that every leader places the
//! endpoint the same way. A pin is a preference, not a guarantee: while
//! the pinned probe is ineligible (disconnected beyond grace, drained) the
//! region falls back to hashing and the pin is reported as unsatisfied
//! (`vantage_core::shard::UnsatisfiedPin`).
//!
//! Pins never outlive what they name: removing the endpoint, the probe or
//! the region removes them, and so does an endpoint update that stops
//! checking from the pinned region.

use std::collections::BTreeMap;

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{EndpointId, ProbeId};
use super::MeshState;

/// One endpoint's pins: region → pinned probe.
pub type EndpointPins = BTreeMap<String, ProbeId>;

/// Applies [`Command::PinEndpoint`](super::Command::PinEndpoint).
pub(super) fn pin_endpoint(
    state: &mut MeshState,
    endpoint: EndpointId,
    region: &str,
    probe: ProbeId,
) -> Result<Outcome, CommandError> {
    let spec = &state
        .tables
        .endpoints
        .get(&endpoint)
        .ok_or(CommandError::NotFound { kind: ObjectKind::Endpoint, id: endpoint.0 })?
        .spec;
    if !state.tables.regions.contains_key(region) {
        return Err(CommandError::UnknownRegion { region: region.to_string() });
    }
    if !spec.regions.is_empty() && !spec.regions.contains(region) {
        return Err(CommandError::RegionNotChecked {
            endpoint: spec.name.clone(),
            region: region.to_string(),
            regions: spec.regions.iter().cloned().collect(),
        });
    }
    let registration = state
        .tables
        .probes
        .get(&probe)
        .ok_or(CommandError::NotFound { kind: ObjectKind::Probe, id: probe.0 })?;
    if registration.region != region {
        return Err(CommandError::PinProbeInOtherRegion {
            probe: registration.name.clone(),
            probe_region: registration.region.clone(),
            region: region.to_string(),
        });
    }
    let pins = state.tables.pins.entry(endpoint).or_default();
    let previous = pins.insert(region.to_string(), probe);
    Ok(Outcome::EndpointPinned {
        endpoint,
        region: region.to_string(),
        probe,
        changed: previous != Some(probe),
    })
}

/// Applies [`Command::UnpinEndpoint`](super::Command::UnpinEndpoint):
/// removes the endpoint's pin in `region`, or all its pins. Unpinning what
/// is not pinned is not an error: the outcome lists no regions.
pub(super) fn unpin_endpoint(
    state: &mut MeshState,
    endpoint: EndpointId,
    region: Option<&str>,
) -> Result<Outcome, CommandError> {
    if !state.tables.endpoints.contains_key(&endpoint) {
        return Err(CommandError::NotFound { kind: ObjectKind::Endpoint, id: endpoint.0 });
    }
    if let Some(region) = region {
        if !state.tables.regions.contains_key(region) {
            return Err(CommandError::UnknownRegion { region: region.to_string() });
        }
    }
    let mut regions = Vec::new();
    if let Some(pins) = state.tables.pins.get_mut(&endpoint) {
        match region {
            Some(region) => {
                if pins.remove(region).is_some() {
                    regions.push(region.to_string());
                }
            }
            None => regions.extend(std::mem::take(pins).into_keys()),
        }
        if pins.is_empty() {
            state.tables.pins.remove(&endpoint);
        }
    }
    Ok(Outcome::EndpointUnpinned { endpoint, regions })
}

/// Drops the pins of a removed endpoint.
pub(super) fn forget_endpoint(state: &mut MeshState, endpoint: EndpointId) {
    state.tables.pins.remove(&endpoint);
}

/// Drops the pins of an updated endpoint in regions it is no longer checked
/// from (an empty region list means every region: nothing to drop).
pub(super) fn forget_unchecked_regions(state: &mut MeshState, endpoint: EndpointId) {
    let Some(regions) = state.tables.endpoints.get(&endpoint).map(|e| e.spec.regions.clone()) else {
        return;
    };
    if regions.is_empty() {
        return;
    }
    retain(state, |e, region, _| e != endpoint || regions.contains(region));
}

/// Drops every pin to a removed probe.
pub(super) fn forget_probe(state: &mut MeshState, probe: ProbeId) {
    retain(state, |_, _, p| p != probe);
}

/// Drops every pin in a removed region.
pub(super) fn forget_region(state: &mut MeshState, region: &str) {
    retain(state, |_, r, _| r != region);
}

/// Keeps the pins for which `keep(endpoint, region, probe)` holds, and no
/// empty entries.
fn retain(state: &mut MeshState, keep: impl Fn(EndpointId, &str, ProbeId) -> bool) {
    state.tables.pins.retain(|&endpoint, pins| {
        pins.retain(|region, &mut probe| keep(endpoint, region, probe));
        !pins.is_empty()
    });
}
