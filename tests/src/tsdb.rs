//! Real time-series databases for the export suite, from Debian's
//! packages (`prometheus`, `victoria-metrics`, `influxdb`), each with its
//! own temporary directory and free loopback ports, killed on drop; and
//! [`LineReceiver`], an InfluxDB-compatible write endpoint that keeps
//! every line it is sent (the reference the servers are compared with).
//!
//! Every server is read back through its own query API, raw samples only:
//! Prometheus `query` with a range selector, VictoriaMetrics
//! `/api/v1/export` (after `/internal/force_flush`), InfluxDB `SELECT … GROUP
//! BY *`. All come back as [`Samples`]: series (metric name and labels) →
//! `(timestamp ms, value)` in time order, InfluxDB fields mapped to the
//! Prometheus names Vantage exports (the `state` field of
//! `vantage_endpoint` as the seven `vantage_endpoint_state{state}` series).
//!
//! [`debian_binary`] finds a server's binary; when it is missing the test
//! fails under `CI=true` and is skipped (with how to install it) elsewhere.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;

use crate::process::{free_ports, ChildGuard};

/// A series: metric name and labels (without `__name__`).
pub type SeriesKey = (String, BTreeMap<String, String>);
/// Series → samples `(timestamp ms, value)`, oldest first.
pub type Samples = BTreeMap<SeriesKey, Vec<(i64, f64)>>;

/// The first of `candidates` that exists, or `None` (skip) when none does;
/// under `CI=true` a missing binary fails the test.
pub fn debian_binary(candidates: &[&str], package: &str) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().map(Path::new).find(|p| p.is_file()) {
        return Some(found.to_path_buf());
    }
    let how = format!("install it with: apt-get install {package}");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{package} is missing; {how}");
    eprintln!("skipping: {package} not found ({how})");
    None
}

/// How long a server may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A server process, restartable with the same arguments and ports.
struct Server {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<ChildGuard>,
}

impl Server {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command.args(&self.args).current_dir(&self.dir);
        let log = self.dir.join(format!("{}.log", self.name));
        self.child = Some(ChildGuard::spawn(self.name, command, &log)?);
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default()
    }

    /// Polls `path` on `port` until it answers `status`.
    fn wait_ready(&self, port: u16, path: &str, status: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if matches!(http(port, "GET", path, b""), Ok((s, _)) if s == status) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} not ready within {READY_WITHIN:?}; its log:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Prometheus with its remote-write receiver on.
