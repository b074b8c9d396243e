//! What is exported: one [`Record`] per check result or agreed-state
//! sample, shared (behind an `Arc`) by every target's queue, and the label
//! rules that turn endpoint labels into Prometheus/InfluxDB ones.
//!
//! A check result becomes, at the check's start (milliseconds):
//!
//! | series | value |
//! |---|---|
//! | `vantage_check_success` | 1 passed, 0 failed |
//! | `vantage_check_duration_seconds{phase}` | one per phase measured: `dns`, `connect`, `tls`, `ttfb`, `transfer` (a phase that did not happen, such as DNS for an IP literal, is left out), and `total` always |
//! | `vantage_check_http_status_code` | the final HTTP status, when there is one |
//! | `vantage_check_tls_cert_expiry_timestamp_seconds` | the leaf certificate's `notAfter`, Unix seconds, when TLS was used |
//!
//! with the labels `endpoint` (its name), `region`, `probe` (its name),
//! `kind` (`http`, `https`, `tcp`, `tls`, `dns`) and the endpoint's own
//! labels. An endpoint label's key is sanitised to Prometheus's rules
//! (`[a-zA-Z_][a-zA-Z0-9_]*`: every other character becomes `_`, a leading
//! digit gets a `_` before it); a key that then equals one of the labels
//! Vantage sets (`endpoint`, `region`, `probe`, `kind`, `phase`, `state`),
//! starts with `__` (reserved by Prometheus) or equals a key already taken
//! is prefixed with `label_` until it is free: `region=eu-west` becomes
//! `label_region="eu-west"`. Labels with an empty value are left out (in
//! Prometheus an empty label is no label; InfluxDB refuses empty tags).
//!
//! The agreed state becomes, per endpoint on the sampling grid:
//! `vantage_endpoint_state{endpoint, state}` for each of the seven states
//! (1 for the current one, 0 for the others) and
//! `vantage_endpoint_regions_down{endpoint}` (the regions whose verdict
//! was Down in the evidence of the endpoint's last agreed transition).
//!
//! Skipped slots (no check ran) export nothing. Results of a probe whose
//! canaries failed are exported as measured: the TSDB keeps what was seen;
//! agreement is what ignores them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use vantage_core::agreement::State;
use vantage_core::result::CheckResult;

/// The phases, in the order of [`CheckRecord::phases`].
pub const PHASES: [&str; 6] = ["dns", "connect", "tls", "ttfb", "transfer", "total"];

/// Every agreed state, in the order samples are written.
pub const STATES: [State; 7] = [
    State::Up,
    State::Degraded,
    State::Down,
    State::Unknown,
    State::Maintenance,
    State::Paused,
    State::Flapping,
];

/// The labels Vantage sets itself; endpoint labels with these keys are
/// prefixed.
pub const RESERVED_LABELS: [&str; 6] = ["endpoint", "region", "probe", "kind", "phase", "state"];

/// The prefix a colliding endpoint label gets.
pub const COLLISION_PREFIX: &str = "label_";

/// A sorted (by name, byte order) set of label pairs without `__name__`
/// and `phase`, which the encoders add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSet {
    pairs: Vec<(String, String)>,
}

impl LabelSet {
    /// The labels of a result: Vantage's four and the endpoint's own,
    /// sanitised (see the module docs).
    pub fn of_check<'a>(
        endpoint: &str,
        region: &str,
        probe: &str,
        kind: &str,
        endpoint_labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> LabelSet {
        let mut pairs: Vec<(String, String)> = vec![
            ("endpoint".into(), endpoint.into()),
            ("kind".into(), kind.into()),
            ("probe".into(), probe.into()),
            ("region".into(), region.into()),
        ];
        let mut taken: BTreeSet<String> = RESERVED_LABELS.iter().map(|s| s.to_string()).collect();
        for (key, value) in endpoint_labels {
            if value.is_empty() {
                continue;
            }
            let mut name = sanitize_label_name(key);
            while taken.contains(&name) || name.starts_with("__") {
                name = format!("{COLLISION_PREFIX}{name}");
            }
            taken.insert(name.clone());
            pairs.push((name, value.clone()));
        }
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort();
        LabelSet { pairs }
    }

