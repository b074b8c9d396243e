//! Configuration as code: the YAML document `apply` reads and `export`
//! writes.
//!
//! ```yaml
//! regions: [eu-west, us-east]
//! endpoints:
//!   - name: api
//!     url: https://api.example.com/health
//!     interval: 30s          # default 60s
//!     timeout: 5s            # default 10s (half the interval if shorter)
//!     regions: [eu-west]     # default: every region
//!     public: true
//!     allow_private: false
//!     labels: {team: core}
//!     paused: false          # omitted: left as it is
//!     retries: 1             # re-checks of a failure before it counts (0-3)
//!     quorum: 2              # regions down for an outage (default: a majority, >= 2)
//!     recovery_rounds: 2     # rounds below the quorum that resolve it
//!     min_failure: 1m        # how long the quorum must hold first (default: at once)
//!     expect:
//!       status: "200-299"
//!       body_contains: [ok]
//!       body_matches: ["v[0-9]+"]
//!       json: ["/status=ok"]
//!       headers: ["content-type: json"]
//!       max_total: 2s
//!       max_ttfb: 800ms
//!       min_cert_days: 14
//! webhooks:
//!   - name: oncall
//!     url: https://hooks.example.com/x
//!     secret_env: ONCALL_SECRET   # or secret: "…"
//!     format: standard            # or slack, alertmanager
//!     events: [outage_opened, outage_resolved]
//!     labels: {team: core}
//!     allow_private: false        # true: receivers on private addresses
//! maintenance:
//!   - start: 2026-12-01T02:00:00Z
//!     end: 2026-12-01T03:00:00Z
//!     reason: db upgrade
//!     endpoints: [api]
//!     labels: {}
//! ```
//!
//! Every mapping refuses unknown keys, and syntax or type errors carry the
//! line and column. A section left out is not managed: `--prune` only
//! removes objects of the sections the file has (`webhooks: []` manages
//! webhooks and has none).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use vantage_core::endpoint::{default_timeout_ms, DEFAULT_INTERVAL_MS};
use vantage_core::time::UnixMillis;
use vantage_core::validate;
use vantage_core::webhook::{WebhookSecret, WebhookSpec};

use crate::model::{AlertEvent, EndpointSpec, Expectations, Labels, MaintenanceSpec, WebhookFormat};
use crate::timefmt;

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Region names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    /// Endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<EndpointDoc>>,
    /// Webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<WebhookDoc>>,
    /// Maintenance windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Vec<MaintenanceDoc>>,
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDoc {
    /// Unique name.
    pub name: String,
    /// Target URL.
    pub url: String,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    /// The check's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Regions to check from; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// On the public status page.
    #[serde(default, skip_serializing_if = "is_false")]
    pub public: bool,
    /// Private addresses allowed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_private: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Paused; omitted: whatever it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Immediate re-checks of a failure (0 to 3); omitted: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Regions that must see it down for an outage; omitted: a majority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Rounds below the quorum that resolve an outage; omitted: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_rounds: Option<u32>,
    /// How long the quorum must hold before an outage opens; omitted: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_failure: Option<Dur>,
    /// Expectations.
    #[serde(default, skip_serializing_if = "Expectations::is_empty")]
    pub expect: Expectations,
}

/// One webhook. The secret is given inline or, better, by the name of an
/// environment variable holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDoc {
    /// Unique name.
    pub name: String,
    /// Delivery URL.
    pub url: String,
    /// The signing secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// An environment variable holding the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Delivery format.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Events delivered; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<AlertEvent>,
    /// Only endpoints with all these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Deliveries may go to loopback, private and link-local addresses.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_private: bool,
}

/// One maintenance window. `apply` identifies windows by (start, end,
/// reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceDoc {
    /// Start, RFC 3339.
    pub start: Timestamp,
    /// End, RFC 3339.
    pub end: Timestamp,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Endpoints covered, by name (or id); with no labels either: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Endpoints with all these labels are covered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
}

/// A duration written as `30s`, `1m30s`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// An instant written in RFC 3339, held as Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);

/// Where a webhook's secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the file.
    Inline(String),
    /// In this environment variable.
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Env(var) => write!(f, "Env({var})"),
        }
    }
}

/// The validated content of a document: what `apply` makes the mesh
/// match. `None` sections are not managed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Regions.
    pub regions: Option<BTreeSet<String>>,
    /// Endpoints, in file order.
    pub endpoints: Option<Vec<DesiredEndpoint>>,
    /// Webhooks, in file order.
    pub webhooks: Option<Vec<DesiredWebhook>>,
    /// Maintenance windows, in file order.
    pub maintenance: Option<Vec<DesiredMaintenance>>,
}

