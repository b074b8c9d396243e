//! The pieces of one evaluation, as plain functions over values: which
//! regions an endpoint is checked from, each region's evidence from the
//! latest results, which round is due, and the snapshot of the replicated
//! state the runner reads once per pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vantage_core::agreement::{region_verdict, ProbeReport, RegionEvidence, State};
use vantage_core::endpoint::EndpointSpec;
use vantage_core::schedule::{slot_offset, slot_start};
use vantage_core::time::UnixMillis;

use super::Held;
use crate::state::{Endpoint, EndpointId, MaintenanceWindow, MeshState};

/// What the runner reads of the replicated state in one pass.
#[derive(Debug, Clone, Default)]
pub(super) struct Snapshot {
    pub(super) endpoints: BTreeMap<EndpointId, Endpoint>,
    pub(super) state_regions: Vec<String>,
    recorded: BTreeMap<EndpointId, State>,
    maintenance: Vec<MaintenanceWindow>,
}

impl Snapshot {
    /// Copies what agreement needs.
    pub(super) fn take(state: &MeshState) -> Snapshot {
        Snapshot {
            endpoints: state.endpoints().clone(),
            state_regions: state.regions().keys().cloned().collect(),
            recorded: state.agreement().iter().map(|(id, s)| (*id, s.state)).collect(),
            maintenance: state.maintenance_windows().values().cloned().collect(),
        }
    }

    /// The endpoint's recorded state (Unknown when never decided).
    pub(super) fn recorded(&self, endpoint: EndpointId) -> State {
        self.recorded.get(&endpoint).copied().unwrap_or(State::Unknown)
    }

    /// Whether a maintenance window covers the endpoint at `now`.
    pub(super) fn in_maintenance(&self, endpoint: &Endpoint, now: UnixMillis) -> bool {
        self.maintenance.iter().any(|w| w.spec.covers(endpoint.id, &endpoint.spec.labels, now))
    }
}

/// The regions an endpoint is checked from: its own list, or every region
/// of the mesh.
pub fn endpoint_regions(all_regions: &[String], spec: &EndpointSpec) -> Vec<String> {
    if spec.regions.is_empty() {
        all_regions.to_vec()
    } else {
        spec.regions.iter().cloned().collect()
    }
}

/// One region's evidence: the probes assigned there (`assigned`), whether
/// each is connected, and their latest results.
pub fn region_evidence(
    region: &str,
    assigned: &[u64],
    connected: &BTreeSet<u64>,
    latest: &BTreeMap<u64, Held>,
    now: SystemTime,
    freshness: Duration,
) -> RegionEvidence {
    let reports: Vec<ProbeReport<'_>> = assigned
        .iter()
        .map(|probe_id| {
            let held = latest.get(probe_id).filter(|h| h.region == region);
            ProbeReport {
                probe_id: *probe_id,
                connected: connected.contains(probe_id),
                probe_unhealthy: held.is_some_and(|h| h.probe_unhealthy),
                latest: held.map(|h| &h.result),
            }
        })
        .collect();
    region_verdict(region, &reports, now, freshness)
}

/// The latest round whose results should all be in at `now`: its slot
/// started at least `timeout + grace` ago.
pub(super) fn due_round(
    endpoint_id: u64,
    interval: Duration,
    timeout_ms: u64,
    now: SystemTime,
    grace: Duration,
) -> Option<u64> {
    let since_epoch = now.duration_since(UNIX_EPOCH).ok()?;
    let wait = Duration::from_millis(timeout_ms).min(interval) + grace;
    let offset = slot_offset(endpoint_id, interval);
    let horizon = since_epoch.checked_sub(wait)?.checked_sub(offset)?;
    let round = (horizon.as_nanos() / interval.as_nanos().max(1)) as u64;
    debug_assert!(slot_start(round, interval, offset) + wait <= since_epoch);
    Some(round)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vantage_core::agreement::{UnknownReason, Verdict};
    use vantage_core::result::{CheckError, CheckResult, ErrorKind};
    use vantage_core::spec::CheckKind;

    use super::*;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    fn held(region: &str, ok: bool, started: SystemTime) -> Held {
        Held {
            region: region.into(),
            probe_unhealthy: false,
            result: CheckResult {
                url: "https://x/".into(),
                kind: CheckKind::Https,
                ok,
                error: (!ok).then(|| CheckError::new(ErrorKind::HttpStatus, "HTTP 503")),
                status_code: Some(if ok { 200 } else { 503 }),
                http_version: None,
                remote_addr: None,
                phases_ms: Default::default(),
                tls: None,
                body_bytes: 0,
                started_at: started,
                hops: Vec::new(),
                dns_answers: Vec::new(),
                attempts: 1,
            },
        }
    }

    #[test]
    fn a_round_is_due_once_its_slot_and_timeout_have_passed() {
        let interval = Duration::from_secs(10);
        let offset = slot_offset(7, interval);
        let start = UNIX_EPOCH + slot_start(180_000_000, interval, offset);
        let grace = Duration::from_secs(1);
        // Timeout 2 s: round k is due from start + 3 s.
        assert_eq!(
            due_round(7, interval, 2_000, start + Duration::from_millis(2_999), grace),
            Some(179_999_999)
        );
        assert_eq!(
            due_round(7, interval, 2_000, start + Duration::from_millis(3_000), grace),
            Some(180_000_000)
        );
        assert_eq!(
            due_round(7, interval, 2_000, start + Duration::from_millis(12_999), grace),
            Some(180_000_000)
        );
        // A timeout longer than the interval waits at most an interval.
        assert_eq!(due_round(7, interval, 60_000, start + Duration::from_secs(11), grace), Some(180_000_000));
    }

    #[test]
    fn region_evidence_uses_only_that_regions_assigned_connected_probes() {
        let now = t(10_000);
        let fresh = Duration::from_secs(25);
        let latest: BTreeMap<u64, Held> =
            [(1, held("eu", false, t(9_000))), (2, held("us", true, t(9_000))), (3, held("eu", true, t(0)))]
                .into();
        let connected: BTreeSet<u64> = [1, 2].into();
        let eu = region_evidence("eu", &[1], &connected, &latest, now, fresh);
        assert_eq!(eu.verdict, Verdict::Down(ErrorKind::HttpStatus));
        assert_eq!(eu.probes[0].status_code, Some(503));
        // Probe 2's result is from another region: not evidence for eu.
        let mixed = region_evidence("eu", &[2], &connected, &latest, now, fresh);
        assert_eq!(mixed.verdict, Verdict::Unknown(UnknownReason::Stale));
        let disconnected = region_evidence("eu", &[3], &connected, &latest, now, fresh);
        assert_eq!(disconnected.verdict, Verdict::Unknown(UnknownReason::Disconnected));
        let nobody = region_evidence("ap", &[], &connected, &latest, now, fresh);
        assert_eq!(nobody.verdict, Verdict::Unknown(UnknownReason::NoProbe));
    }

    #[test]
    fn an_endpoint_without_regions_is_checked_from_every_region() {
        let all = vec!["ap".to_string(), "eu".to_string()];
        let mut spec = EndpointSpec::new("a", "https://a/");
        assert_eq!(endpoint_regions(&all, &spec), all);
        spec.regions = ["eu".to_string()].into();
        assert_eq!(endpoint_regions(&all, &spec), ["eu"]);
    }
}
