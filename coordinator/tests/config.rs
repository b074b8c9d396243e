//! `coordinator.toml`: parsing, validation and the exact error messages, a
//! table of cases each changing one thing in a valid file; the example
//! configs under `deploy/local/`; and `vantage-coordinator run` refusing a
//! bad config with exit code 2 before it binds anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vantage_coordinator::config::{Config, MeshConfig, RaftConfig};
use vantage_coordinator::raft::Node;

/// A valid two-node file, as node 1. Line numbers matter to the cases.
const BASE: &str = r#"node_id = 1
data_dir = "data"
api_addr = "127.0.0.1:7400"
raft_addr = "127.0.0.1:7401"
http_addr = "127.0.0.1:8080"
admin_token_file = "admin.token"

[[peers]]
id = 1
api_addr = "127.0.0.1:7400"
raft_addr = "127.0.0.1:7401"

[[peers]]
id = 2
api_addr = "127.0.0.1:7410"
raft_addr = "127.0.0.1:7411"

[tls]
insecure = true

[raft]
heartbeat_ms = 250
"#;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// BASE with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?} must occur once in BASE");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_base_file_parses_with_defaults_for_what_it_omits() {
    let config = Config::parse(BASE, "coordinator.toml").unwrap();
    assert_eq!(config.node_id, 1);
    assert_eq!(config.data_dir, PathBuf::from("data"));
    assert_eq!(config.api_addr, addr("127.0.0.1:7400"));
    assert_eq!(config.raft_addr, addr("127.0.0.1:7401"));
    assert_eq!(config.http_addr, addr("127.0.0.1:8080"));
    assert_eq!(config.admin_token_file, PathBuf::from("admin.token"));
    assert_eq!(config.peers.len(), 2);
    assert!(config.tls.insecure);
    assert_eq!(config.tls.files(), None);
    assert_eq!(config.raft, RaftConfig::default());
    assert_eq!(
        (config.raft.heartbeat_ms, config.raft.election_timeout_min_ms, config.raft.election_timeout_max_ms),
        (250, 1000, 2000)
    );

    let minimal =
        BASE.replace("http_addr = \"127.0.0.1:8080\"\n", "").replace("[raft]\nheartbeat_ms = 250\n", "");
    let config = Config::parse(&minimal, "coordinator.toml").unwrap();
    assert_eq!(config.http_addr, addr("127.0.0.1:8080"));
    assert_eq!(config.raft, RaftConfig::default());
}

#[test]
fn the_default_config_is_a_valid_single_node_dev_config() {
    let config = Config::default();
    config.validate().unwrap();
    assert!(config.tls.insecure);
    assert_eq!(config.peers.len(), 1);
    Config { raft: RaftConfig { heartbeat_ms: 100, ..RaftConfig::default() }, ..Config::default() }
        .validate()
        .unwrap();
}

