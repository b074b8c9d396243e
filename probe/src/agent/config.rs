//! The probe agent's configuration file (`vantage-probe run --config
//! probe.toml`): typed, and validated before anything connects.
//!
//! ```toml
//! probe_id = "eu-1"
//! region = "eu-west"
//! coordinators = ["https://10.0.0.1:7400", "https://10.0.0.2:7400"]
//! token_file = "probe.token"
//! ca_file = "ca.pem"            # or: insecure = true (http:// coordinators)
//! weight = 100
//! max_concurrency = 256
//! resolvers = ["1.1.1.1:53"]
//! spool_dir = "/var/lib/vantage-probe/spool"
//! orphan_ttl = "10m"
//! canary_urls = ["https://example.com/"]
//! canary_interval = "10s"
//! ```
//!
//! Every error names the file, the line and the key, like the
//! coordinator's: `probe.toml:3: unknown key "regoin" in the top level: did
//! you mean "region"? (…)`, `probe.toml:5: coordinators[1]: "ftp://x" must
//! start with https:// (or http:// with insecure = true)`. Semantic checks
//! ([`Config::validate`]) report a key path that [`Config::parse`] maps back
//! to its line.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use vantage_core::diagnostics::Location;
use vantage_core::diagnostics::{backticked, line_of, suggestion};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The lowest and highest sharding weight the coordinator accepts
/// (`Hello.weight`).
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// The whole configuration of one probe agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The probe's registered name (`vantagectl probe token create --probe
    /// NAME`): 1 to 64 characters of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.`.
    pub probe_id: String,
    /// The region the probe runs in; must equal its token's region, or the
    /// coordinator refuses the stream. Same character set as `probe_id`.
    pub region: String,
    /// The coordinators' API addresses (`https://HOST:PORT`, or
    /// `http://HOST:PORT` with `insecure = true`). Any one of them is enough:
    /// followers redirect to the leader, and the leader's `Welcome` lists
    /// every coordinator for later reconnects.
    pub coordinators: Vec<String>,
    /// The file holding the probe's bearer token (one line, from `vantagectl
    /// probe token create`). Sent as `authorization: Bearer …` metadata. A
    /// relative path is relative to the config file's directory.
    pub token_file: PathBuf,
    /// The coordinator cluster's CA certificate (PEM). It is the only CA
    /// trusted for coordinator connections (pinned). Required unless
    /// `insecure = true`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Plaintext (`http://`) connections to the coordinators: the token
    /// travels unencrypted. Dev mode and tests only. Cannot be combined with
    /// `ca_file`. Default false.
    #[serde(default)]
    pub insecure: bool,
    /// Relative capacity for sharding, 1 to 1000: a probe of weight 200 gets
    /// about twice the endpoints of one of weight 100 in its region. Default
    /// 100, so weights can go both up and down from the default.
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// How many checks run at once, at least 1. A check waiting for a slot
    /// past its start is late, and its lag is reported. Default 256.
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: usize,
    /// DNS servers the checks ask, as `IP:PORT`; empty (the default) uses
    /// the system's (`/etc/resolv.conf`).
    #[serde(default, deserialize_with = "socket_addrs")]
    pub resolvers: Vec<SocketAddr>,
    /// Where unacknowledged results are kept on disk, so a probe restart
    /// loses none. Created when missing. Absent (the default): memory only.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// How long the probe keeps checking its last assignment while it
    /// cannot reach any coordinator (results are spooled). After this it
    /// stops checking until it reconnects, because its endpoints have
    /// likely moved to other probes. A duration such as `"10m"`; default 10
    /// minutes.
    #[serde(default = "defaults::orphan_ttl", deserialize_with = "duration")]
    pub orphan_ttl: Duration,
    /// URLs the probe checks to judge its own network (self-health). While
    /// more than half of them fail, the probe's results are marked
    /// `probe_unhealthy` and its region's verdicts become Unknown. Default
    /// none (never marked). They may point at private addresses.
    #[serde(default)]
    pub canary_urls: Vec<String>,
    /// How often the canaries are checked, at least 1s. Default `"10s"`.
    #[serde(default = "defaults::canary_interval", deserialize_with = "duration")]
    pub canary_interval: Duration,
}

