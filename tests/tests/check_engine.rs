//! The check engine against real servers on loopback: every timing phase
//! measured against a delay the target injects, every error kind produced by
//! its real cause, the SSRF guard, and cold checks (no reuse of connections,
//! DNS answers or TLS sessions).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use vantage_core::netguard::{Cidr, Policy};
use vantage_core::result::{CheckResult, ErrorKind, Phase, TlsReason};
use vantage_core::spec::{AddressFamily, CheckSpec};
use vantage_probe::check::{Checker, CheckerConfig};
use vantage_tests::{refused_addr, Blackhole, DnsTarget, DnsZone, HttpTarget, Leaf, TargetOptions, TestPki};

/// How far above an injected delay a measured phase may be. Below it is
/// never allowed: the target sleeps at least that long.
const SLACK_MS: f64 = 15.0;

fn checker() -> Checker {
    Checker::new(CheckerConfig::default()).expect("checker")
}

fn checker_with(resolver: Option<SocketAddr>, pki: Option<&TestPki>) -> Checker {
    Checker::new(CheckerConfig {
        resolvers: resolver.into_iter().collect(),
        extra_roots: pki.map(|p| vec![p.ca_der()]).unwrap_or_default(),
        ..CheckerConfig::default()
    })
    .expect("checker")
}

fn spec(url: &str) -> CheckSpec {
    let mut spec = CheckSpec::parse(url).expect("valid url");
    spec.guard.allow_private = true;
    spec
}

fn spec_with(url: &str, edit: impl FnOnce(&mut CheckSpec)) -> CheckSpec {
    let mut s = spec(url);
    edit(&mut s);
    s
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[track_caller]
fn assert_near(what: &str, measured: Duration, injected_ms: f64) {
    let m = ms(measured);
    assert!(
        m >= injected_ms && m < injected_ms + SLACK_MS,
        "{what}: measured {m:.3} ms, injected {injected_ms} ms (allowed {injected_ms}..{} ms)",
        injected_ms + SLACK_MS
    );
}

#[track_caller]
fn assert_fails(r: &CheckResult, kind: ErrorKind) -> &vantage_core::result::CheckError {
    assert!(!r.ok, "expected {kind} but the check passed: {r:#?}");
    let e = r.error.as_ref().expect("failed check has an error");
    assert_eq!(e.kind, kind, "wrong kind; error: {e}");
    e
}

#[track_caller]
fn assert_ok(r: &CheckResult) {
    assert!(r.ok, "expected success, got {:?}", r.error);
}

fn https_target(pki: &TestPki, leaf: Leaf, alpn: &[&[u8]]) -> HttpTarget {
    HttpTarget::start(TargetOptions { tls: Some(pki.server_config(leaf, alpn)), ..Default::default() })
        .expect("target")
}

// ---- timing phases -------------------------------------------------------

#[tokio::test]
async fn t01_ttfb_equals_the_delay_before_headers() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let r = checker().check(&spec(&target.url("/?headers_delay_ms=200"))).await;
    assert_ok(&r);
    assert_near("ttfb", r.phases_ms.ttfb, 200.0);
    assert!(r.phases_ms.total >= r.phases_ms.ttfb + r.phases_ms.connect);
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.http_version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(r.remote_addr, Some(target.addr()));
    assert_eq!(r.phases_ms.dns, Duration::ZERO, "an IP literal needs no lookup");
    assert_eq!(r.phases_ms.tls, Duration::ZERO);
}

#[tokio::test]
async fn t02_transfer_equals_the_time_the_body_drips() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let r = checker().check(&spec(&target.url("/?drip_ms=300&drip_chunks=6&body_bytes=6000"))).await;
    assert_ok(&r);
    assert_eq!(r.body_bytes, 6000);
    // The first chunk also waits drip_ms/6 after the headers; transfer starts
    // at the first response byte (the headers), so it spans all six sleeps.
    assert_near("transfer", r.phases_ms.transfer, 300.0);
    assert!(ms(r.phases_ms.ttfb) < 10.0, "ttfb {:?}", r.phases_ms.ttfb);
}

