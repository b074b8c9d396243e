//! `[export]` in `coordinator.toml`: defaults, every refusal naming its
//! file, line and key (an export URL that does not parse among them), and
//! `vantage-coordinator run` exiting 2 on one before binding anything.
//! `deploy/prometheus/remote-write.coordinator.toml` parses as it is.
//! The sink itself is tested against real TSDBs in `tests/tests/export.rs`
//! and against a scripted receiver in `src/sinks/export/tests.rs`.

use std::process::Command;
use std::time::Duration;

use vantage_coordinator::config::{Config, ExportConfig, InfluxConfig};

/// A valid one-node file; `[export]` tables are appended (from line 11).
const BASE: &str = "node_id = 1\ndata_dir = \"/tmp/x\"\napi_addr = \"127.0.0.1:7400\"\n\
raft_addr = \"127.0.0.1:7401\"\n[[peers]]\nid = 1\napi_addr = \"127.0.0.1:7400\"\n\
raft_addr = \"127.0.0.1:7401\"\n[tls]\ninsecure = true\n";

fn with(tables: &str) -> String {
    format!("{BASE}{tables}")
}

#[test]
fn targets_parse_with_defaults_and_the_influx_version_is_read_from_the_keys() {
    let config = Config::parse(BASE, "coordinator.toml").unwrap();
    assert_eq!(config.export, ExportConfig::default());
    assert!(config.export.is_empty());
    let text = with(
        "[[export.remote_write]]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\n\
         [[export.remote_write]]\nurl = \"https://vm.example.com/api/v1/write\"\nname = \"vm\"\nbearer_token = \"t\"\n\
         headers = { \"X-Scope-OrgID\" = \"ops\" }\n\
         [[export.influx]]\nurl = \"http://127.0.0.1:8086\"\ndb = \"vantage\"\n\
         [[export.influx]]\nurl = \"http://127.0.0.1:8087\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\n",
    );
    let config = Config::parse(&text, "coordinator.toml").unwrap();
    let rw = &config.export.remote_write;
    assert_eq!(rw.len(), 2);
    assert_eq!(rw[0].settings().name, "127.0.0.1:9090", "named by host:port by default");
    assert_eq!(rw[0].queue_capacity, 100_000);
    assert_eq!(rw[0].batch_size, 2_000);
    assert_eq!(rw[0].settings().max_batch_delay, Duration::from_secs(1));
    assert_eq!(rw[0].settings().timeout, Duration::from_secs(10));
    assert_eq!(rw[1].settings().name, "vm");
    assert_eq!(rw[1].headers["X-Scope-OrgID"], "ops");
    let influx: &[InfluxConfig] = &config.export.influx;
    assert!(matches!(influx[0].api(), Ok(vantage_coordinator::sinks::export::config::InfluxApi::V1 { .. })));
    assert!(matches!(influx[1].api(), Ok(vantage_coordinator::sinks::export::config::InfluxApi::V2 { .. })));
    assert_eq!(config.export.state_interval(), Duration::from_secs(15));
    assert_eq!(config.export.flush_timeout(), Duration::from_secs(5));
}

