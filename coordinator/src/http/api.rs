//! `/api/endpoints`: every endpoint with its agreed state and the latest
//! result of each probe that checked it.

use vantage_core::agreement::State;

use crate::results::MemorySink;
use crate::state::MeshState;

/// `/api/endpoints` (until the status page lands): every endpoint in this
/// node's state with the latest result of each probe that checked it, from
/// the in-memory sink (so only on the node that received them: the leader).
///
/// The agreed `state` and `since_unix_ms` are the replicated ones
/// (`MeshState::agreement`), so every node answers them alike; an endpoint
/// never decided is `unknown` (`paused` when paused) with `since_unix_ms`
/// `null`.
///
/// `{"endpoints":[{"id":1,"name":"…","url":"…","interval_ms":…,"paused":false,
/// "state":"down","since_unix_ms":…,
/// "results":[{"region":"…","probe_id":1,"probe":"eu-1","ok":true,
/// "error_kind":null,"error":null,"status":200,"total_ms":1.2,
/// "started_at":"…","skipped":false,"probe_unhealthy":false}],"recent":N}]}`
pub fn endpoints_json(state: &MeshState, sink: &MemorySink) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = state
        .endpoints()
        .values()
        .map(|endpoint| {
            let recent = sink.recent(endpoint.id.0);
            // The newest result per (region, probe), ordered by region then probe.
            let mut latest = std::collections::BTreeMap::new();
            for result in &recent {
                latest.insert((result.region.clone(), result.probe_id), result);
            }
            let results: Vec<serde_json::Value> = latest
                .into_values()
                .map(|r| {
                    let probe =
                        state.probes().get(&crate::state::ProbeId(r.probe_id)).map(|p| p.name.clone());
                    let check = r.observation.result.as_ref();
                    let started_at = check
                        .and_then(|c| serde_json::to_value(c).ok())
                        .and_then(|v| v.get("started_at").cloned())
                        .unwrap_or(serde_json::Value::Null);
                    serde_json::json!({
                        "region": r.region,
                        "probe_id": r.probe_id,
                        "probe": probe,
                        "seq": r.observation.seq,
                        "skipped": r.observation.skipped(),
                        "probe_unhealthy": r.observation.probe_unhealthy,
                        "ok": check.map(|c| c.ok),
                        "error_kind": check.and_then(|c| c.error.as_ref()).map(|e| e.kind.as_str()),
                        "error": check.and_then(|c| c.error.as_ref()).map(|e| e.message.clone()),
                        "status": check.and_then(|c| c.status_code),
                        "total_ms": check.map(|c| vantage_core::result::duration_ms(c.phases_ms.total)),
                        "started_at": started_at,
                    })
                })
                .collect();
            let agreed = state.agreement().get(&endpoint.id);
            let undecided = if endpoint.spec.paused { State::Paused } else { State::Unknown };
            serde_json::json!({
                "id": endpoint.id.0,
                "name": endpoint.spec.name,
                "url": endpoint.spec.url,
                "interval_ms": endpoint.spec.interval_ms,
                "paused": endpoint.spec.paused,
                "state": agreed.map_or(undecided, |a| a.state).as_str(),
                "since_unix_ms": agreed.map(|a| a.since.0),
                "recent": recent.len(),
                "results": results,
            })
        })
        .collect();
    serde_json::json!({ "endpoints": endpoints })
}