#[tokio::test]
async fn t03_dns_equals_the_resolver_delay() {
    let dns = DnsTarget::start(
        DnsZone::new().a("slow.test", Ipv4Addr::LOCALHOST).delay("slow.test", Duration::from_millis(150)),
    )
    .unwrap();
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let url = format!("http://slow.test:{}/", target.addr().port());
    let r = checker_with(Some(dns.addr()), None).check(&spec(&url)).await;
    assert_ok(&r);
    assert_near("dns", r.phases_ms.dns, 150.0);
    assert_eq!(r.remote_addr, Some(target.addr()));
}

#[tokio::test]
async fn t04_tls_equals_the_delay_before_the_handshake() {
    let pki = TestPki::new().unwrap();
    let target = HttpTarget::start(TargetOptions {
        tls: Some(pki.server_config(Leaf::Valid, &[b"http/1.1"])),
        tls_accept_delay: Duration::from_millis(150),
        ..Default::default()
    })
    .unwrap();
    let r = checker_with(None, Some(&pki)).check(&spec(&target.url("/"))).await;
    assert_ok(&r);
    assert_near("tls", r.phases_ms.tls, 150.0);
    let tls = r.tls.as_ref().expect("tls info");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.verified);
    assert!(!tls.cipher.is_empty());
    assert_eq!(tls.cert_not_after, pki.valid_not_after());
    assert!((89..=90).contains(&tls.cert_days_left), "days left {}", tls.cert_days_left);
}

/// The kernel drops a SYN while the listener's accept queue is full and the
/// client retransmits it after its initial retransmission timeout (1 s on
/// Linux). Freeing the queue in between makes the retransmitted SYN succeed:
/// connect then takes one RTO, a delay the kernel injects.
#[tokio::test]
async fn t05_connect_includes_a_dropped_syn_and_its_retransmission() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (backlog 0 holds one connection).
    let _filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let drain = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let first = listener.accept().await.unwrap();
        let second = listener.accept().await.unwrap();
        (first, second, listener)
    });
    let r = checker().check(&spec(&format!("tcp://{addr}"))).await;
    assert_ok(&r);
    let connect = ms(r.phases_ms.connect);
    assert!((950.0..1200.0).contains(&connect), "connect {connect:.3} ms, expected one SYN RTO (~1000 ms)");
    drain.await.unwrap();
}

#[tokio::test]
async fn t06_http2_is_negotiated_by_alpn_and_timed() {
    let pki = TestPki::new().unwrap();
    let target = https_target(&pki, Leaf::Valid, &[b"h2", b"http/1.1"]);
    let r = checker_with(None, Some(&pki)).check(&spec(&target.url("/?headers_delay_ms=100"))).await;
    assert_ok(&r);
    assert_eq!(r.http_version.as_deref(), Some("HTTP/2"));
    assert_eq!(r.tls.as_ref().unwrap().alpn.as_deref(), Some("h2"));
    assert_near("ttfb", r.phases_ms.ttfb, 100.0);
}

#[tokio::test]
async fn t07_redirects_are_followed_hop_by_hop_with_phases_summed() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let last = target.url("/final?headers_delay_ms=50");
    let middle = target.url(&format!("/middle?headers_delay_ms=50&redirect={}", encode(&last)));
    let first = target.url(&format!("/first?redirect={}&redirect_status=301", encode(&middle)));
    let r = checker().check(&spec_with(&first, |s| s.follow_redirects = 3)).await;
    assert_ok(&r);
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.hops.iter().map(|h| h.status_code).collect::<Vec<_>>(), [Some(301), Some(302), Some(200)]);
    assert_eq!(target.connections(), 3, "every hop is a new connection");
    assert_near("ttfb summed over hops", r.phases_ms.ttfb, 100.0);
    let hop_sum: Duration = r.hops.iter().map(|h| h.phases_ms.total).sum();
    assert!(r.phases_ms.total >= hop_sum);

    // Off by default: the redirect itself is the answer, and 3xx passes.
    let r = checker().check(&spec(&first)).await;
    assert_ok(&r);
    assert_eq!(r.status_code, Some(301));
    assert!(r.hops.is_empty());

    // Too many hops.
    let r = checker().check(&spec_with(&first, |s| s.follow_redirects = 1)).await;
    let e = assert_fails(&r, ErrorKind::Protocol);
    assert_eq!(e.message, "still redirected after 1 hops (raise --follow-redirects)");
}

fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- error kinds from their real causes ----------------------------------

#[tokio::test]
async fn t10_dns_errors() {
    let dns =
        DnsTarget::start(DnsZone::new().a("up.test", Ipv4Addr::LOCALHOST).servfail("broken.test")).unwrap();
    let c = checker_with(Some(dns.addr()), None);
    let r = c.check(&spec("http://missing.test/")).await;
    let e = assert_fails(&r, ErrorKind::Dns);
    assert!(e.message.contains("does not exist (NXDOMAIN)"), "{}", e.message);
    let r = c.check(&spec("http://broken.test/")).await;
    let e = assert_fails(&r, ErrorKind::Dns);
    assert!(e.message.contains("broken.test"), "{}", e.message);
    let r = c.check(&spec_with("http://up.test/", |s| s.family = AddressFamily::Ipv6)).await;
    let e = assert_fails(&r, ErrorKind::Dns);
    assert_eq!(e.message, "up.test has no IPv6 address");
}

#[tokio::test]
async fn t11_connect_refused() {
    let addr = refused_addr();
    let r = checker().check(&spec(&format!("http://{addr}/"))).await;
    let e = assert_fails(&r, ErrorKind::ConnectRefused);
    assert_eq!(e.message, format!("connection refused by {addr}"));
}

#[tokio::test]
async fn t12_connect_timeout_overall_and_per_phase() {
    let hole = Blackhole::start().unwrap();
    let url = format!("http://{}/", hole.addr());
    let r = checker().check(&spec_with(&url, |s| s.timeout = Duration::from_millis(400))).await;
    let e = assert_fails(&r, ErrorKind::ConnectTimeout);
    assert_eq!(e.phase, Some(Phase::Connect));
    assert_near("connect until the deadline", r.phases_ms.connect, 400.0);

    let r = checker()
        .check(&spec_with(&url, |s| s.phase_timeouts.set(Phase::Connect, Duration::from_millis(250))))
        .await;
    let e = assert_fails(&r, ErrorKind::ConnectTimeout);
    assert_eq!(e.message, "TCP connect did not complete within 250ms (phase connect)");
}

#[tokio::test]
async fn t13_tls_failures_name_their_reason() {
    let pki = TestPki::new().unwrap();
    let trusting = checker_with(None, Some(&pki));
    let cases = [
        (Leaf::Valid, &checker(), TlsReason::UnknownIssuer),
        (Leaf::SelfSigned, &trusting, TlsReason::UnknownIssuer),
        (Leaf::Expired, &trusting, TlsReason::Expired),
        (Leaf::WrongHost, &trusting, TlsReason::HostnameMismatch),
    ];
    for (leaf, checker, reason) in cases {
        let target = https_target(&pki, leaf, &[b"http/1.1"]);
        let r = checker.check(&spec(&target.url("/"))).await;
        let e = assert_fails(&r, ErrorKind::Tls);
        assert_eq!(e.tls_reason, Some(reason), "{leaf:?}: {e}");
        let tls = r.tls.as_ref().expect("the certificate is reported even when refused");
        assert!(!tls.verified);
        if leaf == Leaf::Expired {
            assert!(tls.cert_days_left < 0, "expired cert has {} days left", tls.cert_days_left);
        }
        assert_eq!(r.status_code, None, "no request is sent over an unverified connection");
    }

    // A service that is not TLS at all (it greets with an SSH banner): the
    // handshake itself fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let r = trusting.check(&spec(&format!("tls://{addr}"))).await;
    let e = assert_fails(&r, ErrorKind::Tls);
    assert_eq!(e.tls_reason, Some(TlsReason::Handshake), "{e}");
    assert!(r.tls.is_none(), "no certificate was offered");
    server.await.unwrap();
}

