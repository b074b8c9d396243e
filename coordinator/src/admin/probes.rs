//! The probe calls of the AdminService: issuing and rotating tokens,
//! revoking, draining and listing probes (with their live state from a
//! [`ProbeDirectory`] when this node holds the probes' streams).

use std::collections::BTreeMap;
use std::time::SystemTime;

use vantage_core::time::UnixMillis;
use vantage_proto::pb;

use super::error::AdminError;
use super::{convert, AdminApi, Cluster};
use crate::state::probes::DEFAULT_WEIGHT;
use crate::state::{Command, MeshState, ObjectKind, Outcome, ProbeId, ProbeRegistration, ProbeSpec};

/// The live state of probe streams, as the node holding them (the leader)
/// knows it.
pub trait ProbeDirectory: Send + Sync + 'static {
    /// One entry per registered probe this node knows a stream state for.
    fn live_probes(&self) -> Vec<LiveProbe>;
}

/// One probe's stream state.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveProbe {
    /// The registration id.
    pub id: u64,
    /// The software version from its Hello.
    pub version: String,
    /// A stream is open now.
    pub connected: bool,
    /// When the current (or last) stream opened.
    pub connected_since: Option<SystemTime>,
    /// When the probe last sent anything.
    pub last_seen: Option<SystemTime>,
    /// Endpoints assigned to it now.
    pub endpoints: usize,
    /// From its last statistics.
    pub checks_per_second: f64,
    /// From its last statistics.
    pub scheduling_lag_p99_ms: f64,
}

impl<C: Cluster> AdminApi<C> {
    /// Registers a probe or rotates its token; see `CreateProbeTokenRequest`
    /// in admin.proto for the rules.
    pub(super) async fn create_probe_token_inner(
        &self,
        req: pb::CreateProbeTokenRequest,
    ) -> Result<pb::CreateProbeTokenReply, AdminError> {
        if let Some(outcome) = self.replayed(&req.mutation).await? {
            let probe_id = match outcome {
                Outcome::ProbeRegistered { id } | Outcome::ProbeUpdated { id, .. } => id.0,
                other => return Err(AdminError::unexpected(&other)),
            };
            return Err(AdminError::TokenAlreadyIssued { probe_id });
        }
        let name = req.probe.trim().to_string();
        if name.is_empty() {
            return Err(AdminError::bad("probe", "empty; give the probe's name"));
        }
        let existing = self.cluster.read(|s| s.probes().values().find(|p| p.name == name).cloned());
        let token = crate::auth::generate_token()
            .map_err(|e| AdminError::Unexpected { outcome: format!("cannot generate a token: {e}") })?;
        let token_hash = crate::auth::token_hash(&token);
        let (command, rotated) = match existing {
            None => {
                let weight = if req.weight == 0 { DEFAULT_WEIGHT } else { req.weight };
                let spec = ProbeSpec { name, region: req.region, weight, token_hash: token_hash.clone() };
                (Command::RegisterProbe(spec), false)
            }
            Some(probe) => {
                if probe.region != req.region {
                    return Err(AdminError::ProbeInOtherRegion {
                        probe: probe.name,
                        region: probe.region,
                        asked: req.region,
                    });
                }
                if req.weight != 0 && req.weight != probe.weight {
                    return Err(AdminError::bad(
                        "weight",
                        format!(
                            "probe {} is registered with weight {}; rotating its token keeps it (omit the weight)",
                            probe.name, probe.weight
                        ),
                    ));
                }
                (Command::RotateProbeToken { id: probe.id, token_hash: token_hash.clone() }, true)
            }
        };
        let id = match self.change(req.mutation, command).await? {
            Outcome::ProbeRegistered { id } | Outcome::ProbeUpdated { id, .. } => id,
            other => return Err(AdminError::unexpected(&other)),
        };
        // A concurrent attempt with the same key may have been applied
        // first, in which case the answer above is the remembered one and
        // this token was never stored: never hand out a token that does not
        // authenticate.
        let stored = self.cluster.read(|s| s.probes().get(&id).map(|p| p.token_hash == token_hash));
        match stored {
            Some(true) => Ok(pb::CreateProbeTokenReply { probe_id: id.0, token, rotated }),
            Some(false) => Err(AdminError::TokenAlreadyIssued { probe_id: id.0 }),
            None => Err(AdminError::Vanished { what: format!("probe {id}") }),
        }
    }