#[test]
fn syntax_and_schema_errors_name_the_key_and_line() {
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown top-level key, with a suggestion",
            edit("raft_addr = \"127.0.0.1:7401\"\nhttp", "raft_adr = \"127.0.0.1:7401\"\nhttp"),
            "coordinator.toml:4: unknown key \"raft_adr\" in the top level: did you mean \"raft_addr\"? \
             (expected one of node_id, data_dir, api_addr, raft_addr, http_addr, admin_token_file, peers, tls, raft, mesh, export)",
        ),
        (
            "unknown key without a close match",
            edit("admin_token_file = \"admin.token\"\n", "admin_token_file = \"admin.token\"\ncolour = 1\n"),
            "coordinator.toml:7: unknown key \"colour\" in the top level \
             (expected one of node_id, data_dir, api_addr, raft_addr, http_addr, admin_token_file, peers, tls, raft, mesh, export)",
        ),
        (
            "unknown key in the second [[peers]]",
            edit("raft_addr = \"127.0.0.1:7411\"", "raft_adr = \"127.0.0.1:7411\""),
            "coordinator.toml:16: unknown key \"raft_adr\" in [[peers]]: did you mean \"raft_addr\"? \
             (expected one of id, api_addr, raft_addr, dial_raft_addr)",
        ),
        (
            "unknown key in [raft]",
            edit("heartbeat_ms = 250", "heartbeat = 250"),
            "coordinator.toml:22: unknown key \"heartbeat\" in [raft]: did you mean \"heartbeat_ms\"? \
             (expected one of heartbeat_ms, election_timeout_min_ms, election_timeout_max_ms, \
             snapshot_every_logs, logs_kept_after_snapshot)",
        ),
        (
            "unknown key in [tls]",
            edit("insecure = true", "insecur = true"),
            "coordinator.toml:19: unknown key \"insecur\" in [tls]: did you mean \"insecure\"? \
             (expected one of insecure, ca_file, cert_file, key_file)",
        ),
        (
            "unknown table",
            edit("[raft]", "[rafts]"),
            "coordinator.toml:21: unknown key \"rafts\" in the top level: did you mean \"raft\"? \
             (expected one of node_id, data_dir, api_addr, raft_addr, http_addr, admin_token_file, peers, tls, raft, mesh, export)",
        ),
        (
            "invalid socket address",
            edit("api_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"\nhttp", "api_addr = \"nope\"\nraft_addr = \"127.0.0.1:7401\"\nhttp"),
            "coordinator.toml:3: api_addr: invalid socket address \"nope\": expected IP:PORT, \
             such as 127.0.0.1:7400 or [::1]:7400",
        ),
        (
            "a host name is not a socket address",
            edit("raft_addr = \"127.0.0.1:7411\"", "raft_addr = \"node2.example:7411\""),
            "coordinator.toml:16: peers[1].raft_addr: invalid socket address \"node2.example:7411\": \
             expected IP:PORT, such as 127.0.0.1:7400 or [::1]:7400",
        ),
        (
            "wrong type",
            edit("node_id = 1", "node_id = \"one\""),
            "coordinator.toml:1: node_id: invalid type: string \"one\", expected u64",
        ),
        (
            "negative number",
            edit("heartbeat_ms = 250", "heartbeat_ms = -5"),
            "coordinator.toml:22: raft.heartbeat_ms: invalid value: integer `-5`, expected u64",
        ),
        (
            "wrong type in a peer",
            edit("id = 2", "id = \"2\""),
            "coordinator.toml:14: peers[1].id: invalid type: string \"2\", expected u64",
        ),
        (
            "wrong type for a table",
            BASE.replace("[raft]\nheartbeat_ms = 250\n", "")
                .replace("admin_token_file = \"admin.token\"\n", "admin_token_file = \"admin.token\"\nraft = 5\n"),
            "coordinator.toml:7: raft: invalid type: integer `5`, expected struct RaftConfig",
        ),
        (
            "a key written after [tls] belongs to [tls]",
            edit("[raft]\nheartbeat_ms = 250\n", "raft = 5\n"),
            "coordinator.toml:21: unknown key \"raft\" in [tls] (expected one of insecure, ca_file, cert_file, key_file)",
        ),
        ("missing top-level key", edit("node_id = 1\n", ""), "coordinator.toml: missing key \"node_id\" in the top level"),
        (
            "missing [tls]",
            edit("[tls]\ninsecure = true\n", ""),
            "coordinator.toml: missing key \"tls\" in the top level: add [tls] with insecure = true for \
             plaintext, or ca_file, cert_file and key_file",
        ),
        (
            "missing peers",
            BASE.replace("[[peers]]\nid = 1\napi_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"\n", "")
                .replace("[[peers]]\nid = 2\napi_addr = \"127.0.0.1:7410\"\nraft_addr = \"127.0.0.1:7411\"\n", ""),
            "coordinator.toml: missing key \"peers\" in the top level: add a [[peers]] entry for every \
             initial member, this node included",
        ),
        (
            "missing key in a peer",
            edit("raft_addr = \"127.0.0.1:7411\"\n", ""),
            "coordinator.toml:13: missing key \"raft_addr\" in [[peers]]",
        ),
        (
            "unquoted address",
            edit("api_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"\nhttp", "api_addr = 127.0.0.1:7400\nraft_addr = \"127.0.0.1:7401\"\nhttp"),
            "coordinator.toml:3: invalid TOML: invalid float, expected nothing",
        ),
        (
            "duplicate key",
            edit("node_id = 1\n", "node_id = 1\nnode_id = 2\n"),
            "coordinator.toml:2: invalid TOML: duplicate key",
        ),
    ];
    check_cases(cases);
}

