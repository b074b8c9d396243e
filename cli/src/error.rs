//! What can go wrong, as one enum: each variant says what happened and,
//! where it helps, what to do. [`Error::exit_code`] maps it to the exit
//! status (2 for usage errors, 1 for everything else).

use std::error::Error as _;
use std::io;
use std::time::Duration;

use tonic::{Code, Status};

use crate::timefmt::{format_duration, format_rfc3339_ms};

/// Every failure of a vantagectl command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something invalid; nothing was sent.
    #[error("{message}")]
    Usage {
        /// What is wrong, naming the argument.
        message: String,
    },
    /// The coordinator could not be reached at all (connect, TLS or HTTP/2
    /// failed).
    #[error("cannot reach the coordinator at {server}: {detail} ({hint})")]
    Unreachable {
        /// The `--server` URL.
        server: String,
        /// What failed: a TLS failure in words (`its certificate is not
        /// signed by a CA vantagectl trusts`), else the transport's error
        /// chain.
        detail: String,
        /// What to do or check.
        hint: &'static str,
    },
    /// Every attempt ran out of time.
    #[error(
        "the coordinator at {server} did not answer within {after} (it may be overloaded or cut off from \
         its peers; retry, or raise --call-timeout)"
    )]
    TimedOut {
        /// The `--server` URL.
        server: String,
        /// The per-call timeout, formatted.
        after: String,
    },
    /// The coordinator wants a token and none was given.
    #[error("no admin token given and the coordinator requires one: {message} (pass --token-file FILE or set VANTAGE_TOKEN)")]
    TokenMissing {
        /// The coordinator's message.
        message: String,
    },
    /// The coordinator refused the token given.
    #[error("the coordinator refused the admin token: {message} (check --token-file FILE or VANTAGE_TOKEN)")]
    TokenRefused {
        /// The coordinator's message.
        message: String,
    },
    /// The coordinator answered with an error of its own; its message is
    /// meant for humans and printed as is.
    #[error("{message}")]
    Refused {
        /// The gRPC status code.
        code: Code,
        /// The coordinator's message.
        message: String,
    },
    /// A local file (token, CA, secret, configuration) cannot be used.
    #[error("{what} {path}: {reason}")]
    File {
        /// What the file is for, e.g. `--ca`.
        what: &'static str,
        /// Its path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration document does not parse; the position is exact.
    #[error("{path}:{line}:{column}: {message}")]
    DocumentSyntax {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A configuration document parses but says something invalid.
    #[error("{path}: {message}")]
    Document {
        /// The file.
        path: String,
        /// What is wrong, naming the item.
        message: String,
    },
    /// The coordinator answered something this client cannot use.
    #[error("unexpected answer from the coordinator: {reason}")]
    BadReply {
        /// What is wrong with it.
        reason: String,
    },
    /// One change of an `apply` failed; the changes before it were applied.
    #[error(
        "{change}: {source} ({done} change(s) before it were applied; fix the cause and run apply again)"
    )]
    Apply {
        /// The change, as the diff shows it.
        change: String,
        /// How many changes were applied before it.
        done: usize,
        /// Why it failed.
        source: Box<Error>,
    },
    /// A maintenance window names an endpoint that has no id yet.
    #[error("endpoint {name:?} does not exist yet; run apply again")]
    UnresolvedEndpoint {
        /// The endpoint's name.
        name: String,
    },
    /// `apply` sent its changes but the coordinator still differs.
    #[error(
        "apply did not converge: {remaining} change(s) still differ after applying, first: {first} (someone \
         may be changing the same objects; run apply again)"
    )]
    NotConverged {
        /// How many changes remain.
        remaining: usize,
        /// The first of them.
        first: String,
    },
    /// `check` ran, and at least one region failed or did not answer.
    #[error("{failed} of {total} region(s) did not pass the check")]
    CheckFailed {
        /// Rows that are not `ok`.
        failed: usize,
        /// Rows in all.
        total: usize,
    },
    /// `check` could not run at all (coordinator unreachable, unknown or
    /// paused endpoint, …). Exit status 2, so that 1 means "the endpoint
    /// failed" and nothing else.
    #[error("{source}")]
    CheckNotRun {
        /// Why.
        source: Box<Error>,
    },
    /// `webhook test` reached the coordinator, but the receiver did not
    /// accept the test event (the report above says why).
    #[error("webhook {name} did not accept the test event")]
    WebhookTestFailed {
        /// The webhook.
        name: String,
    },
    /// No random idempotency key could be made.
    #[error("the operating system's random number generator failed; cannot make an idempotency key")]
    NoRandomness,
    /// Writing to standard output failed.
    #[error("cannot write the output: {source}")]
    Output {
        /// The I/O error.
        #[from]
        source: io::Error,
    },
}

