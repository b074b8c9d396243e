//! `[export]` in `coordinator.toml`: where every measurement goes.
//!
//! ```toml
//! [export]                          # optional; these are the defaults
//! state_interval_ms = 15000         # agreed state sampled this often
//! flush_timeout_ms = 5000           # SIGTERM / leadership transfer flush bound
//!
//! [[export.remote_write]]           # Prometheus remote-write 1.0; repeatable
//! url = "http://127.0.0.1:9090/api/v1/write"
//! name = "prometheus"               # default: the URL's host:port
//! username = "vantage"              # basic auth (password too) ...
//! password = "secret"
//! # bearer_token = "…"              # ... or a bearer token, not both
//! ca_file = "tsdb-ca.pem"           # trusted besides the public roots
//! headers = { "X-Scope-OrgID" = "ops" }
//! queue_capacity = 100000           # samples held while the TSDB is slow
//! batch_size = 2000                 # samples per request, at most
//! max_batch_delay_ms = 1000         # a partial batch waits at most this
//! timeout_ms = 10000                # one request, connect to answer
//!
//! [[export.influx]]                 # InfluxDB line protocol; repeatable
//! url = "http://127.0.0.1:8086"
//! db = "vantage"                    # 1.x: /write?db=…&precision=ms
//! username = "vantage"              # 1.x: basic auth, optional
//! password = "secret"
//! # org = "ops"                     # 2.x instead: /api/v2/write?org=…&bucket=…
//! # bucket = "vantage"
//! # token = "…"                     # 2.x: Authorization: Token …
//! # name, ca_file, headers, queue_capacity, batch_size,
//! # max_batch_delay_ms, timeout_ms as for remote_write
//! ```
//!
//! Every key is checked before anything is bound; a URL that does not
//! parse is refused where it is written (`coordinator.toml:14:
//! export.remote_write[0].url: invalid URL "http//x": …`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Samples a target's queue holds by default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// Samples per request by default (Prometheus's own remote-write default
/// `max_samples_per_send` is 2000).
pub const DEFAULT_BATCH_SIZE: usize = 2_000;
/// How long a partial batch waits for more samples by default.
pub const DEFAULT_MAX_BATCH_DELAY_MS: u64 = 1_000;
/// One request's deadline by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// How often the agreed state is sampled by default.
pub const DEFAULT_STATE_INTERVAL_MS: u64 = 15_000;
/// How long SIGTERM and a leadership transfer wait for the queues to drain
/// by default.
pub const DEFAULT_FLUSH_TIMEOUT_MS: u64 = 5_000;
/// The most samples one result or state record turns into; a batch holds
/// at least this many so a record always fits.
pub const MIN_BATCH_SIZE: usize = 10;

/// `[export]`: the TSDB targets and their shared settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// `[[export.remote_write]]`: Prometheus remote-write 1.0 receivers
    /// (Prometheus with `--web.enable-remote-write-receiver`,
    /// VictoriaMetrics, Mimir, Thanos receive, …).
    pub remote_write: Vec<RemoteWriteConfig>,
    /// `[[export.influx]]`: InfluxDB 1.x or 2.x write APIs.
    pub influx: Vec<InfluxConfig>,
    /// How often the leader samples each endpoint's agreed state
    /// (`vantage_endpoint_state`, `vantage_endpoint_regions_down`), in
    /// milliseconds (1000 to 3600000). Samples are stamped on this grid,
    /// so a new leader sampling the same instant writes the same sample.
    /// Default 15000.
    pub state_interval_ms: u64,
    /// How long SIGTERM and a leadership transfer wait for every queue to
    /// be sent before going on, in milliseconds (100 to 60000). What is
    /// still queued at SIGTERM after this is counted as failed and logged.
    /// Default 5000.
    pub flush_timeout_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> ExportConfig {
        ExportConfig {
            remote_write: Vec::new(),
            influx: Vec::new(),
            state_interval_ms: DEFAULT_STATE_INTERVAL_MS,
            flush_timeout_ms: DEFAULT_FLUSH_TIMEOUT_MS,
        }
    }
}