#[tokio::test]
async fn t14_insecure_skips_verification_but_reports_the_certificate() {
    let pki = TestPki::new().unwrap();
    let target = https_target(&pki, Leaf::Expired, &[b"http/1.1"]);
    let r = checker().check(&spec_with(&target.url("/"), |s| s.tls_verify = false)).await;
    assert_ok(&r);
    let tls = r.tls.as_ref().unwrap();
    assert!(!tls.verified);
    assert!(tls.cert_days_left < 0);
    assert_eq!(tls.cert_not_after, pki.not_after(Leaf::Expired));
}

#[tokio::test]
async fn t40_a_self_signed_ca_certificate_given_as_ca_is_pinned() {
    // The usual self-signed certificate (`openssl req -x509`, so CA:TRUE)
    // given with --ca: webpki alone refuses it (CaUsedAsEndEntity); as the
    // exact certificate given, it is trusted, and reported verified.
    let pki = TestPki::new().unwrap();
    let target = https_target(&pki, Leaf::SelfSignedCa, &[b"http/1.1"]);
    let pinned = Checker::new(CheckerConfig {
        // With the test CA too: pinning one certificate leaves chains to the
        // others working.
        extra_roots: vec![pki.ca_der(), pki.leaf_der(Leaf::SelfSignedCa)],
        ..CheckerConfig::default()
    })
    .unwrap();
    let port = target.addr().port();
    for url in [target.url("/"), format!("https://localhost:{port}/"), format!("tls://127.0.0.1:{port}")] {
        let r = pinned.check(&spec_with(&url, |s| s.family = AddressFamily::Ipv4)).await;
        assert_ok(&r);
        let tls = r.tls.as_ref().expect("tls info");
        assert!(tls.verified, "{url}: a pinned certificate is verified");
        assert_eq!(tls.cert_not_after, pki.not_after(Leaf::SelfSignedCa));
    }
    let chained = https_target(&pki, Leaf::Valid, &[b"http/1.1"]);
    assert_ok(&pinned.check(&spec(&chained.url("/"))).await);
}

#[tokio::test]
async fn t41_unpinned_self_signed_certificates_fail_in_a_sentence_with_the_fix() {
    let pki = TestPki::new().unwrap();
    let dns = DnsTarget::start(DnsZone::new().a("svc.test", Ipv4Addr::LOCALHOST)).unwrap();
    let trusting = |roots| {
        Checker::new(CheckerConfig {
            resolvers: vec![dns.addr()],
            extra_roots: roots,
            ..CheckerConfig::default()
        })
        .unwrap()
    };
    let ca_leaf = https_target(&pki, Leaf::SelfSignedCa, &[b"http/1.1"]);
    let plain_leaf = https_target(&pki, Leaf::SelfSigned, &[b"http/1.1"]);
    let pin_ca_leaf = "(if it is the server's self-signed certificate, pin it: give this same certificate \
                       with --ca FILE)";
    let cases = [
        // Another self-signed certificate given: this one is not pinned.
        (&ca_leaf, trusting(vec![pki.ca_der(), pki.leaf_der(Leaf::SelfSigned)]), "127.0.0.1", pin_ca_leaf),
        // None given.
        (&ca_leaf, trusting(vec![]), "127.0.0.1", pin_ca_leaf),
        // A CA:FALSE self-signed certificate, a CA given that did not sign it.
        (
            &plain_leaf,
            trusting(vec![pki.ca_der()]),
            "127.0.0.1",
            "is signed by an unknown issuer (give its CA with --ca FILE)",
        ),
    ];
    for (target, checker, host, wanted) in &cases {
        let r = checker.check(&spec(&target.url("/"))).await;
        let e = assert_fails(&r, ErrorKind::Tls);
        assert_eq!(e.tls_reason, Some(TlsReason::UnknownIssuer), "{e}");
        assert!(e.message.starts_with(&format!("certificate for {host} ")), "{e}");
        assert!(e.message.ends_with(wanted), "{e}");
        assert!(!e.message.contains("Other(") && !e.message.contains("OtherError"), "{e}");
        assert!(!r.tls.as_ref().expect("the certificate is reported").verified);
    }

    // A pinned certificate still has to name the host checked.
    let pinned = trusting(vec![pki.leaf_der(Leaf::SelfSignedCa)]);
    let url = format!("https://svc.test:{}/", ca_leaf.addr().port());
    let r = pinned.check(&spec_with(&url, |s| s.family = AddressFamily::Ipv4)).await;
    let e = assert_fails(&r, ErrorKind::Tls);
    assert_eq!(e.tls_reason, Some(TlsReason::HostnameMismatch), "{e}");
    assert!(
        e.message.starts_with(
            "certificate for svc.test is not valid for that name: it lists only localhost, 127.0.0.1, ::1 ("
        ),
        "{e}"
    );
}