impl Error {
    /// The process exit status for this error: 2 for usage errors (and a
    /// `check` that could not run), 1 for every other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. } | Error::CheckNotRun { .. } => 2,
            Error::Apply { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage { message: message.into() }
    }
}

/// What a status is interpreted against.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The `--server` URL.
    pub server: String,
    /// Whether a token was sent.
    pub token_given: bool,
    /// The per-call timeout.
    pub call_timeout: Duration,
}

impl CallContext {
    /// The error for a call that ran out of time on this side.
    pub fn timed_out(&self) -> Error {
        Error::TimedOut { server: self.server.clone(), after: format_duration(self.call_timeout) }
    }

    /// Interprets a failed call's status.
    ///
    /// A status with a `source` was made by the client's transport (connect,
    /// TLS, HTTP/2), not sent by the coordinator: that is "cannot reach".
    /// Statuses the coordinator sent carry its own message, which is
    /// printed as is (for example `no leader: 1 of 3 nodes reachable, a
    /// quorum needs 2`).
    pub fn error_from_status(&self, status: &Status) -> Error {
        let from_transport = status.source().is_some();
        let message = server_message(status);
        match status.code() {
            Code::Unavailable | Code::Unknown | Code::Internal if from_transport => {
                let (detail, hint) = match rustls_cause(status) {
                    Some(tls) => tls_failure(tls),
                    None => {
                        let detail = transport_detail(status);
                        let hint = transport_hint(&detail);
                        (detail, hint)
                    }
                };
                Error::Unreachable { server: self.server.clone(), detail, hint }
            }
            Code::Cancelled if from_transport => self.timed_out(),
            Code::DeadlineExceeded => self.timed_out(),
            Code::Unauthenticated if self.token_given => Error::TokenRefused { message },
            Code::Unauthenticated => Error::TokenMissing { message },
            code => Error::Refused { code, message },
        }
    }
}

/// The coordinator's message, or a description of the code when it sent
/// none.
fn server_message(status: &Status) -> String {
    let message = status.message().trim();
    if message.is_empty() {
        format!("the coordinator answered {:?} without a message", status.code())
    } else {
        message.to_string()
    }
}

/// The transport error and its causes, each once: `tcp connect error:
/// Connection refused (os error 111)`.
fn transport_detail(status: &Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |text: String| {
        let text = text.trim().to_string();
        // tonic wraps causes in a bare "transport error", which says nothing.
        if !text.is_empty() && text != "transport error" && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    };
    push(status.message().to_string());
    let mut cause = status.source();
    while let Some(err) = cause {
        push(err.to_string());
        cause = err.source();
    }
    if parts.is_empty() {
        "connection failed".to_string()
    } else {
        parts.join(": ")
    }
}

/// What to check, judging from the transport's error (TLS failures are
/// told by [`tls_failure`]).
fn transport_hint(detail: &str) -> &'static str {
    let lower = detail.to_ascii_lowercase();
    // http:// to a TLS port: the server takes the HTTP/2 preface for a
    // broken TLS record and answers with one.
    if lower.contains("h2 was not negotiated") || lower.contains("frame with invalid size") {
        "does the coordinator speak TLS? use http:// for clusters with insecure = true, https:// otherwise"
    } else {
        "is it running? check --server"
    }
}

/// The rustls error behind a failed connection, if TLS failed. It sits in
/// an `io::Error`, whose `source` skips it, so those are looked into.
fn rustls_cause(status: &Status) -> Option<&rustls::Error> {
    let mut cause = status.source();
    while let Some(error) = cause {
        let inner = error.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
        if let Some(tls) = inner.and_then(|e| e.downcast_ref()).or_else(|| error.downcast_ref()) {
            return Some(tls);
        }
        cause = error.source();
    }
    None
}

const GIVE_CA: &str = "give the cluster CA with --ca FILE: the ca.pem from `vantage-coordinator certs init`";
const SEE_CERTIFICATE: &str = "see what it presents with: openssl s_client -connect HOST:PORT -showcerts";

/// A failed TLS handshake with the coordinator as (what is wrong, what to
/// do), in vantagectl's terms: rustls' own text is a `Debug` dump
/// (`invalid peer certificate: UnknownIssuer`).
fn tls_failure(error: &rustls::Error) -> (String, &'static str) {
    use rustls::{AlertDescription, Error as E};
    match error {
        E::InvalidCertificate(certificate) => {
            let (problem, fix) = certificate_problem(certificate);
            (format!("its certificate {problem}"), fix)
        }
        E::InvalidMessage(_) => (
            "it does not answer with TLS".into(),
            "for a cluster with insecure = true, use --server http://HOST:PORT",
        ),
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            ("it asks for a client certificate".into(), "give one with --cert FILE --key FILE")
        }
        E::AlertReceived(_) => ("it refused the TLS handshake".into(), "its log says why"),
        _ => ("the TLS handshake with it failed".into(), SEE_CERTIFICATE),
    }
}