/// One `[[export.remote_write]]` receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's write URL, used as is, e.g.
    /// `http://127.0.0.1:9090/api/v1/write` (Prometheus) or
    /// `http://127.0.0.1:8428/api/v1/write` (VictoriaMetrics). `http` or
    /// `https`.
    #[serde(deserialize_with = "http_url")]
    pub url: url::Url,
    /// The `sink` label of this target's metrics and logs. Default: the
    /// URL's `host:port`. Unique among all export targets.
    #[serde(default)]
    pub name: Option<String>,
    /// Extra request headers (e.g. a tenant header). The headers the
    /// protocol owns (`Content-Type`, `Content-Encoding`, `Content-Length`,
    /// `Host`, `X-Prometheus-Remote-Write-Version`, and `Authorization`
    /// when `username` or `bearer_token` is set) cannot be overridden.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Basic auth user name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password.
    #[serde(default)]
    pub password: Option<String>,
    /// `Authorization: Bearer …`; not with `username`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// A PEM file of CA certificates trusted for `https` besides the
    /// public roots. A relative path is relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Samples held while the receiver is slow or down (at least
    /// `batch_size`); past it the newest are dropped and counted.
    /// Default 100000.
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: usize,
    /// Samples per request, at most (10 to 100000). Default 2000.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// The longest a partial batch waits for more, in milliseconds (1 to
    /// 60000). Default 1000.
    #[serde(default = "defaults::max_batch_delay_ms")]
    pub max_batch_delay_ms: u64,
    /// One request's deadline, connection to answer, in milliseconds (100
    /// to 300000). Default 10000.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
}

/// One `[[export.influx]]` target: InfluxDB 1.x (`db`) or 2.x (`org` and
/// `bucket`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8086`; `/write` (1.x)
    /// or `/api/v2/write` (2.x) is appended to its path.
    #[serde(deserialize_with = "http_url")]
    pub url: url::Url,
    /// As for remote-write.
    #[serde(default)]
    pub name: Option<String>,
    /// 1.x: the database (created beforehand: `CREATE DATABASE …`).
    #[serde(default)]
    pub db: Option<String>,
    /// 1.x: the retention policy; default the database's default.
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// 1.x: user name (basic auth), optional.
    #[serde(default)]
    pub username: Option<String>,
    /// 1.x: password.
    #[serde(default)]
    pub password: Option<String>,
    /// 2.x: the organization.
    #[serde(default)]
    pub org: Option<String>,
    /// 2.x: the bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// 2.x: an API token with write access to the bucket.
    #[serde(default)]
    pub token: Option<String>,
    /// As for remote-write (`Content-Type`, `Content-Length`, `Host` and
    /// `Authorization` when credentials are set are the protocol's).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// As for remote-write.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// As for remote-write.
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: usize,
    /// As for remote-write (a sample is one field of a point).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// As for remote-write.
    #[serde(default = "defaults::max_batch_delay_ms")]
    pub max_batch_delay_ms: u64,
    /// As for remote-write.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
}

/// Which InfluxDB write API a target speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxApi {
    /// 1.x: `/write?db=…[&rp=…]&precision=ms`, basic auth.
    V1 {
        /// The database.
        db: String,
        /// The retention policy.
        retention_policy: Option<String>,
        /// User and password.
        credentials: Option<(String, String)>,
    },
    /// 2.x: `/api/v2/write?org=…&bucket=…&precision=ms`, token auth.
    V2 {
        /// The organization.
        org: String,
        /// The bucket.
        bucket: String,
        /// The token.
        token: Option<String>,
    },
}

