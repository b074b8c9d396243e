//! A webhook receiver on loopback for the alert suites: it records every
//! request (path, headers, body), answers as scripted (200, a status, a
//! hang, a reset, a 10 MB flood), and verifies Standard Webhooks
//! signatures twice: with [`verify`], written from the specification, and
//! with [`reference_verify`], the reference implementation from PyPI
//! (`pip install standardwebhooks==1.0.0`; required under `CI=true`,
//! skipped with a message elsewhere).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// What the receiver does with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 200.
    Ok,
    /// Answer this status.
    Status(u16),
    /// Read the request, then never answer.
    Hang,
    /// Read the request head, then reset the connection (RST).
    Reset,
    /// Answer 200 with a 10 MB body.
    Huge,
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// Its headers, names in lowercase.
    pub headers: BTreeMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
    /// What it answered (0: no answer).
    pub status: u16,
}

impl Received {
    /// The `webhook-id` header ("" when absent).
    pub fn id(&self) -> &str {
        self.headers.get("webhook-id").map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Script {
    next: VecDeque<Fault>,
    default: Option<Fault>,
}

/// A webhook receiver on 127.0.0.1 with its own runtime.
pub struct Receiver {
    runtime: Option<Runtime>,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 (its own runtime) answering every
    /// connection with `default` unless scripted otherwise.
    pub fn start(default: Fault) -> Receiver {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script { next: VecDeque::new(), default: Some(default) }));
        let (s, sc) = (seen.clone(), script.clone());
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fault = {
                    let mut script = sc.lock().unwrap();
                    script.next.pop_front().or(script.default).unwrap_or(Fault::Ok)
                };
                tokio::spawn(serve(stream, fault, s.clone()));
            }
        });
        Receiver { runtime: Some(runtime), addr, seen, script }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The faults for the next connections, in order (then the default).
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().unwrap().next.extend(faults);
    }

    /// What connections get once the script is used up.
    pub fn set_default(&self, fault: Fault) {
        self.script.lock().unwrap().default = Some(fault);
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(mut stream: TcpStream, fault: Fault, seen: Arc<Mutex<Vec<Received>>>) {
    if fault == Fault::Reset {
        // Read the head, note the request, then RST.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        seen.lock().unwrap().push(parse_head(&head));
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
        return;
    }
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let path = request.uri().path().to_string();
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let body = request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            let (status, answer) = match fault {
                Fault::Ok => (200, Bytes::from_static(b"ok")),
                Fault::Status(code) => (code, Bytes::from_static(b"try again later")),
                Fault::Huge => (200, Bytes::from(vec![b'x'; 10 * 1024 * 1024])),
                Fault::Hang => (0, Bytes::new()),
                Fault::Reset => unreachable!(),
            };
            seen.lock().unwrap().push(Received { path, headers, body, status });
            if fault == Fault::Hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let mut response = hyper::Response::new(Full::new(answer));
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

fn parse_head(head: &[u8]) -> Received {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default().to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Received { path, headers, body: Vec::new(), status: 0 }
}

/// Standard Webhooks verification, written from the specification.
pub fn verify(secret: &str, received: &Received) -> Result<(), String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("not a whsec_ secret")?)
        .map_err(|e| e.to_string())?;
    let header = |name: &str| received.headers.get(name).ok_or(format!("no {name} header"));
    let (id, timestamp, signatures) =
        (header("webhook-id")?, header("webhook-timestamp")?, header("webhook-signature")?);
    let sent: i64 = timestamp.parse().map_err(|_| "the timestamp is not a number")?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - sent).abs() > 300 {
        return Err(format!("timestamp {sent} is not within 5 minutes of {now}"));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&received.body);
    for signature in signatures.split(' ') {
        if let Some(encoded) = signature.strip_prefix("v1,") {
            let bytes = STANDARD.decode(encoded).map_err(|e| e.to_string())?;
            if ring::hmac::verify(&key, &signed, &bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(format!("no v1 signature in {signatures:?} matches"))
}

const REFERENCE_VERIFIER: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
cases = json.load(sys.stdin)
for case in cases:
    Webhook(case["secret"]).verify(case["body"], case["headers"])
print(f"verified {len(cases)}")
"#;

/// Verifies with `standardwebhooks` 1.0.0 from PyPI (`python3`). Under
/// `CI=true` a missing interpreter or package fails the test.
pub fn reference_verify(secret: &str, seen: &[Received]) {
    let available = Process::new("python3")
        .args(["-c", "import standardwebhooks"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        let how = "install it with: pip install standardwebhooks==1.0.0";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the Standard Webhooks reference verifier is missing; {how}"
        );
        eprintln!("skipping the reference verifier (python3 with standardwebhooks not found; {how})");
        return;
    }
    let cases: Vec<serde_json::Value> = seen
        .iter()
        .map(|r| {
            serde_json::json!({
                "secret": secret,
                "body": String::from_utf8(r.body.clone()).expect("bodies are JSON text"),
                "headers": r.headers,
            })
        })
        .collect();
    let mut child = Process::new("python3")
        .args(["-c", REFERENCE_VERIFIER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &cases).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the reference verifier refused a delivery: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("verified {}", seen.len()));
}