/// Why a configuration was refused. Each message starts with
/// `ORIGIN:LINE: ` when the origin and line are known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The text is not valid TOML.
    #[error("{at}invalid TOML: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// The parser's description.
        message: String,
    },
    /// A key the configuration does not have (a typo, usually).
    #[error("{at}unknown key \"{key}\" in the top level{} (expected one of {})", suggestion(key, expected), expected.join(", "))]
    UnknownKey {
        /// Where.
        at: Location,
        /// The key as written.
        key: String,
        /// The keys accepted.
        expected: Vec<String>,
    },
    /// A required key is absent.
    #[error("{at}missing key \"{key}\" in the top level")]
    MissingKey {
        /// Where (none: the top level has no line).
        at: Location,
        /// The missing key.
        key: String,
    },
    /// A value of the wrong type or form.
    #[error("{at}{key}: {message}")]
    InvalidValue {
        /// Where.
        at: Location,
        /// The key, e.g. `resolvers`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Values that parse but do not make a valid configuration.
    #[error("{at}{key}: {problem}")]
    Invalid {
        /// Where (empty when [`Config::validate`] runs on a value built in
        /// code).
        at: Location,
        /// The key's path, e.g. `coordinators[1]`.
        key: String,
        /// What is wrong (boxed: keeps `Result<_, ConfigError>` small).
        problem: Box<Problem>,
    },
}

/// A semantic problem found by [`Config::validate`].
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A name is empty, too long or has other characters.
    #[error("{value:?} must be 1 to 64 characters of a-z, A-Z, 0-9, '-', '_', '.'")]
    BadName {
        /// The value.
        value: String,
    },
    /// No coordinator listed.
    #[error("list at least one coordinator API address, such as \"https://10.0.0.1:7400\"")]
    NoCoordinators,
    /// A coordinator address that is not a usable URL.
    #[error("{value:?} must be {expected}")]
    BadAddress {
        /// The value.
        value: String,
        /// The form required.
        expected: &'static str,
    },
    /// Neither TLS with a CA nor plaintext chosen.
    #[error("set ca_file to the coordinator CA (PEM), or insecure = true for plaintext http://")]
    TlsUnset,
    /// Plaintext and a CA together.
    #[error("insecure = true cannot be combined with ca_file: remove one or the other")]
    TlsConflict,
    /// A number out of its range.
    #[error("{value} is out of range ({range})")]
    OutOfRange {
        /// The value.
        value: u64,
        /// The range allowed.
        range: &'static str,
    },
    /// A canary URL that is not a valid check target.
    #[error("{reason}")]
    BadCanary {
        /// Why.
        reason: String,
    },
    /// A file the configuration names cannot be read.
    #[error("cannot read {path:?}: {source}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A path that must be a directory (or absent) is something else.
    #[error("{path:?} exists but is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
}