/// What is wrong with `[export]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportProblem {
    /// A number outside its range.
    #[error("{value} is out of range: must be between {min} and {max}")]
    OutOfRange {
        /// The value.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The queue cannot hold one batch.
    #[error("{capacity} cannot hold one batch: must be at least batch_size ({batch_size})")]
    QueueBelowBatch {
        /// The capacity.
        capacity: usize,
        /// The batch size.
        batch_size: usize,
    },
    /// Two targets have one name.
    #[error("{name:?} is already the name of {first}; give each target its own name")]
    DuplicateName {
        /// The name.
        name: String,
        /// The key of the first target with it.
        first: String,
    },
    /// A name that cannot be a metric label value or log field.
    #[error("{name:?}: names are 1 to 64 characters of letters, digits and '_', '.', '-', ':'")]
    BadName {
        /// The name.
        name: String,
    },
    /// Both kinds of credentials.
    #[error("use basic auth (username, password) or bearer_token, not both")]
    BothAuth,
    /// A password without a user or the other way round.
    #[error("basic auth needs both username and password")]
    HalfBasicAuth,
    /// Neither or both InfluxDB versions' keys.
    #[error(
        "say which InfluxDB API to write to: db (1.x) or org and bucket (2.x), not both and not neither"
    )]
    InfluxVersion,
    /// A key of the other InfluxDB version.
    #[error("{key} is for InfluxDB {version} targets; this one is {other}")]
    InfluxKeyOfOtherVersion {
        /// The key.
        key: &'static str,
        /// The version it belongs to.
        version: &'static str,
        /// The target's version.
        other: &'static str,
    },
    /// A required key is empty.
    #[error("must not be empty")]
    Empty,
    /// A header that cannot be sent.
    #[error("{name:?} cannot be sent as a header: {reason}")]
    BadHeader {
        /// The header name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A header the protocol sets.
    #[error("{name:?} is set by the protocol and cannot be overridden")]
    ReservedHeader {
        /// The header name.
        name: String,
    },
    /// The CA file is not a readable file of PEM certificates.
    #[error("{path:?}: {reason}")]
    BadCaFile {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One target's settings as the sink needs them, whatever its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSettings {
    /// The `sink` label.
    pub name: String,
    /// The queue's capacity in samples.
    pub queue_capacity: usize,
    /// Samples per request, at most.
    pub batch_size: usize,
    /// How long a partial batch waits.
    pub max_batch_delay: Duration,
    /// One request's deadline.
    pub timeout: Duration,
    /// Extra roots for `https`.
    pub ca_file: Option<PathBuf>,
}

impl ExportConfig {
    /// Whether any target is configured.
    pub fn is_empty(&self) -> bool {
        self.remote_write.is_empty() && self.influx.is_empty()
    }

    /// Every check that needs no I/O but the CA files' reading: ranges,
    /// names, credentials, headers, the InfluxDB version. Errors carry the
    /// key path (`export.influx[1].db`).
    pub fn validate(&self) -> Result<(), (String, ExportProblem)> {
        range("export.state_interval_ms", self.state_interval_ms, 1_000, 3_600_000)?;
        range("export.flush_timeout_ms", self.flush_timeout_ms, 100, 60_000)?;
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for (i, target) in self.remote_write.iter().enumerate() {
            let at = format!("export.remote_write[{i}]");
            let settings = target.settings();
            validate_common(&at, &settings, target.name.is_some(), &mut names)?;
            if target.bearer_token.is_some() && (target.username.is_some() || target.password.is_some()) {
                return Err((format!("{at}.bearer_token"), ExportProblem::BothAuth));
            }
            if target.username.is_some() != target.password.is_some() {
                // Named where it is written: the half that is there.
                let key = if target.username.is_some() { "username" } else { "password" };
                return Err((format!("{at}.{key}"), ExportProblem::HalfBasicAuth));
            }
            let authorized = target.username.is_some() || target.bearer_token.is_some();
            validate_headers(&at, &target.headers, REMOTE_WRITE_HEADERS, authorized)?;
        }
        for (i, target) in self.influx.iter().enumerate() {
            let at = format!("export.influx[{i}]");
            let settings = target.settings();
            validate_common(&at, &settings, target.name.is_some(), &mut names)?;
            let api = target.api().map_err(|(key, problem)| (format!("{at}{key}"), problem))?;
            let authorized = match &api {
                InfluxApi::V1 { credentials, .. } => credentials.is_some(),
                InfluxApi::V2 { token, .. } => token.is_some(),
            };
            validate_headers(&at, &target.headers, INFLUX_HEADERS, authorized)?;
        }
        Ok(())
    }

    /// Resolves the CA files' relative paths against `base`.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        let files = self
            .remote_write
            .iter_mut()
            .map(|t| &mut t.ca_file)
            .chain(self.influx.iter_mut().map(|t| &mut t.ca_file));
        for file in files.flatten() {
            if file.is_relative() && !file.as_os_str().is_empty() {
                *file = base.join(&*file);
            }
        }
    }

    /// How often the agreed state is sampled.
    pub fn state_interval(&self) -> Duration {
        Duration::from_millis(self.state_interval_ms)
    }

    /// The flush bound.
    pub fn flush_timeout(&self) -> Duration {
        Duration::from_millis(self.flush_timeout_ms)
    }
}

