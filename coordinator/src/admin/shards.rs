//! The shard calls of the AdminService: who checks what (ListShards,
//! ShowShard), pins (PinShard, UnpinShard), Rebalance, and CheckEndpoint.
//!
//! Pins are replicated writes and work on any node. Everything else needs
//! the assignment, which only the leader holds in memory; it comes through
//! a [`ShardDirectory`] (the mesh, in `app.rs`), which answers
//! [`AdminError::NotLeader`] with the leader's address on a follower. Names
//! of endpoints and probes, and pins, are read from the replicated state.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use vantage_core::shard::{self, PinProblem};
use vantage_proto::pb;

use super::error::AdminError;
use super::probes::resolve_probe;
use super::{AdminApi, Cluster};
use crate::mesh::{CheckReport, ProbeOutcome, RebalanceReport};
use crate::results::AcceptedResult;
use crate::state::{Command, EndpointId, MeshState, Outcome, ProbeId};

/// How much longer than the endpoint's timeout CheckEndpoint waits for
/// results (the probe's queue, batching and the trip back).
pub const CHECK_MARGIN: Duration = Duration::from_secs(5);
/// The longest CheckEndpoint waits, whatever the endpoint's timeout.
pub const CHECK_WAIT_CAP: Duration = Duration::from_secs(60);

/// The leader's live view of the assignment, for the shard calls.
pub trait ShardDirectory: Send + Sync + 'static {
    /// The published assignment and which probes are connected.
    /// [`AdminError::NotLeader`] on a node that does not lead.
    fn shards(&self) -> Result<LiveShards, AdminError>;

    /// Ends the grace period of disconnected probes and recomputes now
    /// (see `RebalanceRequest` in admin.proto); a dry run changes nothing.
    fn rebalance(&self, dry_run: bool) -> Result<RebalanceReport, AdminError>;

    /// Asks the endpoint's probes to check it now and waits up to `wait`
    /// for their results.
    fn check_endpoint(
        &self,
        endpoint_id: u64,
        wait: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<CheckReport, AdminError>> + Send + '_>>;
}

/// The leader's assignment as the shard calls need it.
#[derive(Debug, Clone, Default)]
pub struct LiveShards {
    /// The assignment's version.
    pub version: u64,
    /// Who checks what.
    pub assignment: shard::Assignment,
    /// Regions with no live, eligible probe.
    pub uncovered_regions: BTreeSet<String>,
    /// Probes with an open stream.
    pub connected: BTreeSet<u64>,
}

impl<C: Cluster> AdminApi<C> {
    pub(super) fn list_shards_inner(
        &self,
        req: pb::ListShardsRequest,
    ) -> Result<pb::ListShardsReply, AdminError> {
        let live = self.shard_directory()?.shards()?;
        self.cluster.read(|state| {
            let region = Some(req.region.trim()).filter(|r| !r.is_empty());
            if let Some(region) = region {
                if !state.regions().contains_key(region) {
                    return Err(
                        crate::state::CommandError::UnknownRegion { region: region.to_string() }.into()
                    );
                }
            }
            let probe = match req.probe.trim() {
                "" => None,
                text => Some(resolve_probe(state, text)?.0 .0),
            };
            let names = Names::of(state);
            let mut shards = Vec::new();
            for (&endpoint_id, regions) in live.assignment.endpoints() {
                for (r, probes) in regions {
                    if region.is_some_and(|wanted| wanted != r) {
                        continue;
                    }
                    for &probe_id in probes {
                        if probe.is_some_and(|wanted| wanted != probe_id) {
                            continue;
                        }
                        shards.push(pb::ShardRow {
                            endpoint_id,
                            endpoint: names.endpoint(endpoint_id),
                            region: r.clone(),
                            probe_id,
                            probe: names.probe(probe_id),
                            pinned: pinned_probe(state, endpoint_id, r) == Some(probe_id),
                            connected: live.connected.contains(&probe_id),
                        });
                    }
                }
            }
            let uncovered = if probe.is_some() {
                Vec::new()
            } else {
                live.assignment
                    .uncovered()
                    .iter()
                    .flat_map(|(&endpoint_id, regions)| regions.iter().map(move |r| (endpoint_id, r)))
                    .filter(|(_, r)| region.is_none_or(|wanted| wanted == r.as_str()))
                    .map(|(endpoint_id, r)| pb::UncoveredShard {
                        endpoint_id,
                        endpoint: names.endpoint(endpoint_id),
                        region: r.clone(),
                    })
                    .collect()
            };
            Ok(pb::ListShardsReply {
                assignment_version: live.version,
                shards,
                uncovered,
                uncovered_regions: live.uncovered_regions.iter().cloned().collect(),
            })
        })
    }