/// An endpoint as the file wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredEndpoint {
    /// The specification; `paused` is `false` when the file leaves it out.
    pub spec: EndpointSpec,
    /// Whether the file says whether it is paused.
    pub paused_given: bool,
}

/// A webhook as the file wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredWebhook {
    /// The specification without the secret.
    pub spec: WebhookSpec,
    /// Where the secret comes from.
    pub secret: SecretSource,
}

/// A maintenance window as the file wants it; endpoints by name (or id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredMaintenance {
    /// Start, Unix ms.
    pub starts_at_unix_ms: i64,
    /// End, Unix ms.
    pub ends_at_unix_ms: i64,
    /// Endpoint names or ids.
    pub endpoints: BTreeSet<String>,
    /// Labels.
    pub labels: Labels,
    /// Why.
    pub reason: String,
}

/// Parses a document; `path` names it in errors (`FILE:LINE:COLUMN: …`).
pub fn parse(path: &str, text: &str) -> Result<Document, Error> {
    let only_comments = text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---"
    });
    if only_comments {
        return Ok(Document::default());
    }
    serde_yaml::from_str(text).map_err(|e| syntax_error(path, &e))
}

fn syntax_error(path: &str, error: &serde_yaml::Error) -> Error {
    let mut message = error.to_string();
    // serde_yaml appends the position; it goes in front instead.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let message = message.replace('`', "\"");
    match error.location() {
        Some(location) => Error::DocumentSyntax {
            path: path.to_string(),
            line: location.line(),
            column: location.column(),
            message,
        },
        None => Error::Document { path: path.to_string(), message },
    }
}

impl Document {
    /// Checks everything that does not need the live state and returns
    /// what the file wants. Errors name the item (`endpoints[2] (api): …`).
    pub fn into_desired(self, path: &str) -> Result<Desired, Error> {
        let invalid = |message: String| Error::Document { path: path.to_string(), message };
        let regions = match self.regions {
            Some(list) => {
                let mut set = BTreeSet::new();
                for (i, name) in list.into_iter().enumerate() {
                    validate::region_name(&name).map_err(|e| invalid(format!("regions[{i}]: {e}")))?;
                    if !set.insert(name.clone()) {
                        return Err(invalid(format!("regions[{i}]: region {name:?} is listed twice")));
                    }
                }
                Some(set)
            }
            None => None,
        };
        let endpoints = match self.endpoints {
            Some(list) => {
                let mut names = BTreeSet::new();
                let mut out = Vec::with_capacity(list.len());
                for (i, doc) in list.into_iter().enumerate() {
                    let at = format!("endpoints[{i}] ({})", doc.name);
                    if !names.insert(doc.name.clone()) {
                        return Err(invalid(format!("{at}: the name is used twice")));
                    }
                    let desired = doc.into_desired();
                    desired.spec.validate().map_err(|e| invalid(format!("{at}: {e}")))?;
                    out.push(desired);
                }
                Some(out)
            }
            None => None,
        };
        let webhooks = match self.webhooks {
            Some(list) => {
                let mut names = BTreeSet::new();
                let mut out = Vec::with_capacity(list.len());
                for (i, doc) in list.into_iter().enumerate() {
                    let at = format!("webhooks[{i}] ({})", doc.name);
                    if !names.insert(doc.name.clone()) {
                        return Err(invalid(format!("{at}: the name is used twice")));
                    }
                    out.push(doc.into_desired().map_err(|e| invalid(format!("{at}: {e}")))?);
                }
                Some(out)
            }
            None => None,
        };
        let maintenance = match self.maintenance {
            Some(list) => {
                let mut keys = BTreeSet::new();
                let mut out = Vec::with_capacity(list.len());
                for (i, doc) in list.into_iter().enumerate() {
                    let at = format!("maintenance[{i}]");
                    let desired = doc.into_desired();
                    let key = (desired.starts_at_unix_ms, desired.ends_at_unix_ms, desired.reason.clone());
                    if !keys.insert(key) {
                        return Err(invalid(format!("{at}: the same start, end and reason appear twice")));
                    }
                    let shape = desired.to_shape().map_err(|e| invalid(format!("{at}: {e}")))?;
                    shape.validate().map_err(|e| invalid(format!("{at}: {e}")))?;
                    out.push(desired);
                }
                Some(out)
            }
            None => None,
        };
        Ok(Desired { regions, endpoints, webhooks, maintenance })
    }
}