impl Config {
    /// Reads, parses and validates the file at `path`. Relative paths in it
    /// are resolved against the file's directory before validation.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: origin.clone(), source })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        parse_in(&text, &origin, base)
    }

    /// Parses and validates `text`; `origin` (usually the file name) starts
    /// every error message. Relative paths stay relative to the working
    /// directory.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        parse_in(text, origin, None)
    }

    /// Checks everything that can be checked before connecting: names,
    /// coordinator addresses and their scheme against `insecure`, TLS
    /// choice, ranges, canary URLs, and that `token_file` and `ca_file` can
    /// be read. Returns the first problem, as [`ConfigError::Invalid`]
    /// without a location.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_name("probe_id", &self.probe_id)?;
        check_name("region", &self.region)?;
        match (self.insecure, &self.ca_file) {
            (false, None) => return Err(invalid("ca_file", Problem::TlsUnset)),
            (true, Some(_)) => return Err(invalid("insecure", Problem::TlsConflict)),
            _ => {}
        }
        if self.coordinators.is_empty() {
            return Err(invalid("coordinators", Problem::NoCoordinators));
        }
        for (i, address) in self.coordinators.iter().enumerate() {
            normalize_address(address, self.insecure)
                .map_err(|problem| invalid(format!("coordinators[{i}]"), problem))?;
        }
        if !WEIGHT_RANGE.contains(&self.weight) {
            return Err(invalid(
                "weight",
                Problem::OutOfRange { value: self.weight.into(), range: "1..=1000" },
            ));
        }
        if self.max_concurrency == 0 || self.max_concurrency > 100_000 {
            let value = self.max_concurrency as u64;
            return Err(invalid("max_concurrency", Problem::OutOfRange { value, range: "1..=100000" }));
        }
        if self.orphan_ttl < Duration::from_secs(1) {
            let value = self.orphan_ttl.as_secs();
            return Err(invalid("orphan_ttl", Problem::OutOfRange { value, range: "at least 1s" }));
        }
        if self.canary_interval < Duration::from_secs(1) {
            let value = self.canary_interval.as_secs();
            return Err(invalid("canary_interval", Problem::OutOfRange { value, range: "at least 1s" }));
        }
        for (i, url) in self.canary_urls.iter().enumerate() {
            vantage_core::spec::CheckSpec::parse(url).map_err(|e| {
                invalid(format!("canary_urls[{i}]"), Problem::BadCanary { reason: e.to_string() })
            })?;
        }
        readable("token_file", &self.token_file)?;
        if let Some(ca) = &self.ca_file {
            readable("ca_file", ca)?;
        }
        if let Some(dir) = &self.spool_dir {
            if dir.exists() && !dir.is_dir() {
                return Err(invalid("spool_dir", Problem::NotADirectory { path: dir.clone() }));
            }
        }
        Ok(())
    }

    /// The coordinator addresses as URLs with a scheme (validated).
    pub fn coordinator_urls(&self) -> Vec<String> {
        self.coordinators.iter().filter_map(|a| normalize_address(a, self.insecure).ok()).collect()
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.token_file);
        if let Some(ca) = &mut self.ca_file {
            join(ca);
        }
        if let Some(dir) = &mut self.spool_dir {
            join(dir);
        }
    }
}

/// Turns a coordinator address into a URL the agent connects to: `https://`
/// (or `http://` when `insecure`), host and port, nothing else. A bare
/// `HOST:PORT` (as a `Redirect` or `Welcome` may carry) gets the scheme the
/// configuration implies.
pub fn normalize_address(address: &str, insecure: bool) -> Result<String, Problem> {
    let (scheme, expected) = if insecure {
        ("http", "http://HOST:PORT (insecure = true is set)")
    } else {
        ("https", "https://HOST:PORT (or http:// with insecure = true)")
    };
    let bad = || Problem::BadAddress { value: address.to_string(), expected };
    let text = address.trim();
    let with_scheme = if text.contains("://") { text.to_string() } else { format!("{scheme}://{text}") };
    let url = url::Url::parse(&with_scheme).map_err(|_| bad())?;
    if url.scheme() != scheme || url.host_str().is_none() || url.port().is_none() {
        return Err(bad());
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(bad());
    }
    let host = url.host_str().unwrap_or_default();
    Ok(format!("{scheme}://{host}:{}", url.port().unwrap_or_default()))
}

mod defaults {
    use std::time::Duration;

    pub(super) fn weight() -> u32 {
        100
    }

    pub(super) fn max_concurrency() -> usize {
        256
    }

    pub(super) fn orphan_ttl() -> Duration {
        Duration::from_secs(600)
    }

    pub(super) fn canary_interval() -> Duration {
        Duration::from_secs(10)
    }
}

impl ConfigError {
    /// The location, for errors that have one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::UnknownKey { at, .. }
            | ConfigError::MissingKey { at, .. }
            | ConfigError::InvalidValue { at, .. }
            | ConfigError::Invalid { at, .. } => Some(at),
        }
    }
}