    pub(super) fn show_shard_inner(
        &self,
        req: pb::ShowShardRequest,
    ) -> Result<pb::ShowShardReply, AdminError> {
        let id = self.endpoint_id(req.endpoint)?;
        let live = self.shard_directory()?.shards()?;
        self.cluster.read(|state| {
            let endpoint =
                state.endpoints().get(&id).ok_or(AdminError::Vanished { what: format!("endpoint {id}") })?;
            let names = Names::of(state);
            let problems: BTreeMap<&str, PinProblem> = live
                .assignment
                .unsatisfied_pins()
                .iter()
                .filter(|p| p.endpoint_id == id.0)
                .map(|p| (p.region.as_str(), p.reason))
                .collect();
            let regions = live
                .assignment
                .endpoint(id.0)
                .into_iter()
                .flatten()
                .map(|(region, probes)| {
                    let pinned = pinned_probe(state, id.0, region);
                    pb::RegionShard {
                        region: region.clone(),
                        probes: probes
                            .iter()
                            .map(|&probe_id| pb::ShardProbe {
                                probe_id,
                                probe: names.probe(probe_id),
                                pinned: pinned == Some(probe_id),
                                connected: live.connected.contains(&probe_id),
                            })
                            .collect(),
                        pinned_probe_id: pinned.unwrap_or(0),
                        pinned_probe: pinned.map(|p| names.probe(p)).unwrap_or_default(),
                        pin_problem: problems
                            .get(region.as_str())
                            .map(|p| pin_problem(*p))
                            .unwrap_or_default(),
                    }
                })
                .collect();
            Ok(pb::ShowShardReply {
                endpoint_id: id.0,
                endpoint: endpoint.spec.name.clone(),
                assignment_version: live.version,
                paused: endpoint.spec.paused,
                regions,
            })
        })
    }

    pub(super) async fn pin_shard_inner(
        &self,
        req: pb::PinShardRequest,
    ) -> Result<pb::PinShardReply, AdminError> {
        let outcome = match self.replayed(&req.mutation).await? {
            Some(outcome) => outcome,
            None => {
                let endpoint = self.endpoint_id(req.endpoint)?;
                let region = req.region.trim().to_string();
                if region.is_empty() {
                    return Err(AdminError::bad("region", "missing; name the region to pin the endpoint in"));
                }
                let (probe, _) = self.cluster.read(|s| resolve_probe(s, &req.probe))?;
                self.change(req.mutation, Command::PinEndpoint { endpoint, region, probe }).await?
            }
        };
        match outcome {
            Outcome::EndpointPinned { endpoint, region, probe, changed } => Ok(self.cluster.read(|state| {
                let names = Names::of(state);
                pb::PinShardReply {
                    endpoint_id: endpoint.0,
                    endpoint: names.endpoint(endpoint.0),
                    region,
                    probe_id: probe.0,
                    probe: names.probe(probe.0),
                    changed,
                }
            })),
            other => Err(AdminError::unexpected(&other)),
        }
    }

    pub(super) async fn unpin_shard_inner(
        &self,
        req: pb::UnpinShardRequest,
    ) -> Result<pb::UnpinShardReply, AdminError> {
        let outcome = match self.replayed(&req.mutation).await? {
            Some(outcome) => outcome,
            None => {
                let endpoint = self.endpoint_id(req.endpoint)?;
                let region = Some(req.region.trim().to_string()).filter(|r| !r.is_empty());
                self.change(req.mutation, Command::UnpinEndpoint { endpoint, region }).await?
            }
        };
        match outcome {
            Outcome::EndpointUnpinned { endpoint, regions } => Ok(pb::UnpinShardReply {
                endpoint_id: endpoint.0,
                endpoint: self.cluster.read(|s| Names::of(s).endpoint(endpoint.0)),
                regions,
            }),
            other => Err(AdminError::unexpected(&other)),
        }
    }

    pub(super) fn rebalance_inner(
        &self,
        req: pb::RebalanceRequest,
    ) -> Result<pb::RebalanceReply, AdminError> {
        let report = self.shard_directory()?.rebalance(req.dry_run)?;
        Ok(self.cluster.read(|state| {
            let names = Names::of(state);
            let mut per_region: BTreeMap<&str, u32> = BTreeMap::new();
            for m in &report.moves {
                *per_region.entry(m.region.as_str()).or_default() += 1;
            }
            let probe_names = |ids: &[u64]| ids.iter().map(|&id| names.probe(id)).collect::<Vec<_>>();
            pb::RebalanceReply {
                dry_run: report.dry_run,
                expired_probes: probe_names(&report.expired),
                regions: per_region
                    .into_iter()
                    .map(|(region, endpoints_moved)| pb::RegionMoves {
                        region: region.to_string(),
                        endpoints_moved,
                    })
                    .collect(),
                moves: report
                    .moves
                    .iter()
                    .map(|m| pb::ShardMove {
                        endpoint_id: m.endpoint_id,
                        endpoint: names.endpoint(m.endpoint_id),
                        region: m.region.clone(),
                        from: probe_names(&m.from),
                        to: probe_names(&m.to),
                    })
                    .collect(),
                assignment_version: report.version,
            }
        }))
    }

