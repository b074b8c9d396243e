//! The check engine: one cold measurement of one endpoint, with exact timing
//! phases and one failure kind from a closed set.
//!
//! A [`Checker`] holds what checks share (the resolver configuration, the
//! trusted roots, the wall clock) and nothing that would make a check warm:
//! no connection pool, no DNS cache, no TLS session cache. Each
//! [`Checker::check`] resolves, connects, handshakes and requests from
//! scratch.
//!
//! Submodules: `resolve` (hickory, cache off), `tls` (per-check rustls
//! configuration, certificate capture, failure classification), `http` (one
//! request per hop over hyper, redirects), `timing` (phase deadlines and the
//! I/O wrapper that timestamps the first request and response bytes).

mod http;
mod resolve;
mod timing;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use vantage_core::assert::Observed;
use vantage_core::clock::{SystemWallClock, WallClock};
use vantage_core::netguard;
use vantage_core::result::{CheckError, CheckResult, ErrorKind, Hop, Phase, Phases, TlsInfo};
use vantage_core::spec::{CheckSpec, Host, RecordType, Target};

use self::resolve::DnsResolver;
use self::timing::Deadlines;
use self::tls::{tls_info, Session, TlsContext};

/// Why a [`Checker`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// The resolver configuration is unusable.
    #[error("resolver configuration: {reason}")]
    Resolver {
        /// What is wrong.
        reason: String,
    },
    /// An extra CA certificate is unusable.
    #[error("CA certificates: {reason}")]
    Ca {
        /// What is wrong.
        reason: String,
    },
}

/// What checks share.
#[derive(Debug, Clone)]
pub struct CheckerConfig {
    /// DNS servers to ask (`IP:PORT`); empty means the system's
    /// (`/etc/resolv.conf`). `/etc/hosts` is honoured either way.
    pub resolvers: Vec<SocketAddr>,
    /// CA certificates trusted in addition to the public web roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The `User-Agent` of HTTP checks.
    pub user_agent: String,
    /// The wall clock that stamps `started_at` and counts certificate days.
    pub clock: Arc<dyn WallClock>,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        Self {
            resolvers: Vec::new(),
            extra_roots: Vec::new(),
            user_agent: concat!("vantage-probe/", env!("CARGO_PKG_VERSION")).to_string(),
            clock: Arc::new(SystemWallClock),
        }
    }
}

/// Runs checks. Cheap to share behind an `Arc`; checks run concurrently.
#[derive(Debug)]
pub struct Checker {
    resolver: DnsResolver,
    tls: TlsContext,
    user_agent: String,
    clock: Arc<dyn WallClock>,
}

/// What a check gathered so far; filled in phase by phase, so a failure
/// still reports what was measured before it.
#[derive(Debug, Default)]
struct Outcome {
    phases: Phases,
    remote_addr: Option<SocketAddr>,
    tls: Option<TlsInfo>,
    status: Option<u16>,
    http_version: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    body_bytes: u64,
    hops: Vec<Hop>,
    dns_answers: Vec<String>,
}

impl Checker {
    /// A checker with `config`.
    pub fn new(config: CheckerConfig) -> Result<Self, CheckerError> {
        Ok(Self {
            resolver: DnsResolver::new(&config.resolvers)?,
            tls: TlsContext::new(&config.extra_roots)?,
            user_agent: config.user_agent,
            clock: config.clock,
        })
    }

    /// Runs one check, cold, and reports it; a failure is run again at once
    /// (cold again) up to `spec.retries` times, and the last run is
    /// reported with `attempts`. Never fails: every failure is a
    /// [`CheckResult`] with `ok: false` and an error of one kind.
    pub async fn check(&self, spec: &CheckSpec) -> CheckResult {
        let mut result = self.check_once(spec).await;
        let mut attempts = 1;
        while attempts <= spec.retries && result.error.as_ref().is_some_and(|e| e.kind != ErrorKind::Blocked)
        {
            tracing::debug!(url = %spec.url, attempt = attempts + 1, "checking a failure again at once");
            result = self.check_once(spec).await;
            attempts += 1;
        }
        result.attempts = attempts;
        result
    }

    /// One cold run of `spec`.
    async fn check_once(&self, spec: &CheckSpec) -> CheckResult {
        let started_at = self.clock.now();
        let start = Instant::now();
        let deadlines = Deadlines::start(spec.timeout, spec.phase_timeouts);
        let mut out = Outcome::default();
        let ctx = Ctx { checker: self, spec, deadlines, started_at };
        let mut result = match &spec.target {
            Target::Http { url } => http::run(&ctx, url, &mut out).await,
            Target::Tcp { host, port, tls } => ctx.tcp(host, *port, *tls, &mut out).await,
            Target::Dns { name, record_type, expect } => ctx.dns(name, *record_type, expect, &mut out).await,
        };
        out.phases.total = start.elapsed();
        if result.is_ok() {
            result = spec.assertions.evaluate(&Observed {
                status: out.status,
                headers: &out.headers,
                body: Some(&out.body),
                total: out.phases.total,
                ttfb: out.phases.ttfb,
                cert_days_left: out.tls.as_ref().map(|t| t.cert_days_left),
            });
        }
        let error = result.err();
        tracing::debug!(url = %spec.url, ok = error.is_none(), error = ?error, total_ms = out.phases.total.as_secs_f64() * 1e3, "check finished");
        CheckResult {
            url: spec.url.clone(),
            kind: spec.kind(),
            ok: error.is_none(),
            error,
            status_code: out.status,
            http_version: out.http_version,
            remote_addr: out.remote_addr,
            phases_ms: out.phases,
            tls: out.tls,
            body_bytes: out.body_bytes,
            started_at,
            hops: out.hops,
            dns_answers: out.dns_answers,
            attempts: 1,
        }
    }
}

