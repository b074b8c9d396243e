//! The HTTP target driven by raw tokio clients, so every assertion is about
//! bytes and timing on the wire.

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::CertificateError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::*;
use crate::pki::{Leaf, TestPki};

const MS: Duration = Duration::from_millis(1);

fn plain_target() -> HttpTarget {
    HttpTarget::start(TargetOptions::default()).unwrap()
}

async fn connect(target: &HttpTarget) -> TcpStream {
    TcpStream::connect(target.addr()).await.unwrap()
}

async fn send_get<S: AsyncWrite + Unpin>(stream: &mut S, path: &str, extra: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
}

/// A response as read off the wire.
#[derive(Debug)]
struct Wire {
    head: String,
    body: Vec<u8>,
}

impl Wire {
    fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Reads one response (head plus a Content-Length or chunked body).
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Wire {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "eof in head");
        buf.push(byte[0]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut wire = Wire { head, body: Vec::new() };
    if let Some(length) = wire.header("content-length") {
        let mut body = vec![0; length.parse().unwrap()];
        stream.read_exact(&mut body).await.unwrap();
        wire.body = body;
    } else if wire.header("transfer-encoding") == Some("chunked") {
        loop {
            let line = read_line(stream).await;
            let size = usize::from_str_radix(&line, 16).unwrap();
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                break;
            }
            wire.body.extend_from_slice(&chunk[..size]);
        }
    }
    wire
}

async fn read_line<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.push(stream.read_u8().await.unwrap());
    }
    String::from_utf8(line[..line.len() - 2].to_vec()).unwrap()
}

async fn get(target: &HttpTarget, path: &str) -> Wire {
    let mut stream = connect(target).await;
    send_get(&mut stream, path, "").await;
    read_response(&mut stream).await
}

#[tokio::test]
async fn default_response_is_200_ok_with_length() {
    let target = plain_target();
    let wire = get(&target, "/").await;
    assert_eq!(wire.status(), 200);
    assert_eq!(wire.body, b"ok");
    assert_eq!(wire.header("content-length"), Some("2"));
    assert_eq!(wire.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!((target.connections(), target.requests()), (1, 1));
}

#[tokio::test]
async fn status_headers_body_and_content_type_follow_the_query() {
    let target = plain_target();
    let wire = get(
        &target,
        "/x?status=503&header=Retry-After:30&header=X-Test:a%20b&body=down&content_type=application/json",
    )
    .await;
    assert_eq!(wire.status(), 503);
    assert_eq!(wire.header("retry-after"), Some("30"));
    assert_eq!(wire.header("x-test"), Some("a b"));
    assert_eq!(wire.header("content-type"), Some("application/json"));
    assert_eq!(wire.body, b"down");

    let wire = get(&target, "/?body_bytes=1000").await;
    assert_eq!(wire.body, vec![b'x'; 1000]);
}

#[tokio::test]
async fn headers_delay_holds_back_the_first_byte() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?headers_delay_ms=200", "").await;
    let written = Instant::now();
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).await.unwrap();
    let waited = written.elapsed();
    assert!(waited >= 200 * MS && waited < 260 * MS, "{waited:?}");
    assert_eq!(&first, b"H");
}

#[tokio::test]
async fn drip_spreads_the_body_over_the_requested_time() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?body=abcdef&drip_ms=300&drip_chunks=3", "").await;
    let written = Instant::now();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head_at = written.elapsed();
    assert!(head_at < 60 * MS, "head took {head_at:?}");
    assert!(String::from_utf8_lossy(&head).contains("Content-Length: 6\r\n"));

    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    while body.len() < 6 {
        let mut chunk = [0u8; 16];
        let n = stream.read(&mut chunk).await.unwrap();
        body.extend_from_slice(&chunk[..n]);
        arrivals.push(written.elapsed());
    }
    assert_eq!(body, b"abcdef");
    assert_eq!(arrivals.len(), 3, "{arrivals:?}");
    assert!(arrivals[0] >= 100 * MS && arrivals[0] < 160 * MS, "{arrivals:?}");
    let total = arrivals[2];
    assert!(total >= 300 * MS && total < 400 * MS, "{total:?}");
}

#[tokio::test]
async fn chunked_uses_transfer_encoding() {
    let target = plain_target();
    let wire = get(&target, "/?chunked=1&body=hello%20chunks").await;
    assert_eq!(wire.header("transfer-encoding"), Some("chunked"));
    assert_eq!(wire.header("content-length"), None);
    assert_eq!(wire.body, b"hello chunks");

    let wire = get(&target, "/?chunked=1&body=abcdefgh&drip_ms=40&drip_chunks=4").await;
    assert_eq!(wire.body, b"abcdefgh");
}

#[tokio::test]
async fn redirect_sends_location() {
    let target = plain_target();
    let wire = get(&target, "/?redirect=http%3A%2F%2F127.0.0.1%3A1%2Fnext%3Fa%3Db").await;
    assert_eq!(wire.status(), 302);
    assert_eq!(wire.header("location"), Some("http://127.0.0.1:1/next?a=b"));
    assert_eq!(wire.header("content-length"), Some("0"));

    let wire = get(&target, "/?redirect=/elsewhere&redirect_status=308").await;
    assert_eq!(wire.status(), 308);
    assert_eq!(wire.header("location"), Some("/elsewhere"));
}

