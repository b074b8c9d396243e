//! Maintenance windows: times when outages of some endpoints are expected
//! and not alerted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::EndpointId;
use crate::time::UnixMillis;
use crate::validate::{self, Labels, ValidationError};

/// The longest maintenance window: 31 days.
pub const MAX_WINDOW_MS: u64 = 31 * 24 * 60 * 60 * 1_000;
/// The longest reason text, in bytes.
pub const MAX_REASON_LEN: usize = 1_024;

/// What an admin specifies for a maintenance window.
///
/// Its serde form is the replicated form and the `--json` form of
/// `vantagectl`; the times were once written `starts_at` and `ends_at`,
/// which still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSpec {
    /// Start, inclusive.
    #[serde(rename = "starts_at_unix_ms", alias = "starts_at")]
    pub starts_at: UnixMillis,
    /// End, exclusive; after the start and at most 31 days later.
    #[serde(rename = "ends_at_unix_ms", alias = "ends_at")]
    pub ends_at: UnixMillis,
    /// Endpoints covered. With `labels` also empty, the window covers the
    /// whole mesh.
    #[serde(default)]
    pub endpoints: BTreeSet<EndpointId>,
    /// Endpoints carrying all these labels are covered too.
    #[serde(default)]
    pub labels: Labels,
    /// Why, for the status page and the audit trail.
    #[serde(default)]
    pub reason: String,
}

impl MaintenanceSpec {
    /// Checks the window's shape: the end after the start, at most 31
    /// days, a reason of at most 1024 bytes without control characters
    /// (newlines allowed), valid labels. Whether the endpoints exist and
    /// whether the window is already over depend on the mesh and the time
    /// ([`MaintenanceSpec::check_not_over`]).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let bad = |reason: &str| Err(ValidationError::InvalidMaintenanceWindow { reason: reason.into() });
        if self.ends_at <= self.starts_at {
            return bad("the end must be after the start");
        }
        if self.ends_at.0 - self.starts_at.0 > MAX_WINDOW_MS {
            return bad("longer than 31 days");
        }
        if self.reason.len() > MAX_REASON_LEN || self.reason.chars().any(|c| c.is_control() && c != '\n') {
            return bad("the reason must be at most 1024 bytes without control characters");
        }
        validate::labels(&self.labels)
    }

    /// Whether the window covers an endpoint (by id, or by carrying all the
    /// window's labels; a window naming neither covers every endpoint) at
    /// `now`.
    pub fn covers(&self, endpoint: EndpointId, labels: &Labels, now: UnixMillis) -> bool {
        now >= self.starts_at && now < self.ends_at && self.applies_to(endpoint, labels)
    }

    /// Whether the window is for an endpoint (by id, or by carrying all the
    /// window's labels; a window naming neither is for every endpoint),
    /// whenever it is.
    pub fn applies_to(&self, endpoint: EndpointId, labels: &Labels) -> bool {
        if self.endpoints.is_empty() && self.labels.is_empty() {
            return true;
        }
        self.endpoints.contains(&endpoint)
            || (!self.labels.is_empty() && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// Refuses a window that is already over at `now`.
    pub fn check_not_over(&self, now: UnixMillis) -> Result<(), ValidationError> {
        if self.ends_at <= now {
            return Err(ValidationError::InvalidMaintenanceWindow {
                reason: "the window is already over".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(starts_at: u64, ends_at: u64) -> MaintenanceSpec {
        MaintenanceSpec {
            starts_at: UnixMillis(starts_at),
            ends_at: UnixMillis(ends_at),
            endpoints: BTreeSet::new(),
            labels: Labels::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn window_rules() {
        assert!(window(10, 20).validate().is_ok());
        let err = |w: MaintenanceSpec| w.validate().unwrap_err().to_string();
        assert_eq!(err(window(10, 5)), "invalid maintenance window: the end must be after the start");
        assert!(err(window(0, MAX_WINDOW_MS + 1)).contains("31 days"));
        assert!(err(MaintenanceSpec { reason: "a\u{7}".into(), ..window(1, 2) }).contains("reason"));
        assert!(MaintenanceSpec { reason: "line\nline".into(), ..window(1, 2) }.validate().is_ok());
        assert!(window(1, 2).check_not_over(UnixMillis(2)).unwrap_err().to_string().contains("already over"));
        assert!(window(1, 3).check_not_over(UnixMillis(2)).is_ok());
    }

    #[test]
    fn windows_cover_by_id_by_labels_or_everything_while_open() {
        let team: Labels = [("team".to_string(), "db".to_string())].into();
        let all = window(10, 20);
        assert!(all.covers(EndpointId(1), &Labels::new(), UnixMillis(10)));
        assert!(!all.covers(EndpointId(1), &Labels::new(), UnixMillis(20)), "the end is exclusive");
        assert!(!all.covers(EndpointId(1), &Labels::new(), UnixMillis(9)));
        let by_id = MaintenanceSpec { endpoints: [EndpointId(2)].into(), ..window(10, 20) };
        assert!(by_id.covers(EndpointId(2), &Labels::new(), UnixMillis(15)));
        assert!(!by_id.covers(EndpointId(1), &team, UnixMillis(15)));
        let by_label = MaintenanceSpec { labels: team.clone(), ..window(10, 20) };
        assert!(by_label.covers(EndpointId(7), &team, UnixMillis(15)));
        assert!(!by_label.covers(EndpointId(7), &Labels::new(), UnixMillis(15)));
    }

    #[test]
    fn the_replicated_form_reads_the_old_time_names() {
        let old = r#"{"starts_at":1,"ends_at":2,"endpoints":[3],"labels":{},"reason":"db"}"#;
        let spec: MaintenanceSpec = serde_json::from_str(old).unwrap();
        assert_eq!((spec.starts_at, spec.ends_at), (UnixMillis(1), UnixMillis(2)));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["starts_at_unix_ms"], 1);
        assert_eq!(json["endpoints"], serde_json::json!([3]));
    }
}
