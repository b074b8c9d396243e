//! What one check produced: timing phases, the closed set of failure kinds,
//! TLS details and redirect hops.
//!
//! The JSON form (`serde::Serialize`) is the contract of
//! `vantage-probe check --json`; field names are stable.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::spec::CheckKind;

/// The timing of one check, phase by phase, measured with the monotonic
/// clock. A phase that did not happen (no TLS on plain HTTP, no DNS for an IP
/// literal) is zero.
///
/// The mapping to curl's `-w` variables: `dns` = `time_namelookup`,
/// `connect` = `time_connect − time_namelookup`, `tls` = `time_appconnect −
/// time_connect`, `ttfb` = `time_starttransfer − time_pretransfer`,
/// `transfer` = `time_total − time_starttransfer`, `total` = `time_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    /// Name resolution, start to answer.
    #[serde(serialize_with = "ser_ms")]
    pub dns: Duration,
    /// TCP connect to the chosen address.
    #[serde(serialize_with = "ser_ms")]
    pub connect: Duration,
    /// TLS handshake.
    #[serde(serialize_with = "ser_ms")]
    pub tls: Duration,
    /// First byte of the request written to first byte of the response.
    #[serde(serialize_with = "ser_ms")]
    pub ttfb: Duration,
    /// First response byte to the end of the body.
    #[serde(serialize_with = "ser_ms")]
    pub transfer: Duration,
    /// The whole check, including every redirect hop.
    #[serde(serialize_with = "ser_ms")]
    pub total: Duration,
}

impl Phases {
    /// Adds the phases of another hop to these (curl sums phases over
    /// redirects). `total` is not summed: it is measured over the whole check.
    pub fn accumulate(&mut self, hop: &Phases) {
        self.dns += hop.dns;
        self.connect += hop.connect;
        self.tls += hop.tls;
        self.ttfb += hop.ttfb;
        self.transfer += hop.transfer;
    }
}

/// Milliseconds with microsecond resolution, as a float.
pub fn duration_ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(duration_ms(*d))
}

fn ser_rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

/// The phase a check was in; named by timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Name resolution.
    Dns,
    /// TCP connect.
    Connect,
    /// TLS handshake.
    Tls,
    /// Waiting for the first response byte.
    Ttfb,
    /// Reading the response body.
    Transfer,
}

impl Phase {
    /// The phase's name as it appears in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Ttfb => "ttfb",
            Phase::Transfer => "transfer",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The closed set of ways a check fails. Every failure has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Name resolution failed (NXDOMAIN, no address of the wanted family,
    /// SERVFAIL, no reachable resolver), or a DNS check's answers differ.
    Dns,
    /// The TCP connection could not be established: refused, or the network
    /// or host is unreachable (the message says which).
    ConnectRefused,
    /// The TCP connection was not established within its time.
    ConnectTimeout,
    /// The TLS handshake failed; [`CheckError::tls_reason`] says why.
    Tls,
    /// A phase after connect ran out of time; [`CheckError::phase`] names it.
    Timeout,
    /// The HTTP status is not one of the expected codes.
    HttpStatus,
    /// An assertion on the body, headers, latency or certificate failed.
    Assertion,
    /// The body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// The SSRF guard refused the address the target resolved to.
    Blocked,
    /// The peer broke the protocol: a malformed response, or a connection
    /// reset or closed in the middle of a response.
    Protocol,
}

impl ErrorKind {
    /// The kind's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Assertion => "assertion",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Blocked => "blocked",
            ErrorKind::Protocol => "protocol",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsReason {
    /// The certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate has expired (or is not yet valid).
    Expired,
    /// The certificate is not valid for the name that was checked.
    HostnameMismatch,
    /// Anything else: protocol mismatch, alert from the peer, bad signature.
    Handshake,
}

impl TlsReason {
    /// The reason's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsReason::UnknownIssuer => "unknown_issuer",
            TlsReason::Expired => "expired",
            TlsReason::HostnameMismatch => "hostname_mismatch",
            TlsReason::Handshake => "handshake",
        }
    }
}

/// A check's failure: one kind from the closed set and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// One line for a human, e.g. `no response headers within 10s`.
    pub message: String,
    /// For `timeout` (and `connect_timeout`): the phase that ran out of time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// For `tls`: why the handshake failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_reason: Option<TlsReason>,
}