#[tokio::test]
async fn reset_makes_the_client_see_connection_reset() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?reset=1", "").await;
    let mut buf = [0u8; 16];
    let error = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert_eq!(target.requests(), 1);
}

#[tokio::test]
async fn hang_never_answers_until_the_target_is_dropped() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?hang=1", "").await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(300 * MS, stream.read(&mut buf)).await;
    assert!(read.is_err(), "got {read:?}");

    drop(target);
    let read = tokio::time::timeout(500 * MS, stream.read(&mut buf))
        .await
        .expect("dropping the target closes hung connections");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn close_early_truncates_the_announced_body() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?close_early=1", "").await;
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    let text = String::from_utf8(all).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 1000\r\n"), "{head}");
    assert_eq!(body, "x".repeat(10));
}

#[tokio::test]
async fn malformed_answers_with_non_http_bytes() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?malformed=1", "").await;
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"HELLO\r\n\r\n");
}

#[tokio::test]
async fn huge_streams_until_the_client_leaves() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?huge=1", "").await;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(String::from_utf8_lossy(&head).contains("Content-Length: 67108864\r\n"));
    let mut body = vec![0u8; 4 * 1024 * 1024];
    stream.read_exact(&mut body).await.unwrap();
    assert!(body.iter().all(|&b| b == b'x'));
    drop(stream);
}

#[tokio::test]
async fn keep_alive_reuses_the_connection() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    send_get(&mut stream, "/?body=one", "").await;
    assert_eq!(read_response(&mut stream).await.body, b"one");
    send_get(&mut stream, "/?body=two", "Connection: close\r\n").await;
    let wire = read_response(&mut stream).await;
    assert_eq!(wire.body, b"two");
    assert_eq!(wire.header("connection"), Some("close"));
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!((target.connections(), target.requests()), (1, 2));
}

#[tokio::test]
async fn request_bodies_are_skipped_and_pipelining_works() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    // Two requests in one write; the first carries a body to skip.
    stream
        .write_all(
            b"POST /?body=first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              GET /?body=second HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await.body, b"first");
    assert_eq!(read_response(&mut stream).await.body, b"second");
    assert_eq!(target.requests(), 2);
}

#[tokio::test]
async fn head_and_204_have_no_body() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    stream.write_all(b"HEAD /?body=abc HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(String::from_utf8_lossy(&head).contains("Content-Length: 3\r\n"));
    // The connection is still usable: no body bytes were sent.
    send_get(&mut stream, "/?status=204", "").await;
    let wire = read_response(&mut stream).await;
    assert_eq!(wire.status(), 204);
    assert_eq!(wire.header("content-length"), None);
    assert!(wire.body.is_empty());
}

#[tokio::test]
async fn bad_parameter_is_a_400_naming_it() {
    let target = plain_target();
    let wire = get(&target, "/?headers_delay_ms=soon").await;
    assert_eq!(wire.status(), 400);
    let body = String::from_utf8(wire.body).unwrap();
    assert!(body.contains("headers_delay_ms=soon"), "{body}");
}

#[tokio::test]
async fn oversized_head_is_a_431() {
    let target = plain_target();
    let mut stream = connect(&target).await;
    let filler = "a".repeat(70 * 1024);
    let request = format!("GET / HTTP/1.1\r\nX-Filler: {filler}\r\n\r\n");
    // The server may stop reading and answer before we finish writing.
    let _ = stream.write_all(request.as_bytes()).await;
    let wire = read_response(&mut stream).await;
    assert_eq!(wire.status(), 431);
}

#[tokio::test]
async fn urls_follow_scheme_and_family() {
    let target = plain_target();
    let port = target.addr().port();
    assert_eq!(target.url("/a?b=c"), format!("http://127.0.0.1:{port}/a?b=c"));
    assert_eq!(target.url("x"), format!("http://127.0.0.1:{port}/x"));

    let pki = TestPki::new().unwrap();
    let tls = HttpTarget::start(TargetOptions {
        tls: Some(pki.server_config(Leaf::Valid, &[])),
        ..TargetOptions::default()
    })
    .unwrap();
    assert!(tls.url("/").starts_with("https://127.0.0.1:"));

    // Not every build machine has IPv6 loopback; skip quietly without it.
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        let v6 = HttpTarget::start(TargetOptions {
            bind: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ..TargetOptions::default()
        })
        .unwrap();
        let port = v6.addr().port();
        assert_eq!(v6.url("/"), format!("http://[::1]:{port}/"));
        assert_eq!(get(&v6, "/?body=six").await.body, b"six");
    }
}

#[tokio::test]
async fn non_loopback_bind_is_refused() {
    let error =
        HttpTarget::start(TargetOptions { bind: "0.0.0.0:0".parse().unwrap(), ..TargetOptions::default() })
            .unwrap_err();
    assert!(error.to_string().contains("loopback"), "{error}");
}

