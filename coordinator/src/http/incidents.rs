//! `/api/incidents`: recent incidents as JSON, open ones first, then the
//! newest first, with endpoint names and the regions' verdicts.
//!
//! What it shows (a decision): the HTTP port is the port of the future
//! public status page, so this route shows what a status page could show
//! and nothing only an operator should see. In: every endpoint's incidents
//! (not only endpoints marked `public`: one rule until the status page,
//! which will filter on `public`, exists), endpoint names (not their URLs),
//! region names and verdicts with the error kind, probe names, HTTP status
//! codes, timings and check start times. Out: probe ids, any address, and
//! failure messages (a message can name a resolved address or an internal
//! host). Operators get the whole evidence from `vantagectl incident show`.
//!
//! ```text
//! GET /api/incidents[?endpoint=NAME|ID][&open=1][&limit=N]
//! 200 {"matched":N,"incidents":[{"id":3,"endpoint_id":1,"endpoint":"api",
//!      "kind":"outage","open":true,"opened_at_unix_ms":…,
//!      "resolved_at_unix_ms":null,"regions_down":["eu","us"],
//!      "opened_evidence":[{"region":"eu","verdict":"down","reason":"timeout",
//!        "probes":[{"probe":"eu-1","verdict":"down","reason":"timeout",
//!          "status_code":null,"total_ms":5000.0,"ttfb_ms":0.0,
//!          "started_at_unix_ms":…}]}],
//!      "resolved_evidence":[]}]}
//! 400 {"error":"…"} for a bad or unknown parameter; 404 for an unknown endpoint
//! ```
//!
//! `endpoint` is `null` for an endpoint removed since; `probe` is `null`
//! for a probe revoked since; `reason` is `null` for an `up` verdict.
//! `limit` defaults to 100, at most 1000; `matched` counts before it.

use std::cmp::Reverse;

use hyper::StatusCode;
use serde_json::{json, Value};
use vantage_core::agreement::{ProbeEvidence, RegionEvidence, Verdict};

use super::response::{self, Response};
use crate::state::{EndpointId, Incident, MeshState, ProbeId};

/// The incidents answered when the request gives no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// The most incidents one request may ask for.
pub const MAX_LIMIT: usize = 1000;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentQuery {
    /// `endpoint=NAME|ID`: only this endpoint's incidents.
    pub endpoint: Option<String>,
    /// `open=1`: only open incidents.
    pub open_only: bool,
    /// `limit=N`.
    pub limit: usize,
}

impl Default for IncidentQuery {
    fn default() -> Self {
        IncidentQuery { endpoint: None, open_only: false, limit: DEFAULT_LIMIT }
    }
}

/// Why a request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter is unknown or its value malformed.
    #[error("{0}")]
    BadParameter(String),
    /// `endpoint=` names no endpoint.
    #[error("no endpoint named {0:?}")]
    UnknownEndpoint(String),
}

/// Answers `GET /api/incidents?…` from this node's state.
pub fn respond(state: &MeshState, query: Option<&str>) -> Response {
    let answer = IncidentQuery::parse(query.unwrap_or_default()).and_then(|q| incidents_json(state, &q));
    match answer {
        Ok(body) => response::json(StatusCode::OK, &body),
        Err(error) => {
            let status = match error {
                QueryError::BadParameter(_) => StatusCode::BAD_REQUEST,
                QueryError::UnknownEndpoint(_) => StatusCode::NOT_FOUND,
            };
            response::json(status, &json!({ "error": error.to_string() }))
        }
    }
}

impl IncidentQuery {
    /// Parses a query string (percent-decoded, `+` as space). Unknown
    /// parameters are refused, so a misspelt filter is not silently
    /// ignored.
    pub fn parse(query: &str) -> Result<IncidentQuery, QueryError> {
        let mut parsed = IncidentQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "endpoint" => parsed.endpoint = Some(value.into_owned()).filter(|v| !v.is_empty()),
                "open" => {
                    parsed.open_only = match value.as_ref() {
                        "1" | "true" | "" => true,
                        "0" | "false" => false,
                        other => {
                            return Err(QueryError::BadParameter(format!(
                                "open={other}: use open=1 or open=0"
                            )))
                        }
                    }
                }
                "limit" => {
                    parsed.limit =
                        value.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(
                            || {
                                QueryError::BadParameter(format!(
                                    "limit={value}: use a number from 1 to {MAX_LIMIT}"
                                ))
                            },
                        )?;
                }
                other => {
                    return Err(QueryError::BadParameter(format!(
                        "unknown parameter {other:?}; use endpoint=NAME, open=1 or limit=N"
                    )))
                }
            }
        }
        Ok(parsed)
    }
}

