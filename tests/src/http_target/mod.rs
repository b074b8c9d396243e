//! A fault-injecting HTTP target: one server whose every response is chosen
//! by the query string of the request, so a single instance serves all the
//! cases a test needs (slow headers, slow body, resets, hangs, redirects,
//! truncated and malformed responses).
//!
//! HTTP/1.1 is hand-written on raw tokio TCP so that every delay is exactly
//! where the test asks for it. With TLS, a client that negotiates `h2` by
//! ALPN is served by hyper's HTTP/2 server instead, which honours `status`,
//! `header`, `body`, `body_bytes`, `content_type`, `headers_delay_ms`, `drip_*`,
//! `redirect`, `hang`, `huge` and `reset` (as an `RST_STREAM`); the others are
//! HTTP/1.1 framing faults and are ignored there.
//!
//! # Query parameters
//!
//! | parameter | effect |
//! |---|---|
//! | `status=N` | response status (default 200) |
//! | `header=Name:Value` | extra response header; repeatable |
//! | `body=TEXT` | response body (default `ok`) |
//! | `body_bytes=N` | body of N bytes of `x` instead |
//! | `content_type=T` | `Content-Type` (default `text/plain; charset=utf-8`) |
//! | `headers_delay_ms=N` | after the request head is read, wait N ms before writing any byte |
//! | `drip_ms=N&drip_chunks=K` | send the body in K equal chunks, sleeping N/K ms before each (K defaults to 10) |
//! | `chunked=1` | `Transfer-Encoding: chunked` instead of `Content-Length` |
//! | `redirect=URL` | answer `302` (or `redirect_status=301\|302\|303\|307\|308`) with `Location: URL` |
//! | `reset=1` | close with `SO_LINGER` 0 so the client sees a connection reset |
//! | `hang=1` | never answer; the socket stays open until the target is dropped |
//! | `close_early=1` | announce `Content-Length: 1000`, send 10 bytes, close |
//! | `malformed=1` | answer `HELLO\r\n\r\n`, which is not HTTP, and close |
//! | `huge=1` | announce and stream a 64 MiB body until the client goes away |
//!
//! Values are percent-decoded; `+` is kept literally. Unknown parameters are
//! ignored; a bad value for a known one is answered with `400` and a body
//! naming it. `headers_delay_ms` applies before every other behaviour except
//! `hang`.
//!
//! Connections are kept alive as HTTP/1.1 normally does (HTTP/1.0 only with
//! `Connection: keep-alive`), so tests can detect connection reuse by
//! comparing [`HttpTarget::connections`] with [`HttpTarget::requests`].

mod behaviour;
mod h1;
mod h2;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::tasks::TaskSet;

/// How to start an [`HttpTarget`].
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Address to listen on; must be loopback. Default `127.0.0.1:0` (an
    /// ephemeral port).
    pub bind: SocketAddr,
    /// Serve HTTPS with this configuration (see
    /// [`TestPki::server_config`](crate::pki::TestPki::server_config)); plain
    /// HTTP when `None`. Offer `h2` in its ALPN list to enable HTTP/2.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Sleep after the TCP accept and before starting the TLS handshake, to
    /// make the TLS phase measurably slow. Ignored without `tls`.
    pub tls_accept_delay: Duration,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: None,
            tls_accept_delay: Duration::ZERO,
        }
    }
}

/// A running HTTP(S) target. Dropping it stops the server and closes every
/// connection it holds.
#[derive(Debug)]
pub struct HttpTarget {
    addr: SocketAddr,
    tls: bool,
    counters: Arc<Counters>,
    tasks: TaskSet,
}

impl HttpTarget {
    /// Binds the listener and starts serving.
    ///
    /// Must be called from within a Tokio runtime (for example a
    /// `#[tokio::test]`); the server runs on that runtime.
    pub fn start(opts: TargetOptions) -> anyhow::Result<HttpTarget> {
        anyhow::ensure!(
            opts.bind.ip().is_loopback(),
            "test targets must bind a loopback address, not {}",
            opts.bind
        );
        // tokio's from_std would panic outside a runtime; fail with a reason.
        tokio::runtime::Handle::try_current()
            .context("HttpTarget::start must be called within a tokio runtime")?;
        let std_listener = std::net::TcpListener::bind(opts.bind)
            .with_context(|| format!("bind http target on {}", opts.bind))?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;

        let counters = Arc::new(Counters::default());
        let tasks = TaskSet::default();
        let server = Server {
            counters: counters.clone(),
            tasks: tasks.clone(),
            tls: opts.tls.clone().map(TlsAcceptor::from),
            tls_accept_delay: opts.tls_accept_delay,
        };
        tasks.spawn(server.accept_loop(listener));

        Ok(HttpTarget { addr, tls: opts.tls.is_some(), counters, tasks })
    }

