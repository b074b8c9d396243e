//! The inputs of [`shard::assign`] read from the replicated state, and the
//! assigned endpoints as the probe sees them.

use std::collections::{BTreeMap, BTreeSet};

use vantage_core::shard::{self, EndpointPlacement, ProbeCandidate};
use vantage_proto::pb;

use crate::state::{Endpoint, MeshState};

/// Everything an assignment is computed from. Two equal inputs give the
/// same assignment, so an unchanged input needs no recomputation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    /// Endpoints not paused, with their regions and pins.
    pub placements: Vec<EndpointPlacement>,
    /// Every registered probe, live or not.
    pub candidates: Vec<ProbeCandidate>,
    /// Every region of the mesh.
    pub regions: BTreeSet<String>,
    /// What each placed endpoint looks like on the wire.
    pub endpoints: BTreeMap<u64, pb::AssignedEndpoint>,
}

/// Reads placements (with their replicated pins), regions and endpoint
/// specs from `state`; candidates from the registrations, live when
/// `is_live(probe id)`.
pub fn inputs(state: &MeshState, is_live: impl Fn(u64) -> bool) -> Inputs {
    let mut placements = Vec::new();
    let mut endpoints = BTreeMap::new();
    for endpoint in state.endpoints().values().filter(|e| !e.spec.paused) {
        let id = endpoint.id.0;
        let mut placement = EndpointPlacement::new(id);
        if !endpoint.spec.regions.is_empty() {
            placement.regions = Some(endpoint.spec.regions.clone());
        }
        if let Some(pinned) = state.pins().get(&endpoint.id) {
            placement.pins = pinned.iter().map(|(region, probe)| (region.clone(), probe.0)).collect();
        }
        placements.push(placement);
        endpoints.insert(id, assigned_endpoint(endpoint));
    }
    let candidates = state
        .probes()
        .values()
        .map(|p| ProbeCandidate {
            id: p.id.0,
            region: p.region.clone(),
            weight: p.weight,
            live: is_live(p.id.0),
            drained: p.drained,
        })
        .collect();
    Inputs { placements, candidates, regions: state.regions().keys().cloned().collect(), endpoints }
}

/// Computes the assignment for `inputs`.
pub fn assign(inputs: &Inputs) -> shard::Assignment {
    shard::assign(&inputs.placements, &inputs.candidates, &inputs.regions)
}

/// An endpoint as pushed to a probe.
pub fn assigned_endpoint(endpoint: &Endpoint) -> pb::AssignedEndpoint {
    vantage_proto::probe::assigned_endpoint(endpoint.id, &endpoint.spec)
}
