//! HTTP checks: one request per hop over a fresh connection (HTTP/1.1, or
//! HTTP/2 when TLS ALPN selects it), redirects followed hop by hop with the
//! SSRF guard applied to each.
//!
//! ttfb over HTTP/1.1 is measured at the I/O layer: from the first request
//! byte accepted by the socket (or TLS stream) to the first response byte
//! read from it, as curl does. Over HTTP/2 the connection preface and
//! SETTINGS frames share the stream, so ttfb there runs from sending the
//! request to receiving the response headers.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONNECTION, HOST, USER_AGENT};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use url::{Position, Url};
use vantage_core::result::{CheckError, ErrorKind, Hop, Phase};
use vantage_core::spec::Host;

use super::timing::{IoMarks, TimedIo};
use super::{Ctx, Outcome};

/// A byte stream a request can run over: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Runs an HTTP check from `url`, following redirects as the spec allows.
pub(super) async fn run(ctx: &Ctx<'_>, url: &Url, out: &mut Outcome) -> Result<(), CheckError> {
    let mut url = url.clone();
    let mut redirects = 0;
    loop {
        let hop_start = Instant::now();
        let mut hop = Outcome::default();
        let result = request(ctx, &url, &mut hop).await;
        out.phases.accumulate(&hop.phases);
        out.remote_addr = hop.remote_addr;
        out.tls = hop.tls;
        out.status = hop.status;
        out.http_version = hop.http_version;
        out.body_bytes = hop.body_bytes;
        out.body = hop.body;
        let location = redirect_location(out.status, &hop.headers);
        out.headers = hop.headers;
        let record = |out: &mut Outcome, url: &Url| {
            let mut phases = hop.phases;
            phases.total = hop_start.elapsed();
            out.hops.push(Hop {
                url: url.to_string(),
                status_code: out.status,
                remote_addr: out.remote_addr,
                phases_ms: phases,
            });
        };
        let location = match (result, location) {
            (Ok(()), Some(location)) if ctx.spec.follow_redirects > 0 => location,
            (result, _) => {
                if !out.hops.is_empty() {
                    record(out, &url);
                }
                return result;
            }
        };
        record(out, &url);
        if redirects == ctx.spec.follow_redirects {
            return Err(CheckError::new(
                ErrorKind::Protocol,
                format!("still redirected after {redirects} hops (raise --follow-redirects)"),
            ));
        }
        url = match url.join(&location) {
            Ok(next) if matches!(next.scheme(), "http" | "https") => next,
            Ok(next) => {
                return Err(CheckError::new(
                    ErrorKind::Protocol,
                    format!("redirect to unsupported scheme {:?}", next.scheme()),
                ))
            }
            Err(e) => {
                return Err(CheckError::new(
                    ErrorKind::Protocol,
                    format!("redirect to invalid URL {location:?}: {e}"),
                ))
            }
        };
        redirects += 1;
    }
}

/// The `Location` of a redirect response.
fn redirect_location(status: Option<u16>, headers: &[(String, String)]) -> Option<String> {
    matches!(status, Some(301 | 302 | 303 | 307 | 308))
        .then(|| headers.iter().find(|(n, _)| n == "location").map(|(_, v)| v.clone()))
        .flatten()
}

/// One request over a fresh connection.
pub(super) async fn request(ctx: &Ctx<'_>, url: &Url, hop: &mut Outcome) -> Result<(), CheckError> {
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Domain(name)) => Host::Name(name.to_string()),
        None => return Err(CheckError::new(ErrorKind::Protocol, format!("{url} has no host"))),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = ctx.connect(&host, port, hop).await?;
    let (io, h2): (Box<dyn Stream>, bool) = if url.scheme() == "https" {
        let tls = ctx.handshake(tcp, &host, &[b"h2", b"http/1.1"], hop).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        (Box::new(tls), h2)
    } else {
        (Box::new(tcp), false)
    };
    let (io, marks) = TimedIo::new(io);
    let io = TokioIo::new(io);
    let request = build_request(url, h2, &ctx.checker.user_agent)?;
    if h2 {
        exchange_h2(ctx, io, request, hop).await
    } else {
        let (mut sender, conn) =
            http1::handshake(io).await.map_err(|e| hyper_error(&e, "starting HTTP/1.1"))?;
        exchange(ctx, conn, sender.send_request(request), Some(marks), hop).await
    }
}