impl EndpointDoc {
    fn into_desired(self) -> DesiredEndpoint {
        let interval_ms = self.interval.map_or(DEFAULT_INTERVAL_MS, |d| millis(d.0));
        let timeout_ms = self.timeout.map_or_else(|| default_timeout_ms(interval_ms), |d| millis(d.0));
        DesiredEndpoint {
            paused_given: self.paused.is_some(),
            spec: EndpointSpec {
                name: self.name,
                url: self.url,
                interval_ms,
                timeout_ms,
                expect: self.expect,
                regions: self.regions.into_iter().collect(),
                public: self.public,
                allow_private: self.allow_private,
                labels: self.labels,
                paused: self.paused.unwrap_or(false),
                retries: self.retries.unwrap_or(vantage_core::endpoint::DEFAULT_RETRIES),
                quorum: self.quorum,
                recovery_rounds: self
                    .recovery_rounds
                    .unwrap_or(vantage_core::agreement::DEFAULT_RECOVERY_ROUNDS),
                min_failure: self.min_failure.map(|d| d.0).filter(|d| !d.is_zero()),
            },
        }
    }
}

impl WebhookDoc {
    fn into_desired(self) -> Result<DesiredWebhook, String> {
        let secret = match (self.secret, self.secret_env) {
            (Some(secret), None) => {
                WebhookSecret(secret.clone()).validate().map_err(|e| e.to_string())?;
                SecretSource::Inline(secret)
            }
            (None, Some(var)) if !var.is_empty() => SecretSource::Env(var),
            (Some(_), Some(_)) => return Err("give secret or secret_env, not both".into()),
            _ => return Err("a secret is required: add secret_env: VARIABLE (or secret: \"…\")".into()),
        };
        let spec = WebhookSpec {
            name: self.name,
            url: self.url,
            secret: WebhookSecret::default(),
            format: self.format,
            events: self.events.into_iter().collect(),
            labels: self.labels,
            allow_private: self.allow_private,
        };
        // An environment secret is checked once it is read (see `apply`).
        spec.validate().map_err(|e| e.to_string())?;
        Ok(DesiredWebhook { spec, secret })
    }
}

impl MaintenanceDoc {
    fn into_desired(self) -> DesiredMaintenance {
        DesiredMaintenance {
            starts_at_unix_ms: self.start.0,
            ends_at_unix_ms: self.end.0,
            endpoints: self.endpoints.into_iter().collect(),
            labels: self.labels,
            reason: self.reason,
        }
    }
}

impl DesiredMaintenance {
    /// The window with no endpoints resolved, for shape checks.
    pub fn to_shape(&self) -> Result<MaintenanceSpec, String> {
        Ok(MaintenanceSpec {
            starts_at: unix_millis(self.starts_at_unix_ms)?,
            ends_at: unix_millis(self.ends_at_unix_ms)?,
            endpoints: BTreeSet::new(),
            labels: self.labels.clone(),
            reason: self.reason.clone(),
        })
    }
}

/// An instant as the coordinator stores it; windows before 1970 have no
/// use and cannot be stored.
pub fn unix_millis(ms: i64) -> Result<UnixMillis, String> {
    u64::try_from(ms)
        .map(UnixMillis)
        .map_err(|_| format!("invalid maintenance window: {} is before 1970", timefmt::format_rfc3339_ms(ms)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&timefmt::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor {
            expecting: "a duration such as 30s",
            parse: |text| timefmt::parse_duration(text).map(Dur),
        })
    }
}