    pub(super) async fn check_endpoint_inner(
        &self,
        req: pb::CheckEndpointRequest,
    ) -> Result<pb::CheckEndpointReply, AdminError> {
        let id = self.endpoint_id(req.endpoint)?;
        let (name, timeout_ms, paused) = self
            .cluster
            .read(|s| s.endpoints().get(&id).map(|e| (e.spec.name.clone(), e.spec.timeout_ms, e.spec.paused)))
            .ok_or(AdminError::Vanished { what: format!("endpoint {id}") })?;
        if paused {
            return Err(AdminError::EndpointPaused { name });
        }
        let wait = (Duration::from_millis(timeout_ms) + CHECK_MARGIN).min(CHECK_WAIT_CAP);
        let report = self.shard_directory()?.check_endpoint(id.0, wait).await?;
        let regions = self.cluster.read(|state| {
            let names = Names::of(state);
            let mut rows = Vec::new();
            for (region, outcomes) in &report.regions {
                for outcome in outcomes {
                    rows.push(region_check(region, outcome, &names, wait));
                }
            }
            rows
        });
        Ok(pb::CheckEndpointReply {
            endpoint_id: id.0,
            endpoint: name,
            request_id: report.request_id,
            regions,
        })
    }

    fn shard_directory(&self) -> Result<&dyn ShardDirectory, AdminError> {
        self.shards.as_deref().ok_or(AdminError::NoMesh)
    }
}

/// The probe pinned for `endpoint_id` in `region`, if any.
fn pinned_probe(state: &MeshState, endpoint_id: u64, region: &str) -> Option<u64> {
    state.pins().get(&EndpointId(endpoint_id)).and_then(|pins| pins.get(region)).map(|p: &ProbeId| p.0)
}

fn pin_problem(problem: PinProblem) -> String {
    match problem {
        PinProblem::UnknownProbe => "the pinned probe is not registered",
        PinProblem::OtherRegion => "the pinned probe is in another region",
        PinProblem::NotEligible => {
            "the pinned probe is not eligible (disconnected beyond its grace period, drained, or weight 0)"
        }
        PinProblem::RegionNotChecked => "the endpoint is not checked from this region",
    }
    .to_string()
}

/// One row of a CheckEndpoint reply.
fn region_check(region: &str, outcome: &ProbeOutcome, names: &Names<'_>, wait: Duration) -> pb::RegionCheck {
    let row = |probe_id: u64, outcome: &str, message: String| pb::RegionCheck {
        region: region.to_string(),
        probe_id,
        probe: if probe_id == 0 { String::new() } else { names.probe(probe_id) },
        outcome: outcome.to_string(),
        message,
        ..Default::default()
    };
    match outcome {
        ProbeOutcome::Answered(result) => answered(row(result.probe_id, "", String::new()), result),
        ProbeOutcome::TimedOut { probe_id } => {
            row(*probe_id, "timed_out", format!("no result within {} ms of asking", wait.as_millis()))
        }
        ProbeOutcome::Unreachable { probe_id } => row(
            *probe_id,
            "unreachable",
            "the probe is disconnected (within its grace period) or busy; it was not asked".into(),
        ),
        ProbeOutcome::Uncovered => {
            row(0, "uncovered", "no live probe in this region checks the endpoint".into())
        }
    }
}

fn answered(mut row: pb::RegionCheck, accepted: &AcceptedResult) -> pb::RegionCheck {
    let Some(result) = &accepted.observation.result else {
        row.outcome = "failed".into();
        row.message =
            "the probe skipped the check: its previous check of this endpoint was still running".into();
        return row;
    };
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    let phases = &result.phases_ms;
    (row.dns_ms, row.connect_ms, row.tls_ms, row.ttfb_ms, row.transfer_ms, row.total_ms) = (
        ms(phases.dns),
        ms(phases.connect),
        ms(phases.tls),
        ms(phases.ttfb),
        ms(phases.transfer),
        ms(phases.total),
    );
    row.status_code = result.status_code.map(u32::from);
    if result.ok {
        row.outcome = "ok".into();
    } else {
        row.outcome = "failed".into();
        if let Some(error) = &result.error {
            row.error_kind = error.kind.as_str().to_string();
            row.message = error.message.clone();
        }
    }
    if accepted.observation.probe_unhealthy {
        row.message = format!(
            "{}{}the probe's own canary checks fail: its network may be at fault, not the endpoint",
            row.message,
            if row.message.is_empty() { "" } else { "; " }
        );
    }
    row
}

/// Endpoint and probe names by id, for replies.
struct Names<'a> {
    state: &'a MeshState,
}

impl<'a> Names<'a> {
    fn of(state: &'a MeshState) -> Self {
        Names { state }
    }

    /// The endpoint's name, or its id when it was removed meanwhile.
    fn endpoint(&self, id: u64) -> String {
        self.state.endpoints().get(&EndpointId(id)).map_or_else(|| id.to_string(), |e| e.spec.name.clone())
    }

    /// The probe's name, or its id when it was removed meanwhile.
    fn probe(&self, id: u64) -> String {
        self.state.probes().get(&ProbeId(id)).map_or_else(|| id.to_string(), |p| p.name.clone())
    }
}
