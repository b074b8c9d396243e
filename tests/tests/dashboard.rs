//! The coordinator's own `/metrics` and the Grafana dashboard, against the
//! real things.
//!
//! - `coordinator_metrics_are_valid_exposition_text`: `vantage-coordinator
//!   dev` (the real binary: its recorder, its three in-process probes, the
//!   demo endpoints) serves `/metrics` with the exposition Content-Type,
//!   `promtool check metrics` finds nothing to lint, and the values say what
//!   the node is (leader 1, a probe connected per region, four endpoints).
//! - `every_metric_the_dashboard_queries_exists_in_prometheus`: loads
//!   `deploy/grafana/vantage.json`, extracts every metric name its PromQL
//!   uses ([`metric_names`], tested below), runs a real Prometheus
//!   (`--web.enable-remote-write-receiver`, temporary storage, loopback)
//!   scraping that coordinator and a `vantage-probe run` agent's
//!   `metrics_addr`, and asks it (`/api/v1/label/__name__/values`) for
//!   every name. The measurement series (`vantage_check_*`,
//!   `vantage_endpoint_*`) come from the leader's remote-write export, not
//!   from `/metrics`: until the dev coordinator below is given
//!   `--remote-write` (see [`REMOTE_WRITE`]), they must be exactly
//!   [`EXPORT_SOURCED`], so nothing else slips through unchecked.
//!
//! A missing `prometheus`/`promtool` fails under `CI=true` and skips with the
//! install hint elsewhere.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::process::{free_ports, workspace_bin, ChildGuard};

/// Names the dashboard uses that only the remote-write export produces
/// (the export sinks, `coordinator/src/sinks/export/`).
const EXPORT_SOURCED: &[&str] = &[
    "vantage_check_duration_seconds",
    "vantage_check_http_status_code",
    "vantage_check_success",
    "vantage_check_tls_cert_expiry_timestamp_seconds",
    "vantage_endpoint_regions_down",
    "vantage_endpoint_state",
];

/// Whether the dev coordinator exports to the test's Prometheus: it is
/// started with `--remote-write http://127.0.0.1:PORT/api/v1/write` (see
/// `start_dev`), and every [`EXPORT_SOURCED`] name must exist in
/// Prometheus as well, like the `/metrics` ones.
const REMOTE_WRITE: bool = true;

const REGIONS: [&str; 3] = ["dev-eu", "dev-us", "dev-ap"];

// ---- the PromQL metric-name extractor

/// PromQL words that are not metric names when they stand alone: its
/// keywords, and its aggregation operators, which may be followed by `by
/// (…)` rather than `(` (PromQL reserves them: a metric so named needs
/// `{__name__="sum"}`).
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
    "atan2", "inf", "nan", "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a PromQL expression reads: identifiers not followed by
/// `(` (functions, aggregations), not keywords, and not inside `{…}`
/// (label names and values), `[…]` (ranges), strings, label lists after
/// `by`/`on`/…, numbers or Grafana variables (`$x`, `${x}`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from;
        let mut quote = None;
        while j < chars.len() {
            match (quote, chars[j]) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), '\\') => j += 1,
                (Some(_), _) => {}
                (None, '"' | '\'' | '`') => quote = Some(chars[j]),
                (None, c) if c == close => return j + 1,
                _ => {}
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                // A string: find its end (the closing quote, escapes skipped).
                let mut j = i + 1;
                while j < chars.len() && chars[j] != c {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                i = j + 1;
            }
            '{' => i = skip_to(i + 1, '}'),
            '[' => i = skip_to(i + 1, ']'),
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_to(i + 1, '}');
                } else {
                    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                // A number (1, 0.99, 1e3, 0x1f) or a duration (5m).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let followed_by_paren = chars.get(next) == Some(&'(');
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if followed_by_paren {
                        i = skip_to(next + 1, ')');
                    }
                } else if !followed_by_paren && !KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The metric a Grafana variable query reads: `label_values(METRIC…, LABEL)`
/// reads METRIC (selectors allowed); any other query is PromQL.
fn variable_query_names(query: &str) -> BTreeSet<String> {
    match query.trim().strip_prefix("label_values(") {
        Some(rest) => {
            // Everything up to the last top-level comma is the series selector.
            let inner = rest.trim_end().strip_suffix(')').unwrap_or(rest);
            let selector = match inner.rfind(',') {
                Some(comma) if !inner[comma..].contains('}') => &inner[..comma],
                _ => inner,
            };
            metric_names(selector)
        }
        None => metric_names(query),
    }
}