#[tokio::test]
async fn t15_timeouts_name_their_phase() {
    let dns = DnsTarget::start(
        DnsZone::new().a("slow.test", Ipv4Addr::LOCALHOST).delay("slow.test", Duration::from_secs(5)),
    )
    .unwrap();
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let short = |s: &mut CheckSpec| s.timeout = Duration::from_millis(300);
    let cases = [
        (format!("http://slow.test:{}/", target.addr().port()), Phase::Dns),
        (target.url("/?hang=1"), Phase::Ttfb),
        (target.url("/?drip_ms=3000&drip_chunks=3"), Phase::Transfer),
    ];
    let c = checker_with(Some(dns.addr()), None);
    for (url, phase) in cases {
        let r = c.check(&spec_with(&url, short)).await;
        let e = assert_fails(&r, ErrorKind::Timeout);
        assert_eq!(e.phase, Some(phase), "{url}: {e}");
        assert!(e.message.ends_with(&format!("within 300ms (phase {phase})")), "{}", e.message);
        assert_near("total at the deadline", r.phases_ms.total, 300.0);
    }

    // A TLS server that never starts its handshake.
    let pki = TestPki::new().unwrap();
    let stalled = HttpTarget::start(TargetOptions {
        tls: Some(pki.server_config(Leaf::Valid, &[b"http/1.1"])),
        tls_accept_delay: Duration::from_secs(5),
        ..Default::default()
    })
    .unwrap();
    let r = checker_with(None, Some(&pki)).check(&spec_with(&stalled.url("/"), short)).await;
    assert_eq!(assert_fails(&r, ErrorKind::Timeout).phase, Some(Phase::Tls));
}

#[tokio::test]
async fn t16_http_status_and_assertions() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let c = checker();
    let r = c.check(&spec(&target.url("/?status=503"))).await;
    let e = assert_fails(&r, ErrorKind::HttpStatus);
    assert_eq!(e.message, "status 503 is not one of the expected 200-399");
    assert_eq!(r.status_code, Some(503));

    let r = c
        .check(&spec_with(&target.url("/?body=hello"), |s| s.assertions.body_contains = vec!["bye".into()]))
        .await;
    assert_eq!(assert_fails(&r, ErrorKind::Assertion).message, "body does not contain \"bye\"");

    let body = encode(r#"{"status":"green","n":3}"#);
    let url = target.url(&format!("/?content_type=application/json&body={body}"));
    let r = c
        .check(&spec_with(&url, |s| {
            s.assertions.json = vec![vantage_core::assert::JsonAssertion::parse("/status=green").unwrap()];
            s.assertions.headers =
                vec![vantage_core::assert::HeaderAssertion::parse("content-type: json").unwrap()];
        }))
        .await;
    assert_ok(&r);
    let r = c
        .check(&spec_with(&target.url("/?headers_delay_ms=50"), |s| {
            s.assertions.max_ttfb = Some(Duration::from_millis(20))
        }))
        .await;
    assert!(assert_fails(&r, ErrorKind::Assertion).message.starts_with("ttfb "));

    let pki = TestPki::new().unwrap();
    let tls_target = https_target(&pki, Leaf::Valid, &[b"http/1.1"]);
    let r = checker_with(None, Some(&pki))
        .check(&spec_with(&tls_target.url("/"), |s| s.assertions.min_cert_days = Some(120)))
        .await;
    let e = assert_fails(&r, ErrorKind::Assertion);
    assert!(e.message.contains("fewer than the 120 required"), "{}", e.message);
}