    /// The address the target listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL for this target: `http://` or `https://`, host `127.0.0.1` or
    /// `[::1]` as bound, then `path_and_query` (a leading `/` is added if
    /// missing). Example: `target.url("/slow?headers_delay_ms=200")`.
    pub fn url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let slash = if path_and_query.starts_with('/') { "" } else { "/" };
        // SocketAddr's Display already brackets IPv6 hosts.
        format!("{scheme}://{}{slash}{path_and_query}", self.addr)
    }

    /// TCP connections accepted so far (counted before any TLS handshake).
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Requests whose head was read completely so far, over HTTP/1.1 and
    /// HTTP/2.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// From now on, requests from probes of these regions (named by
    /// `region=R` in their User-Agent, as the agent sends it) get `503`
    /// whatever the query asks; an empty list heals every region.
    pub fn fail_regions(&self, regions: &[&str]) {
        let mut failing = self.counters.failing_regions.lock().unwrap_or_else(|e| e.into_inner());
        *failing = regions.iter().map(|r| r.to_string()).collect();
    }

    /// The User-Agent values of recent requests, oldest first (at most 256).
    pub fn user_agents(&self) -> Vec<String> {
        let seen = self.counters.user_agents.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().cloned().collect()
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.tasks.close();
    }
}

/// The most User-Agent values remembered (the newest kept).
const USER_AGENTS_KEPT: usize = 256;

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    /// Regions whose probes get a 503 (by `region=R` in their User-Agent).
    failing_regions: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Recent User-Agent values, oldest first.
    user_agents: std::sync::Mutex<std::collections::VecDeque<String>>,
}

impl Counters {
    fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    /// Notes a request's User-Agent; true when its region is told to fail.
    fn fails_for(&self, user_agent: Option<&str>) -> bool {
        let Some(agent) = user_agent else { return false };
        {
            let mut seen = self.user_agents.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() == USER_AGENTS_KEPT {
                seen.pop_front();
            }
            seen.push_back(agent.to_string());
        }
        let failing = self.failing_regions.lock().unwrap_or_else(|e| e.into_inner());
        region_of(agent).is_some_and(|region| failing.contains(region))
    }
}

/// The `R` of `region=R` in a `vantage-probe/V (region=R; probe=P)` agent.
fn region_of(user_agent: &str) -> Option<&str> {
    let start = user_agent.find("region=")? + "region=".len();
    let rest = &user_agent[start..];
    Some(&rest[..rest.find([';', ')']).unwrap_or(rest.len())])
}

/// What every connection task needs.
#[derive(Clone)]
struct Server {
    counters: Arc<Counters>,
    tasks: TaskSet,
    tls: Option<TlsAcceptor>,
    tls_accept_delay: Duration,
}

impl Server {
    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _peer)) => stream,
                // Out of file descriptors and the like: back off, keep going.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            self.counters.connections.fetch_add(1, Ordering::SeqCst);
            // Small writes (a drip chunk) must leave at once, not wait for Nagle.
            let _ = stream.set_nodelay(true);
            self.tasks.spawn(self.clone().serve_connection(stream));
        }
    }

    async fn serve_connection(self, stream: TcpStream) {
        let Some(acceptor) = self.tls.clone() else {
            h1::serve(stream, self.counters).await;
            return;
        };
        if !self.tls_accept_delay.is_zero() {
            tokio::time::sleep(self.tls_accept_delay).await;
        }
        let Ok(tls) = acceptor.accept(stream).await else {
            return; // The client rejected our certificate, or went away.
        };
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            h2::serve(tls, self.counters, self.tasks).await;
        } else {
            h1::serve(tls, self.counters).await;
        }
    }
}

#[cfg(test)]
mod tests;
