//! The production examples under `deploy/`: `coordinator.toml` parses and
//! validates once its files exist (and, as written, fails only because they
//! do not exist on this machine), documents every key, and agrees with the
//! systemd units and the probe's cloud-init file on binaries, config paths
//! and writable directories. (`deploy/probe.toml` is checked by
//! `probe/tests/agent.rs`, `deploy/local/` by `tests/config.rs`.)

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use vantage_coordinator::config::{Config, ConfigError, Problem, RaftConfig};

const ORIGIN: &str = "deploy/coordinator.toml";

fn deploy(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The value of every `Key=` line of a unit file, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

/// The single value of `Key=` in a unit file.
fn unit_value(unit: &str, key: &str) -> String {
    let values = unit_values(unit, key);
    assert_eq!(values.len(), 1, "{key}= should appear once: {values:?}");
    values[0].clone()
}

#[test]
fn the_coordinator_example_validates_once_its_directories_and_certificates_exist() {
    let text = deploy("coordinator.toml");
    let root = tempfile::tempdir().unwrap();
    // The same layout under a temporary root: certificates from `certs init`
    // in etc/vantage/pki, an existing (empty) state directory.
    let etc = root.path().join("etc/vantage");
    let state = root.path().join("var/lib/vantage");
    std::fs::create_dir_all(&state).unwrap();
    let options = vantage_coordinator::certs::InitOptions {
        dir: etc.join("pki"),
        nodes: 3,
        hosts: vec!["192.0.2.11".into(), "192.0.2.12".into(), "192.0.2.13".into()],
        force: false,
        valid_days: 30,
    };
    vantage_coordinator::certs::init(&options, &vantage_core::clock::SystemWallClock).unwrap();
    let rewritten = text
        .replace("\"/etc/vantage/", &format!("\"{}/", etc.display()))
        .replace("\"/var/lib/vantage", &format!("\"{}", state.display()));
    assert_ne!(rewritten, text);

    let config = Config::parse(&rewritten, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.node_id, 1);
    assert_eq!(config.data_dir, state);
    assert_eq!(config.admin_token_file, state.join("admin.token"));
    assert_eq!(config.api_addr, addr("192.0.2.11:7400"));
    assert_eq!(config.raft_addr, addr("192.0.2.11:7401"));
    assert_eq!(config.http_addr, addr("127.0.0.1:8080"));
    let peers: Vec<(u64, SocketAddr, SocketAddr)> =
        config.peers.iter().map(|p| (p.id, p.api_addr, p.raft_addr)).collect();
    assert_eq!(
        peers,
        [
            (1, addr("192.0.2.11:7400"), addr("192.0.2.11:7401")),
            (2, addr("192.0.2.12:7400"), addr("192.0.2.12:7401")),
            (3, addr("192.0.2.13:7400"), addr("192.0.2.13:7401")),
        ]
    );
    // Only RFC 5737 documentation addresses or loopback: nothing real.
    for a in config.peers.iter().flat_map(|p| [p.api_addr, p.raft_addr]).chain([config.http_addr]) {
        let ip = a.ip().to_string();
        assert!(["192.0.2.", "198.51.100.", "203.0.113.", "127."].iter().any(|p| ip.starts_with(p)), "{a}");
    }
    let files = config.tls.files().expect("the example uses TLS");
    assert!(!config.tls.insecure);
    assert_eq!(files.ca_file, etc.join("pki/ca.pem"));
    assert_eq!(files.cert_file, etc.join("pki/node-1.pem"));
    assert_eq!(files.key_file, etc.join("pki/node-1-key.pem"));
    // The [raft] values written are the defaults, as its comments say.
    assert_eq!(config.raft, RaftConfig::default());
    config.raft.openraft_config().unwrap();
    // The certificates named are a usable node-1 identity.
    vantage_coordinator::tls::load(&config.tls, config.node_id, &vantage_core::clock::SystemWallClock)
        .unwrap()
        .expect("the example uses TLS");
}

#[test]
fn as_written_the_coordinator_example_fails_only_on_files_missing_here() {
    let text = deploy("coordinator.toml");
    if Path::new("/etc/vantage/pki/ca.pem").exists() || Path::new("/var/lib/vantage").exists() {
        eprintln!("skipped: this machine has /etc/vantage or /var/lib/vantage");
        return;
    }
    // Everything but the files is valid: the first problem is the CA file.
    let unreadable = |error: ConfigError, want_key: &str, want_path: &str| match error {
        ConfigError::Invalid { at, key, problem } => {
            assert_eq!(key, want_key);
            assert_eq!(at.origin.as_deref(), Some(ORIGIN));
            let line = at.line.expect("a line");
            assert!(text.lines().nth(line - 1).unwrap().starts_with(want_key.rsplit('.').next().unwrap()));
            match *problem {
                Problem::Unreadable { path, source } => {
                    assert_eq!(path, PathBuf::from(want_path));
                    assert_eq!(source.kind(), io::ErrorKind::NotFound);
                }
                Problem::NoParentDirectory { dir } => assert_eq!(dir, PathBuf::from(want_path)),
                other => panic!("{want_key}: unexpected problem: {other}"),
            }
        }
        other => panic!("expected a missing-file problem, got: {other}"),
    };
    unreadable(Config::parse(&text, ORIGIN).unwrap_err(), "tls.ca_file", "/etc/vantage/pki/ca.pem");
    // With the TLS section made plaintext, the only other problem is that
    // the admin token's directory (the state directory) does not exist yet.
    let start = text.find("\n[tls]\n").unwrap();
    let end = text.find("\n[raft]").unwrap();
    let plaintext = format!("{}\n[tls]\ninsecure = true\n{}", &text[..start], &text[end..]);
    unreadable(Config::parse(&plaintext, ORIGIN).unwrap_err(), "admin_token_file", "/var/lib/vantage");
}

#[test]
fn the_coordinator_example_writes_every_key_with_a_comment_above_it() {
    let text = deploy("coordinator.toml");
    let table: toml::Table = text.parse().unwrap();
    let mut written: Vec<String> = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(inner) => written.extend(inner.keys().map(|k| format!("{key}.{k}"))),
            toml::Value::Array(items) => {
                for item in items {
                    let inner = item.as_table().unwrap();
                    written.extend(inner.keys().map(|k| format!("{key}[].{k}")));
                }
            }
            _ => written.push(key.clone()),
        }
    }
    written.sort();
    written.dedup();
    let schema = [
        "admin_token_file",
        "api_addr",
        "data_dir",
        "export.flush_timeout_ms",
        "export.state_interval_ms",
        "history.flush_ms",
        "http_addr",
        "mesh.checkpoint_ms",
        "mesh.heartbeat_ms",
        "mesh.max_batch_delay_ms",
        "mesh.max_batch_results",
        "mesh.max_clock_skew_ms",
        "mesh.missed_heartbeats",
        "mesh.probe_grace_ms",
        "node_id",
        "peers[].api_addr",
        "peers[].id",
        "peers[].raft_addr",
        "raft.election_timeout_max_ms",
        "raft.election_timeout_min_ms",
        "raft.heartbeat_ms",
        "raft.logs_kept_after_snapshot",
        "raft.snapshot_every_logs",
        "raft_addr",
        "tls.ca_file",
        "tls.cert_file",
        "tls.key_file",
    ];
    assert_eq!(written, schema);
    // The optional tables show their defaults.
    let mesh: vantage_coordinator::config::MeshConfig = table["mesh"].clone().try_into().unwrap();
    assert_eq!(mesh, vantage_coordinator::config::MeshConfig::default());
    let raft: vantage_coordinator::config::RaftConfig = table["raft"].clone().try_into().unwrap();
    assert_eq!(raft, vantage_coordinator::config::RaftConfig::default());
    let export: vantage_coordinator::config::ExportConfig = table["export"].clone().try_into().unwrap();
    assert_eq!(export, vantage_coordinator::config::ExportConfig::default());
    // The one key not written (it excludes the three files) is explained.
    assert!(text.contains("`insecure = true`"));
    // Each top-level key, [tls] and [raft] key, and table header has a
    // comment directly above it (repeated [[peers]] entries share one).
    let lines: Vec<&str> = text.lines().collect();
    let mut first_peer = true;
    for (i, line) in lines.iter().enumerate() {
        let in_peers =
            lines[..i].iter().rev().find(|l| l.starts_with('[')).is_some_and(|h| *h == "[[peers]]");
        let is_key = line.contains(" = ") && !line.starts_with('#') && !in_peers;
        let is_header = line.starts_with('[') && (*line != "[[peers]]" || first_peer);
        if *line == "[[peers]]" {
            first_peer = false;
        }
        if is_key || is_header {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                "line {}: {line:?} has no comment above it",
                i + 1
            );
        }
    }
}