    /// The labels of an endpoint's state samples: `endpoint` only.
    pub fn of_endpoint(endpoint: &str) -> LabelSet {
        LabelSet { pairs: vec![("endpoint".into(), endpoint.into())] }
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// A label name valid for Prometheus: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn sanitize_label_name(key: &str) -> String {
    let mut name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// One exported thing.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A check result.
    Check(CheckRecord),
    /// An endpoint's agreed state at a sampling instant.
    State(StateRecord),
}

/// One check result, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// `endpoint`, `kind`, `probe`, `region` and the endpoint's labels.
    pub labels: Arc<LabelSet>,
    /// The check's start, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Whether it passed.
    pub success: bool,
    /// Seconds per phase of [`PHASES`]; `None` for a phase that did not
    /// happen (`total` is always there).
    pub phases: [Option<f64>; 6],
    /// The final HTTP status.
    pub status_code: Option<u16>,
    /// The leaf certificate's `notAfter`, Unix seconds.
    pub cert_expiry_s: Option<i64>,
}

/// One endpoint's agreed state, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// `endpoint`.
    pub labels: Arc<LabelSet>,
    /// The sampling instant, Unix milliseconds.
    pub timestamp_ms: i64,
    /// The state.
    pub state: State,
    /// Regions Down in the last transition's evidence.
    pub regions_down: u32,
}

impl Record {
    /// How many samples (series values) it is: what queue capacities and
    /// batch sizes count.
    pub fn samples(&self) -> usize {
        match self {
            Record::Check(c) => {
                1 + c.phases.iter().flatten().count()
                    + usize::from(c.status_code.is_some())
                    + usize::from(c.cert_expiry_s.is_some())
            }
            Record::State(_) => STATES.len() + 1,
        }
    }

    /// Its timestamp, Unix milliseconds.
    pub fn timestamp_ms(&self) -> i64 {
        match self {
            Record::Check(c) => c.timestamp_ms,
            Record::State(s) => s.timestamp_ms,
        }
    }
}

impl CheckRecord {
    /// The record of `result`, labelled `labels`.
    pub fn of(result: &CheckResult, labels: Arc<LabelSet>) -> CheckRecord {
        let p = &result.phases_ms;
        let measured = |d: std::time::Duration| (!d.is_zero()).then_some(d.as_secs_f64());
        CheckRecord {
            labels,
            timestamp_ms: unix_ms(result.started_at),
            success: result.ok,
            phases: [
                measured(p.dns),
                measured(p.connect),
                measured(p.tls),
                measured(p.ttfb),
                measured(p.transfer),
                Some(p.total.as_secs_f64()),
            ],
            status_code: result.status_code,
            cert_expiry_s: result.tls.as_ref().map(|tls| unix_ms(tls.cert_not_after).div_euclid(1000)),
        }
    }
}

/// Unix milliseconds of `t` (negative before 1970).
pub fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised_and_collisions_prefixed() {
        let labels: std::collections::BTreeMap<String, String> = [
            ("team", "payments"),
            ("region", "eu-west"),
            ("label_region", "taken"),
            ("app.kubernetes.io/name", "api"),
            ("9lives", "cat"),
            ("__meta", "x"),
            ("Zone", "z"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let set = LabelSet::of_check("web", "eu", "eu-1", "http", &labels);
        let got: Vec<(&str, &str)> = set.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("Zone", "z"),
                ("_9lives", "cat"),
                ("app_kubernetes_io_name", "api"),
                ("endpoint", "web"),
                ("kind", "http"),
                ("label___meta", "x"),
                // `label_region` (the user's) sorts before `region`, which took
                // `label_label_region` as `label_region` was taken first.
                ("label_label_region", "eu-west"),
                ("label_region", "taken"),
                ("probe", "eu-1"),
                ("region", "eu"),
                ("team", "payments"),
            ]
        );
    }

    #[test]
    fn samples_count_only_what_was_measured() {
        let labels = Arc::new(LabelSet::of_endpoint("web"));
        let mut check = CheckRecord {
            labels,
            timestamp_ms: 1,
            success: true,
            phases: [None, Some(0.1), None, Some(0.2), None, Some(0.3)],
            status_code: None,
            cert_expiry_s: None,
        };
        assert_eq!(Record::Check(check.clone()).samples(), 4);
        check.status_code = Some(200);
        check.cert_expiry_s = Some(2_000_000_000);
        assert_eq!(Record::Check(check).samples(), 6);
    }
}