#[test]
fn semantic_errors_name_the_key_and_line() {
    let cases: &[(&str, String, &str)] = &[
        (
            "this node is not a peer",
            edit("node_id = 1", "node_id = 3"),
            "coordinator.toml:1: node_id: node 3 is not in [[peers]]: list every initial member, this node included",
        ),
        ("node id 0", edit("node_id = 1", "node_id = 0"), "coordinator.toml:1: node_id: must be at least 1"),
        ("peer id 0", edit("id = 2", "id = 0"), "coordinator.toml:14: peers[1].id: must be at least 1"),
        (
            "duplicate peer id",
            edit("id = 2", "id = 1"),
            "coordinator.toml:14: peers[1].id: duplicate peer id 1 (also at peers[0])",
        ),
        (
            "duplicate peer address",
            edit("api_addr = \"127.0.0.1:7410\"", "api_addr = \"127.0.0.1:7401\""),
            "coordinator.toml:15: peers[1].api_addr: 127.0.0.1:7401 is already peers[0].raft_addr",
        ),
        (
            "a peer's own two addresses equal",
            edit("raft_addr = \"127.0.0.1:7411\"", "raft_addr = \"127.0.0.1:7410\""),
            "coordinator.toml:16: peers[1].raft_addr: 127.0.0.1:7410 is already peers[1].api_addr",
        ),
        (
            "peer port 0",
            edit("raft_addr = \"127.0.0.1:7411\"", "raft_addr = \"127.0.0.1:0\""),
            "coordinator.toml:16: peers[1].raft_addr: port 0 cannot be reached by peers: give a fixed port",
        ),
        (
            "this node's entry disagrees with raft_addr",
            edit("id = 1\napi_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"", "id = 1\napi_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7402\""),
            "coordinator.toml:11: peers[0].raft_addr: this node's entry says 127.0.0.1:7402 but raft_addr is 127.0.0.1:7401",
        ),
        (
            "this node's entry disagrees with api_addr",
            edit("id = 1\napi_addr = \"127.0.0.1:7400\"", "id = 1\napi_addr = \"[::1]:7400\""),
            "coordinator.toml:10: peers[0].api_addr: this node's entry says [::1]:7400 but api_addr is 127.0.0.1:7400",
        ),
        (
            "api_addr equals raft_addr",
            edit("raft_addr = \"127.0.0.1:7401\"\nhttp", "raft_addr = \"127.0.0.1:7400\"\nhttp"),
            "coordinator.toml:4: raft_addr: same address as api_addr (127.0.0.1:7400): every listener needs its own port",
        ),
        (
            "http_addr equals api_addr",
            edit("http_addr = \"127.0.0.1:8080\"", "http_addr = \"127.0.0.1:7400\""),
            "coordinator.toml:5: http_addr: same address as api_addr (127.0.0.1:7400): every listener needs its own port",
        ),
        (
            "empty peers",
            BASE.replace("[[peers]]\nid = 1\napi_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"\n", "")
                .replace("[[peers]]\nid = 2\napi_addr = \"127.0.0.1:7410\"\nraft_addr = \"127.0.0.1:7411\"\n", "")
                .replace("[tls]", "peers = []\n[tls]"),
            "coordinator.toml:10: peers: at least one [[peers]] entry is required, this node included",
        ),
        (
            "heartbeat not below the election timeout",
            edit("heartbeat_ms = 250", "heartbeat_ms = 1000"),
            "coordinator.toml:22: raft.heartbeat_ms: 1000 must be below raft.election_timeout_min_ms (1000)",
        ),
        (
            "heartbeat 0",
            edit("heartbeat_ms = 250", "heartbeat_ms = 0"),
            "coordinator.toml:22: raft.heartbeat_ms: must be at least 1",
        ),
        (
            "election min not below max",
            edit("heartbeat_ms = 250\n", "heartbeat_ms = 250\nelection_timeout_min_ms = 2000\n"),
            "coordinator.toml:23: raft.election_timeout_min_ms: 2000 must be below raft.election_timeout_max_ms (2000)",
        ),
        (
            "election max below the default min: the line of [raft]",
            edit("heartbeat_ms = 250\n", "heartbeat_ms = 250\nelection_timeout_max_ms = 900\n"),
            "coordinator.toml:21: raft.election_timeout_min_ms: 1000 must be below raft.election_timeout_max_ms (900)",
        ),
        (
            "snapshot_every_logs 0",
            edit("heartbeat_ms = 250\n", "heartbeat_ms = 250\nsnapshot_every_logs = 0\n"),
            "coordinator.toml:23: raft.snapshot_every_logs: must be at least 1",
        ),
        (
            "tls neither insecure nor complete",
            edit("insecure = true", "ca_file = \"ca.pem\""),
            "coordinator.toml:18: tls: set insecure = true for plaintext, or all of ca_file, cert_file and \
             key_file (missing: cert_file, key_file)",
        ),
        (
            "tls empty",
            edit("insecure = true\n", ""),
            "coordinator.toml:18: tls: set insecure = true for plaintext, or all of ca_file, cert_file and \
             key_file (missing: ca_file, cert_file, key_file)",
        ),
        (
            "tls insecure = false",
            edit("insecure = true", "insecure = false"),
            "coordinator.toml:18: tls: set insecure = true for plaintext, or all of ca_file, cert_file and \
             key_file (missing: ca_file, cert_file, key_file)",
        ),
        (
            "tls insecure with files",
            edit("insecure = true", "insecure = true\nca_file = \"ca.pem\""),
            "coordinator.toml:19: tls.insecure: insecure = true cannot be combined with ca_file, cert_file or \
             key_file: remove one or the other",
        ),
        (
            "tls files missing",
            edit(
                "insecure = true",
                "ca_file = \"/nonexistent/ca.pem\"\ncert_file = \"/nonexistent/node-1.pem\"\nkey_file = \"/nonexistent/node-1-key.pem\"",
            ),
            "coordinator.toml:19: tls.ca_file: cannot read \"/nonexistent/ca.pem\": No such file or directory (os error 2)",
        ),
        (
            "tls file is a directory",
            edit("insecure = true", "ca_file = \"/\"\ncert_file = \"/\"\nkey_file = \"/\""),
            "coordinator.toml:19: tls.ca_file: \"/\" is not a regular file",
        ),
        (
            "admin token directory missing",
            edit("admin_token_file = \"admin.token\"", "admin_token_file = \"/nonexistent/admin.token\""),
            "coordinator.toml:6: admin_token_file: directory \"/nonexistent\" does not exist",
        ),
        (
            "admin token file is a directory",
            edit("admin_token_file = \"admin.token\"", "admin_token_file = \"/\""),
            "coordinator.toml:6: admin_token_file: \"/\" is not a regular file",
        ),
        (
            "data_dir is a file",
            edit("data_dir = \"data\"", "data_dir = \"Cargo.toml\""),
            "coordinator.toml:2: data_dir: \"Cargo.toml\" exists but is not a directory",
        ),
        ("data_dir empty", edit("data_dir = \"data\"", "data_dir = \"\""), "coordinator.toml:2: data_dir: must not be empty"),
    ];
    check_cases(cases);
}

#[test]
fn validate_without_a_file_reports_the_key_alone() {
    let config = Config { node_id: 9, ..Config::default() };
    let error = config.validate().unwrap_err();
    assert_eq!(
        error.to_string(),
        "node_id: node 9 is not in [[peers]]: list every initial member, this node included"
    );
    assert_eq!(error.location().map(|l| l.line), Some(None));
}

#[test]
fn load_names_the_file_and_resolves_relative_paths_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node1.toml");

    let missing = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        missing,
        format!("{}: cannot read the config file: No such file or directory (os error 2)", path.display())
    );

    std::fs::write(&path, edit("node_id = 1", "node_id = 7")).unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:1: node_id: node 7 is not in [[peers]]", path.display())),
        "{error}"
    );

    std::fs::write(&path, BASE).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.data_dir, dir.path().join("data"));
    assert_eq!(config.admin_token_file, dir.path().join("admin.token"));

    std::fs::create_dir(dir.path().join("pki")).unwrap();
    for name in ["ca.pem", "node-1.pem", "node-1-key.pem"] {
        std::fs::write(dir.path().join("pki").join(name), "").unwrap();
    }
    let with_files = edit(
        "insecure = true",
        "ca_file = \"pki/ca.pem\"\ncert_file = \"pki/node-1.pem\"\nkey_file = \"/abs/elsewhere.pem\"",
    );
    std::fs::write(&path, &with_files).unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "{}:21: tls.key_file: cannot read \"/abs/elsewhere.pem\": No such file or directory (os error 2)",
            path.display()
        )
    );
    std::fs::write(&path, with_files.replace("/abs/elsewhere.pem", "pki/node-1-key.pem")).unwrap();
    let config = Config::load(&path).unwrap();
    let files = config.tls.files().unwrap();
    assert_eq!(files.ca_file, dir.path().join("pki/ca.pem"));
    assert_eq!(files.cert_file, dir.path().join("pki/node-1.pem"));
    assert_eq!(files.key_file, dir.path().join("pki/node-1-key.pem"));
}