#[test]
fn the_systemd_units_run_the_examples_as_an_unprivileged_hardened_user() {
    let coordinator = deploy("systemd/vantage-coordinator.service");
    let probe = deploy("systemd/vantage-probe.service");
    // The example's writable paths, read without validation (its files do
    // not exist here).
    let example: toml::Table = deploy("coordinator.toml").parse().unwrap();
    let data_dir = PathBuf::from(example["data_dir"].as_str().unwrap());
    let admin_token_file = PathBuf::from(example["admin_token_file"].as_str().unwrap());
    for (unit, binary, config, state) in [
        (&coordinator, "vantage-coordinator", "/etc/vantage/coordinator.toml", "vantage"),
        (&probe, "vantage-probe", "/etc/vantage/probe.toml", "vantage-probe"),
    ] {
        assert_eq!(unit_value(unit, "ExecStart"), format!("/usr/local/bin/{binary} run --config {config}"));
        assert!(["simple", "exec"].contains(&unit_value(unit, "Type").as_str()));
        assert_eq!(unit_value(unit, "User"), "vantage");
        assert_eq!(unit_value(unit, "Restart"), "on-failure");
        assert_eq!(unit_value(unit, "StateDirectory"), state);
        assert_eq!(unit_value(unit, "ConfigurationDirectory"), "vantage");
        assert_eq!(unit_value(unit, "ReadWritePaths"), format!("/var/lib/{state}"));
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("CapabilityBoundingSet", ""),
            ("RestartPreventExitStatus", "2"),
        ] {
            assert_eq!(unit_value(unit, key), value, "{binary}: {key}");
        }
        assert!(unit_values(unit, "SystemCallFilter").contains(&"@system-service".to_string()));
        assert!(unit_value(unit, "LimitNOFILE").parse::<u64>().unwrap() >= 4096);
        assert!(unit_value(unit, "RestartSec").ends_with('s'));
    }
    // Stop timeouts leave room for the graceful shutdowns (coordinator 10 s,
    // probe 5 s, each plus runtime teardown).
    assert_eq!(unit_value(&coordinator, "TimeoutStopSec"), "30s");
    assert_eq!(unit_value(&probe, "TimeoutStopSec"), "15s");
    // The coordinator writes only under its state directory, which
    // ProtectSystem=strict leaves writable.
    assert!(data_dir.starts_with("/var/lib/vantage"));
    assert!(admin_token_file.starts_with("/var/lib/vantage"));
    // The probe example's suggested spool lives in the probe's.
    assert!(deploy("probe.toml").contains("# spool_dir = \"/var/lib/vantage-probe/spool\""));
}

