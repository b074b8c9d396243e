//! Endpoints: what the mesh monitors, from where, how often, and what a
//! good answer looks like — the one definition the coordinator's state,
//! the wire conversions, `vantagectl` and the probe share.
//!
//! [`EndpointSpec`] is what an admin writes; [`Expectations`] keeps the
//! expectations as text (the `--expect-*` forms) so the replicated form is
//! plain data, and [`Expectations::compile`] turns them into the
//! [`Assertions`] a check evaluates. [`EndpointSpec::to_check_spec`] is the
//! check a probe runs for it.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::assert::{Assertions, HeaderAssertion, JsonAssertion, Pattern, StatusSet};
use crate::ids::ObjectKind;
use crate::netguard::Policy;
use crate::spec::{CheckKind, CheckSpec, SpecError};
use crate::validate::{self, Labels, ValidationError};

/// The shortest check interval.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// The longest check interval.
pub const MAX_INTERVAL_MS: u64 = 24 * 60 * 60 * 1_000;
/// The longest check timeout (the probe's own ceiling,
/// [`crate::spec::MAX_TIMEOUT`]).
pub const MAX_TIMEOUT_MS: u64 = crate::spec::MAX_TIMEOUT.as_millis() as u64;
/// The default check interval.
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// The default check timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The most rounds below the quorum an endpoint may ask for before an
/// outage resolves.
pub const MAX_RECOVERY_ROUNDS: u32 = 20;
/// The longest minimum failure duration.
pub const MAX_MIN_FAILURE: Duration = Duration::from_secs(3600);
/// How many times a probe checks a failure again at once, by default,
/// before it reports it: a single lost packet does not count as Down.
pub const DEFAULT_RETRIES: u32 = 1;
/// The most expectations of one sort (body texts, patterns, JSON values,
/// headers) an endpoint may carry.
pub const MAX_EXPECTATIONS_PER_SORT: usize = 16;
/// The longest single expectation, in bytes.
pub const MAX_EXPECTATION_LEN: usize = 1_024;

/// The default timeout for an interval: 10 s, or half the interval when
/// that is shorter (so short intervals work without a timeout given).
pub fn default_timeout_ms(interval_ms: u64) -> u64 {
    DEFAULT_TIMEOUT_MS.min(interval_ms / 2).max(1)
}

/// What an admin specifies for an endpoint.
///
/// Its serde form is the replicated form and the `--json` form of
/// `vantagectl`. `expect` was once written `assertions`; that name still
/// reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Unique among endpoints; never all digits.
    pub name: String,
    /// The target: an `http(s)://`, `tcp://`, `tls://` or `dns://` URL.
    pub url: String,
    /// Time between checks, 1 s to 24 h.
    pub interval_ms: u64,
    /// The whole check's deadline, above zero and below the interval.
    pub timeout_ms: u64,
    /// What a good answer looks like.
    #[serde(default, alias = "assertions")]
    pub expect: Expectations,
    /// Where to check from; empty means every region.
    #[serde(default)]
    pub regions: BTreeSet<String>,
    /// Shown on the public status page.
    #[serde(default)]
    pub public: bool,
    /// Lets the probe's SSRF guard through to private, loopback and
    /// link-local addresses for this endpoint.
    #[serde(default)]
    pub allow_private: bool,
    /// Free-form labels, e.g. `team=payments`.
    #[serde(default)]
    pub labels: Labels,
    /// Checks are stopped.
    #[serde(default)]
    pub paused: bool,
    /// Immediate re-checks of a failed check before the probe reports it
    /// (0 to 3, default 1).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Regions that must see the endpoint down for an outage; `None`: a
    /// majority of its regions, at least 2 where it has 2 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Rounds below the quorum that resolve an outage (1 to 20, default 2).
    #[serde(default = "default_recovery_rounds")]
    pub recovery_rounds: u32,
    /// How long the quorum must hold before an outage opens (at most 1 h);
    /// `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_text::duration")]
    pub min_failure: Option<Duration>,
}

fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

fn default_recovery_rounds() -> u32 {
    crate::agreement::DEFAULT_RECOVERY_ROUNDS
}

impl EndpointSpec {
    /// A specification with the default interval and timeout and no
    /// options.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> EndpointSpec {
        EndpointSpec {
            name: name.into(),
            url: url.into(),
            interval_ms: DEFAULT_INTERVAL_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            expect: Expectations::default(),
            regions: BTreeSet::new(),
            public: false,
            allow_private: false,
            labels: Labels::new(),
            paused: false,
            retries: DEFAULT_RETRIES,
            quorum: None,
            recovery_rounds: crate::agreement::DEFAULT_RECOVERY_ROUNDS,
            min_failure: None,
        }
    }

    /// The agreement rules for this endpoint when it is checked from
    /// `regions` regions.
    pub fn rules(&self, regions: usize) -> crate::agreement::Rules {
        crate::agreement::Rules {
            quorum: crate::agreement::quorum(regions, self.quorum),
            recovery_rounds: self.recovery_rounds.max(1),
            min_failure: self.min_failure.unwrap_or_default(),
        }
    }

    /// Checks the quorum against the number of regions the endpoint is
    /// checked from (its own list, or every region of the mesh).
    pub fn check_quorum(&self, regions: usize) -> Result<(), ValidationError> {
        match self.quorum {
            Some(quorum) if quorum == 0 || quorum as usize > regions => {
                Err(ValidationError::InvalidAgreement {
                    reason: format!(
                        "quorum {quorum} must be between 1 and the {regions} region(s) the endpoint is checked from"
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks everything that does not depend on the rest of the mesh
    /// (whether its regions exist, whether its name is taken) and returns
    /// the kind of check its URL makes.
    pub fn validate(&self) -> Result<CheckKind, ValidationError> {
        validate::name(ObjectKind::Endpoint, &self.name)?;
        let kind = parse_target(&self.url)?.kind();
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(ValidationError::InvalidInterval { interval_ms: self.interval_ms });
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS || self.timeout_ms >= self.interval_ms {
            return Err(ValidationError::InvalidTimeout {
                timeout_ms: self.timeout_ms,
                interval_ms: self.interval_ms,
            });
        }
        if self.retries > crate::spec::MAX_RETRIES {
            return Err(ValidationError::InvalidRetries { retries: self.retries });
        }
        if !(1..=MAX_RECOVERY_ROUNDS).contains(&self.recovery_rounds) {
            return Err(ValidationError::InvalidAgreement {
                reason: format!(
                    "recovery_rounds {} must be between 1 and {MAX_RECOVERY_ROUNDS}",
                    self.recovery_rounds
                ),
            });
        }
        if self.min_failure.is_some_and(|d| d > MAX_MIN_FAILURE) {
            return Err(ValidationError::InvalidAgreement {
                reason: "min_failure must be at most 1h".into(),
            });
        }
        if !self.regions.is_empty() {
            self.check_quorum(self.regions.len())?;
        } else if self.quorum == Some(0) {
            self.check_quorum(0)?;
        }
        self.expect.compile()?;
        self.regions.iter().try_for_each(|region| validate::region_name(region))?;
        validate::labels(&self.labels)?;
        Ok(kind)
    }

    /// The check a probe runs for this endpoint: its URL parsed, its
    /// timeout (0: the engine's default), the SSRF guard opened for
    /// private addresses only when `allow_private`, its expectations
    /// compiled.
    pub fn to_check_spec(&self) -> Result<CheckSpec, ValidationError> {
        let mut spec = parse_target(&self.url)?;
        if self.timeout_ms > 0 {
            spec.timeout = Duration::from_millis(self.timeout_ms);
        }
        spec.guard = Policy { allow_private: self.allow_private, ..Policy::default() };
        spec.assertions = self.expect.compile()?;
        spec.retries = self.retries.min(crate::spec::MAX_RETRIES);
        spec.validate().map_err(|e| match e {
            SpecError::BadOption { field: "timeout", .. } => {
                ValidationError::InvalidTimeout { timeout_ms: self.timeout_ms, interval_ms: u64::MAX }
            }
            other => ValidationError::InvalidTarget { url: self.url.clone(), reason: other.to_string() },
        })?;
        Ok(spec)
    }
}

/// Timeouts checked on their own, before the interval is known (e.g. a
/// `--timeout` flag): above zero and at most 10 minutes.
pub fn check_timeout_alone(timeout_ms: u64) -> Result<(), ValidationError> {
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(ValidationError::InvalidTimeout { timeout_ms, interval_ms: u64::MAX });
    }
    Ok(())
}

/// Intervals checked on their own: 1 s to 24 h.
pub fn check_interval(interval_ms: u64) -> Result<(), ValidationError> {
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ValidationError::InvalidInterval { interval_ms });
    }
    Ok(())
}

fn parse_target(url: &str) -> Result<CheckSpec, ValidationError> {
    CheckSpec::parse(url)
        .map_err(|e| ValidationError::InvalidTarget { url: url.to_string(), reason: e.to_string() })
}

/// Expectations in the text forms of `vantage-probe check --expect-*`,
/// kept as text so the replicated form is plain data.
///
/// One serde form serves the replicated state, `--json` and the YAML of
/// `vantagectl apply`: a status list is text (a bare number such as `204`
/// reads too, and a list that does not parse is refused while reading, so a
/// document's error carries its line); ceilings are durations such as
/// `800ms` (a bare number reads as milliseconds, the form once written as
/// `max_total_ms`/`max_ttfb_ms`, which still read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Acceptable status codes, e.g. `200-299,301`; `None`: 200–399.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "serde_text::status")]
    pub status: Option<String>,
    /// Texts the body must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_contains: Vec<String>,
    /// Regular expressions the body must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_matches: Vec<String>,
    /// `POINTER=VALUE` JSON expectations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<String>,
    /// `NAME` or `NAME: REGEX` header expectations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Ceiling on the whole check's duration.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_total_ms",
        with = "serde_text::duration"
    )]
    pub max_total: Option<Duration>,
    /// Ceiling on time to first byte.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_ttfb_ms",
        with = "serde_text::duration"
    )]
    pub max_ttfb: Option<Duration>,
    /// Minimum days before the certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cert_days: Option<i64>,
}

