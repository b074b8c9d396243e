//! Sending one HTTP/1.1 request, shared by every sink that leaves the
//! process (webhooks, TSDB export): resolve the host, optionally refuse
//! addresses the SSRF guard forbids (after resolution, so no DNS name
//! routes around it), connect over a fresh TCP connection, TLS for `https`
//! (rustls with the ring provider, the public webpki roots and any extra
//! roots), one request, the answer's body read up to a cap; the whole
//! attempt under one timeout. The outcome is classified for the retry
//! decision:
//!
//! | what happened | outcome |
//! |---|---|
//! | 2xx | [`AttemptOutcome::Delivered`] |
//! | 408, 429, 5xx (with `Retry-After` honoured) | [`AttemptOutcome::Retryable`] |
//! | timeout, refused, reset, closed early, DNS failure, TLS failure, body over the cap | [`AttemptOutcome::Retryable`] |
//! | other 4xx, 1xx, 3xx (redirects are not followed), an address the guard refuses, a bad URL | [`AttemptOutcome::Rejected`] |
//!
//! Redirects are not followed: a receiver that moved is a configuration to
//! fix, and following one would need the guard again on every hop. Each
//! request gets a connection of its own (`Connection: close`): a sink
//! sends batches, so a handshake per request is cheap beside the body, and
//! nothing outlives an attempt.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST, LOCATION, RETRY_AFTER};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vantage_core::netguard::{self, Forbidden, Policy};

/// The default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on the answer's body, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The most of an error answer's body quoted in the error.
const QUOTED_BODY_CHARS: usize = 120;

/// How requests are sent.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// One attempt's deadline: resolution, connection, TLS, request and
    /// answer together.
    pub timeout: Duration,
    /// The most of the answer's body read; a longer body fails the attempt
    /// (retried), as every network input here has a size limit.
    pub max_response_bytes: usize,
    /// Certificates trusted besides the public roots (a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            extra_roots: Vec::new(),
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A certificate of `extra_roots` is not a usable root.
    #[error("CA certificate #{index} is not usable: {reason}")]
    BadRoot {
        /// 1-based.
        index: usize,
        /// What rustls said.
        reason: String,
    },
}

/// Why one attempt did not deliver. Every message is one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The URL cannot be sent to.
    #[error("URL {url:?} cannot be used: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The webhook's secret cannot sign (webhooks only).
    #[error("{reason}")]
    Secret {
        /// Why, with the fix.
        reason: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// Every address of the host is one the SSRF guard refuses.
    #[error("{}", blocked_message(host, *ip, *reason))]
    Blocked {
        /// The host.
        host: String,
        /// The first refused address.
        ip: IpAddr,
        /// Why.
        reason: Forbidden,
    },
    /// No address accepted the connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// What the OS said.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls {
        /// The host.
        host: String,
        /// What rustls said.
        reason: String,
    },
    /// The attempt ran out of time.
    #[error("no complete answer from {host} within {}", vantage_core::time::format_duration(*after))]
    Timeout {
        /// The host.
        host: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection broke (reset, closed early, malformed answer).
    #[error("{reason} ({host})")]
    Transport {
        /// The host.
        host: String,
        /// What happened.
        reason: String,
    },
    /// The answer's body is longer than the cap.
    #[error("the answer from {host} has a body over {limit} bytes")]
    TooLarge {
        /// The host.
        host: String,
        /// The cap.
        limit: usize,
    },
    /// The receiver answered with a status that is not 2xx.
    #[error("the receiver answered {status}{}", quoted(body))]
    Status {
        /// The status and its reason phrase, e.g. `503 Service Unavailable`.
        status: String,
        /// The start of the answer's body, on one line.
        body: String,
    },
    /// The receiver redirected; redirects are not followed.
    #[error(
        "the receiver answered {status} to {location:?}; redirects are not followed, so use the final URL"
    )]
    Redirect {
        /// The status.
        status: String,
        /// Its `Location`.
        location: String,
    },
}

/// `: body` when there is one.
fn quoted(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn blocked_message(host: &str, ip: IpAddr, reason: Forbidden) -> String {
    let what = if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
        format!("{ip} is a {} address", reason.describe())
    } else {
        format!("{host} resolves to {ip}, a {} address", reason.describe())
    };
    format!(
        "{what}, refused by the SSRF guard (if the receiver is meant to be inside your network, allow it with \
         vantagectl webhook update NAME --allow-private)"
    )
}