#[tokio::test]
async fn t17_body_too_large_stops_reading_at_the_limit() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let r = checker().check(&spec_with(&target.url("/?huge=1"), |s| s.max_body_bytes = 64 * 1024)).await;
    let e = assert_fails(&r, ErrorKind::BodyTooLarge);
    assert_eq!(e.message, "body is larger than 65536 bytes (raise --max-body)");
    assert_eq!(r.body_bytes, 64 * 1024);
}

#[tokio::test]
async fn t18_protocol_errors() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let c = checker();
    for (query, needle) in [
        ("/?malformed=1", "malformed response"),
        ("/?reset=1", "connection reset by the server"),
        ("/?close_early=1", "connection closed by the server while reading the body"),
    ] {
        let r = c.check(&spec(&target.url(query))).await;
        let e = assert_fails(&r, ErrorKind::Protocol);
        assert!(e.message.contains(needle), "{query}: {}", e.message);
    }
}

#[tokio::test]
async fn t19_dns_checks_compare_answers() {
    let dns =
        DnsTarget::start(DnsZone::new().a("svc.test", Ipv4Addr::new(192, 0, 2, 7)).txt("svc.test", "v=ok"))
            .unwrap();
    let c = checker_with(Some(dns.addr()), None);
    let r = c.check(&spec("dns://svc.test?type=A&expect=192.0.2.7")).await;
    assert_ok(&r);
    assert_eq!(r.dns_answers, ["192.0.2.7"]);
    let r = c.check(&spec("dns://svc.test?type=TXT")).await;
    assert_ok(&r);
    assert_eq!(r.dns_answers, ["v=ok"]);
    let r = c.check(&spec("dns://svc.test?expect=192.0.2.8")).await;
    assert_eq!(
        assert_fails(&r, ErrorKind::Assertion).message,
        "answers for svc.test [192.0.2.7] do not include \"192.0.2.8\""
    );
    let r = c.check(&spec("dns://nope.test")).await;
    assert_fails(&r, ErrorKind::Dns);
}

// ---- SSRF guard ----------------------------------------------------------

#[tokio::test]
async fn t20_the_guard_blocks_private_targets_by_default() {
    // None of these is connected to: the guard refuses before connecting.
    let c = checker();
    for url in [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "tcp://10.0.0.1:22",
    ] {
        let r = c.check(&CheckSpec::parse(url).unwrap()).await;
        let e = assert_fails(&r, ErrorKind::Blocked);
        assert!(e.message.contains("refused by the SSRF guard"), "{url}: {}", e.message);
        assert_eq!(r.remote_addr, None, "{url} must not be connected to");
    }
}

#[tokio::test]
async fn t21_the_guard_checks_resolved_names() {
    let dns = DnsTarget::start(
        DnsZone::new()
            .a("metadata.test", Ipv4Addr::new(169, 254, 169, 254))
            .a("intranet.test", Ipv4Addr::new(10, 0, 0, 1))
            .a("loop.test", Ipv4Addr::LOCALHOST),
    )
    .unwrap();
    let c = checker_with(Some(dns.addr()), None);
    for name in ["metadata.test", "intranet.test", "loop.test"] {
        let r = c.check(&CheckSpec::parse(&format!("http://{name}/")).unwrap()).await;
        let e = assert_fails(&r, ErrorKind::Blocked);
        assert!(e.message.starts_with(&format!("{name} resolves to ")), "{}", e.message);
    }
}

