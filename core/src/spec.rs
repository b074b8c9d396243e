//! What one check is: a target parsed from a URL, plus how to run it.
//!
//! URL forms:
//! - `http://host[:port]/path?query`, `https://…`: an HTTP request
//!   (HTTP/1.1, or HTTP/2 when TLS ALPN selects it);
//! - `tcp://host:port`: a TCP connect;
//! - `tls://host:port`: a TCP connect and a TLS handshake, for certificate
//!   checks of non-HTTP services;
//! - `dns://name[?type=A&expect=VALUE…]`: a DNS query (`type` defaults to
//!   `A`; each `expect` is an answer that must be present).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::assert::Assertions;
use crate::result::Phase;

/// The default timeout of a whole check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on how much of a body is read.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// The longest timeout of a whole check.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The most immediate re-checks of a failed check.
pub const MAX_RETRIES: u32 = 3;
/// The most redirect hops a check may follow.
pub const MAX_REDIRECTS: u32 = 30;

/// Why a check specification is invalid. Messages name the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not a URL at all.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text given.
        url: String,
        /// What the parser objected to.
        reason: String,
    },
    /// The scheme is not one the probe can check.
    #[error("invalid URL {url:?}: unsupported scheme {scheme:?} (use http, https, tcp, tls or dns)")]
    UnsupportedScheme {
        /// The text given.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// A part of the URL is missing or not allowed for its scheme.
    #[error("invalid URL {url:?}: {reason}")]
    BadTarget {
        /// The text given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid {field}: {reason}")]
    BadOption {
        /// The option's name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The kind of check, derived from the URL's scheme (an endpoint's kind
/// too). Serialized as its name (`https`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// TCP connect.
    Tcp,
    /// TCP connect and TLS handshake.
    Tls,
    /// DNS query.
    Dns,
}

impl CheckKind {
    /// Every kind, in the order of the URL schemes' documentation.
    pub const ALL: [CheckKind; 5] =
        [CheckKind::Http, CheckKind::Https, CheckKind::Tcp, CheckKind::Tls, CheckKind::Dns];

    /// The kind's name, which is also its URL scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Https => "https",
            CheckKind::Tcp => "tcp",
            CheckKind::Tls => "tls",
            CheckKind::Dns => "dns",
        }
    }

    /// The kind named `name` (as [`CheckKind::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host to connect to: an IP literal (no DNS) or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address literal.
    Ip(IpAddr),
    /// A DNS name.
    Name(String),
}

impl Host {
    fn from_url(url: &Url) -> Option<Host> {
        Some(match url.host()? {
            url::Host::Ipv4(ip) => Host::Ip(ip.into()),
            url::Host::Ipv6(ip) => Host::Ip(ip.into()),
            url::Host::Domain(name) => match name.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(name.to_string()),
            },
        })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// DNS record types a DNS check can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Mail exchange.
    Mx,
    /// Name server.
    Ns,
    /// Text.
    Txt,
    /// Start of authority.
    Soa,
    /// Service locator.
    Srv,
    /// Certification authority authorization.
    Caa,
    /// Pointer.
    Ptr,
}

impl RecordType {
    /// Parses a record type name, case-insensitively.
    pub fn parse(s: &str) -> Option<RecordType> {
        Some(match s.to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "CNAME" => RecordType::Cname,
            "MX" => RecordType::Mx,
            "NS" => RecordType::Ns,
            "TXT" => RecordType::Txt,
            "SOA" => RecordType::Soa,
            "SRV" => RecordType::Srv,
            "CAA" => RecordType::Caa,
            "PTR" => RecordType::Ptr,
            _ => return None,
        })
    }
}

/// What a check connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An HTTP(S) request.
    Http {
        /// The URL to request.
        url: Url,
    },
    /// A TCP connect, with a TLS handshake on top when `tls`.
    Tcp {
        /// Where to connect.
        host: Host,
        /// The port.
        port: u16,
        /// Whether to do a TLS handshake after connecting.
        tls: bool,
    },
    /// A DNS query.
    Dns {
        /// The name to resolve.
        name: String,
        /// The record type to ask for.
        record_type: RecordType,
        /// Answers that must all be present (compared as text,
        /// case-insensitively, trailing dots ignored).
        expect: Vec<String>,
    },
}