/// How one attempt ended, for the retry decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It may work later; `retry_after` is the receiver's `Retry-After`.
    Retryable {
        /// What went wrong.
        error: SendError,
        /// The receiver's hint, if it gave one.
        retry_after: Option<Duration>,
    },
    /// It will not work without a change (a 4xx, a refused address).
    Rejected {
        /// What went wrong.
        error: SendError,
    },
}

impl AttemptOutcome {
    /// The error, when not delivered.
    pub fn error(&self) -> Option<&SendError> {
        match self {
            AttemptOutcome::Delivered => None,
            AttemptOutcome::Retryable { error, .. } | AttemptOutcome::Rejected { error } => Some(error),
        }
    }

    /// `delivered`, `retryable` or `rejected`, for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retryable { .. } => "retryable",
            AttemptOutcome::Rejected { .. } => "rejected",
        }
    }
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// From the start (resolution included) to the end.
    pub latency: Duration,
}

impl Attempt {
    /// An attempt that failed before anything was sent.
    pub fn unsent(error: SendError) -> Attempt {
        Attempt { outcome: outcome_of(error), status: None, latency: Duration::ZERO }
    }
}

/// Sends HTTP/1.1 requests. Cheap to clone; shares only configuration:
/// each request resolves, connects and handshakes anew.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<ClientConfig>,
    options: ClientOptions,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Default for HttpClient {
    /// Default options: the public roots only, which always load.
    fn default() -> Self {
        HttpClient::new(ClientOptions::default()).expect("the public roots alone always make a TLS config")
    }
}

impl HttpClient {
    /// A client trusting the public roots and `options.extra_roots`.
    pub fn new(options: ClientOptions) -> Result<HttpClient, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for (i, cert) in options.extra_roots.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|e| ClientError::BadRoot { index: i + 1, reason: e.to_string() })?;
        }
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpClient { tls: Arc::new(config), options })
    }

    /// The options it was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Sends `request` (an absolute `http`/`https` URI) once.
    /// `allow_private` lifts the SSRF guard (for receivers an operator
    /// configured on purpose, such as a TSDB in the same network).
    pub async fn send(&self, request: Request<Bytes>, allow_private: bool) -> Attempt {
        let started = Instant::now();
        let host = request.uri().host().unwrap_or_default().to_string();
        let timeout = self.options.timeout;
        let result = tokio::time::timeout(timeout, self.exchange(request, allow_private)).await;
        let (outcome, status) = match result {
            Ok(Ok(answer)) => (classify(&answer), Some(answer.status.as_u16())),
            Ok(Err(error)) => (outcome_of(error), None),
            Err(_) => (
                AttemptOutcome::Retryable {
                    error: SendError::Timeout { host, after: timeout },
                    retry_after: None,
                },
                None,
            ),
        };
        Attempt { outcome, status, latency: started.elapsed() }
    }

    /// Resolves, guards, connects, handshakes, sends and reads the answer.
    async fn exchange(&self, request: Request<Bytes>, allow_private: bool) -> Result<Answer, SendError> {
        let uri = request.uri().clone();
        let bad = |reason: &str| SendError::BadUrl { url: uri.to_string(), reason: reason.to_string() };
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("use http:// or https://")),
        };
        let host = uri.host().ok_or_else(|| bad("missing host"))?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let policy = Policy { allow_private, allow: Vec::new() };
        let addrs = resolve(&host, port).await?;
        let addrs = guard(&host, &addrs, &policy)?;
        let tcp = connect(&addrs).await?;
        let request = origin_form(request, &uri)?;
        if https {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_string())
                .map_err(|e| SendError::Tls { host: host.clone(), reason: e.to_string() })?;
            let tls = TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| SendError::Tls { host: host.clone(), reason: tls_reason(&e) })?;
            self.http(tls, request, &host).await
        } else {
            self.http(tcp, request, &host).await
        }
    }

    async fn http<S>(&self, io: S, request: Request<Full<Bytes>>, host: &str) -> Result<Answer, SendError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let transport = |e: &hyper::Error, during: &str| SendError::Transport {
            host: host.to_string(),
            reason: hyper_reason(e, during),
        };
        let (mut sender, conn) =
            http1::handshake(TokioIo::new(io)).await.map_err(|e| transport(&e, "starting HTTP/1.1"))?;
        let limit = self.options.max_response_bytes;
        let work = async {
            let response =
                sender.send_request(request).await.map_err(|e| transport(&e, "waiting for the answer"))?;
            let status = response.status();
            let retry_after = response.headers().get(RETRY_AFTER).and_then(parse_retry_after);
            let location =
                response.headers().get(LOCATION).map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
            let body = match Limited::new(response.into_body(), limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    return Err(match error.downcast::<hyper::Error>() {
                        Ok(hyper) => transport(&hyper, "reading the answer"),
                        // `Limited`'s own error: the body is over the cap.
                        Err(_) => SendError::TooLarge { host: host.to_string(), limit },
                    });
                }
            };
            Ok(Answer { status, retry_after, location, body: quote(&body) })
        };
        drive(conn, work).await
    }
}