#[test]
fn refusals_name_the_file_line_and_key() {
    let rw = |extra: &str| {
        with(&format!("[[export.remote_write]]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\n{extra}"))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a URL that does not parse",
            with("[[export.remote_write]]\nurl = \"http//127.0.0.1:9090\"\n"),
            "coordinator.toml:12: export.remote_write[0].url: invalid URL \"http//127.0.0.1:9090\": relative URL \
             without a base (expected e.g. http://127.0.0.1:9090/api/v1/write)",
        ),
        (
            "a URL of another scheme",
            with("[[export.influx]]\nurl = \"ftp://127.0.0.1:8086\"\ndb = \"x\"\n"),
            "coordinator.toml:12: export.influx[0].url: invalid URL \"ftp://127.0.0.1:8086\": the scheme must be http or https",
        ),
        (
            "an unknown key",
            rw("batchsize = 10\n"),
            "coordinator.toml:13: unknown key \"batchsize\" in [[export.remote_write]]: did you mean \"batch_size\"? \
             (expected one of url, name, headers, username, password, bearer_token, ca_file, queue_capacity, \
             batch_size, max_batch_delay_ms, timeout_ms)",
        ),
        (
            "a batch too small",
            rw("batch_size = 5\n"),
            "coordinator.toml:13: export.remote_write[0].batch_size: 5 is out of range: must be between 10 and 100000",
        ),
        (
            "a queue below one batch",
            rw("queue_capacity = 100\nbatch_size = 500\n"),
            "coordinator.toml:13: export.remote_write[0].queue_capacity: 100 cannot hold one batch: must be at \
             least batch_size (500)",
        ),
        (
            "two kinds of credentials",
            rw("username = \"u\"\npassword = \"p\"\nbearer_token = \"t\"\n"),
            "coordinator.toml:15: export.remote_write[0].bearer_token: use basic auth (username, password) or \
             bearer_token, not both",
        ),
        (
            "a user without a password",
            rw("username = \"u\"\n"),
            "coordinator.toml:13: export.remote_write[0].username: basic auth needs both username and password",
        ),
        (
            "a protocol header",
            rw("headers = { \"Content-Encoding\" = \"gzip\" }\n"),
            "coordinator.toml:13: export.remote_write[0].headers.Content-Encoding: \"Content-Encoding\" is set by \
             the protocol and cannot be overridden",
        ),
        (
            "two targets named alike",
            with("[[export.remote_write]]\nurl = \"http://127.0.0.1:9090/a\"\n[[export.remote_write]]\nurl = \"http://127.0.0.1:9090/b\"\n"),
            "coordinator.toml:14: export.remote_write[1].url: \"127.0.0.1:9090\" is already the name of \
             export.remote_write[0]; give each target its own name",
        ),
        (
            "influx without a version",
            with("[[export.influx]]\nurl = \"http://127.0.0.1:8086\"\n"),
            "coordinator.toml:11: export.influx[0]: say which InfluxDB API to write to: db (1.x) or org and bucket \
             (2.x), not both and not neither",
        ),
        (
            "a 2.x token on a 1.x target",
            with("[[export.influx]]\nurl = \"http://127.0.0.1:8086\"\ndb = \"v\"\ntoken = \"t\"\n"),
            "coordinator.toml:14: export.influx[0].token: token is for InfluxDB 2.x targets; this one is 1.x (db)",
        ),
        (
            "a missing CA file",
            rw("ca_file = \"/nonexistent/ca.pem\"\n"),
            "coordinator.toml:13: export.remote_write[0].ca_file: \"/nonexistent/ca.pem\": cannot read it: No such \
             file or directory (os error 2)",
        ),
        (
            "a state interval out of range",
            with("[export]\nstate_interval_ms = 10\n"),
            "coordinator.toml:12: export.state_interval_ms: 10 is out of range: must be between 1000 and 3600000",
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        match Config::parse(text, "coordinator.toml") {
            Ok(_) => failures.push(format!("{name}: accepted, expected {expected:?}")),
            Err(e) if e.to_string() != *expected => {
                failures.push(format!("{name}:\n   got: {e}\n  want: {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn run_exits_2_on_an_export_url_that_does_not_parse_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(&path, with("[[export.remote_write]]\nurl = \"not a url\"\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vantage-coordinator"))
        .args(["run", "--config"])
        .arg(&path)
        .env("VANTAGE_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("coordinator.toml:12: export.remote_write[0].url: invalid URL \"not a url\""),
        "{stderr}"
    );
    assert!(!dir.path().join("admin.token").exists(), "nothing was created before the refusal");
}

#[test]
fn the_deploy_remote_write_example_parses_with_the_keys_it_shows() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/remote-write.coordinator.toml");
    let example = std::fs::read_to_string(path).unwrap();
    let config = Config::parse(&with(&example), "coordinator.toml").unwrap_or_else(|e| panic!("{e}"));
    let target = &config.export.remote_write[0];
    assert_eq!(target.settings().name, "prometheus");
    assert_eq!(target.username.as_deref(), Some("vantage"));
    assert_eq!(target.headers["X-Scope-OrgID"], "vantage");
}