/// Which IP address families a check may use, and in what order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressFamily {
    /// Both families, IPv4 addresses tried first.
    #[default]
    PreferIpv4,
    /// Both families, IPv6 addresses tried first.
    PreferIpv6,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

/// Optional deadlines for single phases, inside the whole check's timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimeouts {
    /// Name resolution.
    pub dns: Option<Duration>,
    /// TCP connect.
    pub connect: Option<Duration>,
    /// TLS handshake.
    pub tls: Option<Duration>,
    /// Request written to first response byte.
    pub ttfb: Option<Duration>,
    /// First response byte to end of body.
    pub transfer: Option<Duration>,
}

impl PhaseTimeouts {
    /// The deadline for `phase`, if one is set.
    pub fn get(&self, phase: Phase) -> Option<Duration> {
        match phase {
            Phase::Dns => self.dns,
            Phase::Connect => self.connect,
            Phase::Tls => self.tls,
            Phase::Ttfb => self.ttfb,
            Phase::Transfer => self.transfer,
        }
    }

    /// Sets the deadline for `phase`.
    pub fn set(&mut self, phase: Phase, limit: Duration) {
        let slot = match phase {
            Phase::Dns => &mut self.dns,
            Phase::Connect => &mut self.connect,
            Phase::Tls => &mut self.tls,
            Phase::Ttfb => &mut self.ttfb,
            Phase::Transfer => &mut self.transfer,
        };
        *slot = Some(limit);
    }
}

/// One check, fully specified.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// The URL as given, for reports.
    pub url: String,
    /// What to connect to.
    pub target: Target,
    /// The whole check's deadline.
    pub timeout: Duration,
    /// Deadlines for single phases.
    pub phase_timeouts: PhaseTimeouts,
    /// How many redirects to follow (0: none, the default).
    pub follow_redirects: u32,
    /// How much of the body to read; a larger body fails with
    /// `body_too_large`.
    pub max_body_bytes: u64,
    /// Address family preference.
    pub family: AddressFamily,
    /// What the SSRF guard lets through besides public addresses.
    pub guard: crate::netguard::Policy,
    /// Verify the server's certificate (on by default). When off, the
    /// certificate is still reported.
    pub tls_verify: bool,
    /// What the answer must satisfy.
    pub assertions: Assertions,
    /// How many times a failed check is run again at once, cold, before
    /// its failure is reported (0: none, the default for one-shot checks).
    /// A refusal by the SSRF guard is not retried.
    pub retries: u32,
}

impl CheckSpec {
    /// Parses `url` into a check with default options.
    pub fn parse(url: &str) -> Result<CheckSpec, SpecError> {
        let target = parse_target(url)?;
        Ok(CheckSpec {
            url: url.to_string(),
            target,
            timeout: DEFAULT_TIMEOUT,
            phase_timeouts: PhaseTimeouts::default(),
            follow_redirects: 0,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            family: AddressFamily::default(),
            guard: crate::netguard::Policy::default(),
            tls_verify: true,
            assertions: Assertions::default(),
            retries: 0,
        })
    }

    /// The kind of check.
    pub fn kind(&self) -> CheckKind {
        match &self.target {
            Target::Http { url } if url.scheme() == "https" => CheckKind::Https,
            Target::Http { .. } => CheckKind::Http,
            Target::Tcp { tls: true, .. } => CheckKind::Tls,
            Target::Tcp { .. } => CheckKind::Tcp,
            Target::Dns { .. } => CheckKind::Dns,
        }
    }

    /// Checks the options' ranges. Call after changing fields by hand.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.timeout.is_zero() {
            return Err(SpecError::BadOption { field: "timeout", reason: "must be above zero".into() });
        }
        if self.timeout > MAX_TIMEOUT {
            return Err(SpecError::BadOption { field: "timeout", reason: "must be at most 10m".into() });
        }
        if self.follow_redirects > MAX_REDIRECTS {
            return Err(SpecError::BadOption {
                field: "follow_redirects",
                reason: format!("at most {MAX_REDIRECTS} hops"),
            });
        }
        if self.retries > MAX_RETRIES {
            return Err(SpecError::BadOption { field: "retries", reason: format!("at most {MAX_RETRIES}") });
        }
        if self.max_body_bytes == 0 {
            return Err(SpecError::BadOption {
                field: "max_body_bytes",
                reason: "must be above zero".into(),
            });
        }
        Ok(())
    }
}