pub struct Prometheus {
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus (`--web.enable-remote-write-receiver`, its own
    /// storage, nothing scraped); `None` when it is not installed.
    pub fn start() -> anyhow::Result<Option<Prometheus>> {
        Prometheus::start_with("")
    }

    /// [`Prometheus::start`] with `tsdb` as the config's `storage.tsdb`
    /// block (e.g. `out_of_order_time_window: 10m`, which accepts the
    /// samples a new Vantage leader resends after a failover).
    pub fn start_with(tsdb: &str) -> anyhow::Result<Option<Prometheus>> {
        let Some(binary) = debian_binary(&["/usr/bin/prometheus"], "prometheus") else { return Ok(None) };
        let dir = tempfile::tempdir()?;
        let port = free_ports(1)?[0];
        let storage =
            if tsdb.is_empty() { String::new() } else { format!("storage:\n  tsdb:\n    {tsdb}\n") };
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!("global:\n  scrape_interval: 1h\n{storage}"),
        )?;
        let args = vec![
            "--config.file=prometheus.yml".to_string(),
            "--storage.tsdb.path=data".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".to_string(),
        ];
        let mut server =
            Server { name: "prometheus", binary, args, dir: dir.path().to_path_buf(), child: None };
        server.spawn()?;
        server.wait_ready(port, "/-/ready", 200)?;
        Ok(Some(Prometheus { server, port, _dir: dir }))
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// The raw samples of every series `selector` matches in the last hour
    /// (a range query: no staleness handling, no interpolation).
    pub fn samples(&self, selector: &str) -> anyhow::Result<Samples> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 60;
        let path = format!("/api/v1/query?query={}&time={now}", encode(&format!("{selector}[1h]")));
        let (status, body) = http(self.port, "GET", &path, b"")?;
        ensure!(status == 200, "prometheus answered {status}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body)?;
        let mut out = Samples::new();
        for series in v["data"]["result"].as_array().context("no result")? {
            let key = key_of(&series["metric"])?;
            let values = series["values"].as_array().context("no values")?;
            let samples = out.entry(key).or_default();
            for pair in values {
                let ts = (pair[0].as_f64().context("ts")? * 1000.0).round() as i64;
                let value: f64 = pair[1].as_str().context("value")?.parse()?;
                samples.push((ts, value));
            }
        }
        Ok(out)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// VictoriaMetrics single-node, deduplicating samples of one series with
/// one timestamp (`-dedup.minScrapeInterval=1ms`), as an HA setup that
/// receives resends must.
pub struct VictoriaMetrics {
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    /// Starts it; `None` when it is not installed.
    pub fn start() -> anyhow::Result<Option<VictoriaMetrics>> {
        let Some(binary) = debian_binary(&["/usr/bin/victoria-metrics"], "victoria-metrics") else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let port = free_ports(1)?[0];
        let args = vec![
            "-storageDataPath=data".to_string(),
            format!("-httpListenAddr=127.0.0.1:{port}"),
            "-dedup.minScrapeInterval=1ms".to_string(),
            "-search.disableCache".to_string(),
            "-retentionPeriod=100y".to_string(),
        ];
        let mut server =
            Server { name: "victoria-metrics", binary, args, dir: dir.path().to_path_buf(), child: None };
        server.spawn()?;
        server.wait_ready(port, "/health", 200)?;
        Ok(Some(VictoriaMetrics { server, port, _dir: dir }))
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Stops it with SIGTERM (it flushes what it holds in memory: after a
    /// SIGKILL it loses up to several seconds of samples it had already
    /// acknowledged, which no sender can know about).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.server.child.take() {
            child.terminate(Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.server.spawn()?;
        self.server.wait_ready(self.port, "/health", 200)
    }

    /// The raw samples of every series `selector` matches.
    pub fn samples(&self, selector: &str) -> anyhow::Result<Samples> {
        let (status, _) = http(self.port, "GET", "/internal/force_flush", b"")?;
        ensure!(status == 200, "force_flush answered {status}");
        let path = format!("/api/v1/export?match[]={}", encode(selector));
        let (status, body) = http(self.port, "GET", &path, b"")?;
        ensure!(status == 200, "victoria-metrics answered {status}: {}", String::from_utf8_lossy(&body));
        let mut out = Samples::new();
        for line in String::from_utf8(body)?.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            let key = key_of(&v["metric"])?;
            let values = v["values"].as_array().context("values")?;
            let stamps = v["timestamps"].as_array().context("timestamps")?;
            let samples = out.entry(key).or_default();
            for (value, ts) in values.iter().zip(stamps) {
                samples.push((ts.as_i64().context("ts")?, value.as_f64().context("value")?));
            }
            samples.sort_by_key(|s| s.0);
        }
        Ok(out)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// InfluxDB 1.x.
pub struct Influx {
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Influx {
    /// Starts `influxd` with a config of its own (free ports, storage in
    /// its temporary directory, no reporting) and creates `db`; `None`
    /// when it is not installed.
    pub fn start(db: &str) -> anyhow::Result<Option<Influx>> {
        let Some(binary) = debian_binary(&["/usr/bin/influxd"], "influxdb") else { return Ok(None) };
        let dir = tempfile::tempdir()?;
        let ports = free_ports(2)?;
        let root = dir.path().display().to_string();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{root}/meta\"\n\
             [data]\n  dir = \"{root}/data\"\n  wal-dir = \"{root}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n",
            rpc = ports[1],
            http = ports[0],
        );
        std::fs::write(dir.path().join("influxdb.conf"), config)?;
        let args = vec!["-config".to_string(), "influxdb.conf".to_string()];
        let mut server = Server { name: "influxd", binary, args, dir: dir.path().to_path_buf(), child: None };
        server.spawn()?;
        server.wait_ready(ports[0], "/ping", 204)?;
        let influx = Influx { server, port: ports[0], _dir: dir };
        influx.query_post(&format!("CREATE DATABASE \"{db}\""))?;
        Ok(Some(influx))
    }

    /// The base URL (`[[export.influx]] url`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn query_post(&self, q: &str) -> anyhow::Result<Value> {
        let (status, body) = http(self.port, "POST", &format!("/query?q={}", encode(q)), b"")?;
        ensure!(status == 200, "influxdb answered {status}: {}", String::from_utf8_lossy(&body));
        Ok(serde_json::from_slice(&body)?)
    }

    /// Every point of `measurement` in `db`, as samples (see the module
    /// docs for the field → metric mapping).
    pub fn samples(&self, db: &str, measurement: &str) -> anyhow::Result<Samples> {
        let q = format!("SELECT * FROM \"{measurement}\" GROUP BY *");
        let path = format!("/query?db={}&epoch=ms&q={}", encode(db), encode(&q));
        let (status, body) = http(self.port, "GET", &path, b"")?;
        ensure!(status == 200, "influxdb answered {status}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body)?;
        let mut out = Samples::new();
        let Some(series) = v["results"][0]["series"].as_array() else { return Ok(out) };
        for s in series {
            let tags: BTreeMap<String, String> = s["tags"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .filter(|(_, v)| !v.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let columns: Vec<&str> =
                s["columns"].as_array().context("columns")?.iter().filter_map(Value::as_str).collect();
            for row in s["values"].as_array().context("values")? {
                let row = row.as_array().context("row")?;
                let ts = row[0].as_i64().context("time")?;
                for (column, value) in columns.iter().zip(row).skip(1) {
                    let field = match value {
                        Value::Null => continue,
                        Value::String(text) => Field::Text(text.clone()),
                        other => Field::Number(other.as_f64().context("number")?),
                    };
                    add_field(&mut out, measurement, &tags, column, &field, ts);
                }
            }
        }
        for samples in out.values_mut() {
            samples.sort_by_key(|s| s.0);
        }
        Ok(out)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// The agreed states Vantage exports, as `vantage_endpoint_state{state}`.
pub const STATES: [&str; 7] = ["up", "degraded", "down", "unknown", "maintenance", "paused", "flapping"];

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Number(f64),
    Text(String),
}

/// Adds one InfluxDB field as the Prometheus sample Vantage exports for it.
fn add_field(
    out: &mut Samples,
    measurement: &str,
    tags: &BTreeMap<String, String>,
    field: &str,
    value: &Field,
    ts: i64,
) {
    let with = |k: &str, v: &str| {
        let mut labels = tags.clone();
        labels.insert(k.to_string(), v.to_string());
        labels
    };
    let (name, labels, value) = match (measurement, field, value) {
        ("vantage_check", "success", Field::Number(v)) => ("vantage_check_success", tags.clone(), *v),
        ("vantage_check", "status_code", Field::Number(v)) => {
            ("vantage_check_http_status_code", tags.clone(), *v)
        }
        ("vantage_check", "cert_expiry", Field::Number(v)) => {
            ("vantage_check_tls_cert_expiry_timestamp_seconds", tags.clone(), *v)
        }
        ("vantage_check", phase, Field::Number(v)) => {
            ("vantage_check_duration_seconds", with("phase", phase), *v)
        }
        ("vantage_endpoint", "regions_down", Field::Number(v)) => {
            ("vantage_endpoint_regions_down", tags.clone(), *v)
        }
        ("vantage_endpoint", "state", Field::Text(state)) => {
            // One Prometheus series per state, 1 for this one, 0 for the rest.
            for other in STATES {
                let value = if other == state { 1.0 } else { 0.0 };
                out.entry(("vantage_endpoint_state".into(), with("state", other)))
                    .or_default()
                    .push((ts, value));
            }
            return;
        }
        _ => return,
    };
    out.entry((name.to_string(), labels)).or_default().push((ts, value));
}

/// A loopback InfluxDB-compatible write endpoint (`POST /write`, answers
/// 204) that keeps every line, parsed by its own line-protocol reader.
pub struct LineReceiver {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LineReceiver {
    /// Starts it on a free loopback port (a thread per connection).
    pub fn start() -> anyhow::Result<LineReceiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    if let Ok(body) = read_body(&mut stream) {
                        let text = String::from_utf8_lossy(&body).into_owned();
                        kept.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(text.lines().map(str::to_string));
                        let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
                    }
                });
            }
        });
        Ok(LineReceiver { port, lines })
    }

    /// The base URL (`[[export.influx]] url`; any `db` will do).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many lines it was sent.
    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Every line, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every sample of `measurement`; a point sent twice (a resend) is
    /// kept twice.
    pub fn samples(&self, measurement: &str) -> anyhow::Result<Samples> {
        let mut out = Samples::new();
        for line in self.lines() {
            let point = parse_line(&line).with_context(|| format!("line {line:?}"))?;
            if point.measurement != measurement {
                continue;
            }
            for (field, value) in &point.fields {
                add_field(&mut out, measurement, &point.tags, field, value, point.timestamp);
            }
        }
        for samples in out.values_mut() {
            samples.sort_by_key(|s| s.0);
        }
        Ok(out)
    }
}

/// How a [`ScriptedReceiver`] answers every request.
#[derive(Debug, Clone, Copy)]
pub enum Scripted {
    /// This status, with this body.
    Status(u16, &'static str),
    /// 200 with a body of this many bytes (sent until the client hangs up).
    Huge(usize),
    /// Reads the request and never answers.
    Hang,
}

/// A loopback HTTP receiver that answers every request the same way and
/// keeps each request's body.
pub struct ScriptedReceiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ScriptedReceiver {
    /// Starts it on a free loopback port (a thread per connection).
    pub fn start(answer: Scripted) -> anyhow::Result<ScriptedReceiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(body) = read_body(&mut stream) else { return };
                    kept.lock().unwrap_or_else(|p| p.into_inner()).push(body);
                    match answer {
                        Scripted::Status(code, text) => {
                            let head = format!(
                                "HTTP/1.1 {code} Scripted\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                text.len()
                            );
                            let _ = stream.write_all(head.as_bytes());
                            let _ = stream.write_all(text.as_bytes());
                        }
                        Scripted::Huge(n) => {
                            let _ = stream.write_all(
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n").as_bytes(),
                            );
                            let chunk = vec![b'x'; 64 * 1024];
                            let mut left = n;
                            while left > 0 {
                                let k = left.min(chunk.len());
                                if stream.write_all(&chunk[..k]).is_err() {
                                    break;
                                }
                                left -= k;
                            }
                        }
                        // Held open until the client gives up (its timeout).
                        Scripted::Hang => {
                            let mut sink = [0u8; 1024];
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                        }
                    }
                });
            }
        });
        Ok(ScriptedReceiver { port, bodies })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request's body, in arrival order.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How many samples a line-protocol body holds, counted as Vantage counts
/// them: one per field of a result point, eight per agreed-state point
/// (seven states and the regions down).
pub fn line_protocol_samples(body: &[u8]) -> anyhow::Result<usize> {
    let mut n = 0;
    for line in String::from_utf8_lossy(body).lines().filter(|l| !l.is_empty()) {
        let point = parse_line(line)?;
        n += if point.measurement == "vantage_endpoint" { STATES.len() + 1 } else { point.fields.len() };
    }
    Ok(n)
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    measurement: String,
    tags: BTreeMap<String, String>,
    fields: Vec<(String, Field)>,
    timestamp: i64,
}

/// Splits `text` at `sep` where it is neither backslash-escaped nor inside
/// double quotes; unescapes `\,`, `\=`, `\ ` and `\\` outside quotes.
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let current = parts.last_mut().expect("never empty");
        match c {
            '\\' if !quoted => match chars.peek() {
                Some(&next @ (',' | '=' | ' ' | '\\')) => {
                    current.push('\\');
                    current.push(next);
                    chars.next();
                }
                _ => current.push('\\'),
            },
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == sep && !quoted => parts.push(String::new()),
            c => current.push(c),
        }
    }
    parts
}

