//! `vantage-coordinator dev` as the README tells a newcomer to run it: the
//! real binary with no configuration, the real `vantagectl` pointed at it
//! with the printed token file, three probes connected in three regions
//! within 10 s, results for the healthy demo endpoint from every region on
//! `/api/endpoints`, and SIGTERM stopping it with exit 0 and its temporary
//! data directory removed.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::process::{free_ports, workspace_bin, ChildGuard};

const REGIONS: [&str; 3] = ["dev-eu", "dev-us", "dev-ap"];

/// The value after `label` on the first line of the log that starts with it
/// (after indentation), once the banner is printed.
fn banner_value(log: &Path, label: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .map(str::trim_start)
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// `GET path` over a fresh HTTP/1.1 connection; the body as JSON.
fn get_json(port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// The regions of the connected probes in `vantagectl probe list --json`.
fn connected_regions(ctl: &Path, api: u16, token_file: &Path) -> Vec<String> {
    let out = Command::new(ctl)
        .arg("--server")
        .arg(format!("http://127.0.0.1:{api}"))
        .arg("--token-file")
        .arg(token_file)
        .args(["probe", "list", "--json"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) else { return Vec::new() };
    let mut regions: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["connected"] == Value::Bool(true))
        .filter_map(|p| p["region"].as_str().map(str::to_owned))
        .collect();
    regions.sort();
    regions
}

/// The regions with an `ok` result for endpoint `name` on `/api/endpoints`.
fn ok_regions(http: u16, name: &str) -> Vec<String> {
    let Some(view) = get_json(http, "/api/endpoints") else { return Vec::new() };
    let endpoint = view["endpoints"].as_array().into_iter().flatten().find(|e| e["name"] == name);
    let mut regions: Vec<String> = endpoint
        .and_then(|e| e["results"].as_array())
        .into_iter()
        .flatten()
        .filter(|r| r["ok"] == Value::Bool(true) && r["status"] == 200 && r["total_ms"].is_number())
        .filter(|r| r["started_at"].is_string())
        .filter_map(|r| r["region"].as_str().map(str::to_owned))
        .collect();
    regions.sort();
    regions.dedup();
    regions
}

#[test]
fn dev_mode_runs_three_probes_and_demo_targets_with_no_configuration() {
    let coordinator = workspace_bin("vantage-coordinator").unwrap();
    let ctl = workspace_bin("vantagectl").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("dev.log");
    let ports = free_ports(2).unwrap();
    let (api, http) = (ports[0], ports[1]);
    let started = Instant::now();
    let mut command = Command::new(&coordinator);
    command
        .arg("dev")
        .arg("--api")
        .arg(format!("127.0.0.1:{api}"))
        .arg("--http")
        .arg(format!("127.0.0.1:{http}"));
    let mut node = ChildGuard::spawn("dev", command, &log).unwrap();
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();

    // The banner: the token file (inside the temporary data dir) and the
    // ready-to-paste vantagectl line.
    let token_file = loop {
        if let Some(path) = banner_value(&log, "token file") {
            break PathBuf::from(path);
        }
        assert!(node.is_running(), "dev mode exited:\n{}", dump());
        assert!(started.elapsed() < Duration::from_secs(10), "no banner within 10 s:\n{}", dump());
        std::thread::sleep(Duration::from_millis(50));
    };
    let data_dir = PathBuf::from(banner_value(&log, "data dir").unwrap());
    assert_eq!(token_file, data_dir.join("admin.token"));
    let text = dump();
    let paste = format!(
        "vantagectl --server http://127.0.0.1:{api} --token-file {} probe list",
        token_file.display()
    );
    assert!(text.contains(&paste), "no `{paste}` in:\n{text}");
    assert!(text.contains(&format!("http://127.0.0.1:{http}")), "{text}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "admin.token mode");
    }

    // The Done-when: three connected probes in three regions within
    // 10 s of starting.
    let mut expected: Vec<String> = REGIONS.iter().map(|r| r.to_string()).collect();
    expected.sort();
    loop {
        let regions = connected_regions(&ctl, api, &token_file);
        if regions == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "probes connected after 10 s: {regions:?}\n{}",
            dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let connected_after = started.elapsed();

    // Results of the healthy endpoint from all three regions (2 s interval).
    let results_from = Instant::now();
    loop {
        if ok_regions(http, "demo-healthy") == expected {
            break;
        }
        assert!(
            results_from.elapsed() < Duration::from_secs(15),
            "no ok results from every region: {:?}\n{}",
            get_json(http, "/api/endpoints"),
            dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let view = get_json(http, "/api/endpoints").unwrap();
    let names: Vec<&str> =
        view["endpoints"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["demo-healthy", "demo-slow", "demo-flaky", "demo-outage"], "{view}");
    assert!(get_json(http, "/healthz").is_some_and(|h| h["status"] == "ok"));
    eprintln!("probes connected after {connected_after:?}, results {:?} later", results_from.elapsed());

    // SIGTERM: exit 0 within a bound, the temporary data directory gone.
    let status = node.terminate(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "exit {status:?}:\n{}", dump());
    assert!(!data_dir.exists(), "{} was not removed", data_dir.display());
}