/// Every PromQL expression of a dashboard: panel targets (rows' nested
/// panels too), annotation queries, and variable queries.
fn dashboard_metric_names(dashboard: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().into_iter().flatten().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                names.extend(metric_names(expr));
            }
        }
    }
    for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            names.extend(metric_names(expr));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().or_else(|| variable["query"].as_str());
            names.extend(query.map(variable_query_names).unwrap_or_default());
        }
    }
    names
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn the_extractor_finds_metric_names_and_nothing_else() {
    let cases: &[(&str, &[&str])] = &[
        ("up", &["up"]),
        ("vantage_raft_term", &["vantage_raft_term"]),
        (
            r#"sum by (region) (rate(vantage_mesh_results_accepted_total{region=~"eu|us", x="a}b"}[$__rate_interval]))"#,
            &["vantage_mesh_results_accepted_total"],
        ),
        (
            "histogram_quantile(0.99, sum by (le, instance) (rate(a_seconds_bucket[5m])))",
            &["a_seconds_bucket"],
        ),
        ("sum(rate(x_total[1m])) without (instance) / on (job) group_left (region) y", &["x_total", "y"]),
        ("max by (endpoint, state) (s{e=\"1\"}) == 1", &["s"]),
        ("topk without (i) (3, q)", &["q"]),
        ("(min by (e) (expiry{e=~\"$endpoint\"}) - time()) / 86400", &["expiry"]),
        ("a offset 5m > bool 1e3 and b unless c or d", &["a", "b", "c", "d"]),
        ("max(x{a=\"${var}\"}) == 1", &["x"]),
        (r#"label_replace(m, "dst", "$1", "src", "(.*)")"#, &["m"]),
        ("rate(level:rule_total[5m]) + Inf", &["level:rule_total"]),
        ("vector(1) + count(absent(z))", &["z"]),
        ("", &[]),
    ];
    for (expr, expected) in cases {
        assert_eq!(metric_names(expr), set(expected), "in {expr}");
    }
    assert_eq!(
        variable_query_names("label_values(vantage_check_success, endpoint)"),
        set(&["vantage_check_success"])
    );
    assert_eq!(
        variable_query_names(
            r#"label_values(vantage_check_success{endpoint=~"$endpoint", b="1,2"}, region)"#
        ),
        set(&["vantage_check_success"])
    );
}

#[test]
fn the_extractor_reads_targets_rows_annotations_and_variables() {
    let dashboard = serde_json::json!({
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "in_a_row"}]}]},
            {"targets": [{"expr": "rate(p_total[1m])"}, {"refId": "B"}]}
        ],
        "annotations": {"list": [{"expr": "ann == 1"}, {"builtIn": 1}]},
        "templating": {"list": [
            {"type": "query", "query": {"query": "label_values(var_metric, l)"}},
            {"type": "query", "query": "label_values(old_style, l)"},
            {"type": "datasource", "query": "prometheus"}
        ]}
    });
    assert_eq!(
        dashboard_metric_names(&dashboard),
        set(&["ann", "in_a_row", "old_style", "p_total", "var_metric"])
    );
}

// ---- helpers: HTTP, processes, tools

/// `GET path` over HTTP/1.0 (so no chunked answer): status, head, body.
fn http_get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// The value of the sample line `series` (name and labels as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
}

/// Whether a Debian-packaged tool is installed; under CI its absence fails.
fn tool_available(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} not found under CI: apt-get install prometheus (scripts/test.sh does)"
        );
        eprintln!("skipping: {name} not found (apt-get install prometheus)");
    }
    found
}

/// `vantage-coordinator dev` on free loopback ports, until its probes are
/// connected in every region (read from its own /metrics).
struct Dev {
    child: ChildGuard,
    http: u16,
    api: u16,
    log: PathBuf,
    token_file: PathBuf,
}

