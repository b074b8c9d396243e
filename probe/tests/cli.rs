//! `vantage-probe check` as a user runs it: the real binary against targets
//! on loopback, its JSON contract, human output and exit codes.

use std::process::{Command, Output};

use serde_json::Value;
use vantage_tests::{refused_addr, HttpTarget, TargetOptions};

const BIN: &str = env!("CARGO_BIN_EXE_vantage-probe");

/// Runs the binary off the runtime's threads, so the targets keep serving.
async fn probe(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().expect("run vantage-probe"))
        .await
        .unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_reports_ttfb_of_a_server_that_waits_200ms() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let url = target.url("/?headers_delay_ms=200");
    let out = probe(&["check", "--json", "--allow-private", &url]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(r["ok"], true);
    assert_eq!(r["error"], Value::Null);
    let ttfb = r["phases_ms"]["ttfb"].as_f64().unwrap();
    assert!((200.0..215.0).contains(&ttfb), "ttfb {ttfb} ms");
    // The documented contract: every field, with its type.
    assert_eq!(r["url"], url.as_str());
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["remote_addr"], target.addr().to_string());
    for phase in ["dns", "connect", "tls", "ttfb", "transfer", "total"] {
        assert!(r["phases_ms"][phase].is_f64(), "phases_ms.{phase} is a number: {r}");
    }
    assert_eq!(r["tls"], Value::Null);
    assert_eq!(r["body_bytes"], 2);
    let started = r["started_at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(started).is_ok(), "started_at {started:?} is RFC 3339");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_1_with_kind_and_message() {
    let addr = refused_addr();
    let url = format!("http://{addr}/");
    let out = probe(&["check", "--json", "--allow-private", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let r = &json_lines(&out)[0];
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["kind"], "connect_refused");
    assert_eq!(r["error"]["message"], format!("connection refused by {addr}"));
    assert_eq!(r["status_code"], Value::Null);
    assert_eq!(r["remote_addr"], Value::Null);

    // Without --allow-private the guard refuses loopback, with a hint.
    let out = probe(&["check", "--json", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let r = &json_lines(&out)[0];
    assert_eq!(r["error"]["kind"], "blocked");
    assert!(r["error"]["message"].as_str().unwrap().contains("--allow-private"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2_and_runs_nothing() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let good = target.url("/");
    let cases: [(&[&str], &str); 5] = [
        (&["check", &good, "htp:/x"], "invalid URL \"htp:/x\": unsupported scheme \"htp\""),
        (&["check"], "no URL to check"),
        (&["check", "--timeout", "soon", &good], "invalid value 'soon' for '--timeout <DUR>'"),
        (&["check", "--expect-status", "abc", &good], "invalid expect-status"),
        (&["check", "--ipv4", "--ipv6", &good], "cannot be used with"),
    ];
    for (args, needle) in cases {
        let out = probe(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: stderr {stderr:?} lacks {needle:?}");
    }
    assert_eq!(target.connections(), 0, "a bad invocation checks nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_of_urls_runs_concurrently_and_streams_results() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("vantage-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("urls.txt");
    let mut text = String::from("# three slow URLs and a failing one\n\n");
    for i in 0..3 {
        text.push_str(&format!("{}  # slow {i}\n", target.url(&format!("/?headers_delay_ms=300&n={i}"))));
    }
    text.push_str(&target.url("/?status=500"));
    std::fs::write(&file, text).unwrap();
    let started = std::time::Instant::now();
    let out =
        probe(&["check", "--json", "--allow-private", "-c", "4", "--file", file.to_str().unwrap()]).await;
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "one URL fails");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    // Streamed as they finish: the fast failure comes first.
    assert_eq!(lines[0]["error"]["kind"], "http_status");
    assert!(lines[1..].iter().all(|l| l["ok"] == true));
    assert!(elapsed.as_millis() < 900, "4 in flight: ~300 ms, not 900+ ({elapsed:?})");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_shows_every_phase_with_a_bar() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let out = probe(&[
        "check",
        "--allow-private",
        &target.url("/?headers_delay_ms=50"),
        &target.url("/?status=404"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "ok   http://",
        "FAIL http://",
        "    dns ",
        "    connect ",
        "    tls ",
        "    ttfb ",
        "█",
        "    transfer ",
        "    total ",
        "error    http_status: status 404",
        "2 checks: 1 passed, 1 failed",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn help_teaches_phases_and_exit_codes() {
    let out = Command::new(BIN).args(["check", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "time_starttransfer - time_pretransfer",
        "Exit status: 0",
        "--allow-private",
        "--follow-redirects",
        "Examples:",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
}

/// `vantage-probe run … 2>&1 | head` must not panic when the reader goes
/// away: logging to a closed stderr is dropped, and SIGTERM still ends the
/// agent cleanly (exit 0).
#[test]
fn a_closed_stderr_does_not_make_the_agent_panic() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("probe.token");
    std::fs::write(&token, "a-token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = dir.path().join("probe.toml");
    let refused = refused_addr();
    std::fs::write(
        &config,
        format!(
            "probe_id = \"p\"\nregion = \"r\"\ncoordinators = [\"http://{refused}\"]\n\
             token_file = \"{}\"\ninsecure = true\n",
            token.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("VANTAGE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first log line, then close the pipe, as `head -1` would.
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut first).unwrap();
    assert!(!first.is_empty());
    // It keeps logging (reconnect attempts to a refused address) into the
    // closed pipe for a while.
    std::thread::sleep(Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "the agent died with its log reader");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The certificate of the first-run report, made by the real `openssl`
/// exactly as server guides say (a self-signed RSA certificate with
/// `CA:TRUE`), given with `--ca`: it verifies, pinned. Without `--ca` it
/// fails with a sentence naming the fix. Under `CI=true` a missing
/// `openssl` fails the test; elsewhere the test is skipped with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_openssl_certificate_given_with_ca_verifies() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("self.pem"), dir.path().join("self-key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "30"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "openssl req: {}", String::from_utf8_lossy(&made.stderr));
    let target =
        HttpTarget::start(TargetOptions { tls: Some(server_config(&cert, &key)), ..Default::default() })
            .unwrap();
    let url = format!("https://localhost:{}/", target.addr().port());
    let ca = cert.display().to_string();

    let out = probe(&["check", "--json", "--allow-private", "--ca", &ca, &url]).await;
    assert_eq!(out.status.code(), Some(0), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    let r = &json_lines(&out)[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["tls"]["verified"], true, "{r}");
    assert_eq!(r["tls"]["subject"], "CN=localhost", "{r}");

    let out = probe(&["check", "--json", "--allow-private", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let r = &json_lines(&out)[0];
    assert_eq!(r["error"]["kind"], "tls", "{r}");
    assert_eq!(r["error"]["tls_reason"], "unknown_issuer", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("certificate for localhost is a CA certificate (CA:TRUE)"), "{message}");
    assert!(message.contains("give this same certificate with --ca FILE"), "{message}");
    assert!(!message.contains("Other("), "{message}");
}

/// Whether `openssl` can be run; under `CI=true` its absence is a failure.
fn openssl_available() -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => true,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("openssl is not installed and CI=true: install it (apt-get install openssl)")
        }
        _ => {
            eprintln!("skipped: openssl is not installed (apt-get install openssl runs this test)");
            false
        }
    }
}

/// A rustls server presenting the PEM certificate and key.
fn server_config(cert: &std::path::Path, key: &std::path::Path) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    std::sync::Arc::new(config)
}