/// Removes line-protocol escapes from a tag key or value.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some(',' | '=' | ' ' | '\\')) {
            out.push(chars.next().expect("peeked"));
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_line(line: &str) -> anyhow::Result<Point> {
    let parts = split_unescaped(line, ' ');
    ensure!(parts.len() == 3, "{} space-separated parts, not 3", parts.len());
    let mut head = split_unescaped(&parts[0], ',').into_iter();
    let measurement = unescape(&head.next().context("measurement")?);
    let mut tags = BTreeMap::new();
    for tag in head {
        let kv = split_unescaped(&tag, '=');
        ensure!(kv.len() == 2, "tag {tag:?}");
        tags.insert(unescape(&kv[0]), unescape(&kv[1]));
    }
    let mut fields = Vec::new();
    for field in split_unescaped(&parts[1], ',') {
        let (key, value) = field.split_once('=').context("field without =")?;
        let value = if let Some(text) = value.strip_prefix('"') {
            let text = text.strip_suffix('"').context("unterminated string")?;
            Field::Text(text.replace("\\\"", "\"").replace("\\\\", "\\"))
        } else if let Some(int) = value.strip_suffix('i') {
            Field::Number(int.parse::<i64>()? as f64)
        } else {
            Field::Number(value.parse()?)
        };
        fields.push((unescape(key), value));
    }
    Ok(Point { measurement, tags, fields, timestamp: parts[2].trim().parse()? })
}