fn start_dev(dir: &Path, remote_write: Option<String>) -> Dev {
    let ports = free_ports(2).unwrap();
    let (api, http) = (ports[0], ports[1]);
    let log = dir.join("dev.log");
    let mut command = Command::new(workspace_bin("vantage-coordinator").unwrap());
    command
        .arg("dev")
        .arg("--api")
        .arg(format!("127.0.0.1:{api}"))
        .arg("--http")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--data-dir")
        .arg(dir.join("dev-data"));
    if let Some(url) = remote_write {
        command.arg("--remote-write").arg(url);
    }
    let mut child = ChildGuard::spawn("dev", command, &log).unwrap();
    let started = Instant::now();
    loop {
        let text = http_get(http, "/metrics").map(|(_, _, body)| body).unwrap_or_default();
        let connected = REGIONS
            .iter()
            .all(|r| sample(&text, &format!("vantage_mesh_probes_connected{{region=\"{r}\"}}")) == Some(1.0));
        // The recorder renders a histogram once its samples were drained
        // (every second), so wait for the first checkpoint's too.
        if connected
            && sample(&text, "vantage_probe_checks_total{trigger=\"slot\"}").is_some_and(|n| n >= 3.0)
            && text.contains("# TYPE vantage_mesh_checkpoint_seconds histogram")
        {
            break;
        }
        assert!(
            child.is_running(),
            "dev mode exited:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no probes connected in every region within 30 s:\n{text}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Dev { child, http, api, log, token_file: dir.join("dev-data").join("admin.token") }
}

/// Adds a `tls://` endpoint checked every second from every dev region,
/// against a loopback TLS server whose certificate the probes do not trust:
/// the checks fail, but the leaf is captured, so the export writes its
/// expiry (`vantage_check_tls_cert_expiry_timestamp_seconds`), which the
/// plain-HTTP demo endpoints never would.
fn add_tls_endpoint(dev: &Dev, port: u16) {
    let output = Command::new(workspace_bin("vantagectl").unwrap())
        .arg("--server")
        .arg(format!("http://127.0.0.1:{}", dev.api))
        .arg("--token-file")
        .arg(&dev.token_file)
        .args(["endpoint", "add", "tls-demo", &format!("tls://127.0.0.1:{port}")])
        .args(["--interval", "1s", "--timeout", "500ms", "--allow-private"])
        .output()
        .unwrap();
    assert!(output.status.success(), "endpoint add: {}", String::from_utf8_lossy(&output.stderr));
}

/// The jobs whose `up` is 1 in Prometheus now, and the raw answer.
fn jobs_up(prometheus_port: u16) -> (BTreeSet<String>, String) {
    let body = http_get(prometheus_port, "/api/v1/query?query=up").map(|(_, _, b)| b).unwrap_or_default();
    let up: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let jobs = up["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["value"][1] == "1")
        .filter_map(|r| r["metric"]["job"].as_str().map(str::to_owned))
        .collect();
    (jobs, body)
}

fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{text}");
}

#[test]
fn coordinator_metrics_are_valid_exposition_text() {
    if !tool_available("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start_dev(dir.path(), None);
    let (status, head, text) = http_get(dev.http, "/metrics").unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    promtool_check_metrics(&text);

    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(value("vantage_raft_is_leader"), 1.0);
    assert_eq!(value("vantage_raft_leader_id"), 1.0);
    assert_eq!(value("vantage_raft_state{state=\"leader\"}"), 1.0);
    assert_eq!(value("vantage_raft_members"), 1.0);
    assert!(value("vantage_raft_term") >= 1.0);
    let applied = value("vantage_raft_applied_index");
    assert!(applied >= 1.0 && value("vantage_raft_last_log_index") >= applied, "{text}");
    assert!(value("vantage_raft_committed_index") >= 1.0, "{text}");
    assert!(value("vantage_raft_snapshot_age_seconds").is_nan(), "no snapshot yet in a fresh dev node");
    for region in REGIONS {
        assert_eq!(value(&format!("vantage_mesh_probes_registered{{region=\"{region}\"}}")), 1.0);
    }
    let states = ["up", "degraded", "down", "unknown", "flapping", "maintenance", "paused"];
    let endpoints: f64 =
        states.iter().map(|s| value(&format!("vantage_agreement_endpoints{{state=\"{s}\"}}"))).sum();
    assert_eq!(endpoints, 4.0, "dev mode's four demo endpoints, each in one state:\n{text}");
    assert_eq!(value("vantage_alert_deliveries_pending"), 0.0);
    assert!(value("vantage_mesh_results_accepted_total") >= 3.0);
    assert!(text.contains("# TYPE vantage_mesh_checkpoint_seconds histogram"), "{text}");
    assert!(text.contains("vantage_mesh_checkpoint_seconds_bucket{le=\"0.005\"}"), "{text}");
    assert!(text.contains("# HELP vantage_raft_applied_index "), "{text}");
    // The in-process probes' metrics are summed here: three connected.
    assert_eq!(value("vantage_probe_stream_connected"), 3.0, "{text}");

    let status = dev.child.terminate(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(&dev.log).unwrap_or_default());
}

#[test]
fn every_metric_the_dashboard_queries_exists_in_prometheus() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/vantage.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dashboard["templating"]["list"][0]["type"], "datasource", "the data source is a variable");
    let used = dashboard_metric_names(&dashboard);
    assert!(used.len() >= 20, "the extractor found too few names: {used:?}");
    if !tool_available("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prometheus_port = free_ports(1).unwrap()[0];
    let write_url = format!("http://127.0.0.1:{prometheus_port}/api/v1/write");
    let mut dev = start_dev(dir.path(), REMOTE_WRITE.then(|| write_url.clone()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pki = vantage_tests::pki::TestPki::new().unwrap();
    let tls_target = {
        let _entered = runtime.enter();
        vantage_tests::http_target::HttpTarget::start(vantage_tests::http_target::TargetOptions {
            tls: Some(pki.server_config(vantage_tests::pki::Leaf::Valid, &[b"http/1.1"])),
            ..Default::default()
        })
        .unwrap()
    };
    add_tls_endpoint(&dev, tls_target.addr().port());

    // A probe agent with metrics_addr; its token is refused (dev knows only
    // its own probes), which leaves its /metrics serving all the same.
    let probe_port = free_ports(1).unwrap()[0];
    std::fs::write(dir.path().join("probe.token"), "not-a-registered-token\n").unwrap();
    let probe_config = dir.path().join("probe.toml");
    std::fs::write(
        &probe_config,
        format!(
            "probe_id = \"ext-1\"\nregion = \"dev-eu\"\ncoordinators = [\"http://127.0.0.1:{}\"]\n\
             token_file = \"probe.token\"\ninsecure = true\nmetrics_addr = \"127.0.0.1:{probe_port}\"\n",
            dev.api
        ),
    )
    .unwrap();
    let mut probe_command = Command::new(workspace_bin("vantage-probe").unwrap());
    probe_command.arg("run").arg("--config").arg(&probe_config);
    let _probe = ChildGuard::spawn("probe", probe_command, &dir.path().join("probe.log")).unwrap();

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
             \x20 - job_name: vantage-coordinator\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n\
             \x20 - job_name: vantage-probe\n    static_configs:\n      - targets: [\"127.0.0.1:{probe_port}\"]\n",
            dev.http
        ),
    )
    .unwrap();
    let promtool = Command::new("promtool").arg("check").arg("config").arg(&config).output().unwrap();
    assert!(promtool.status.success(), "{}", String::from_utf8_lossy(&promtool.stdout));
    let mut prometheus_command = Command::new("prometheus");
    prometheus_command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .arg("--web.enable-remote-write-receiver");
    let prometheus_log = dir.path().join("prometheus.log");
    let mut prometheus = ChildGuard::spawn("prometheus", prometheus_command, &prometheus_log).unwrap();

    // Until every expected name is there (or 60 s: a few scrapes, and with
    // remote-write the export's first batches).
    let expected: BTreeSet<String> = if REMOTE_WRITE {
        used.clone()
    } else {
        used.iter().filter(|n| !EXPORT_SOURCED.contains(&n.as_str())).cloned().collect()
    };
    let started = Instant::now();
    let known = loop {
        let known: BTreeSet<String> = http_get(prometheus_port, "/api/v1/label/__name__/values")
            .filter(|(status, _, _)| *status == 200)
            .and_then(|(_, _, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v["data"].as_array().cloned())
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        // Every name, and both jobs scraped at least once (the probe's
        // first scrape may come after the coordinator's names are all in).
        if expected.is_subset(&known) && jobs_up(prometheus_port).0.len() == 2 {
            break known;
        }
        assert!(
            prometheus.is_running(),
            "prometheus exited:\n{}",
            std::fs::read_to_string(&prometheus_log).unwrap()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after 60 s, names the dashboard uses that Prometheus does not have: {:?}; jobs up: {:?}\n(targets: {:?})",
            expected.difference(&known).collect::<Vec<_>>(),
            jobs_up(prometheus_port).0,
            http_get(prometheus_port, "/api/v1/targets").map(|(_, _, b)| b)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Both jobs were scraped for real (not only one of them).
    for name in ["vantage_raft_applied_index", "vantage_probe_spool_records"] {
        assert!(known.contains(name), "{name}");
    }
    let (jobs_up, up) = jobs_up(prometheus_port);
    assert_eq!(jobs_up, set(&["vantage-coordinator", "vantage-probe"]), "{up}");

    // What Prometheus lacks is exactly the export's names: the dashboard
    // uses nothing else that no one produces, and the list names nothing
    // the dashboard does not use or /metrics already has.
    let missing: BTreeSet<String> = used.difference(&known).cloned().collect();
    if REMOTE_WRITE {
        assert!(missing.is_empty(), "{missing:?}");
    } else {
        assert_eq!(missing, set(EXPORT_SOURCED), "names the dashboard uses that Prometheus lacks");
        eprintln!(
            "NOTE: {} export-sourced names are not checked against Prometheus until REMOTE_WRITE = true: {:?}",
            EXPORT_SOURCED.len(),
            EXPORT_SOURCED
        );
    }
    let _ = prometheus.terminate(Duration::from_secs(10));
    let status = dev.child.terminate(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(&dev.log).unwrap_or_default());
}