fn invalid(key: impl Into<String>, problem: Problem) -> ConfigError {
    ConfigError::Invalid { at: Location::default(), key: key.into(), problem: Box::new(problem) }
}

fn check_name(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(key, Problem::BadName { value: value.to_string() }))
    }
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| invalid(key, Problem::Unreadable { path: path.to_path_buf(), source }))
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        D::Error::custom(format!("invalid duration {text:?} ({e}): write it like \"10m\" or \"30s\""))
    })
}

fn socket_addrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            text.parse().map_err(|_| {
                D::Error::custom(format!(
                    "invalid socket address {text:?}: expected IP:PORT, such as 1.1.1.1:53"
                ))
            })
        })
        .collect()
}

fn parse_in(text: &str, origin: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let at = |line| Location { origin: Some(origin.into()), line };
    let document = toml::de::DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        at: at(e.span().map(|s| line_of(text, s.start))),
        message: e.message().to_string(),
    })?;
    let keys = KeyIndex::new(text, document.get_ref());
    let mut config: Config = toml::from_str(text).map_err(|e| keys.explain(&e, origin))?;
    if let Some(base) = base {
        config.resolve_paths(base);
    }
    config.validate().map_err(|e| match e {
        ConfigError::Invalid { key, problem, .. } => {
            ConfigError::Invalid { at: at(keys.line_of_path(&key)), key, problem }
        }
        other => other,
    })?;
    Ok(config)
}

/// The top-level keys written in the document with their spans (the file
/// has no tables), so serde errors (a span) and semantic errors (a key path)
/// both become a key and a line.
struct KeyIndex<'t> {
    text: &'t str,
    entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl<'t> KeyIndex<'t> {
    fn new(text: &'t str, root: &toml::de::DeTable<'_>) -> KeyIndex<'t> {
        let entries = root.iter().map(|(k, v)| (k.get_ref().to_string(), k.span(), v.span())).collect();
        KeyIndex { text, entries }
    }

    fn explain(&self, error: &toml::de::Error, origin: &str) -> ConfigError {
        let message = error.message();
        let entry = error.span().and_then(|span| {
            self.entries
                .iter()
                .find(|(_, key, value)| *key == span || (value.start <= span.start && span.end <= value.end))
        });
        let at = Location {
            origin: Some(origin.into()),
            line: entry
                .map(|(_, key, _)| line_of(self.text, key.start))
                .or_else(|| error.span().map(|s| line_of(self.text, s.start))),
        };
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let names = backticked(rest);
            let key = names.first().cloned().unwrap_or_default();
            return ConfigError::UnknownKey {
                at,
                key,
                expected: names.get(1..).unwrap_or_default().to_vec(),
            };
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            let key = backticked(rest).into_iter().next().unwrap_or_default();
            return ConfigError::MissingKey { at: Location { origin: Some(origin.into()), line: None }, key };
        }
        let key = entry.map(|(k, _, _)| k.clone()).unwrap_or_default();
        ConfigError::InvalidValue { at, key, message: message.to_string() }
    }

    fn line_of_path(&self, path: &str) -> Option<usize> {
        let top = path.split(['[', '.']).next().unwrap_or(path);
        let (_, key, value) = self.entries.iter().find(|(k, _, _)| k == top)?;
        // `coordinators[1]`: the line of that element when the array spans
        // several lines.
        let element = path
            .strip_prefix(top)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok());
        match element {
            Some(i) => {
                Some(nth_element_line(self.text, value, i).unwrap_or_else(|| line_of(self.text, key.start)))
            }
            None => Some(line_of(self.text, key.start)),
        }
    }
}

/// The line of the `index`th string in an array value (the agent's arrays
/// hold strings without commas or brackets, so counting quotes is enough).
fn nth_element_line(text: &str, value: &Range<usize>, index: usize) -> Option<usize> {
    let slice = text.get(value.clone())?;
    let offset = slice.match_indices('"').nth(index * 2).map(|(i, _)| i)?;
    Some(line_of(text, value.start + offset))
}