/// The key of a JSON `metric` object (`__name__` taken out).
fn key_of(metric: &Value) -> anyhow::Result<SeriesKey> {
    let mut labels: BTreeMap<String, String> = metric
        .as_object()
        .context("metric")?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let name = labels.remove("__name__").context("no __name__")?;
    Ok((name, labels))
}

/// Percent-encodes a query parameter's value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One blocking HTTP/1.1 request to 127.0.0.1:`port` (`Connection:
/// close`); returns the status and the body (chunked bodies decoded).
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).context("no status")?.parse()?;
    let mut body = answer[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(data.len() >= size + 2, "short chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Reads one request from `stream`; returns its body.
fn read_body(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buf)?;
        ensure!(n > 0, "closed before the headers ended");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(Ok(0), |v| v.trim().parse())?;
    while data.len() < end + 4 + length {
        let n = stream.read(&mut buf)?;
        ensure!(n > 0, "closed before the body ended");
        data.extend_from_slice(&buf[..n]);
    }
    Ok(data[end + 4..end + 4 + length].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_reader_parses_escaped_lines() {
        let point = parse_line(
            "vantage_check,endpoint=web,team=a\\,b\\=c\\ d,quote=say\\ \"hi\" success=1i,total=0.014 1700000000123",
        )
        .unwrap();
        assert_eq!(point.measurement, "vantage_check");
        assert_eq!(point.tags["team"], "a,b=c d");
        assert_eq!(point.tags["quote"], "say \"hi\"");
        assert_eq!(
            point.fields,
            [("success".into(), Field::Number(1.0)), ("total".into(), Field::Number(0.014))]
        );
        assert_eq!(point.timestamp, 1_700_000_000_123);
        let state = parse_line("vantage_endpoint,endpoint=web state=\"down\",regions_down=2i 5").unwrap();
        assert_eq!(state.fields[0], ("state".into(), Field::Text("down".into())));
    }
}