#[test]
fn raft_settings_become_a_valid_openraft_config() {
    let raft = RaftConfig {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        snapshot_every_logs: 20,
        logs_kept_after_snapshot: 5,
    };
    let openraft = raft.openraft_config().unwrap();
    assert_eq!(openraft.heartbeat_interval, 50);
    assert_eq!(openraft.election_timeout_min, 300);
    assert_eq!(openraft.election_timeout_max, 600);
    assert_eq!(openraft.snapshot_policy, openraft::SnapshotPolicy::LogsSinceLast(20));
    assert_eq!(openraft.max_in_snapshot_log_to_keep, 5);
    RaftConfig::default().openraft_config().unwrap();
}

#[test]
fn initial_members_are_the_peers_as_raft_nodes() {
    let config = Config::parse(BASE, "coordinator.toml").unwrap();
    let members = config.initial_members();
    assert_eq!(members.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(members[&2], Node { api_addr: "127.0.0.1:7410".into(), raft_addr: "127.0.0.1:7411".into() });
}

#[test]
fn the_deploy_local_examples_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local");
    let work = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, work.path().join(path.file_name().unwrap())).unwrap();
            nodes.push(path.file_name().unwrap().to_owned());
        }
    }
    nodes.sort();
    assert_eq!(nodes, ["node1.toml", "node2.toml", "node3.toml"]);
    // The examples use TLS files from `certs init --dir pki --nodes 3`.
    let options = vantage_coordinator::certs::InitOptions {
        dir: work.path().join("pki"),
        nodes: 3,
        hosts: Vec::new(),
        force: false,
        valid_days: 30,
    };
    vantage_coordinator::certs::init(&options, &vantage_core::clock::SystemWallClock).unwrap();
    for (i, name) in nodes.iter().enumerate() {
        let config = Config::load(&work.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.node_id, i as u64 + 1);
        assert_eq!(config.peers.len(), 3);
        vantage_coordinator::tls::load(&config.tls, config.node_id, &vantage_core::clock::SystemWallClock)
            .unwrap()
            .expect("the examples use TLS");
    }
}