/// What is wrong with the coordinator's certificate, as a phrase after
/// "its certificate", and what to do.
fn certificate_problem(error: &rustls::CertificateError) -> (String, &'static str) {
    use rustls::CertificateError as C;
    let at = |time: rustls_pki_types::UnixTime| {
        format_rfc3339_ms(i64::try_from(time.as_secs()).unwrap_or(i64::MAX).saturating_mul(1000))
    };
    match error {
        C::UnknownIssuer | C::BadSignature => ("is not signed by a CA vantagectl trusts".into(), GIVE_CA),
        C::NotValidForNameContext { expected, presented } => (
            format!("is not valid for {}: it names {}", expected.to_str(), listed_names(presented)),
            "put a name it lists in --server https://HOST:PORT, or reissue it for this name with \
             `vantage-coordinator certs init --host NAME`",
        ),
        C::ExpiredContext { time, not_after } => (
            format!("expired at {}, and this machine's clock says {}", at(*not_after), at(*time)),
            "issue the coordinators new certificates with `vantage-coordinator certs init --force`, or \
             check this machine's clock",
        ),
        C::NotValidYetContext { time, not_before } => (
            format!("is not valid until {}, and this machine's clock says {}", at(*not_before), at(*time)),
            "check this machine's clock",
        ),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => (
            "is not for TLS servers (its extended key usage lacks serverAuth)".into(),
            "the coordinator's tls.cert_file must be a node-N.pem from `vantage-coordinator certs init`",
        ),
        _ => ("cannot be verified".into(), SEE_CERTIFICATE),
    }
}