/// Parses the target part of a check from its URL.
pub fn parse_target(text: &str) -> Result<Target, SpecError> {
    let url = Url::parse(text.trim())
        .map_err(|e| SpecError::InvalidUrl { url: text.to_string(), reason: e.to_string() })?;
    let bad = |reason: &str| SpecError::BadTarget { url: text.to_string(), reason: reason.to_string() };
    match url.scheme() {
        "http" | "https" => {
            if url.host().is_none() {
                return Err(bad("missing host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad("credentials in the URL are not supported"));
            }
            Ok(Target::Http { url })
        }
        scheme @ ("tcp" | "tls") => {
            let host = Host::from_url(&url).ok_or_else(|| bad("missing host"))?;
            let port = url.port().ok_or_else(|| bad("missing port (tcp://host:port)"))?;
            if port == 0 {
                return Err(bad("port 0 is not a valid target"));
            }
            if !matches!(url.path(), "" | "/") || url.query().is_some() {
                return Err(bad("a tcp or tls target has no path or query"));
            }
            Ok(Target::Tcp { host, port, tls: scheme == "tls" })
        }
        "dns" => {
            let name = match url.host() {
                Some(url::Host::Domain(name)) => name.to_string(),
                _ => return Err(bad("missing name (dns://name?type=A)")),
            };
            if url.port().is_some() || !matches!(url.path(), "" | "/") {
                return Err(bad(
                    "a dns target is dns://name?type=T&expect=V; set the server with --resolver",
                ));
            }
            let mut record_type = RecordType::A;
            let mut expect = Vec::new();
            for (key, value) in url.query_pairs() {
                match key.as_ref() {
                    "type" => {
                        record_type = RecordType::parse(&value)
                            .ok_or_else(|| bad(&format!("unknown record type {value:?}")))?
                    }
                    "expect" => expect.push(value.into_owned()),
                    other => return Err(bad(&format!("unknown parameter {other:?} (use type, expect)"))),
                }
            }
            Ok(Target::Dns { name, record_type, expect })
        }
        other => Err(SpecError::UnsupportedScheme { url: text.to_string(), scheme: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let spec = CheckSpec::parse("https://example.com/health?x=1").unwrap();
        assert_eq!(spec.kind(), CheckKind::Https);
        let spec = CheckSpec::parse("tcp://10.0.0.1:5432").unwrap();
        assert_eq!(
            spec.target,
            Target::Tcp { host: Host::Ip("10.0.0.1".parse().unwrap()), port: 5432, tls: false }
        );
        let spec = CheckSpec::parse("tls://[::1]:443").unwrap();
        assert_eq!(spec.kind(), CheckKind::Tls);
        assert_eq!(spec.target, Target::Tcp { host: Host::Ip("::1".parse().unwrap()), port: 443, tls: true });
        let spec = CheckSpec::parse("dns://example.com?type=aaaa&expect=::1").unwrap();
        assert_eq!(
            spec.target,
            Target::Dns {
                name: "example.com".into(),
                record_type: RecordType::Aaaa,
                expect: vec!["::1".into()]
            }
        );
    }

    #[test]
    fn rejects_bad_urls_with_a_clear_message() {
        let cases = [
            (
                "htp:/x",
                "invalid URL \"htp:/x\": unsupported scheme \"htp\" (use http, https, tcp, tls or dns)",
            ),
            ("not a url", "invalid URL \"not a url\": relative URL without a base"),
            ("tcp://host", "invalid URL \"tcp://host\": missing port (tcp://host:port)"),
            ("dns://x?type=BOGUS", "invalid URL \"dns://x?type=BOGUS\": unknown record type \"BOGUS\""),
            ("http://u:p@h/", "invalid URL \"http://u:p@h/\": credentials in the URL are not supported"),
        ];
        for (url, want) in cases {
            assert_eq!(CheckSpec::parse(url).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn validates_options() {
        let mut spec = CheckSpec::parse("http://example.com/").unwrap();
        assert!(spec.validate().is_ok());
        spec.follow_redirects = 31;
        assert!(spec.validate().is_err());
        spec.follow_redirects = 3;
        spec.timeout = Duration::ZERO;
        assert_eq!(spec.validate().unwrap_err().to_string(), "invalid timeout: must be above zero");
    }
}