/// One check in progress.
struct Ctx<'a> {
    checker: &'a Checker,
    spec: &'a CheckSpec,
    deadlines: Deadlines,
    started_at: SystemTime,
}

impl Ctx<'_> {
    /// Resolves `host`, applies the SSRF guard and connects: the `dns` and
    /// `connect` phases.
    async fn connect(&self, host: &Host, port: u16, out: &mut Outcome) -> Result<TcpStream, CheckError> {
        let start = Instant::now();
        let ips = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                let resolved = self
                    .deadlines
                    .run(Phase::Dns, self.checker.resolver.resolve(name, self.spec.family))
                    .await;
                out.phases.dns = start.elapsed();
                resolved?
            }
        };
        let allowed = guard(host, &ips, &self.spec.guard)?;
        let start = Instant::now();
        let connected = self
            .deadlines
            .run(Phase::Connect, async {
                let mut last = None;
                for ip in allowed {
                    let addr = SocketAddr::new(ip, port);
                    match TcpStream::connect(addr).await {
                        Ok(stream) => return Ok((stream, addr)),
                        Err(e) => last = Some(connect_error(addr, &e)),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    CheckError::new(ErrorKind::ConnectRefused, "no address to connect to")
                }))
            })
            .await;
        out.phases.connect = start.elapsed();
        let (stream, addr) = connected?;
        out.remote_addr = Some(addr);
        // Requests are small and latency is what we measure.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The TLS handshake on `tcp`: the `tls` phase.
    async fn handshake(
        &self,
        tcp: TcpStream,
        host: &Host,
        alpn: &[&[u8]],
        out: &mut Outcome,
    ) -> Result<TlsStream<TcpStream>, CheckError> {
        let verify = self.spec.tls_verify;
        let (config, captured) = self.checker.tls.client_config(verify, alpn);
        let name = match host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(name) => {
                ServerName::try_from(name.trim_end_matches('.').to_string()).map_err(|e| {
                    CheckError::tls(
                        vantage_core::result::TlsReason::Handshake,
                        format!("{name} is not a TLS server name: {e}"),
                    )
                })?
            }
        };
        let start = Instant::now();
        let host = host.to_string();
        let handshake = self
            .deadlines
            .run(Phase::Tls, async {
                TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls::handshake_error(&e, &host))
            })
            .await;
        out.phases.tls = start.elapsed();
        match handshake {
            Ok(stream) => {
                out.tls = tls_info(&captured, Some(Session::of(stream.get_ref().1)), verify, self.started_at);
                Ok(stream)
            }
            Err(e) => {
                out.tls = tls_info(&captured, None, false, self.started_at);
                Err(e)
            }
        }
    }

    /// A `tcp://` or `tls://` check.
    async fn tcp(&self, host: &Host, port: u16, tls: bool, out: &mut Outcome) -> Result<(), CheckError> {
        let stream = self.connect(host, port, out).await?;
        if tls {
            self.handshake(stream, host, &[], out).await?;
        }
        Ok(())
    }

    /// A `dns://` check: the `dns` phase only.
    async fn dns(
        &self,
        name: &str,
        record_type: RecordType,
        expect: &[String],
        out: &mut Outcome,
    ) -> Result<(), CheckError> {
        let start = Instant::now();
        let answers = self.deadlines.run(Phase::Dns, self.checker.resolver.query(name, record_type)).await;
        out.phases.dns = start.elapsed();
        out.dns_answers = answers?;
        let normal = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
        let have: Vec<String> = out.dns_answers.iter().map(|a| normal(a)).collect();
        for want in expect {
            if !have.contains(&normal(want)) {
                return Err(CheckError::new(
                    ErrorKind::Assertion,
                    format!("answers for {name} [{}] do not include {want:?}", out.dns_answers.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// The addresses the SSRF guard lets through, or `blocked` when none.
fn guard(host: &Host, ips: &[IpAddr], policy: &netguard::Policy) -> Result<Vec<IpAddr>, CheckError> {
    let mut refused = None;
    let allowed: Vec<IpAddr> = ips
        .iter()
        .copied()
        .filter(|ip| match netguard::check(*ip, policy) {
            Ok(()) => true,
            Err(reason) => {
                refused.get_or_insert((*ip, reason));
                false
            }
        })
        .collect();
    match refused {
        Some((ip, reason)) if allowed.is_empty() => {
            let what = match host {
                Host::Ip(_) => format!("{ip} is a {} address", reason.describe()),
                Host::Name(name) => format!("{name} resolves to {ip}, a {} address", reason.describe()),
            };
            Err(CheckError::new(
                ErrorKind::Blocked,
                format!("{what}; refused by the SSRF guard (--allow-private or --allow-cidr allows it)"),
            ))
        }
        _ => Ok(allowed),
    }
}

fn connect_error(addr: SocketAddr, e: &std::io::Error) -> CheckError {
    let message = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("connection refused by {addr}"),
        _ => format!("connecting to {addr}: {e}"),
    };
    CheckError::new(ErrorKind::ConnectRefused, message)
}

/// Compile-time proof that a check can run on a multi-threaded runtime.
#[allow(dead_code)]
fn check_future_is_send(checker: &Checker, spec: &CheckSpec) {
    fn is_send<T: Send>(_: T) {}
    is_send(checker.check(spec));
}
