//! Conversions for the probe family (`ProbeService`): the endpoints an
//! assignment carries (`AssignedEndpoint`) and the results a probe sends
//! (`ProbeResult` ↔ [`Observation`]).

use std::time::Duration;

use vantage_core::endpoint::EndpointSpec;
use vantage_core::ids::EndpointId;
use vantage_core::observation::Observation;
use vantage_core::result::CheckResult;
use vantage_core::time::{from_unix_micros, unix_micros};

use crate::{pb, ConvertError};

/// The part of an endpoint a probe needs, as an assignment carries it.
pub fn assigned_endpoint(id: EndpointId, spec: &EndpointSpec) -> pb::AssignedEndpoint {
    pb::AssignedEndpoint {
        endpoint_id: id.0,
        name: spec.name.clone(),
        url: spec.url.clone(),
        interval_ms: spec.interval_ms,
        timeout_ms: spec.timeout_ms,
        assertions: Some((&spec.expect).into()),
        allow_private: spec.allow_private,
        retries: spec.retries,
    }
}

/// An assigned endpoint back as an id and a specification. The assignment
/// carries only what a check needs, so regions, labels and the public flag
/// are left at their defaults; [`EndpointSpec::to_check_spec`] then gives
/// the check to run.
pub fn assigned_spec(wire: &pb::AssignedEndpoint) -> (EndpointId, EndpointSpec) {
    let mut spec = EndpointSpec::new(wire.name.clone(), wire.url.clone());
    spec.interval_ms = wire.interval_ms;
    spec.timeout_ms = wire.timeout_ms;
    spec.expect = wire.assertions.clone().unwrap_or_default().into();
    spec.allow_private = wire.allow_private;
    spec.retries = wire.retries;
    (EndpointId(wire.endpoint_id), spec)
}

/// The message and field of the errors that mean a `ProbeResult` is
/// shaped wrong (a skipped slot with a result, a checked one without),
/// as opposed to carrying a malformed check result.
pub const SHAPE_FIELD: (&str, &str) = (MSG, "result");

const MSG: &str = "ProbeResult";

impl From<&Observation> for pb::ProbeResult {
    fn from(o: &Observation) -> Self {
        pb::ProbeResult {
            seq: o.seq,
            endpoint_id: o.endpoint_id,
            round: o.round,
            skipped: o.skipped(),
            probe_unhealthy: o.probe_unhealthy,
            planned_start_unix_us: unix_micros(o.planned_start),
            lag_us: u64::try_from(o.lag.as_micros()).unwrap_or(u64::MAX),
            result: o.result.as_ref().map(pb::CheckResult::from),
            out_of_slot: o.out_of_slot,
            request_id: o.request_id.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<&pb::ProbeResult> for Observation {
    type Error = ConvertError;
    /// Refuses a skipped slot that carries a result, a checked slot without
    /// one, and check results that do not convert.
    fn try_from(wire: &pb::ProbeResult) -> Result<Self, ConvertError> {
        let shape =
            |reason: &str| ConvertError::Invalid { message: MSG, field: "result", reason: reason.into() };
        let result = match (&wire.result, wire.skipped) {
            (Some(_), true) => return Err(shape("a skipped slot carries a result")),
            (None, false) => return Err(shape("a checked slot has no result")),
            (None, true) => None,
            (Some(result), false) => Some(CheckResult::try_from(result)?),
        };
        Ok(Observation {
            seq: wire.seq,
            endpoint_id: wire.endpoint_id,
            round: wire.round,
            probe_unhealthy: wire.probe_unhealthy,
            planned_start: from_unix_micros(wire.planned_start_unix_us),
            lag: Duration::from_micros(wire.lag_us),
            out_of_slot: wire.out_of_slot,
            request_id: (!wire.request_id.is_empty()).then(|| wire.request_id.clone()),
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn observation(result: Option<CheckResult>) -> Observation {
        Observation {
            seq: 9,
            endpoint_id: 7,
            round: 3,
            probe_unhealthy: true,
            planned_start: SystemTime::UNIX_EPOCH + Duration::from_micros(1_800_000_000_000_001),
            lag: Duration::from_micros(150),
            out_of_slot: true,
            request_id: Some("chk-1".into()),
            result,
        }
    }

    #[test]
    fn observations_round_trip() {
        let skipped = observation(None);
        let wire = pb::ProbeResult::from(&skipped);
        assert!(wire.skipped);
        assert_eq!(Observation::try_from(&wire).unwrap(), skipped);
        let slot = Observation { out_of_slot: false, request_id: None, ..observation(None) };
        let wire = pb::ProbeResult::from(&slot);
        assert_eq!(wire.request_id, "");
        assert_eq!(Observation::try_from(&wire).unwrap(), slot);
    }

    #[test]
    fn misshapen_results_are_refused_on_the_result_field() {
        let mut wire = pb::ProbeResult::from(&observation(None));
        wire.skipped = false;
        let err = Observation::try_from(&wire).unwrap_err();
        assert_eq!((err.message(), err.field()), SHAPE_FIELD);
        wire.skipped = true;
        wire.result = Some(pb::CheckResult::default());
        assert_eq!(Observation::try_from(&wire).unwrap_err().field(), "result");
        wire.skipped = false;
        let err = Observation::try_from(&wire).unwrap_err();
        assert_eq!(err.message(), "CheckResult", "a bad check result is not a shape error: {err}");
    }

    #[test]
    fn assigned_endpoints_carry_what_a_check_needs() {
        let mut spec = EndpointSpec::new("api", "http://127.0.0.1:9/health");
        spec.interval_ms = 1_000;
        spec.timeout_ms = 500;
        spec.allow_private = true;
        spec.expect.status = Some("204".into());
        spec.labels.insert("team".into(), "core".into());
        let wire = assigned_endpoint(EndpointId(7), &spec);
        let (id, back) = assigned_spec(&wire);
        assert_eq!(id, EndpointId(7));
        assert_eq!(back, EndpointSpec { labels: Default::default(), ..spec });
    }
}
