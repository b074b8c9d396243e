//! The coordinator's sampled gauges: what is a level rather than an event,
//! read from where it already lives instead of being tracked twice.
//!
//! - Raft, from openraft's metrics watch channel, on every change (at most
//!   every [`RAFT_MIN_SPACING`]): term, role, leader id, last log index,
//!   applied index, snapshot index and voters. The committed index is set
//!   by the log store when it saves it (openraft 0.9's metrics lack it).
//! - Every [`SAMPLE_EVERY`]: the snapshot's age (its file's modification
//!   time), probes connected and registered per region (the mesh: only
//!   the leader holds streams), endpoints per agreed state and the alert
//!   outbox's pending deliveries (this node's applied state), and the
//!   recorder's upkeep ([`crate::telemetry::run_upkeep`]).
//!
//! Names and help texts are in [`crate::telemetry::describe`]. Without an
//! installed recorder every `gauge!` here is a no-op, so the in-process
//! tests may run a sampler per node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;
use vantage_core::agreement::State;
use vantage_core::clock::WallClock;

use crate::mesh::Mesh;
use crate::node::ClusterNode;
use crate::state::{DeliveryStatus, MeshState};

/// The sampling period of the gauges that are not Raft's.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The shortest gap between two Raft samples: under load the watch channel
/// changes with every applied entry, and a scrape needs no more than this.
pub const RAFT_MIN_SPACING: Duration = Duration::from_millis(100);

/// Every agreed state, so each has a series (a zero is an answer; a
/// missing series is a question).
const STATES: [State; 7] = [
    State::Up,
    State::Degraded,
    State::Down,
    State::Unknown,
    State::Flapping,
    State::Maintenance,
    State::Paused,
];

/// Every Raft role, for `vantage_raft_state{state}`.
const ROLES: [(ServerState, &str); 5] = [
    (ServerState::Leader, "leader"),
    (ServerState::Follower, "follower"),
    (ServerState::Candidate, "candidate"),
    (ServerState::Learner, "learner"),
    (ServerState::Shutdown, "shutdown"),
];

/// What the sampler reads.
pub struct Sampler {
    /// This node.
    pub node: ClusterNode,
    /// This node's mesh (probe streams, on the leader).
    pub mesh: Mesh,
    /// The node's current snapshot file ([`crate::raft::store::current_snapshot_file`]).
    pub snapshot_file: PathBuf,
    /// Where the snapshot's age is measured from.
    pub clock: Arc<dyn WallClock>,
}

impl Sampler {
    /// Samples until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut raft = self.node.raft().metrics();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut regions_seen = Vec::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = raft.changed() => {
                    if changed.is_err() {
                        // The Raft core is gone: the node is stopping.
                        return;
                    }
                    sample_raft(&raft.borrow_and_update());
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RAFT_MIN_SPACING) => {}
                    }
                }
                _ = tick.tick() => {
                    let snapshot = raft.borrow().snapshot;
                    self.sample_snapshot_age(snapshot.is_some());
                    regions_seen = self.sample_state(regions_seen);
                    crate::telemetry::run_upkeep();
                }
            }
        }
    }

    fn sample_snapshot_age(&self, has_snapshot: bool) {
        let written = std::fs::metadata(&self.snapshot_file).and_then(|m| m.modified()).ok();
        match written.filter(|_| has_snapshot) {
            Some(written) => {
                let age = self.clock.now().duration_since(written).unwrap_or_default();
                metrics::gauge!("vantage_raft_snapshot_age_seconds").set(age.as_secs_f64());
            }
            // No snapshot yet: no age (a zero would read as "just taken").
            None => metrics::gauge!("vantage_raft_snapshot_age_seconds").set(f64::NAN),
        }
    }

    /// Samples the mesh and the applied state; returns the regions it set
    /// gauges for, so a removed region's series drop to zero next time.
    fn sample_state(&self, regions_before: Vec<String>) -> Vec<String> {
        let probes = self.mesh.probes();
        let (regions, levels) = self.node.read_local(|applied| {
            let regions: Vec<String> = applied.mesh.regions().keys().cloned().collect();
            (regions, StateLevels::of(&applied.mesh))
        });
        let mut per_region: BTreeMap<String, (u64, u64)> =
            regions_before.into_iter().chain(regions).map(|r| (r, (0, 0))).collect();
        for probe in &probes {
            let counts = per_region.entry(probe.region.clone()).or_default();
            counts.1 += 1;
            if probe.connected {
                counts.0 += 1;
            }
        }
        for (region, (connected, registered)) in &per_region {
            metrics::gauge!("vantage_mesh_probes_connected", "region" => region.clone())
                .set(*connected as f64);
            metrics::gauge!("vantage_mesh_probes_registered", "region" => region.clone())
                .set(*registered as f64);
        }
        for (state, count) in STATES.iter().zip(levels.endpoints_by_state) {
            metrics::gauge!("vantage_agreement_endpoints", "state" => state.as_str()).set(count as f64);
        }
        metrics::gauge!("vantage_alert_deliveries_pending").set(levels.deliveries_pending as f64);
        // Regions with neither a registration nor a probe are gone: their
        // zero was set above, and they are not carried further.
        per_region.into_iter().filter(|(_, (_, registered))| *registered > 0).map(|(r, _)| r).collect()
    }
}

