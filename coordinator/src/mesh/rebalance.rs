//! `vantagectl shard rebalance`: move endpoints off probes that are gone
//! now instead of after `probe_grace`, and recompute at once.
//!
//! With rendezvous hashing the assignment is a pure function of its inputs,
//! so there is nothing to "even out": the leader already publishes the
//! assignment the inputs give, within a debounce. What an operator can want
//! is to stop waiting. A disconnected probe keeps its endpoints for
//! `probe_grace` (so a restart or a blip does not move anything); when the
//! operator knows it is not coming back soon, rebalance ends the grace
//! period of every disconnected probe, recomputes without the debounce and
//! publishes, and reports what moved. A probe that reconnects afterwards
//! gets its share back as usual. A dry run computes the same thing and
//! changes nothing.

use std::collections::BTreeSet;

use tokio::time::Instant;
use vantage_core::shard;

use super::{placement, read, Mesh, MeshError};

/// What [`Mesh::rebalance`] did, or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceReport {
    /// Nothing was changed: this is what a rebalance would do now.
    pub dry_run: bool,
    /// Disconnected probes still within `probe_grace` whose grace was (or
    /// would be) ended.
    pub expired: Vec<u64>,
    /// Every endpoint region whose probes changed (or would), by endpoint
    /// then region.
    pub moves: Vec<ShardMove>,
    /// The assignment version now (after publishing, unless a dry run).
    pub version: u64,
}

/// One endpoint's probes in one region, before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMove {
    /// The endpoint.
    pub endpoint_id: u64,
    /// The region.
    pub region: String,
    /// Its probes there before (empty: uncovered).
    pub from: Vec<u64>,
    /// Its probes there after (empty: uncovered).
    pub to: Vec<u64>,
}

impl Mesh {
    /// Ends the grace period of every disconnected probe (unless
    /// `dry_run`), recomputes the assignment at once and publishes it,
    /// and reports which endpoint regions moved. Only the leader can.
    pub fn rebalance(&self, dry_run: bool) -> Result<RebalanceReport, MeshError> {
        let shared = &self.shared;
        let Some(term) = shared.node.leading_term() else {
            return Err(MeshError::NotLeader);
        };
        let (now, grace) = (Instant::now(), shared.options.probe_grace);
        let (expired, connected) = {
            let mut inner = shared.lock();
            let mut expired = Vec::new();
            let mut connected = BTreeSet::new();
            for (&id, session) in inner.sessions.iter_mut() {
                if session.connected.is_some() {
                    connected.insert(id);
                } else if session.is_live(now, grace) {
                    expired.push(id);
                    if !dry_run {
                        // Disconnected exactly `grace` ago: no longer live.
                        // (`checked_sub` fails only within `grace` of boot.)
                        if let Some(at) = now.checked_sub(grace) {
                            session.disconnected_at = Some(at);
                        }
                    }
                }
            }
            (expired, connected)
        };
        let inputs = read(&*shared.node, |state| placement::inputs(state, |id| connected.contains(&id)));
        let assignment = placement::assign(&inputs);
        let before = self.assignment();
        let moves = moves(&before.assignment, &assignment);
        let version = if dry_run {
            before.version
        } else {
            self.publish(&inputs, assignment, term);
            // The assignment task sees the new live set on its next poll,
            // recomputes the same assignment and publishes nothing.
            shared.changed.notify_one();
            self.assignment().version
        };
        tracing::info!(dry_run, expired = ?expired, moved = moves.len(), version, "rebalance");
        Ok(RebalanceReport { dry_run, expired, moves, version })
    }
}

/// The endpoint regions whose probes differ between `old` and `new`.
/// Endpoints that are gone from `new` (removed or paused) are not moves.
pub(super) fn moves(old: &shard::Assignment, new: &shard::Assignment) -> Vec<ShardMove> {
    let mut moves = Vec::new();
    for (&endpoint_id, regions) in new.endpoints() {
        for (region, after) in regions {
            let before = old.probes_for(endpoint_id, region);
            let as_set = |probes: &[u64]| probes.iter().copied().collect::<BTreeSet<u64>>();
            if as_set(before) != as_set(after) {
                moves.push(ShardMove {
                    endpoint_id,
                    region: region.clone(),
                    from: before.to_vec(),
                    to: after.clone(),
                });
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use vantage_core::shard::{assign, EndpointPlacement, ProbeCandidate};

    use super::*;

    fn probe(id: u64, region: &str, live: bool) -> ProbeCandidate {
        ProbeCandidate { id, region: region.into(), weight: 100, live, drained: false }
    }

    #[test]
    fn moves_name_each_endpoint_region_whose_probes_changed() {
        let regions: BTreeSet<String> = ["eu".to_string(), "us".to_string()].into();
        let placements: Vec<_> = (1..=20).map(EndpointPlacement::new).collect();
        let all = [probe(1, "eu", true), probe(2, "eu", true), probe(3, "us", true)];
        let before = assign(&placements, &all, &regions);
        let without_1 = [probe(1, "eu", false), probe(2, "eu", true), probe(3, "us", true)];
        let after = assign(&placements, &without_1, &regions);

        let moved = moves(&before, &after);
        let lost: Vec<u64> = before.by_probe(1).iter().copied().collect();
        assert!(!lost.is_empty());
        assert_eq!(moved.iter().map(|m| m.endpoint_id).collect::<Vec<_>>(), lost);
        assert!(moved.iter().all(|m| m.region == "eu" && m.from == [1] && m.to == [2]), "{moved:?}");
        assert!(moves(&after, &after).is_empty(), "nothing moves between equal assignments");

        let us_gone = [probe(1, "eu", true), probe(2, "eu", true), probe(3, "us", false)];
        let uncovered = moves(&before, &assign(&placements, &us_gone, &regions));
        assert_eq!(uncovered.len(), 20, "every endpoint loses its us probe");
        assert!(uncovered.iter().all(|m| m.region == "us" && m.to.is_empty()));
    }
}