#[tokio::test]
async fn t22_the_guard_checks_every_redirect_hop() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let only_this_target = Policy { allow_private: false, allow: vec![Cidr::parse("127.0.0.1/32").unwrap()] };
    let c = checker();
    for to in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]:1/",
        "http://127.0.0.2:1/",
    ] {
        let url = target.url(&format!("/?redirect={}", encode(to)));
        let r = c
            .check(&spec_with(&url, |s| {
                s.guard = only_this_target.clone();
                s.follow_redirects = 5;
            }))
            .await;
        let e = assert_fails(&r, ErrorKind::Blocked);
        assert!(e.message.contains("refused by the SSRF guard"), "{to}: {}", e.message);
        assert_eq!(r.hops.len(), 2, "the first hop ran, the second was refused");
        assert_eq!(r.hops[0].status_code, Some(302));
    }
    assert_eq!(target.connections(), 4, "only the allowed target was ever connected to");
}

#[tokio::test]
async fn t23_allow_private_lets_loopback_through() {
    let v4 = HttpTarget::start(TargetOptions::default()).unwrap();
    let v6 = HttpTarget::start(TargetOptions { bind: (Ipv6Addr::LOCALHOST, 0).into(), ..Default::default() })
        .unwrap();
    let dns = DnsTarget::start(DnsZone::new().a("loop.test", Ipv4Addr::LOCALHOST)).unwrap();
    let c = checker_with(Some(dns.addr()), None);
    let port4 = v4.addr().port();
    let urls = [
        v4.url("/"),
        v6.url("/"),
        format!("http://[::ffff:127.0.0.1]:{port4}/"),
        format!("http://loop.test:{port4}/"),
        v4.url(&format!("/?redirect={}", encode(&v6.url("/")))),
    ];
    for url in urls {
        let r = c.check(&spec_with(&url, |s| s.follow_redirects = 2)).await;
        assert_ok(&r);
        assert_eq!(r.status_code, Some(200), "{url}");
    }
    assert_eq!(v6.connections(), 2);
}

// ---- cold checks ---------------------------------------------------------

#[tokio::test]
async fn t30_no_reuse_two_checks_two_connections_two_lookups() {
    let dns = DnsTarget::start(DnsZone::new().a("svc.test", Ipv4Addr::LOCALHOST)).unwrap();
    let pki = TestPki::new().unwrap();
    let plain = HttpTarget::start(TargetOptions::default()).unwrap();
    let tls = https_target(&pki, Leaf::Valid, &[b"h2", b"http/1.1"]);
    let c = checker_with(Some(dns.addr()), Some(&pki));
    for target in [&plain, &tls] {
        let scheme = if std::ptr::eq(target, &tls) { "https" } else { "http" };
        let before = dns.queries_for("svc.test");
        let url = format!("{scheme}://svc.test:{}/", target.addr().port());
        let s = spec_with(&url, |s| {
            s.family = AddressFamily::Ipv4;
            s.tls_verify = false; // the test certificate names localhost, not svc.test
        });
        for _ in 0..2 {
            assert_ok(&c.check(&s).await);
        }
        assert_eq!(target.connections(), 2, "{scheme}: every check opens its own connection");
        assert_eq!(target.requests(), 2);
        assert_eq!(dns.queries_for("svc.test") - before, 2, "{scheme}: every check does its own lookup");
    }
}

#[tokio::test]
async fn t31_tls_handshakes_are_full_every_time() {
    // A server with session tickets and a session cache: a resuming client
    // would skip the certificate on its second handshake. Each check must
    // see (and report) the certificate, i.e. a full handshake.
    let pki = TestPki::new().unwrap();
    let target = https_target(&pki, Leaf::Valid, &[b"http/1.1"]);
    let c = checker_with(None, Some(&pki));
    for _ in 0..3 {
        let r = c.check(&spec(&target.url("/"))).await;
        assert_ok(&r);
        assert!(r.tls.as_ref().is_some_and(|t| t.verified), "full handshake with a verified certificate");
    }
    assert_eq!(target.connections(), 3);
}

