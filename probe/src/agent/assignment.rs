//! Assigned endpoints (`pb::AssignedEndpoint`) turned into scheduler entries
//! with a validated [`CheckSpec`].
//!
//! This conversion belongs in `proto/` by the house rule (wire types stay at
//! the edge, converted there); it lives here until `proto/` is free to
//! change, and nothing outside the agent sees the wire type.

use std::time::Duration;

use vantage_core::assert::{HeaderAssertion, JsonAssertion, Pattern, StatusSet};
use vantage_core::netguard::Policy;
use vantage_core::spec::{CheckSpec, SpecError};
use vantage_proto::pb;

use super::scheduler::ScheduledEndpoint;

/// Why an assigned endpoint cannot be scheduled.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    /// `interval_ms` of zero.
    #[error("endpoint {endpoint_id}: interval_ms is 0")]
    NoInterval {
        /// The endpoint.
        endpoint_id: u64,
    },
    /// The URL, an option or an assertion does not make a valid check.
    #[error("endpoint {endpoint_id}: {source}")]
    Spec {
        /// The endpoint.
        endpoint_id: u64,
        /// Why.
        source: SpecError,
    },
}

/// Builds the scheduler entry for one assigned endpoint: its URL parsed,
/// `timeout_ms` (0: the default), the SSRF guard opened for private
/// addresses only when `allow_private`, and its assertions.
pub fn scheduled_endpoint(
    wire: &pb::AssignedEndpoint,
) -> Result<ScheduledEndpoint<CheckSpec>, AssignmentError> {
    let endpoint_id = wire.endpoint_id;
    if wire.interval_ms == 0 {
        return Err(AssignmentError::NoInterval { endpoint_id });
    }
    let spec = check_spec(wire).map_err(|source| AssignmentError::Spec { endpoint_id, source })?;
    Ok(ScheduledEndpoint { endpoint_id, interval: Duration::from_millis(wire.interval_ms), job: spec })
}

fn check_spec(wire: &pb::AssignedEndpoint) -> Result<CheckSpec, SpecError> {
    let mut spec = CheckSpec::parse(&wire.url)?;
    if wire.timeout_ms > 0 {
        spec.timeout = Duration::from_millis(wire.timeout_ms);
    }
    spec.guard = Policy { allow_private: wire.allow_private, ..Policy::default() };
    if let Some(a) = &wire.assertions {
        let out = &mut spec.assertions;
        if !a.status.is_empty() {
            out.status = StatusSet::parse(&a.status)?;
        }
        out.body_contains = a.body_contains.clone();
        out.body_matches =
            a.body_matches.iter().map(|r| Pattern::new("body_matches", r)).collect::<Result<_, _>>()?;
        out.json = a.json.iter().map(|j| JsonAssertion::parse(j)).collect::<Result<_, _>>()?;
        out.headers = a.headers.iter().map(|h| HeaderAssertion::parse(h)).collect::<Result<_, _>>()?;
        out.max_total = a.max_total_ms.map(Duration::from_millis);
        out.max_ttfb = a.max_ttfb_ms.map(Duration::from_millis);
        out.min_cert_days = a.min_cert_days;
    }
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(url: &str, interval_ms: u64) -> pb::AssignedEndpoint {
        pb::AssignedEndpoint { endpoint_id: 7, url: url.into(), interval_ms, ..Default::default() }
    }

    #[test]
    fn converts_url_timeout_guard_and_assertions() {
        let mut w = wire("http://127.0.0.1:9/health", 1000);
        w.timeout_ms = 2500;
        w.allow_private = true;
        w.assertions = Some(pb::Assertions {
            status: "200-299".into(),
            body_contains: vec!["ok".into()],
            max_total_ms: Some(800),
            ..Default::default()
        });
        let e = scheduled_endpoint(&w).unwrap();
        assert_eq!(e.endpoint_id, 7);
        assert_eq!(e.interval, Duration::from_secs(1));
        assert_eq!(e.job.timeout, Duration::from_millis(2500));
        assert!(e.job.guard.allow_private);
        assert!(e.job.assertions.status.contains(204));
        assert!(!e.job.assertions.status.contains(301));
        assert_eq!(e.job.assertions.max_total, Some(Duration::from_millis(800)));
    }

    #[test]
    fn refuses_zero_interval_and_bad_urls() {
        assert!(matches!(scheduled_endpoint(&wire("http://x/", 0)), Err(AssignmentError::NoInterval { .. })));
        let err = scheduled_endpoint(&wire("gopher://x/", 1000)).unwrap_err();
        assert!(err.to_string().starts_with("endpoint 7: "), "{err}");
    }
}
