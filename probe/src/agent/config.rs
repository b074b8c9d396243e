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
//! metrics_addr = "127.0.0.1:9465"
//! ```
//!
//! Every error names the file, the line and the key, like the
//! coordinator's: `probe.toml:3: unknown key "regoin" in the top level: did
//! you mean "region"? (…)`, `probe.toml:5: coordinators[1]: "ftp://x" must
//! start with https:// (or http:// with insecure = true)`. Loading is
//! [`vantage_core::config_text`]'s, shared with the coordinator; semantic
//! checks ([`Config::validate`]) report a key path, which it maps back to
//! its line.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vantage_core::config_text::{self, invalid, ConfigFile};
pub use vantage_core::diagnostics::Location;

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
    /// Where the agent serves its own metrics for Prometheus (`GET
    /// /metrics`, plain HTTP), as `IP:PORT`, such as `"127.0.0.1:9465"`.
    /// Absent (the default): not served. The port must be fixed (not 0):
    /// a scrape config names it.
    #[serde(default, deserialize_with = "optional_socket_addr")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Why a configuration was refused: the shared loader's error with this
/// file's [`Problem`]. Each message starts with `ORIGIN:LINE: ` when the
/// origin and line are known.
pub type ConfigError = config_text::ConfigError<Problem>;

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
    /// `metrics_addr` with port 0 (Prometheus could not know the port).
    #[error("{value} has port 0: give the fixed port Prometheus scrapes, such as 127.0.0.1:9465")]
    MetricsPortZero {
        /// The value.
        value: SocketAddr,
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
        config_text::parse_file(path, std::fs::read_to_string(path))
    }

    /// Parses and validates `text`; `origin` (usually the file name) starts
    /// every error message. Relative paths stay relative to the working
    /// directory.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        config_text::parse(text, origin)
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
        if let Some(addr) = self.metrics_addr {
            if addr.port() == 0 {
                return Err(invalid("metrics_addr", Problem::MetricsPortZero { value: addr }));
            }
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
}

impl ConfigFile for Config {
    type Problem = Problem;

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

    fn validate(&self) -> Result<(), ConfigError> {
        Config::validate(self)
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

fn optional_socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map(Some).map_err(|_| {
        D::Error::custom(format!(
            "invalid socket address {text:?}: expected IP:PORT, such as 127.0.0.1:9465 (a host name is not resolved)"
        ))
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