impl CheckError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), phase: None, tls_reason: None }
    }

    /// A `timeout` in `phase` (`connect_timeout` when the phase is connect).
    pub fn timeout(phase: Phase, after: Duration) -> Self {
        let (kind, what) = match phase {
            Phase::Dns => (ErrorKind::Timeout, "no DNS answer"),
            Phase::Connect => (ErrorKind::ConnectTimeout, "TCP connect did not complete"),
            Phase::Tls => (ErrorKind::Timeout, "TLS handshake did not complete"),
            Phase::Ttfb => (ErrorKind::Timeout, "no response"),
            Phase::Transfer => (ErrorKind::Timeout, "body not complete"),
        };
        let after = humantime::format_duration(round_ms(after));
        Self {
            kind,
            message: format!("{what} within {after} (phase {phase})"),
            phase: Some(phase),
            tls_reason: None,
        }
    }

    /// A `tls` error with its reason.
    pub fn tls(reason: TlsReason, message: impl Into<String>) -> Self {
        Self { tls_reason: Some(reason), ..Self::new(ErrorKind::Tls, message) }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tls_reason {
            Some(reason) => write!(f, "{} ({}): {}", self.kind, reason.as_str(), self.message),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Details of the TLS session and the server's certificate. Reported even
/// when verification is off (`--insecure`) or failed after the certificate
/// arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.3`; empty when the handshake failed.
    pub version: String,
    /// Cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`; empty when the
    /// handshake failed.
    pub cipher: String,
    /// The ALPN protocol the server selected, if any.
    pub alpn: Option<String>,
    /// The leaf certificate's subject.
    pub subject: String,
    /// The leaf certificate's issuer.
    pub issuer: String,
    /// The leaf certificate's `notAfter`.
    #[serde(serialize_with = "ser_rfc3339")]
    pub cert_not_after: SystemTime,
    /// Whole days from the check's start to `notAfter` (negative once
    /// expired).
    pub cert_days_left: i64,
    /// Whether the chain and name were verified.
    pub verified: bool,
}

/// Whole days from `now` to `not_after`, rounded towards negative infinity,
/// so a certificate expiring in 12 hours has 0 days left and one that expired
/// an hour ago has -1.
pub fn days_left(not_after: SystemTime, now: SystemTime) -> i64 {
    let secs = match not_after.duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    secs.div_euclid(86_400)
}

/// One request of a redirect chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The URL requested.
    pub url: String,
    /// The status it answered.
    pub status_code: Option<u16>,
    /// The address connected to.
    pub remote_addr: Option<SocketAddr>,
    /// This hop's phases (`total` is the hop's own duration).
    pub phases_ms: Phases,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The URL checked, as given.
    pub url: String,
    /// The kind of check.
    pub kind: CheckKind,
    /// True when the check passed every assertion.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<CheckError>,
    /// The final HTTP status, for HTTP checks that got one.
    pub status_code: Option<u16>,
    /// `HTTP/1.1` or `HTTP/2`, for HTTP checks that got a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// The address the (last) connection went to.
    pub remote_addr: Option<SocketAddr>,
    /// Timing, summed over redirect hops.
    pub phases_ms: Phases,
    /// TLS session and certificate, when TLS was used.
    pub tls: Option<TlsInfo>,
    /// Body bytes read (stops at `max_body_bytes`).
    pub body_bytes: u64,
    /// Wall-clock time the check started.
    #[serde(serialize_with = "ser_rfc3339")]
    pub started_at: SystemTime,
    /// Every request when redirects were followed (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<Hop>,
    /// For DNS checks: the answers, as text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_answers: Vec<String>,
    /// How many times the check ran: 1, or more when a failure was checked
    /// again at once (`retries`); the result is the last run's.
    #[serde(skip_serializing_if = "is_one")]
    pub attempts: u32,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_rounds_down() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let h = |h: i64| {
            if h >= 0 {
                now + Duration::from_secs(h as u64 * 3600)
            } else {
                now - Duration::from_secs((-h) as u64 * 3600)
            }
        };
        let cases = [(0, 0), (12, 0), (24, 1), (47, 1), (48, 2), (-1, -1), (-24, -1), (-25, -2)];
        for (hours, want) in cases {
            assert_eq!(days_left(h(hours), now), want, "{hours}h");
        }
    }

    #[test]
    fn phases_serialize_as_milliseconds_with_microseconds() {
        let p = Phases { ttfb: Duration::from_micros(200_123), ..Default::default() };
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(v["ttfb"], serde_json::json!(200.123));
        assert_eq!(v["dns"], serde_json::json!(0.0));
    }

    #[test]
    fn timeout_names_its_phase() {
        let e = CheckError::timeout(Phase::Ttfb, Duration::from_millis(1500));
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(e.message, "no response within 1s 500ms (phase ttfb)");
        assert_eq!(
            CheckError::timeout(Phase::Connect, Duration::from_secs(2)).kind,
            ErrorKind::ConnectTimeout
        );
    }
}