/// What a receiver answered, as far as the outcome needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// `Retry-After`, when it parses.
    pub retry_after: Option<Duration>,
    /// `Location`, for redirects.
    pub location: Option<String>,
    /// The start of the body, on one line.
    pub body: String,
}

/// The outcome of an answer: 2xx delivered; 408, 429 and 5xx retryable
/// (with `Retry-After`); redirects and other statuses rejected.
pub fn classify(answer: &Answer) -> AttemptOutcome {
    let status = answer.status;
    let named = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    if status.is_success() {
        AttemptOutcome::Delivered
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        let error = SendError::Status { status: named, body: answer.body.clone() };
        AttemptOutcome::Retryable { error, retry_after: answer.retry_after }
    } else if status.is_redirection() {
        let location = answer.location.clone().unwrap_or_default();
        AttemptOutcome::Rejected { error: SendError::Redirect { status: named, location } }
    } else {
        AttemptOutcome::Rejected { error: SendError::Status { status: named, body: answer.body.clone() } }
    }
}

/// `Retry-After` as delay-seconds, or as an HTTP date (the delay from
/// now, zero when it has passed). Anything else is ignored.
pub fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix_timestamp()).ok()?);
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// Errors before an answer: a refused address and a bad URL will not get
/// better by themselves; everything else may.
fn outcome_of(error: SendError) -> AttemptOutcome {
    match error {
        SendError::Blocked { .. } | SendError::BadUrl { .. } | SendError::Secret { .. } => {
            AttemptOutcome::Rejected { error }
        }
        error => AttemptOutcome::Retryable { error, retry_after: None },
    }
}

/// The host's addresses: an IP literal as is, a name through the system
/// resolver (`getaddrinfo`, `/etc/hosts` included).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, SendError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| SendError::Resolve { host: host.to_string(), reason: e.to_string() })?
        .collect();
    if addrs.is_empty() {
        return Err(SendError::Resolve { host: host.to_string(), reason: "no addresses".into() });
    }
    Ok(addrs)
}

/// The addresses the SSRF guard lets through, or `Blocked` when none.
fn guard(host: &str, addrs: &[SocketAddr], policy: &Policy) -> Result<Vec<SocketAddr>, SendError> {
    let mut refused = None;
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|addr| match netguard::check(addr.ip(), policy) {
            Ok(()) => true,
            Err(reason) => {
                refused.get_or_insert((addr.ip(), reason));
                false
            }
        })
        .collect();
    match refused {
        Some((ip, reason)) if allowed.is_empty() => {
            Err(SendError::Blocked { host: host.to_string(), ip, reason })
        }
        _ => Ok(allowed),
    }
}

/// Connects to the first address that accepts.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, SendError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(SendError::Connect { addr: *addr, reason: io_reason(&e) }),
        }
    }
    Err(last.unwrap_or(SendError::Resolve { host: String::new(), reason: "no addresses".into() }))
}

/// The request with an origin-form target (`/path?query`), `Host` and
/// `Connection: close`, as HTTP/1.1 over a connection of its own wants.
fn origin_form(request: Request<Bytes>, uri: &Uri) -> Result<Request<Full<Bytes>>, SendError> {
    let (mut parts, body) = request.into_parts();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = target.parse().map_err(|e: http::uri::InvalidUri| SendError::BadUrl {
        url: uri.to_string(),
        reason: e.to_string(),
    })?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let host = HeaderValue::from_str(authority)
        .map_err(|e| SendError::BadUrl { url: uri.to_string(), reason: e.to_string() })?;
    parts.headers.insert(HOST, host);
    parts.headers.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(Request::from_parts(parts, Full::new(body)))
}

/// Polls `work` while also driving the connection that carries it; the
/// connection is dropped (and closed) when `work` ends.
async fn drive<T>(conn: impl std::future::Future, work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(conn);
    tokio::pin!(work);
    let mut conn_live = true;
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            _ = &mut conn, if conn_live => conn_live = false,
        }
    }
}