    /// Removes a probe's registration.
    pub(super) async fn revoke_probe_inner(
        &self,
        req: pb::RevokeProbeRequest,
    ) -> Result<pb::RemoveReply, AdminError> {
        if let Some(outcome) = self.replayed(&req.mutation).await? {
            return match outcome {
                Outcome::ProbeRemoved { id } => Ok(pb::RemoveReply { id: id.0, name: req.id_or_name }),
                other => Err(AdminError::unexpected(&other)),
            };
        }
        let (id, name) = self.cluster.read(|s| resolve_probe(s, &req.id_or_name))?;
        match self.change(req.mutation, Command::RemoveProbe { id }).await? {
            Outcome::ProbeRemoved { id } => Ok(pb::RemoveReply { id: id.0, name }),
            other => Err(AdminError::unexpected(&other)),
        }
    }

    /// Drains or undrains a probe.
    pub(super) async fn drain_probe_inner(
        &self,
        req: pb::DrainProbeRequest,
    ) -> Result<pb::ProbeInfo, AdminError> {
        let id = match self.replayed(&req.mutation).await? {
            Some(Outcome::ProbeUpdated { id, .. }) => id,
            Some(other) => return Err(AdminError::unexpected(&other)),
            None => {
                let (id, _) = self.cluster.read(|s| resolve_probe(s, &req.id_or_name))?;
                match self.change(req.mutation, Command::SetProbeDrained { id, drained: req.drained }).await?
                {
                    Outcome::ProbeUpdated { id, .. } => id,
                    other => return Err(AdminError::unexpected(&other)),
                }
            }
        };
        let live = self.live_probes();
        let info = self.cluster.read(|s| s.probes().get(&id).map(|p| probe_info(s, p, live.get(&id.0))));
        info.ok_or(AdminError::Vanished { what: format!("probe {id}") })
    }

    /// Every registered probe with its live state when known here.
    pub(super) async fn list_probes_inner(
        &self,
        consistent: bool,
    ) -> Result<pb::ListProbesReply, AdminError> {
        self.reads(consistent).await?;
        let live = self.live_probes();
        let probes =
            self.cluster.read(|s| s.probes().values().map(|p| probe_info(s, p, live.get(&p.id.0))).collect());
        Ok(pb::ListProbesReply { probes })
    }

    fn live_probes(&self) -> BTreeMap<u64, LiveProbe> {
        self.probes
            .as_ref()
            .map_or_else(BTreeMap::new, |d| d.live_probes().into_iter().map(|p| (p.id, p)).collect())
    }
}

/// A probe named by id ("3") or name.
pub(super) fn resolve_probe(state: &MeshState, text: &str) -> Result<(ProbeId, String), AdminError> {
    let text = text.trim();
    let by_id = text.parse::<u64>().ok().and_then(|id| state.probes().get(&ProbeId(id)));
    by_id
        .or_else(|| state.probes().values().find(|p| p.name == text))
        .map(|p| (p.id, p.name.clone()))
        .ok_or_else(|| AdminError::UnknownName { kind: ObjectKind::Probe, name: text.to_string() })
}

fn unix_ms(t: Option<SystemTime>) -> i64 {
    t.map_or(0, |t| UnixMillis::from(t).as_i64())
}

fn probe_info(state: &MeshState, p: &ProbeRegistration, live: Option<&LiveProbe>) -> pb::ProbeInfo {
    let ledger = state.ingest().get(&p.id);
    pb::ProbeInfo {
        id: p.id.0,
        name: p.name.clone(),
        region: p.region.clone(),
        weight: p.weight,
        drained: p.drained,
        connected: live.is_some_and(|l| l.connected),
        version: live.map(|l| l.version.clone()).unwrap_or_default(),
        connected_since_unix_ms: unix_ms(live.and_then(|l| l.connected_since)),
        last_seen_unix_ms: unix_ms(live.and_then(|l| l.last_seen)),
        endpoints: live.map_or(0, |l| u32::try_from(l.endpoints).unwrap_or(u32::MAX)),
        checks_per_second: live.map_or(0.0, |l| l.checks_per_second),
        scheduling_lag_p99_ms: live.map_or(0.0, |l| l.scheduling_lag_p99_ms),
        created_at_unix_ms: convert::millis(p.created_at),
        results_recorded: ledger.map_or(0, |l| l.accepted),
        results_refused: ledger.map_or(0, |l| l.rejected),
        results_duplicated: ledger.map_or(0, |l| l.duplicates),
        processed_seqs: ledger.map_or_else(Vec::new, |l| {
            l.processed.ranges().iter().map(|&(first, last)| pb::SeqRange { first, last }).collect()
        }),
    }
}
