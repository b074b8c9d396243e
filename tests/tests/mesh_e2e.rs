//! The probe admin path end to end, as an operator runs it: one real
//! `vantage-coordinator run` node with TLS, probe tokens issued with the
//! real `vantagectl`, three real `vantage-probe run` agents (one per region)
//! checking a loopback HTTP target, `probe list` showing them connected with
//! endpoints, `probe revoke` ending one's stream, SIGTERM stopping all.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::process::{free_ports, workspace_bin, ChildGuard};
use vantage_tests::{HttpTarget, TargetOptions};

const REGIONS: [&str; 3] = ["eu", "us", "ap"];

struct Mesh {
    dir: tempfile::TempDir,
    ctl: PathBuf,
    api: u16,
    node: Option<ChildGuard>,
    probes: Vec<(String, ChildGuard)>,
}

impl Mesh {
    /// Certificates, a one-node config with TLS, and the node started.
    fn start() -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = workspace_bin("vantage-coordinator").unwrap();
        let out = Command::new(&coordinator)
            .args(["certs", "init", "--dir", "pki", "--nodes", "1"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "certs init: {}", String::from_utf8_lossy(&out.stderr));
        let ports = free_ports(3).unwrap();
        let (api, raft, http) = (ports[0], ports[1], ports[2]);
        let config = format!(
            "node_id = 1\ndata_dir = \"data\"\napi_addr = \"127.0.0.1:{api}\"\nraft_addr = \"127.0.0.1:{raft}\"\n\
             http_addr = \"127.0.0.1:{http}\"\nadmin_token_file = \"admin.token\"\n\n\
             [[peers]]\nid = 1\napi_addr = \"127.0.0.1:{api}\"\nraft_addr = \"127.0.0.1:{raft}\"\n\n\
             [tls]\nca_file = \"pki/ca.pem\"\ncert_file = \"pki/node-1.pem\"\nkey_file = \"pki/node-1-key.pem\"\n\n\
             [raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n"
        );
        std::fs::write(dir.path().join("node.toml"), config).unwrap();
        let mut command = Command::new(&coordinator);
        command.args(["run", "--config", "node.toml"]).current_dir(dir.path()).env("VANTAGE_LOG", "info");
        let node = ChildGuard::spawn("coordinator", command, &dir.path().join("node.log")).unwrap();
        Mesh { ctl: workspace_bin("vantagectl").unwrap(), dir, api, node: Some(node), probes: Vec::new() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let token = self.path().join("admin.token");
        let ca = self.path().join("pki/ca.pem");
        Command::new(&self.ctl)
            .args(["--server", &format!("https://127.0.0.1:{}", self.api)])
            .args(["--ca", ca.to_str().unwrap(), "--token-file", token.to_str().unwrap()])
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "vantagectl {args:?} failed ({:?}): {}{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(&args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    /// Polls `probe list --json` until `check` holds.
    fn wait_probes(&self, within: Duration, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let out = self.ctl(&["probe", "list", "--json"]);
            let mut last = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                let list: Value = serde_json::from_slice(&out.stdout).unwrap();
                let probes = list.as_array().unwrap().clone();
                if check(&probes) {
                    return probes;
                }
                last = list.to_string();
            }
            assert!(Instant::now() < deadline, "{what} not within {within:?}; last: {last}{}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes the probe's token file (0600) and config, and starts it.
    fn start_probe(&mut self, name: &str, region: &str, token: &str) {
        let token_file = self.path().join(format!("{name}.token"));
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&token_file).unwrap();
        writeln!(file, "{token}").unwrap();
        drop(file);
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
        let config = format!(
            "probe_id = \"{name}\"\nregion = \"{region}\"\ncoordinators = [\"https://127.0.0.1:{}\"]\n\
             token_file = \"{name}.token\"\nca_file = \"pki/ca.pem\"\nspool_dir = \"spool-{name}\"\n",
            self.api
        );
        let config_file = self.path().join(format!("{name}.toml"));
        std::fs::write(&config_file, config).unwrap();
        let mut command = Command::new(workspace_bin("vantage-probe").unwrap());
        command
            .args(["run", "--config", config_file.to_str().unwrap()])
            .current_dir(self.path())
            .env("VANTAGE_LOG", "info");
        let log = self.path().join(format!("{name}.log"));
        self.probes
            .push((name.to_string(), ChildGuard::spawn(format!("probe {name}"), command, &log).unwrap()));
    }

    fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut files = vec!["node.log".to_string()];
        files.extend(self.probes.iter().map(|(name, _)| format!("{name}.log")));
        files
            .iter()
            .map(|f| {
                let text = self.log(f);
                let tail: Vec<&str> = text.lines().rev().take(12).collect();
                format!(
                    "\n--- {f} (last lines) ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }
}

fn connected_with_endpoints(p: &Value) -> bool {
    p["connected"] == true && p["endpoints"].as_u64().is_some_and(|n| n >= 1)
}

#[test]
fn t80_probes_get_tokens_connect_from_three_regions_and_a_revoked_one_is_cut_off() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let target = {
        let _entered = runtime.enter();
        HttpTarget::start(TargetOptions::default()).unwrap()
    };

    let mut mesh = Mesh::start();
    // The first call waits for the node to elect itself (vantagectl retries
    // while it is unavailable; the loop covers a slow start).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = mesh.ctl(&["cluster", "status", "--json"]);
        if out.status.success() && serde_json::from_slice::<Value>(&out.stdout).unwrap()["leader_id"].is_u64()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no leader within 15s{}", mesh.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut regions = vec!["region", "add"];
    regions.extend(REGIONS);
    mesh.ok(&regions);
    let url = target.url("/");
    mesh.ok(&["endpoint", "add", "web", &url, "--interval", "1s", "--timeout", "500ms", "--allow-private"]);

    let mut ids = Vec::new();
    for region in REGIONS {
        let name = format!("{region}-1");
        let issued = mesh.json(&["probe", "token", "create", "--probe", &name, "--region", region]);
        let token = issued["token"].as_str().expect("a token").to_string();
        assert_eq!(token.len(), 64, "{issued}");
        ids.push(issued["probe_id"].as_u64().expect("a probe id"));
        mesh.start_probe(&name, region, &token);
    }

    let started = Instant::now();
    let probes = mesh.wait_probes(Duration::from_secs(15), "three connected probes with endpoints", |list| {
        list.len() == 3 && list.iter().all(connected_with_endpoints)
    });
    eprintln!("three probes connected with endpoints after {:?}", started.elapsed());
    let mut seen: Vec<&str> = probes.iter().map(|p| p["region"].as_str().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["ap", "eu", "us"]);
    for p in &probes {
        assert!(ids.contains(&p["id"].as_u64().unwrap()), "{p}");
        assert!(!p["version"].as_str().unwrap().is_empty(), "{p}");
        assert!(p["connected_since_unix_ms"].as_i64().unwrap() > 0, "{p}");
    }
    let table = mesh.ok(&["probe", "list"]);
    assert_eq!(table.lines().filter(|l| l.contains(" connected ")).count(), 3, "{table}");

    // Revoke one: its registration is gone at once and its stream ends
    // within a heartbeat or two (the mesh re-checks tokens every heartbeat,
    // 5 s by default), with a clear status the probe logs.
    assert_eq!(mesh.ok(&["probe", "revoke", "ap-1"]), format!("revoked probe ap-1 (id {})\n", ids[2]));
    let revoked_at = Instant::now();
    let left = mesh.wait_probes(Duration::from_secs(5), "the revoked probe unlisted", |list| {
        list.len() == 2 && list.iter().all(|p| p["region"] != "ap")
    });
    assert!(left.iter().all(|p| p["connected"] == true), "{left:?}");
    let deadline = revoked_at + Duration::from_secs(15);
    loop {
        let log = mesh.log("ap-1.log");
        if log.contains("was revoked or rotated") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked probe's stream did not end within 15s{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the revoked probe's stream ended after {:?}", revoked_at.elapsed());
    let node_log = mesh.log("node.log");
    assert!(node_log.contains("was revoked or rotated"), "{}", mesh.logs());
    let status = mesh.ctl(&["probe", "revoke", "ap-1"]);
    assert_eq!(status.status.code(), Some(1), "revoking twice is an error");

    // SIGTERM everything: each exits 0.
    let probes = std::mem::take(&mut mesh.probes);
    for (name, mut child) in probes {
        let status = child.terminate(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "probe {name} exited with {status:?}{}", mesh.logs());
    }
    let status = mesh.node.take().unwrap().terminate(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "the coordinator exited with {status:?}{}", mesh.logs());
    assert!(target.requests() > 0, "the probes checked the target");
    drop(target);
    runtime.shutdown_timeout(Duration::from_secs(1));
}
