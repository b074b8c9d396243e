//! Assigned endpoints (`pb::AssignedEndpoint`) turned into scheduler entries
//! with a validated [`CheckSpec`]: the wire conversion is `vantage-proto`'s
//! (`probe::assigned_spec`), the check is the endpoint spec's own
//! ([`EndpointSpec::to_check_spec`](vantage_core::endpoint::EndpointSpec::to_check_spec)),
//! so the probe compiles expectations exactly as the coordinator validated
//! them.

use std::time::Duration;

use vantage_core::spec::CheckSpec;
use vantage_core::validate::ValidationError;
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
    /// The URL, an option or an expectation does not make a valid check.
    #[error("endpoint {endpoint_id}: {source}")]
    Spec {
        /// The endpoint.
        endpoint_id: u64,
        /// Why.
        source: ValidationError,
    },
}

/// Builds the scheduler entry for one assigned endpoint: its URL parsed,
/// `timeout_ms` (0: the default), the SSRF guard opened for private
/// addresses only when `allow_private`, and its assertions.
pub fn scheduled_endpoint(
    wire: &pb::AssignedEndpoint,
) -> Result<ScheduledEndpoint<CheckSpec>, AssignmentError> {
    let (id, spec) = vantage_proto::probe::assigned_spec(wire);
    let endpoint_id = id.0;
    if spec.interval_ms == 0 {
        return Err(AssignmentError::NoInterval { endpoint_id });
    }
    let check = spec.to_check_spec().map_err(|source| AssignmentError::Spec { endpoint_id, source })?;
    Ok(ScheduledEndpoint { endpoint_id, interval: Duration::from_millis(spec.interval_ms), job: check })
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