/// The names webpki reports a certificate lists (`DnsName("localhost")`,
/// `IpAddress(0::1)`), as a URL writes them: `localhost and ::1`.
fn listed_names(presented: &[String]) -> String {
    let names: Vec<String> = presented
        .iter()
        .filter_map(|name| {
            if let Some(dns) = name.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")")) {
                return Some(dns.to_string());
            }
            let ip = name.strip_prefix("IpAddress(")?.strip_suffix(')')?;
            Some(ip.parse::<std::net::IpAddr>().map_or_else(|_| ip.to_string(), |ip| ip.to_string()))
        })
        .collect();
    match names.split_last() {
        None => "no DNS name or IP address".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(token_given: bool) -> CallContext {
        CallContext {
            server: "http://127.0.0.1:7400".into(),
            token_given,
            call_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn exit_codes_are_two_for_usage_and_one_for_failures() {
        let cases: Vec<(Error, u8)> = vec![
            (Error::usage("bad flag"), 2),
            (Error::Refused { code: Code::InvalidArgument, message: "x".into() }, 1),
            (ctx(true).timed_out(), 1),
            (Error::DocumentSyntax { path: "a".into(), line: 1, column: 1, message: "m".into() }, 1),
            (Error::Output { source: io::Error::other("pipe") }, 1),
            (ctx(true).error_from_status(&Status::unavailable("no leader")), 1),
            (Error::CheckFailed { failed: 1, total: 3 }, 1),
            (Error::CheckNotRun { source: Box::new(ctx(true).timed_out()) }, 2),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
        }
    }

    #[test]
    fn statuses_map_to_messages_that_say_what_to_do() {
        let transport = Status::from_error(Box::new(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        // `from_error` finds no status in an io::Error and makes an Unknown
        // one with the error as its source, like a failed connect.
        let cases: Vec<(Status, bool, &str)> = vec![
            (
                Status::unavailable("no leader: 1 of 3 nodes reachable, a quorum needs 2"),
                true,
                "no leader: 1 of 3 nodes reachable, a quorum needs 2",
            ),
            (
                transport,
                true,
                "cannot reach the coordinator at http://127.0.0.1:7400: Connection refused (os error 111) \
                 (is it running? check --server)",
            ),
            (
                Status::unauthenticated("missing bearer token"),
                false,
                "no admin token given and the coordinator requires one: missing bearer token (pass \
                 --token-file FILE or set VANTAGE_TOKEN)",
            ),
            (
                Status::unauthenticated("invalid token"),
                true,
                "the coordinator refused the admin token: invalid token (check --token-file FILE or \
                 VANTAGE_TOKEN)",
            ),
            (
                Status::deadline_exceeded("deadline"),
                true,
                "the coordinator at http://127.0.0.1:7400 did not answer within 10s (it may be overloaded or \
                 cut off from its peers; retry, or raise --call-timeout)",
            ),
            (Status::already_exists("endpoint \"api\" already exists"), true, "endpoint \"api\" already exists"),
            (
                Status::invalid_argument(""),
                true,
                "the coordinator answered InvalidArgument without a message",
            ),
        ];
        for (status, token_given, want) in cases {
            assert_eq!(ctx(token_given).error_from_status(&status).to_string(), want);
        }
    }

    #[test]
    fn transport_failures_point_at_what_to_check() {
        assert!(transport_hint("h2 protocol error: frame with invalid size").contains("http://"));
        assert!(transport_hint("tcp connect error").contains("--server"));
    }

    /// A failed handshake as tonic reports it: the rustls error inside an
    /// `io::Error` somewhere in the status' causes.
    fn handshake_failed(error: rustls::Error) -> Status {
        let io = io::Error::new(io::ErrorKind::InvalidData, error);
        Status::from_error(Box::new(Wrapper(Box::new(io))))
    }

    /// A transport error wrapping its cause, as hyper's and tonic's do.
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Wrapper(#[source] Box<dyn std::error::Error + Send + Sync>);

    #[test]
    fn tls_failures_say_what_is_wrong_and_the_flag_that_fixes_it() {
        use rustls::pki_types::{ServerName, UnixTime};
        use rustls::{AlertDescription, CertificateError as C, Error as E, OtherError};
        const DAY: u64 = 86_400;
        let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let not_trusted =
            "its certificate is not signed by a CA vantagectl trusts (give the cluster CA with \
                           --ca FILE: the ca.pem from `vantage-coordinator certs init`)";
        let cases: Vec<(E, &str)> = vec![
            (C::UnknownIssuer.into(), not_trusted),
            (C::BadSignature.into(), not_trusted),
            (
                C::NotValidForNameContext {
                    expected: ServerName::try_from("coord.test").unwrap(),
                    presented: vec![
                        "DnsName(\"localhost\")".into(),
                        "IpAddress(127.0.0.1)".into(),
                        "IpAddress(0::1)".into(),
                        "UniformResourceIdentifier(\"spiffe://vantage/node/1\")".into(),
                    ],
                }
                .into(),
                "its certificate is not valid for coord.test: it names localhost, 127.0.0.1 and ::1 (put a \
                 name it lists in --server https://HOST:PORT, or reissue it for this name with \
                 `vantage-coordinator certs init --host NAME`)",
            ),
            (
                C::ExpiredContext { time: at(20_000 * DAY + 5), not_after: at(19_997 * DAY) }.into(),
                "its certificate expired at 2024-10-01T00:00:00Z, and this machine's clock says \
                 2024-10-04T00:00:05Z (issue the coordinators new certificates with `vantage-coordinator \
                 certs init --force`, or check this machine's clock)",
            ),
            (
                C::NotValidYetContext { time: at(20_000 * DAY), not_before: at(20_000 * DAY + 60) }.into(),
                "its certificate is not valid until 2024-10-04T00:01:00Z, and this machine's clock says \
                 2024-10-04T00:00:00Z (check this machine's clock)",
            ),
            (
                C::InvalidPurpose.into(),
                "its certificate is not for TLS servers (its extended key usage lacks serverAuth) (the \
                 coordinator's tls.cert_file must be a node-N.pem from `vantage-coordinator certs init`)",
            ),
            (
                C::Other(OtherError(std::sync::Arc::new(io::Error::other("CaUsedAsEndEntity")))).into(),
                "its certificate cannot be verified (see what it presents with: openssl s_client -connect \
                 HOST:PORT -showcerts)",
            ),
            (
                E::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "it does not answer with TLS (for a cluster with insecure = true, use --server \
                 http://HOST:PORT)",
            ),
            (
                E::AlertReceived(AlertDescription::CertificateRequired),
                "it asks for a client certificate (give one with --cert FILE --key FILE)",
            ),
            (
                E::AlertReceived(AlertDescription::HandshakeFailure),
                "it refused the TLS handshake (its log says why)",
            ),
            (
                E::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
                "the TLS handshake with it failed (see what it presents with: openssl s_client -connect \
                 HOST:PORT -showcerts)",
            ),
        ];
        for (error, want) in cases {
            let debug = format!("{error:?}");
            let message = ctx(true).error_from_status(&handshake_failed(error)).to_string();
            assert_eq!(
                message,
                format!("cannot reach the coordinator at http://127.0.0.1:7400: {want}"),
                "{debug}"
            );
            for debug_mark in ["Other(", "OtherError", "Unknown", "Context", "Invalid", "Alert", "Name("] {
                assert!(!message.contains(debug_mark), "{debug} → {message}");
            }
        }
        // The rustls error as a cause of its own, not inside an io::Error.
        let direct = Status::from_error(Box::new(Wrapper(Box::new(rustls::Error::from(C::UnknownIssuer)))));
        assert!(ctx(true).error_from_status(&direct).to_string().ends_with(not_trusted));
    }
}