#[test]
fn the_probe_cloud_init_installs_the_same_unit_and_the_paths_it_names() {
    let cloud = deploy("cloud-init/probe.yaml");
    let unit = deploy("systemd/vantage-probe.service");
    assert!(cloud.starts_with("#cloud-config\n"));
    // The unit is embedded verbatim (a literal block indented 6 spaces).
    let header = "  - path: /etc/systemd/system/vantage-probe.service\n";
    let after = &cloud[cloud.find(header).expect("the unit is written") + header.len()..];
    let block_start = after.find("content: |\n").unwrap() + "content: |\n".len();
    let mut embedded = String::new();
    for line in after[block_start..].lines() {
        if line.is_empty() {
            embedded.push('\n');
        } else if let Some(rest) = line.strip_prefix("      ") {
            embedded.push_str(rest);
            embedded.push('\n');
        } else {
            break;
        }
    }
    assert_eq!(embedded.trim_end(), unit.trim_end());
    // Every file the unit and the probe config rely on is written or made.
    for needle in [
        "path: /etc/vantage/probe.toml",
        "path: /etc/vantage/probe.token",
        "path: /etc/vantage/ca.pem",
        "token_file = \"/etc/vantage/probe.token\"",
        "ca_file = \"/etc/vantage/ca.pem\"",
        "spool_dir = \"/var/lib/vantage-probe/spool\"",
        "install -m 0755 -o root -g root \"$tmp\" /usr/local/bin/vantage-probe",
        "sha256sum --check",
        "chmod 0600 /etc/vantage/probe.token",
        "systemctl enable --now vantage-probe.service",
        "- name: vantage",
        "PROBE_BINARY_URL=\"__PROBE_BINARY_URL__\"",
        "PROBE_BINARY_SHA256=\"__PROBE_BINARY_SHA256__\"",
    ] {
        assert!(cloud.contains(needle), "cloud-init lacks {needle:?}");
    }
    assert!(unit.contains("ExecStart=/usr/local/bin/vantage-probe run --config /etc/vantage/probe.toml"));
}