/// Parses a scalar while it is being visited, so the YAML deserializer
/// puts the scalar's own line and column on the error.
struct TextVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for TextVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&timefmt::format_rfc3339_ms(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor {
            expecting: "an RFC 3339 time such as 2026-12-01T02:00:00Z",
            parse: |text| timefmt::parse_rfc3339_ms(text).map(Timestamp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
regions: [eu-west, us-east]
endpoints:
  - name: api
    url: https://api.example.com/health
    interval: 30s        # humantime
    timeout: 5s
    regions: [eu-west]
    public: true
    labels: {team: core}
    expect: {status: \"200-299\", body_contains: [\"ok\"]}
webhooks:
  - name: oncall
    url: https://hooks.example.com/x
    secret_env: ONCALL_SECRET   # or secret: \"…\"
    format: standard
maintenance:
  - start: 2026-12-01T02:00:00Z
    end: 2026-12-01T03:00:00Z
    reason: db upgrade
    endpoints: [api]
";

    #[test]
    fn the_documented_example_parses() {
        let desired = parse("mesh.yaml", EXAMPLE).unwrap().into_desired("mesh.yaml").unwrap();
        let endpoints = desired.endpoints.unwrap();
        let api = &endpoints[0].spec;
        assert_eq!((api.interval_ms, api.timeout_ms), (30_000, 5_000));
        assert_eq!(api.expect.status.as_deref(), Some("200-299"));
        assert_eq!(api.expect.body_contains, vec!["ok"]);
        assert!(!endpoints[0].paused_given);
        let webhooks = desired.webhooks.unwrap();
        assert_eq!(webhooks[0].secret, SecretSource::Env("ONCALL_SECRET".into()));
        assert_eq!(webhooks[0].spec.format, WebhookFormat::Standard);
        let windows = desired.maintenance.unwrap();
        assert_eq!(windows[0].starts_at_unix_ms, 1_796_090_400_000);
        assert_eq!(windows[0].endpoints, BTreeSet::from(["api".to_string()]));
        assert_eq!(desired.regions.unwrap().len(), 2);
    }

    /// (what, document, expected error text).
    const ERRORS: &[(&str, &str, &str)] = &[
        (
            "unknown field, with its position",
            "endpoints:\n  - name: api\n    url: https://x\n    intervall: 30s\n",
            "mesh.yaml:4:5: endpoints[0]: unknown field \"intervall\", expected one of \"name\", \"url\", \"interval\"",
        ),
        ("unknown top-level field", "regionz: [a]\n", "mesh.yaml:1:1: unknown field \"regionz\""),
        (
            "bad duration",
            "endpoints:\n  - name: api\n    url: https://x\n    interval: soon\n",
            "mesh.yaml:4:15: endpoints[0].interval: invalid duration \"soon\"",
        ),
        (
            "bad time",
            "maintenance:\n  - start: tomorrow\n    end: 2026-12-01T03:00:00Z\n",
            "mesh.yaml:2:12: maintenance[0].start: invalid time \"tomorrow\"",
        ),
        (
            "bad webhook format",
            "webhooks:\n  - name: w\n    url: https://x\n    secret: s\n    format: teams\n",
            "mesh.yaml:5:13: webhooks[0].format: unknown variant \"teams\", expected one of \"standard\", \"slack\", \"alertmanager\"",
        ),
        ("malformed YAML", "endpoints: [\n", "mesh.yaml:2:1: "),
        (
            "bad status list",
            "endpoints:\n  - name: api\n    url: https://x\n    expect: {status: abc}\n",
            "mesh.yaml:4:22: endpoints[0].expect.status: invalid expect-status: \"abc\"",
        ),
        ("wrong type", "regions: eu-west\n", "mesh.yaml:1:10: regions: invalid type: string \"eu-west\", expected a sequence"),
        ("missing field", "endpoints:\n  - name: api\n", "mesh.yaml:2:5: endpoints[0]: missing field \"url\""),
    ];

    #[test]
    fn syntax_errors_carry_line_and_column() {
        for (what, text, want) in ERRORS {
            let err = parse("mesh.yaml", text).unwrap_err();
            assert!(matches!(err, Error::DocumentSyntax { .. }), "{what}: {err:?}");
            let err = err.to_string();
            assert!(err.starts_with(want), "{what}:\n got: {err}\nwant: {want}…");
        }
    }

    #[test]
    fn semantic_errors_name_the_item() {
        for (text, want) in [
            (
                "endpoints:\n  - {name: api, url: https://x, interval: 5s, timeout: 5s}\n",
                "mesh.yaml: endpoints[0] (api): invalid timeout 5s: must be below the interval (5s)",
            ),
            (
                "endpoints:\n  - {name: api, url: https://x}\n  - {name: api, url: https://y}\n",
                "mesh.yaml: endpoints[1] (api): the name is used twice",
            ),
            ("regions: [eu, eu]\n", "mesh.yaml: regions[1]: region \"eu\" is listed twice"),
            (
                "webhooks:\n  - {name: w, url: https://x}\n",
                "mesh.yaml: webhooks[0] (w): a secret is required",
            ),
            (
                "maintenance:\n  - {start: 2026-12-01T03:00:00Z, end: 2026-12-01T02:00:00Z}\n",
                "mesh.yaml: maintenance[0]: invalid maintenance window: the end must be after the start",
            ),
        ] {
            let err = parse("mesh.yaml", text).unwrap().into_desired("mesh.yaml").unwrap_err().to_string();
            assert!(err.starts_with(want), "\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn defaults_and_omitted_sections() {
        let desired = parse("m.yaml", "endpoints:\n  - {name: api, url: https://x, interval: 4s}\n")
            .unwrap()
            .into_desired("m.yaml")
            .unwrap();
        assert_eq!(desired.regions, None, "an omitted section is not managed");
        assert_eq!(desired.endpoints.unwrap()[0].spec.timeout_ms, 2_000, "half of a short interval");
        assert_eq!(parse("m.yaml", "# nothing\n").unwrap(), Document::default());
        let status =
            parse("m.yaml", "endpoints:\n  - {name: a, url: https://x, expect: {status: 204}}\n").unwrap();
        assert_eq!(status.endpoints.unwrap()[0].expect.status.as_deref(), Some("204"));
    }
}