/// The levels read from the applied state.
#[derive(Debug, PartialEq, Eq)]
pub struct StateLevels {
    /// Endpoints per state, in the order of `STATES` (up, degraded, down,
    /// unknown, flapping, maintenance, paused).
    pub endpoints_by_state: [u64; 7],
    /// Deliveries neither delivered nor failed.
    pub deliveries_pending: u64,
}

impl StateLevels {
    /// Counts them in `state`. An endpoint the leader has decided nothing
    /// about yet is `paused` when paused and `unknown` otherwise, as
    /// `/api/endpoints` shows it.
    pub fn of(state: &MeshState) -> StateLevels {
        let mut endpoints_by_state = [0u64; 7];
        for endpoint in state.endpoints().values() {
            let undecided = if endpoint.spec.paused { State::Paused } else { State::Unknown };
            let agreed = state.agreement().get(&endpoint.id).map_or(undecided, |a| a.state);
            if let Some(slot) = STATES.iter().position(|s| *s == agreed) {
                endpoints_by_state[slot] += 1;
            }
        }
        let deliveries_pending = state
            .deliveries()
            .values()
            .filter(|d| matches!(d.status, DeliveryStatus::Pending { .. }))
            .count() as u64;
        StateLevels { endpoints_by_state, deliveries_pending }
    }
}

/// Sets the Raft gauges from one metrics value.
fn sample_raft(m: &openraft::RaftMetrics<crate::raft::NodeId, crate::raft::Node>) {
    metrics::gauge!("vantage_raft_term").set(m.current_term as f64);
    let leading = m.state == ServerState::Leader;
    metrics::gauge!("vantage_raft_is_leader").set(if leading { 1.0 } else { 0.0 });
    metrics::gauge!("vantage_raft_leader_id").set(m.current_leader.unwrap_or(0) as f64);
    for (role, name) in ROLES {
        metrics::gauge!("vantage_raft_state", "state" => name).set(if m.state == role { 1.0 } else { 0.0 });
    }
    metrics::gauge!("vantage_raft_last_log_index").set(m.last_log_index.unwrap_or(0) as f64);
    metrics::gauge!("vantage_raft_applied_index").set(m.last_applied.map_or(0, |id| id.index) as f64);
    metrics::gauge!("vantage_raft_snapshot_index").set(m.snapshot.map_or(0, |id| id.index) as f64);
    let voters = m.membership_config.membership().voter_ids().count();
    metrics::gauge!("vantage_raft_members").set(voters as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_state_has_no_endpoints_and_nothing_pending() {
        let levels = StateLevels::of(&MeshState::new());
        assert_eq!(levels, StateLevels { endpoints_by_state: [0; 7], deliveries_pending: 0 });
    }

    #[test]
    fn the_state_list_covers_every_name_once() {
        let names: std::collections::BTreeSet<&str> = STATES.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), STATES.len());
    }
}
