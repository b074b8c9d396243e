//! Conversions for the admin family's specifications: endpoints (with
//! their expectations), webhooks and maintenance windows, between
//! `AdminService` messages and `vantage-core`'s spec types. Both ends of
//! the admin API (the coordinator and `vantagectl`) use these.
//!
//! The wire is lenient where proto3 cannot say "absent": an empty status
//! list or format means the default. Names of events and formats are
//! checked here, so a bad one is refused with the field named.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use vantage_core::endpoint::{EndpointSpec, Expectations};
use vantage_core::ids::EndpointId;
use vantage_core::maintenance::MaintenanceSpec;
use vantage_core::time::UnixMillis;
use vantage_core::webhook::{AlertEvent, WebhookFormat, WebhookSecret, WebhookSpec};

use crate::{pb, ConvertError};

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn labels_to_wire(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<&Expectations> for pb::Assertions {
    fn from(e: &Expectations) -> Self {
        pb::Assertions {
            status: e.status.clone().unwrap_or_default(),
            body_contains: e.body_contains.clone(),
            body_matches: e.body_matches.clone(),
            json: e.json.clone(),
            headers: e.headers.clone(),
            max_total_ms: e.max_total.map(millis),
            max_ttfb_ms: e.max_ttfb.map(millis),
            min_cert_days: e.min_cert_days,
        }
    }
}

impl From<pb::Assertions> for Expectations {
    /// An empty (or blank) status list is the default one.
    fn from(a: pb::Assertions) -> Self {
        Expectations {
            status: Some(a.status).filter(|s| !s.trim().is_empty()),
            body_contains: a.body_contains,
            body_matches: a.body_matches,
            json: a.json,
            headers: a.headers,
            max_total: a.max_total_ms.map(Duration::from_millis),
            max_ttfb: a.max_ttfb_ms.map(Duration::from_millis),
            min_cert_days: a.min_cert_days,
        }
    }
}

impl From<&EndpointSpec> for pb::EndpointSpec {
    fn from(spec: &EndpointSpec) -> Self {
        pb::EndpointSpec {
            name: spec.name.clone(),
            url: spec.url.clone(),
            interval_ms: spec.interval_ms,
            timeout_ms: spec.timeout_ms,
            assertions: Some((&spec.expect).into()),
            regions: spec.regions.iter().cloned().collect(),
            public: spec.public,
            allow_private: spec.allow_private,
            labels: labels_to_wire(&spec.labels),
            paused: spec.paused,
            retries: Some(spec.retries),
            quorum: spec.quorum,
            recovery_rounds: Some(spec.recovery_rounds),
            min_failure_ms: spec.min_failure.map(millis),
        }
    }
}

impl From<pb::EndpointSpec> for EndpointSpec {
    /// Takes the message as it is; [`EndpointSpec::validate`] judges it.
    fn from(spec: pb::EndpointSpec) -> Self {
        EndpointSpec {
            name: spec.name,
            url: spec.url,
            interval_ms: spec.interval_ms,
            timeout_ms: spec.timeout_ms,
            expect: spec.assertions.unwrap_or_default().into(),
            regions: spec.regions.into_iter().collect(),
            public: spec.public,
            allow_private: spec.allow_private,
            labels: spec.labels.into_iter().collect(),
            paused: spec.paused,
            retries: spec.retries.unwrap_or(vantage_core::endpoint::DEFAULT_RETRIES),
            quorum: spec.quorum,
            recovery_rounds: spec.recovery_rounds.unwrap_or(vantage_core::agreement::DEFAULT_RECOVERY_ROUNDS),
            min_failure: spec.min_failure_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
        }
    }
}

impl From<&WebhookSpec> for pb::WebhookSpec {
    /// The secret goes as it is: empty in replies (where it is cleared
    /// before) and in updates that keep the stored one.
    fn from(spec: &WebhookSpec) -> Self {
        pb::WebhookSpec {
            name: spec.name.clone(),
            url: spec.url.clone(),
            secret: spec.secret.0.clone(),
            format: spec.format.as_str().to_string(),
            events: spec.events.iter().map(|e| e.as_str().to_string()).collect(),
            labels: labels_to_wire(&spec.labels),
            allow_private: spec.allow_private,
        }
    }
}

impl TryFrom<pb::WebhookSpec> for WebhookSpec {
    type Error = ConvertError;
    /// An empty format is the standard one; unknown format or event names
    /// are refused.
    fn try_from(spec: pb::WebhookSpec) -> Result<Self, ConvertError> {
        const MSG: &str = "WebhookSpec";
        let invalid = |field, e: vantage_core::validate::ValidationError| ConvertError::Invalid {
            message: MSG,
            field,
            reason: e.to_string(),
        };
        let format = if spec.format.trim().is_empty() {
            WebhookFormat::Standard
        } else {
            WebhookFormat::parse(&spec.format).map_err(|e| invalid("format", e))?
        };
        let events = spec
            .events
            .iter()
            .map(|e| AlertEvent::parse(e).map_err(|e| invalid("events", e)))
            .collect::<Result<_, _>>()?;
        Ok(WebhookSpec {
            name: spec.name,
            url: spec.url,
            secret: WebhookSecret(spec.secret),
            format,
            events,
            labels: spec.labels.into_iter().collect(),
            allow_private: spec.allow_private,
        })
    }
}

impl From<&MaintenanceSpec> for pb::MaintenanceSpec {
    fn from(spec: &MaintenanceSpec) -> Self {
        pb::MaintenanceSpec {
            starts_at_unix_ms: spec.starts_at.as_i64(),
            ends_at_unix_ms: spec.ends_at.as_i64(),
            endpoints: spec.endpoints.iter().map(|id| id.0).collect(),
            labels: labels_to_wire(&spec.labels),
            reason: spec.reason.clone(),
        }
    }
}

impl TryFrom<pb::MaintenanceSpec> for MaintenanceSpec {
    type Error = ConvertError;
    /// Times before 1970 are refused.
    fn try_from(spec: pb::MaintenanceSpec) -> Result<Self, ConvertError> {
        Ok(MaintenanceSpec {
            starts_at: unix_millis("starts_at_unix_ms", spec.starts_at_unix_ms)?,
            ends_at: unix_millis("ends_at_unix_ms", spec.ends_at_unix_ms)?,
            endpoints: spec.endpoints.into_iter().map(EndpointId).collect(),
            labels: spec.labels.into_iter().collect(),
            reason: spec.reason,
        })
    }
}

/// A `*_unix_ms` field of the admin API as a timestamp; before 1970 is
/// refused.
pub fn unix_millis(field: &'static str, ms: i64) -> Result<UnixMillis, ConvertError> {
    u64::try_from(ms).map(UnixMillis).map_err(|_| ConvertError::Invalid {
        message: "MaintenanceSpec",
        field,
        reason: format!("{ms} is before 1970"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_specs_round_trip_through_the_wire() {
        let mut spec = EndpointSpec::new("api", "https://api.example.com/health");
        spec.expect.status = Some("200-299".into());
        spec.expect.max_ttfb = Some(Duration::from_millis(800));
        spec.regions = ["us-east".to_string(), "eu-west".to_string()].into();
        spec.labels.insert("team".into(), "core".into());
        let wire = pb::EndpointSpec::from(&spec);
        assert_eq!(wire.regions, vec!["eu-west", "us-east"], "regions go out sorted");
        assert_eq!(EndpointSpec::from(wire), spec);
    }

    #[test]
    fn an_empty_or_blank_status_on_the_wire_means_the_default() {
        let spec = EndpointSpec::from(pb::EndpointSpec { assertions: None, ..Default::default() });
        assert_eq!(spec.expect.status, None);
        let blank = pb::Assertions { status: "  ".into(), ..Default::default() };
        assert_eq!(Expectations::from(blank).status, None);
    }

    #[test]
    fn webhook_names_are_checked_and_the_format_defaults() {
        let mut wire = pb::WebhookSpec {
            name: "w".into(),
            url: "https://x/".into(),
            secret: "0123456789abcdef".into(),
            events: vec!["degraded".into()],
            ..Default::default()
        };
        let spec = WebhookSpec::try_from(wire.clone()).unwrap();
        assert_eq!(spec.format, WebhookFormat::Standard);
        assert_eq!(
            pb::WebhookSpec::from(&spec),
            pb::WebhookSpec { format: "standard".into(), ..wire.clone() }
        );
        wire.format = "teams".into();
        let err = WebhookSpec::try_from(wire.clone()).unwrap_err();
        assert_eq!(
            err,
            ConvertError::Invalid {
                message: "WebhookSpec",
                field: "format",
                reason: "invalid webhook format \"teams\": use one of standard, slack, alertmanager".into()
            }
        );
        wire.format = "alertmanager".into();
        wire.allow_private = true;
        let spec = WebhookSpec::try_from(wire.clone()).unwrap();
        assert_eq!((spec.format, spec.allow_private), (WebhookFormat::Alertmanager, true));
        assert_eq!(pb::WebhookSpec::from(&spec), wire);
        wire.format = String::new();
        wire.events = vec!["outage".into()];
        assert!(matches!(WebhookSpec::try_from(wire), Err(ConvertError::Invalid { field: "events", .. })));
    }

    #[test]
    fn maintenance_times_before_1970_are_refused() {
        let wire = pb::MaintenanceSpec { starts_at_unix_ms: -1, ends_at_unix_ms: 5, ..Default::default() };
        let err = MaintenanceSpec::try_from(wire).unwrap_err();
        assert_eq!(err.to_string(), "MaintenanceSpec: field starts_at_unix_ms is invalid: -1 is before 1970");
        let wire = pb::MaintenanceSpec {
            starts_at_unix_ms: 1,
            ends_at_unix_ms: 5,
            endpoints: vec![3],
            ..Default::default()
        };
        let spec = MaintenanceSpec::try_from(wire.clone()).unwrap();
        assert_eq!(pb::MaintenanceSpec::from(&spec), wire);
    }
}