impl Expectations {
    /// Whether nothing is expected beyond the defaults.
    pub fn is_empty(&self) -> bool {
        *self == Expectations::default()
    }

    /// Compiles the expectations, failing on the first that breaks a limit
    /// or does not parse.
    pub fn compile(&self) -> Result<Assertions, ValidationError> {
        let lists: [(&'static str, &Vec<String>); 4] = [
            ("expect-body", &self.body_contains),
            ("expect-regex", &self.body_matches),
            ("expect-json", &self.json),
            ("expect-header", &self.headers),
        ];
        for (field, list) in lists {
            if list.len() > MAX_EXPECTATIONS_PER_SORT {
                return Err(invalid(field, "at most 16 expectations"));
            }
            if list.iter().any(|item| item.len() > MAX_EXPECTATION_LEN) {
                return Err(invalid(field, "each at most 1024 bytes"));
            }
        }
        let compiled = || -> Result<Assertions, SpecError> {
            Ok(Assertions {
                status: match &self.status {
                    Some(text) => StatusSet::parse(text)?,
                    None => StatusSet::default(),
                },
                body_contains: self.body_contains.clone(),
                body_matches: self
                    .body_matches
                    .iter()
                    .map(|source| Pattern::new("expect-regex", source))
                    .collect::<Result<_, _>>()?,
                json: self.json.iter().map(|text| JsonAssertion::parse(text)).collect::<Result<_, _>>()?,
                headers: self
                    .headers
                    .iter()
                    .map(|text| HeaderAssertion::parse(text))
                    .collect::<Result<_, _>>()?,
                max_total: self.max_total,
                max_ttfb: self.max_ttfb,
                min_cert_days: self.min_cert_days,
            })
        };
        compiled().map_err(|e| ValidationError::InvalidAssertion { reason: e.to_string() })
    }
}

fn invalid(field: &str, reason: &str) -> ValidationError {
    ValidationError::InvalidAssertion { reason: format!("invalid {field}: {reason}") }
}

/// The text forms of [`Expectations`]' fields.
mod serde_text {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::assert::StatusSet;
    use crate::time::format_duration;