/// The HTTP/2 exchange. The connection task runs spawned (as hyper's own
/// examples do: rustc cannot prove an inline-driven HTTP/2 connection
/// `Send`, its executor bounds being higher-ranked) and is aborted when the
/// exchange ends, so it never outlives the check.
async fn exchange_h2(
    ctx: &Ctx<'_>,
    io: TokioIo<TimedIo<Box<dyn Stream>>>,
    request: Request<Empty<Bytes>>,
    hop: &mut Outcome,
) -> Result<(), CheckError> {
    let (mut sender, conn) =
        http2::handshake(TokioExecutor::new(), io).await.map_err(|e| hyper_error(&e, "starting HTTP/2"))?;
    let _conn = AbortOnDrop(tokio::spawn(conn));
    exchange(ctx, std::future::pending::<()>(), sender.send_request(request), None, hop).await
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn build_request(url: &Url, h2: bool, user_agent: &str) -> Result<Request<Empty<Bytes>>, CheckError> {
    let invalid = |e: &dyn std::fmt::Display| {
        CheckError::new(ErrorKind::Protocol, format!("cannot request {url}: {e}"))
    };
    let target = if h2 { url.as_str() } else { &url[Position::BeforePath..Position::AfterQuery] };
    let target = if target.is_empty() { "/" } else { target };
    let mut builder = Request::get(target)
        .version(if h2 { Version::HTTP_2 } else { Version::HTTP_11 })
        .header(USER_AGENT, user_agent)
        .header(ACCEPT, HeaderValue::from_static("*/*"));
    if !h2 {
        let authority = &url[Position::BeforeHost..Position::AfterPort];
        builder = builder.header(HOST, authority).header(CONNECTION, HeaderValue::from_static("close"));
    }
    builder.body(Empty::new()).map_err(|e| invalid(&e))
}

/// Sends the request and reads the response while driving the connection:
/// the `ttfb` and `transfer` phases.
async fn exchange<C: Future>(
    ctx: &Ctx<'_>,
    conn: C,
    send: impl Future<Output = hyper::Result<Response<Incoming>>>,
    marks: Option<Arc<IoMarks>>,
    hop: &mut Outcome,
) -> Result<(), CheckError> {
    let work = async {
        let sent_at = Instant::now();
        let response = ctx
            .deadlines
            .run(Phase::Ttfb, async { send.await.map_err(|e| hyper_error(&e, "waiting for the response")) })
            .await;
        let headers_at = Instant::now();
        let (written, first_byte) = match &marks {
            Some(m) => (m.first_write().unwrap_or(sent_at), m.first_read().unwrap_or(headers_at)),
            None => (sent_at, headers_at),
        };
        hop.phases.ttfb = first_byte.saturating_duration_since(written);
        let response = response?;
        hop.status = Some(response.status().as_u16());
        hop.http_version = Some(version_name(response.version()).to_string());
        hop.headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = response.into_body();
        let limit = ctx.spec.max_body_bytes;
        let keep = ctx.spec.assertions.needs_body();
        let read = ctx
            .deadlines
            .run(Phase::Transfer, async {
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| hyper_error(&e, "reading the body"))?;
                    let Some(data) = frame.data_ref() else { continue };
                    let room = limit - hop.body_bytes;
                    let take = (data.len() as u64).min(room) as usize;
                    hop.body_bytes += take as u64;
                    if keep {
                        hop.body.extend_from_slice(&data[..take]);
                    }
                    if take < data.len() {
                        return Err(CheckError::new(
                            ErrorKind::BodyTooLarge,
                            format!("body is larger than {limit} bytes (raise --max-body)"),
                        ));
                    }
                }
                Ok(())
            })
            .await;
        hop.phases.transfer = first_byte.elapsed();
        read
    };
    drive(conn, work).await
}

/// Polls `work` to completion while also polling the connection that
/// carries it; the connection is dropped (and closed) when `work` ends.
async fn drive<T>(conn: impl Future, work: impl Future<Output = T>) -> T {
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

fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

/// Classifies a hyper failure: the peer broke the protocol.
fn hyper_error(e: &hyper::Error, during: &'static str) -> CheckError {
    let io = std::iter::successors(std::error::Error::source(e), |s| s.source())
        .find_map(|s| s.downcast_ref::<std::io::Error>());
    let message = match io.map(|io| io.kind()) {
        Some(std::io::ErrorKind::ConnectionReset) => format!("connection reset by the server while {during}"),
        Some(std::io::ErrorKind::UnexpectedEof) => format!("connection closed by the server while {during}"),
        _ if e.is_parse() || e.is_parse_status() => format!("malformed response: {e}"),
        _ if e.is_incomplete_message() => format!("connection closed by the server while {during}"),
        _ => match io {
            Some(io) => format!("{during}: {e}: {io}"),
            None => format!("{during}: {e}"),
        },
    };
    CheckError::new(ErrorKind::Protocol, message)
}