#[test]
fn run_exits_2_on_an_invalid_config_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(&path, edit("heartbeat_ms = 250", "heartbeat_ms = 5000")).unwrap();
    let output = coordinator().arg("run").arg("--config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {}:22: raft.heartbeat_ms: 5000 must be below raft.election_timeout_min_ms (1000)",
            path.display()
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("admin.token").exists(), "nothing is created for an invalid config");
}

#[test]
fn run_with_a_valid_config_creates_the_admin_token_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    // A single-node cluster on free ports, so parallel tests never clash.
    let ports: Vec<u16> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let config = format!(
        "node_id = 1\ndata_dir = \"data\"\napi_addr = \"127.0.0.1:{a}\"\nraft_addr = \"127.0.0.1:{r}\"\n\
         http_addr = \"127.0.0.1:{h}\"\n[[peers]]\nid = 1\napi_addr = \"127.0.0.1:{a}\"\nraft_addr = \"127.0.0.1:{r}\"\n\
         [tls]\ninsecure = true\n[raft]\nheartbeat_ms = 50\nelection_timeout_min_ms = 200\nelection_timeout_max_ms = 400\n",
        a = ports[0],
        r = ports[1],
        h = ports[2]
    );
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("node.log");
    let mut child = coordinator()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    // It serves: /healthz reports a leader (itself) within a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", ports[2])).ok().and_then(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            Some(text)
        });
        if answer.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 200") && a.contains("\"status\":\"ok\""))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no healthy /healthz: {answer:?}\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stderr = std::fs::read_to_string(&log).unwrap();
    let token_file = dir.path().join("admin.token");
    assert!(stderr.contains(&format!("wrote a new admin token to {}", token_file.display())), "{stderr}");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim().len(), 64);
    // SIGTERM: a clean exit within the bound.
    let started = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no exit within 10 s of SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status}: {}", std::fs::read_to_string(&log).unwrap());
}

fn coordinator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vantage-coordinator"));
    command.env("VANTAGE_LOG", "warn");
    command
}