    /// A status list as text or a bare number, checked as it is read.
    pub fn status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        struct Status;
        impl Visitor<'_> for Status {
            type Value = Option<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("status codes such as \"200-299,301\"")
            }
            fn visit_u64<E: de::Error>(self, code: u64) -> Result<Self::Value, E> {
                self.visit_str(&code.to_string())
            }
            fn visit_i64<E: de::Error>(self, code: i64) -> Result<Self::Value, E> {
                self.visit_str(&code.to_string())
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                StatusSet::parse(text).map_err(E::custom)?;
                Ok(Some(text.to_string()))
            }
        }
        deserializer.deserialize_any(Status)
    }

    /// Durations as compact text (`800ms`, `1m30s`); read from such text or
    /// from a number of milliseconds.
    pub mod duration {
        use super::*;

        /// Writes `Some` as compact text (`None` is skipped by the field).
        pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(duration) => serializer.serialize_str(&format_duration(*duration)),
                None => serializer.serialize_none(),
            }
        }

        /// Reads `800ms`, `2s` or `800` (milliseconds).
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
            struct Text;
            impl Visitor<'_> for Text {
                type Value = Option<Duration>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a duration such as 800ms")
                }
                fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Self::Value, E> {
                    Ok(Some(Duration::from_millis(ms)))
                }
                fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Self::Value, E> {
                    u64::try_from(ms)
                        .map_err(|_| E::custom(format!("invalid duration {ms}: negative")))
                        .and_then(|ms| self.visit_u64(ms))
                }
                fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                    humantime::parse_duration(text.trim())
                        .map(Some)
                        .map_err(|e| E::custom(format!("invalid duration {text:?}: {e} (e.g. 800ms, 2s)")))
                }
            }
            deserializer.deserialize_any(Text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rules_table() {
        let ok = EndpointSpec::new("api", "https://api.example.com/health");
        let expect = |e: Expectations| EndpointSpec { expect: e, ..ok.clone() };
        let cases: Vec<(&str, EndpointSpec, Option<&str>)> = vec![
            ("defaults are valid", ok.clone(), None),
            ("bad scheme", EndpointSpec { url: "ftp://x".into(), ..ok.clone() }, Some("unsupported scheme")),
            (
                "interval too short",
                EndpointSpec { interval_ms: 500, timeout_ms: 100, ..ok.clone() },
                Some("invalid interval 500ms: must be between 1s and 24h"),
            ),
            (
                "interval too long",
                EndpointSpec { interval_ms: 86_400_001, ..ok.clone() },
                Some("between 1s and 24h"),
            ),
            (
                "timeout not below interval",
                EndpointSpec { interval_ms: 5_000, timeout_ms: 5_000, ..ok.clone() },
                Some("invalid timeout 5s: must be below the interval (5s)"),
            ),
            ("zero timeout", EndpointSpec { timeout_ms: 0, ..ok.clone() }, Some("must be above zero")),
            ("numeric name", EndpointSpec { name: "42".into(), ..ok.clone() }, Some("reads as an id")),
            (
                "bad region",
                EndpointSpec { regions: ["EU".to_string()].into(), ..ok.clone() },
                Some("invalid region name \"EU\""),
            ),
            (
                "bad label",
                EndpointSpec { labels: [("bad key".to_string(), String::new())].into(), ..ok.clone() },
                Some("invalid label \"bad key\""),
            ),
            (
                "bad status list",
                expect(Expectations { status: Some("abc".into()), ..Default::default() }),
                Some("invalid expect-status: \"abc\""),
            ),
            (
                "bad regex",
                expect(Expectations { body_matches: vec!["(".into()], ..Default::default() }),
                Some("expect-regex"),
            ),
            (
                "too many body texts",
                expect(Expectations { body_contains: vec!["x".into(); 17], ..Default::default() }),
                Some("invalid expect-body: at most 16 expectations"),
            ),
            (
                "a header expectation too long",
                expect(Expectations { headers: vec!["x".repeat(1025)], ..Default::default() }),
                Some("invalid expect-header: each at most 1024 bytes"),
            ),
        ];
        for (what, spec, want) in cases {
            match (spec.validate(), want) {
                (Ok(kind), None) => assert_eq!(kind, CheckKind::Https, "{what}"),
                (Err(e), Some(want)) => assert!(e.to_string().contains(want), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_replicated_form_reads_the_old_name_of_expect() {
        let old = r#"{"name":"api","url":"https://x/","interval_ms":60000,"timeout_ms":10000,
            "assertions":{"status":"200","max_ttfb_ms":800}}"#;
        let spec: EndpointSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.expect.status.as_deref(), Some("200"));
        assert_eq!(spec.expect.max_ttfb, Some(Duration::from_millis(800)));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["expect"],
            serde_json::json!({"status": "200", "max_ttfb": "800ms"}),
            "only what is set"
        );
        assert_eq!(serde_json::from_value::<EndpointSpec>(json).unwrap(), spec);
        let unknown = r#"{"name":"a","url":"https://x/","interval_ms":1,"timeout_ms":1,"intervall":1}"#;
        assert!(serde_json::from_str::<EndpointSpec>(unknown).is_err());
    }

    #[test]
    fn expectations_read_numbers_and_durations_and_refuse_bad_status_lists() {
        let e: Expectations = serde_json::from_str(r#"{"status":204,"max_total":"1m30s"}"#).unwrap();
        assert_eq!((e.status.as_deref(), e.max_total), (Some("204"), Some(Duration::from_secs(90))));
        let err = serde_json::from_str::<Expectations>(r#"{"status":"abc"}"#).unwrap_err().to_string();
        assert!(err.contains("invalid expect-status"), "{err}");
        let err = serde_json::from_str::<Expectations>(r#"{"max_ttfb":"soon"}"#).unwrap_err().to_string();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
    }

    #[test]
    fn the_check_spec_carries_timeout_guard_and_assertions() {
        let mut spec = EndpointSpec::new("api", "http://127.0.0.1:9/health");
        spec.timeout_ms = 2_500;
        spec.allow_private = true;
        spec.expect.status = Some("200-299".into());
        spec.expect.max_total = Some(Duration::from_millis(800));
        let check = spec.to_check_spec().unwrap();
        assert_eq!(check.timeout, Duration::from_millis(2_500));
        assert!(check.guard.allow_private);
        assert!(check.assertions.status.contains(204));
        assert!(!check.assertions.status.contains(301));
        assert_eq!(check.assertions.max_total, Some(Duration::from_millis(800)));
        spec.timeout_ms = 0;
        assert_eq!(spec.to_check_spec().unwrap().timeout, crate::spec::DEFAULT_TIMEOUT, "0: the default");
        spec.url = "gopher://x/".into();
        assert!(matches!(spec.to_check_spec(), Err(ValidationError::InvalidTarget { .. })));
    }

    #[test]
    fn default_timeouts_follow_short_intervals() {
        assert_eq!(default_timeout_ms(60_000), 10_000);
        assert_eq!(default_timeout_ms(4_000), 2_000);
        assert_eq!(default_timeout_ms(1), 1);
    }
}