impl RemoteWriteConfig {
    /// A target at `url` with every default (dev mode's `--remote-write`).
    pub fn at(url: url::Url) -> RemoteWriteConfig {
        RemoteWriteConfig {
            url,
            name: None,
            headers: BTreeMap::new(),
            username: None,
            password: None,
            bearer_token: None,
            ca_file: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            batch_size: DEFAULT_BATCH_SIZE,
            max_batch_delay_ms: DEFAULT_MAX_BATCH_DELAY_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// The protocol-independent settings.
    pub fn settings(&self) -> TargetSettings {
        settings(
            &self.url,
            self.name.as_deref(),
            self.queue_capacity,
            self.batch_size,
            self.max_batch_delay_ms,
            self.timeout_ms,
            &self.ca_file,
        )
    }
}

impl InfluxConfig {
    /// A target with every default, its API read from the URL's query
    /// (dev mode's `--influx`): `?db=NAME[&u=USER&p=PASSWORD]` for 1.x,
    /// `?org=ORG&bucket=BUCKET[&token=TOKEN]` for 2.x; neither means 1.x
    /// with database `vantage`. The query is removed from the base URL.
    pub fn from_url(mut url: url::Url) -> InfluxConfig {
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        url.set_query(None);
        let get = |key: &str| query.get(key).cloned();
        let v2 = query.contains_key("org") || query.contains_key("bucket");
        InfluxConfig {
            url,
            name: None,
            db: if v2 { None } else { Some(get("db").unwrap_or_else(|| "vantage".into())) },
            retention_policy: get("rp"),
            username: get("u"),
            password: get("p"),
            org: get("org"),
            bucket: get("bucket"),
            token: get("token"),
            headers: BTreeMap::new(),
            ca_file: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            batch_size: DEFAULT_BATCH_SIZE,
            max_batch_delay_ms: DEFAULT_MAX_BATCH_DELAY_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// The protocol-independent settings.
    pub fn settings(&self) -> TargetSettings {
        settings(
            &self.url,
            self.name.as_deref(),
            self.queue_capacity,
            self.batch_size,
            self.max_batch_delay_ms,
            self.timeout_ms,
            &self.ca_file,
        )
    }

    /// The API version and its parameters, or the key (`.db`, …, relative
    /// to the target) that is wrong.
    pub fn api(&self) -> Result<InfluxApi, (String, ExportProblem)> {
        let nonempty = |key: &'static str, value: &Option<String>| match value {
            Some(v) if v.is_empty() => Err((format!(".{key}"), ExportProblem::Empty)),
            _ => Ok(()),
        };
        for (key, value) in [("db", &self.db), ("org", &self.org), ("bucket", &self.bucket)] {
            nonempty(key, value)?;
        }
        let v1 = self.db.is_some();
        let v2 = self.org.is_some() || self.bucket.is_some();
        if v1 == v2 {
            return Err((String::new(), ExportProblem::InfluxVersion));
        }
        let other = |key: &'static str, version: &'static str, other: &'static str| {
            (format!(".{key}"), ExportProblem::InfluxKeyOfOtherVersion { key, version, other })
        };
        if v1 {
            if self.token.is_some() {
                return Err(other("token", "2.x", "1.x (db)"));
            }
            if self.username.is_some() != self.password.is_some() {
                let key = if self.username.is_some() { ".username" } else { ".password" };
                return Err((key.to_string(), ExportProblem::HalfBasicAuth));
            }
            let credentials = self.username.clone().zip(self.password.clone());
            Ok(InfluxApi::V1 {
                db: self.db.clone().unwrap_or_default(),
                retention_policy: self.retention_policy.clone(),
                credentials,
            })
        } else {
            for (key, set) in [
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("retention_policy", self.retention_policy.is_some()),
            ] {
                if set {
                    return Err(other(key, "1.x", "2.x (org and bucket)"));
                }
            }
            let (Some(org), Some(bucket)) = (self.org.clone(), self.bucket.clone()) else {
                let key = if self.org.is_none() { ".org" } else { ".bucket" };
                return Err((key.to_string(), ExportProblem::InfluxVersion));
            };
            Ok(InfluxApi::V2 { org, bucket, token: self.token.clone() })
        }
    }
}

/// Headers remote-write sets itself.
const REMOTE_WRITE_HEADERS: &[&str] =
    &["content-type", "content-encoding", "content-length", "host", "x-prometheus-remote-write-version"];
/// Headers the InfluxDB writer sets itself.
const INFLUX_HEADERS: &[&str] = &["content-type", "content-length", "host"];

fn settings(
    url: &url::Url,
    name: Option<&str>,
    queue_capacity: usize,
    batch_size: usize,
    max_batch_delay_ms: u64,
    timeout_ms: u64,
    ca_file: &Option<PathBuf>,
) -> TargetSettings {
    let name = match name {
        Some(name) => name.to_string(),
        None => {
            let host = url.host_str().unwrap_or("target");
            match url.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }
        }
    };
    TargetSettings {
        name,
        queue_capacity,
        batch_size,
        max_batch_delay: Duration::from_millis(max_batch_delay_ms),
        timeout: Duration::from_millis(timeout_ms),
        ca_file: ca_file.clone(),
    }
}

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), (String, ExportProblem)> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err((key.to_string(), ExportProblem::OutOfRange { value, min, max }))
    }
}