/// The body of `/api/incidents` for `query`.
pub fn incidents_json(state: &MeshState, query: &IncidentQuery) -> Result<Value, QueryError> {
    let endpoint = match &query.endpoint {
        None => None,
        Some(text) => {
            Some(endpoint_id(state, text).ok_or_else(|| QueryError::UnknownEndpoint(text.clone()))?)
        }
    };
    let mut matched: Vec<&Incident> = state
        .incidents()
        .values()
        .filter(|i| endpoint.is_none_or(|e| i.endpoint == e))
        .filter(|i| !query.open_only || i.resolved_at.is_none())
        .collect();
    matched.sort_by_key(|i| (i.resolved_at.is_some(), Reverse(i.opened_at), Reverse(i.id)));
    let incidents: Vec<Value> = matched.iter().take(query.limit).map(|i| incident_json(state, i)).collect();
    Ok(json!({ "matched": matched.len(), "incidents": incidents }))
}

/// An endpoint by name, or by id (names are never all digits), including
/// a removed one whose incidents are still kept.
fn endpoint_id(state: &MeshState, text: &str) -> Option<EndpointId> {
    if let Some(endpoint) = state.endpoint_by_name(text) {
        return Some(endpoint.id);
    }
    let id = EndpointId(text.parse().ok()?);
    (state.endpoints().contains_key(&id) || state.incidents().values().any(|i| i.endpoint == id))
        .then_some(id)
}

fn incident_json(state: &MeshState, incident: &Incident) -> Value {
    let evidence = |regions: &[RegionEvidence]| -> Vec<Value> {
        regions.iter().map(|r| region_json(state, r)).collect()
    };
    json!({
        "id": incident.id.0,
        "endpoint_id": incident.endpoint.0,
        "endpoint": state.endpoints().get(&incident.endpoint).map(|e| e.spec.name.clone()),
        "kind": incident.kind.as_str(),
        "open": incident.resolved_at.is_none(),
        "opened_at_unix_ms": incident.opened_at.0,
        "resolved_at_unix_ms": incident.resolved_at.map(|at| at.0),
        "regions_down": incident
            .opened_evidence
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Down(_)))
            .map(|r| r.region.as_str())
            .collect::<Vec<_>>(),
        "opened_evidence": evidence(&incident.opened_evidence),
        "resolved_evidence": evidence(&incident.resolved_evidence),
    })
}

fn region_json(state: &MeshState, region: &RegionEvidence) -> Value {
    let (verdict, reason) = verdict_names(region.verdict);
    let probes: Vec<Value> = region.probes.iter().map(|p| probe_json(state, p)).collect();
    json!({ "region": region.region, "verdict": verdict, "reason": reason, "probes": probes })
}

/// A probe's evidence without its id or message (see the module doc).
fn probe_json(state: &MeshState, probe: &ProbeEvidence) -> Value {
    let (verdict, reason) = verdict_names(probe.verdict);
    let started = (probe.started_at_unix_us > 0).then_some(probe.started_at_unix_us / 1_000);
    json!({
        "probe": state.probes().get(&ProbeId(probe.probe_id)).map(|p| p.name.clone()),
        "verdict": verdict,
        "reason": reason,
        "status_code": probe.status_code,
        "total_ms": probe.total_us as f64 / 1_000.0,
        "ttfb_ms": probe.ttfb_us as f64 / 1_000.0,
        "started_at_unix_ms": started,
    })
}

/// A verdict's names: the wire's (and `vantage-core`'s JSON), the reason
/// `null` for `up`.
fn verdict_names(verdict: Verdict) -> (&'static str, Option<&'static str>) {
    let (verdict, reason) = vantage_proto::incidents::verdict_to_wire(verdict);
    (verdict, Some(reason).filter(|r| !r.is_empty()))
}

#[cfg(test)]
mod tests;