#[tokio::test]
async fn dropping_the_target_stops_listening() {
    let target = plain_target();
    let addr = target.addr();
    drop(target);
    // Aborted tasks release the listener on their next poll.
    tokio::time::sleep(20 * MS).await;
    let error = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
}

// --- TLS -------------------------------------------------------------------

fn tls_target(pki: &TestPki, leaf: Leaf, alpn: &[&[u8]], delay: Duration) -> HttpTarget {
    HttpTarget::start(TargetOptions {
        tls: Some(pki.server_config(leaf, alpn)),
        tls_accept_delay: delay,
        ..TargetOptions::default()
    })
    .unwrap()
}

async fn tls_connect(
    pki: &TestPki,
    target: &HttpTarget,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = TlsConnector::from(pki.client_config(alpn));
    let tcp = connect(target).await;
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    connector.connect(name, tcp).await
}

fn certificate_error(error: &std::io::Error) -> CertificateError {
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(cert)) => cert.clone(),
        other => panic!("not a certificate error: {error:?} / {other:?}"),
    }
}

#[tokio::test]
async fn tls_with_valid_leaf_serves_http1() {
    let pki = TestPki::new().unwrap();
    let target = tls_target(&pki, Leaf::Valid, &[b"http/1.1"], Duration::ZERO);
    let mut tls = tls_connect(&pki, &target, &[b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    send_get(&mut tls, "/?body=secure&headers_delay_ms=50", "").await;
    let wire = read_response(&mut tls).await;
    assert_eq!(wire.body, b"secure");
    assert_eq!((target.connections(), target.requests()), (1, 1));
}

#[tokio::test]
async fn tls_reset_reaches_the_client() {
    let pki = TestPki::new().unwrap();
    let target = tls_target(&pki, Leaf::Valid, &[], Duration::ZERO);
    let mut tls = tls_connect(&pki, &target, &[]).await.unwrap();
    send_get(&mut tls, "/?reset=1", "").await;
    let mut buf = [0u8; 16];
    let error = tls.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn bad_leaves_fail_verification_for_their_reason() {
    let pki = TestPki::new().unwrap();
    for (leaf, expected) in
        [(Leaf::Expired, "expired"), (Leaf::WrongHost, "name"), (Leaf::SelfSigned, "issuer")]
    {
        let target = tls_target(&pki, leaf, &[], Duration::ZERO);
        let error = tls_connect(&pki, &target, &[]).await.unwrap_err();
        let cert_error = certificate_error(&error);
        let ok = match expected {
            "expired" => {
                matches!(cert_error, CertificateError::Expired | CertificateError::ExpiredContext { .. })
            }
            "name" => matches!(
                cert_error,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ),
            _ => matches!(cert_error, CertificateError::UnknownIssuer),
        };
        assert!(ok, "{leaf:?}: {cert_error:?}");
    }
}

#[tokio::test]
async fn tls_accept_delay_slows_only_the_handshake() {
    let pki = TestPki::new().unwrap();
    let target = tls_target(&pki, Leaf::Valid, &[], 150 * MS);
    let started = Instant::now();
    let mut tls = tls_connect(&pki, &target, &[]).await.unwrap();
    let handshake = started.elapsed();
    assert!(handshake >= 150 * MS && handshake < 250 * MS, "{handshake:?}");
    let started = Instant::now();
    send_get(&mut tls, "/", "").await;
    read_response(&mut tls).await;
    assert!(started.elapsed() < 50 * MS);
}

// --- HTTP/2 ----------------------------------------------------------------

type H2Sender = hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>;

async fn h2_client(pki: &TestPki, target: &HttpTarget) -> H2Sender {
    let tls = tls_connect(pki, target, &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

fn h2_request(target: &HttpTarget, path: &str) -> hyper::Request<http_body_util::Empty<bytes::Bytes>> {
    hyper::Request::get(target.url(path)).body(http_body_util::Empty::new()).unwrap()
}

#[tokio::test]
async fn h2_honours_status_headers_body_and_delay() {
    use http_body_util::BodyExt as _;

    let pki = TestPki::new().unwrap();
    let target = tls_target(&pki, Leaf::Valid, &[b"h2", b"http/1.1"], Duration::ZERO);
    let mut sender = h2_client(&pki, &target).await;

    let started = Instant::now();
    let response = sender
        .send_request(h2_request(&target, "/?status=201&body=two&header=X-Proto:h2&headers_delay_ms=150"))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= 150 * MS && waited < 230 * MS, "{waited:?}");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-proto"], "h2");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"two");

    let response =
        sender.send_request(h2_request(&target, "/?body=abcd&drip_ms=100&drip_chunks=2")).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"abcd");

    let error = sender.send_request(h2_request(&target, "/?reset=1")).await.unwrap_err();
    assert!(!error.is_canceled(), "{error:?}");

    // Three requests, one TCP connection.
    assert_eq!((target.connections(), target.requests()), (1, 3));
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let error = HttpTarget::start(TargetOptions::default()).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
    let error = crate::DnsTarget::start(crate::DnsZone::new()).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}