fn validate_common(
    at: &str,
    settings: &TargetSettings,
    named: bool,
    names: &mut BTreeMap<String, String>,
) -> Result<(), (String, ExportProblem)> {
    let name_key = if named { format!("{at}.name") } else { format!("{at}.url") };
    let name = &settings.name;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b));
    if !name_ok {
        return Err((name_key, ExportProblem::BadName { name: name.clone() }));
    }
    if let Some(first) = names.get(name) {
        let problem = ExportProblem::DuplicateName { name: name.clone(), first: first.clone() };
        return Err((name_key, problem));
    }
    names.insert(name.clone(), at.to_string());
    range(&format!("{at}.batch_size"), settings.batch_size as u64, MIN_BATCH_SIZE as u64, 100_000)?;
    if settings.queue_capacity < settings.batch_size {
        let problem = ExportProblem::QueueBelowBatch {
            capacity: settings.queue_capacity,
            batch_size: settings.batch_size,
        };
        return Err((format!("{at}.queue_capacity"), problem));
    }
    range(&format!("{at}.queue_capacity"), settings.queue_capacity as u64, 1, 100_000_000)?;
    range(&format!("{at}.max_batch_delay_ms"), millis(settings.max_batch_delay), 1, 60_000)?;
    range(&format!("{at}.timeout_ms"), millis(settings.timeout), 100, 300_000)?;
    if let Some(path) = &settings.ca_file {
        if let Err(reason) = read_ca_file(path) {
            return Err((format!("{at}.ca_file"), ExportProblem::BadCaFile { path: path.clone(), reason }));
        }
    }
    Ok(())
}

fn validate_headers(
    at: &str,
    headers: &BTreeMap<String, String>,
    reserved: &[&str],
    authorized: bool,
) -> Result<(), (String, ExportProblem)> {
    for (name, value) in headers {
        let key = format!("{at}.headers.{name}");
        let bad = |reason: String| (key.clone(), ExportProblem::BadHeader { name: name.clone(), reason });
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?;
        let lower = name.to_ascii_lowercase();
        if reserved.contains(&lower.as_str()) || (authorized && lower == "authorization") {
            return Err((key, ExportProblem::ReservedHeader { name: name.clone() }));
        }
    }
    Ok(())
}

/// The certificates of a PEM file, or why there are none.
pub fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let text = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)".into());
    }
    Ok(certs)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An `http`/`https` URL with a host, or an error naming the text.
fn http_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<url::Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_http_url(&text).map_err(D::Error::custom)
}

/// Parses an export URL: `http` or `https`, with a host.
pub fn parse_http_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("invalid URL {text:?}: {e} (expected e.g. http://127.0.0.1:9090/api/v1/write)")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid URL {text:?}: the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    Ok(url)
}

mod defaults {
    pub(super) fn queue_capacity() -> usize {
        super::DEFAULT_QUEUE_CAPACITY
    }
    pub(super) fn batch_size() -> usize {
        super::DEFAULT_BATCH_SIZE
    }
    pub(super) fn max_batch_delay_ms() -> u64 {
        super::DEFAULT_MAX_BATCH_DELAY_MS
    }
    pub(super) fn timeout_ms() -> u64 {
        super::DEFAULT_TIMEOUT_MS
    }
}