fn check_cases(cases: &[(&str, String, &str)]) {
    let mut failures = Vec::new();
    for (name, text, expected) in cases {
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
fn mesh_settings_have_defaults_and_ranges() {
    let base = "node_id = 1\ndata_dir = \"/tmp/x\"\napi_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"\n[[peers]]\nid = 1\napi_addr = \"127.0.0.1:7400\"\nraft_addr = \"127.0.0.1:7401\"\n[tls]\ninsecure = true\n";
    let config = Config::parse(base, "coordinator.toml").expect("valid without [mesh]");
    assert_eq!(config.mesh, MeshConfig::default());
    assert_eq!(config.mesh.options().probe_grace, Duration::from_secs(15));

    let tuned = format!("{base}[mesh]\nprobe_grace_ms = 3000\ncheckpoint_ms = 100\n");
    let options = Config::parse(&tuned, "coordinator.toml").expect("valid").mesh.options();
    assert_eq!(options.probe_grace, Duration::from_secs(3));
    assert_eq!(options.checkpoint_interval, Duration::from_millis(100));

    let too_big = format!("{base}[mesh]\nmax_batch_results = 5000\n");
    let error = Config::parse(&too_big, "coordinator.toml").expect_err("out of range").to_string();
    assert_eq!(
        error,
        "coordinator.toml:12: mesh.max_batch_results: 5000 is out of range: must be between 1 and 500"
    );
    let typo = format!("{base}[mesh]\nprobe_grace = 3000\n");
    let error = Config::parse(&typo, "coordinator.toml").expect_err("unknown key").to_string();
    assert!(error.contains("did you mean \"probe_grace_ms\""), "{error}");
}

#[test]
fn dial_raft_addr_is_optional_per_peer_and_validated() {
    let dialed = edit(
        "raft_addr = \"127.0.0.1:7411\"",
        "raft_addr = \"127.0.0.1:7411\"\ndial_raft_addr = \"127.0.0.1:9411\"",
    );
    let config = Config::parse(&dialed, "coordinator.toml").unwrap();
    assert_eq!(config.peers[1].dial_raft_addr, Some(addr("127.0.0.1:9411")));
    assert_eq!(config.peers[0].dial_raft_addr, None, "default: the advertised raft_addr");
    assert_eq!(config.dial_raft_addrs(), [(2, "127.0.0.1:9411".to_string())].into());
    // Not replicated: the membership still advertises raft_addr.
    assert_eq!(config.initial_members()[&2].raft_addr, "127.0.0.1:7411");
    assert!(Config::parse(BASE, "coordinator.toml").unwrap().dial_raft_addrs().is_empty());
    // Naming the advertised address itself is allowed (and changes nothing).
    let same = edit(
        "raft_addr = \"127.0.0.1:7411\"",
        "raft_addr = \"127.0.0.1:7411\"\ndial_raft_addr = \"127.0.0.1:7411\"",
    );
    Config::parse(&same, "coordinator.toml").unwrap();

    let with = |dial: &str| {
        edit(
            "raft_addr = \"127.0.0.1:7411\"",
            &format!("raft_addr = \"127.0.0.1:7411\"\ndial_raft_addr = {dial}"),
        )
    };
    check_cases(&[
        (
            "not an address",
            with("\"proxy:9411\""),
            "coordinator.toml:17: peers[1].dial_raft_addr: invalid socket address \"proxy:9411\": \
             expected IP:PORT, such as 127.0.0.1:7400 or [::1]:7400",
        ),
        (
            "port 0",
            with("\"127.0.0.1:0\""),
            "coordinator.toml:17: peers[1].dial_raft_addr: port 0 cannot be reached by peers: give a fixed port",
        ),
        (
            "another member's address",
            with("\"127.0.0.1:7401\""),
            "coordinator.toml:17: peers[1].dial_raft_addr: 127.0.0.1:7401 is already peers[0].raft_addr",
        ),
        (
            "the member's own api_addr",
            with("\"127.0.0.1:7410\""),
            "coordinator.toml:17: peers[1].dial_raft_addr: 127.0.0.1:7410 is already peers[1].api_addr",
        ),
    ]);
    let both = edit(
        "raft_addr = \"127.0.0.1:7401\"\n\n",
        "raft_addr = \"127.0.0.1:7401\"\ndial_raft_addr = \"127.0.0.1:9000\"\n\n",
    )
    .replace(
        "raft_addr = \"127.0.0.1:7411\"",
        "raft_addr = \"127.0.0.1:7411\"\ndial_raft_addr = \"127.0.0.1:9000\"",
    );
    let error = Config::parse(&both, "coordinator.toml").expect_err("two peers dialed alike").to_string();
    assert_eq!(
        error,
        "coordinator.toml:18: peers[1].dial_raft_addr: 127.0.0.1:9000 is already peers[0].dial_raft_addr"
    );
}