#[tokio::test]
async fn t32_address_family_preference() {
    let v6 = HttpTarget::start(TargetOptions { bind: (Ipv6Addr::LOCALHOST, 0).into(), ..Default::default() })
        .unwrap();
    let port = v6.addr().port();
    let Ok(v4) =
        HttpTarget::start(TargetOptions { bind: (Ipv4Addr::LOCALHOST, port).into(), ..Default::default() })
    else {
        eprintln!("port {port} busy on 127.0.0.1; the family test needs the same port on both families");
        return;
    };
    let dns = DnsTarget::start(
        DnsZone::new().a("dual.test", Ipv4Addr::LOCALHOST).aaaa("dual.test", Ipv6Addr::LOCALHOST),
    )
    .unwrap();
    let c = checker_with(Some(dns.addr()), None);
    let url = format!("http://dual.test:{port}/");
    let cases = [
        (AddressFamily::PreferIpv4, IpAddr::V4(Ipv4Addr::LOCALHOST)),
        (AddressFamily::PreferIpv6, IpAddr::V6(Ipv6Addr::LOCALHOST)),
        (AddressFamily::Ipv4, IpAddr::V4(Ipv4Addr::LOCALHOST)),
        (AddressFamily::Ipv6, IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for (family, want) in cases {
        let r = c.check(&spec_with(&url, |s| s.family = family)).await;
        assert_ok(&r);
        assert_eq!(r.remote_addr.map(|a| a.ip()), Some(want), "{family:?}");
    }
    assert_eq!(v4.connections() + v6.connections(), 4);
}

/// The agent's User-Agent names its region and probe, and a target can
/// tell regions apart by it (the agreement suites rely on both).
#[tokio::test]
async fn t50_the_user_agent_names_region_and_probe() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let probe = |region: &str| {
        Checker::new(CheckerConfig {
            user_agent: vantage_probe::agent::client::agent_user_agent(region, &format!("{region}-1")),
            ..CheckerConfig::default()
        })
        .expect("checker")
    };
    let url = target.url("/");
    target.fail_regions(&["eu"]);
    let (eu_probe, us_probe) = (probe("eu"), probe("us"));
    let eu = eu_probe.check(&spec(&url)).await;
    let us = us_probe.check(&spec(&url)).await;
    assert_eq!((eu.status_code, us.status_code), (Some(503), Some(200)), "{eu:?} / {us:?}");
    let agents = target.user_agents();
    let version = env!("CARGO_PKG_VERSION");
    assert!(agents.contains(&format!("vantage-probe/{version} (region=eu; probe=eu-1)")), "{agents:?}");
    target.fail_regions(&[]);
    assert!(eu_probe.check(&spec(&url)).await.ok, "healed");
}

/// A failed check runs again at once, cold, and says how many runs it took;
/// a passing one runs once; a refusal by the SSRF guard is not retried.
#[tokio::test]
async fn t51_failures_are_checked_again_at_once() {
    let target = HttpTarget::start(TargetOptions::default()).unwrap();
    let failing = target.url("/?status=503");
    let before = target.requests();
    let checker = checker();
    let result = checker.check(&spec_with(&failing, |s| s.retries = 2)).await;
    assert_eq!((result.ok, result.attempts), (false, 3));
    assert_eq!(target.requests() - before, 3, "three cold requests");
    assert_eq!(target.connections(), 3, "each on a new connection");
    let ok = checker.check(&spec_with(&target.url("/"), |s| s.retries = 2)).await;
    assert_eq!((ok.ok, ok.attempts), (true, 1));
    let json = serde_json::to_value(&ok).unwrap();
    assert!(json.get("attempts").is_none(), "one run is not mentioned: {json}");
    let blocked = checker
        .check(&spec_with(&failing, |s| {
            s.retries = 2;
            s.guard.allow_private = false;
        }))
        .await;
    assert_eq!((blocked.error.map(|e| e.kind), blocked.attempts), (Some(ErrorKind::Blocked), 1));
}