/// The start of a body, on one line, for an error message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > QUOTED_BODY_CHARS {
        let mut cut: String = line.chars().take(QUOTED_BODY_CHARS).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// A rustls failure in words, never its Debug form.
fn tls_reason(e: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    let inner = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            C::UnknownIssuer => "its certificate is signed by an unknown issuer".into(),
            C::Expired | C::ExpiredContext { .. } => "its certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "its certificate is not valid yet".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its certificate is not valid for this host name".into()
            }
            C::Revoked => "its certificate is revoked".into(),
            C::BadSignature | C::BadEncoding => "its certificate is malformed or badly signed".into(),
            _ => "its certificate is not acceptable".into(),
        },
        Some(rustls::Error::AlertReceived(alert)) => format!("the receiver sent the TLS alert {alert:?}"),
        Some(rustls::Error::NoApplicationProtocol) => "the receiver does not speak HTTP/1.1 over TLS".into(),
        Some(other) => other.to_string(),
        None => io_reason(e),
    }
}

fn hyper_reason(e: &hyper::Error, during: &str) -> String {
    let io = std::iter::successors(std::error::Error::source(e), |s| s.source())
        .find_map(|s| s.downcast_ref::<std::io::Error>());
    match io.map(|io| io.kind()) {
        Some(std::io::ErrorKind::ConnectionReset) => {
            format!("connection reset by the receiver while {during}")
        }
        Some(std::io::ErrorKind::UnexpectedEof) => {
            format!("connection closed by the receiver while {during}")
        }
        _ if e.is_incomplete_message() => format!("connection closed by the receiver while {during}"),
        _ if e.is_parse() || e.is_parse_status() => format!("malformed answer while {during}: {e}"),
        _ => match io {
            Some(io) => format!("{during}: {e}: {}", io_reason(io)),
            None => format!("{during}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_for_the_retry_decision() {
        let hint = Some(Duration::from_secs(7));
        let cases: &[(u16, &str)] = &[
            (200, "delivered"),
            (202, "delivered"),
            (204, "delivered"),
            (500, "retryable"),
            (502, "retryable"),
            (503, "retryable"),
            (429, "retryable"),
            (408, "retryable"),
            (400, "rejected"),
            (401, "rejected"),
            (404, "rejected"),
            (410, "rejected"),
            (301, "rejected"),
            (101, "rejected"),
        ];
        let answer = |code: u16, body: &str| Answer {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: hint,
            location: Some("https://elsewhere.example.com/".into()),
            body: body.into(),
        };
        for &(code, want) in cases {
            let outcome = classify(&answer(code, "nope"));
            assert_eq!(outcome.as_str(), want, "{code}");
            if let AttemptOutcome::Retryable { retry_after, .. } = &outcome {
                assert_eq!(*retry_after, hint, "{code}: Retry-After is kept");
            }
        }
        let outcome = classify(&answer(404, "no such hook"));
        assert_eq!(
            outcome.error().unwrap().to_string(),
            "the receiver answered 404 Not Found: no such hook",
            "the status is in the error"
        );
        let outcome = classify(&answer(503, ""));
        assert_eq!(outcome.error().unwrap().to_string(), "the receiver answered 503 Service Unavailable");
        let outcome = classify(&answer(308, "moved"));
        assert_eq!(
            outcome.error().unwrap().to_string(),
            "the receiver answered 308 Permanent Redirect to \"https://elsewhere.example.com/\"; redirects are \
             not followed, so use the final URL"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_retry_after(&header("120")), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(&header(" 0 ")), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&header("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO), "past");
        assert_eq!(parse_retry_after(&header("soon")), None);
        assert_eq!(parse_retry_after(&header("-5")), None);
    }

    #[test]
    fn errors_before_an_answer_are_classified_and_read_as_sentences() {
        let blocked = SendError::Blocked {
            host: "hooks.internal".into(),
            ip: "10.0.0.5".parse().unwrap(),
            reason: Forbidden::Private,
        };
        assert!(blocked.to_string().starts_with("hooks.internal resolves to 10.0.0.5, a private address"));
        assert_eq!(outcome_of(blocked).as_str(), "rejected");
        let refused = SendError::Connect {
            addr: "192.0.2.1:443".parse().unwrap(),
            reason: "connection refused".into(),
        };
        assert_eq!(refused.to_string(), "cannot connect to 192.0.2.1:443: connection refused");
        assert_eq!(outcome_of(refused).as_str(), "retryable");
        let timeout = SendError::Timeout { host: "x".into(), after: Duration::from_secs(10) };
        assert_eq!(timeout.to_string(), "no complete answer from x within 10s");
        for error in [
            SendError::Resolve { host: "x".into(), reason: "no addresses".into() },
            SendError::Tls { host: "x".into(), reason: "bad".into() },
            SendError::TooLarge { host: "x".into(), limit: 65_536 },
            SendError::Transport { host: "x".into(), reason: "reset".into() },
        ] {
            assert_eq!(outcome_of(error.clone()).as_str(), "retryable", "{error}");
            assert!(!error.to_string().contains('\n') && !error.to_string().ends_with('.'), "{error}");
        }
    }

    #[test]
    fn the_guard_refuses_private_addresses_unless_allowed() {
        let addrs: Vec<SocketAddr> = vec!["127.0.0.1:80".parse().unwrap(), "[::1]:80".parse().unwrap()];
        let err = guard("localhost", &addrs, &Policy::default()).unwrap_err();
        assert!(matches!(err, SendError::Blocked { reason: Forbidden::Loopback, .. }), "{err:?}");
        let allowed = guard("localhost", &addrs, &Policy { allow_private: true, allow: Vec::new() }).unwrap();
        assert_eq!(allowed, addrs);
        let mixed: Vec<SocketAddr> = vec!["10.0.0.1:80".parse().unwrap(), "203.0.113.7:80".parse().unwrap()];
        assert_eq!(guard("x", &mixed, &Policy::default()).unwrap(), vec![mixed[1]], "public ones stay");
    }

    /// A TLS receiver on 127.0.0.1 for `localhost`, its certificate from a
    /// CA of its own; answers every request 204.
    async fn tls_receiver() -> (u16, CertificateDer<'static>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone()], key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else { continue };
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
                let _ = tls.shutdown().await;
            }
        });
        (port, ca.der().clone())
    }

    #[tokio::test]
    async fn https_is_delivered_to_a_trusted_receiver_and_an_unknown_issuer_is_named() {
        let (port, ca) = tls_receiver().await;
        let post = || {
            Request::post(format!("https://localhost:{port}/hook")).body(Bytes::from_static(b"{}")).unwrap()
        };
        let trusting =
            HttpClient::new(ClientOptions { extra_roots: vec![ca], ..ClientOptions::default() }).unwrap();
        let attempt = trusting.send(post(), true).await;
        assert_eq!(attempt.outcome, AttemptOutcome::Delivered, "{attempt:?}");
        assert_eq!(attempt.status, Some(204));

        let public_roots_only = HttpClient::default();
        let attempt = public_roots_only.send(post(), true).await;
        let error = attempt.outcome.error().unwrap().to_string();
        assert_eq!(attempt.outcome.as_str(), "retryable", "{error}");
        assert_eq!(
            error,
            "TLS handshake with localhost failed: its certificate is signed by an unknown issuer"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_refused_address_are_told_apart() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let post = || Request::post(format!("http://127.0.0.1:{port}/")).body(Bytes::new()).unwrap();
        let service = HttpClient::default();
        let refused = service.send(post(), true).await;
        assert_eq!(refused.outcome.as_str(), "retryable");
        assert_eq!(
            refused.outcome.error().unwrap().to_string(),
            format!("cannot connect to 127.0.0.1:{port}: connection refused")
        );
        let guarded = service.send(post(), false).await;
        assert_eq!(guarded.outcome.as_str(), "rejected");
        let error = guarded.outcome.error().unwrap().to_string();
        assert!(error.starts_with("127.0.0.1 is a loopback address, refused by the SSRF guard"), "{error}");
    }

    #[test]
    fn requests_go_out_in_origin_form_with_host_and_close() {
        let request =
            Request::post("http://hooks.example.com:8080/a/b?c=d").body(Bytes::from_static(b"{}")).unwrap();
        let uri = request.uri().clone();
        let request = origin_form(request, &uri).unwrap();
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()[HOST], "hooks.example.com:8080");
        assert_eq!(request.headers()[CONNECTION], "close");
        assert_eq!(quote(b"  line one\n\tline  two "), "line one line two");
        assert_eq!(quote("é".repeat(200).as_bytes()).chars().count(), QUOTED_BODY_CHARS + 1);
    }
}
