//! Handshake failures in words: every rustls error (and every webpki error
//! rustls wraps in `CertificateError::Other`) becomes a [`TlsReason`] and a
//! sentence that says what is wrong and what to do, never a `Debug` dump of
//! an enum (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`
//! is what rustls' own `Display` gives).
//!
//! Certificate problems read `certificate for HOST <problem> (<fix>)`; other
//! failures describe the server's side of the handshake.

use std::time::{Duration, SystemTime};

use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::UnixTime;
use vantage_core::result::TlsReason;

/// The reason and message for a failed handshake with `host`.
pub(super) fn describe(error: &rustls::Error, host: &str) -> (TlsReason, String) {
    use rustls::Error as E;
    let handshake = |message: String| (TlsReason::Handshake, message);
    match error {
        E::InvalidCertificate(cert) => {
            let finding = certificate(cert);
            let subject = match cert {
                // The name that was checked, as rustls saw it.
                CertificateError::NotValidForNameContext { expected, .. } => expected.to_str().into_owned(),
                _ => host.to_string(),
            };
            (finding.reason, format!("certificate for {subject} {} ({})", finding.problem, finding.fix))
        }
        E::AlertReceived(alert) => handshake(alert_message(*alert, host)),
        E::InvalidMessage(_) => handshake(
            "the server did not answer with TLS (is TLS served on this port? use http:// or tcp:// for a \
             plaintext service)"
                .into(),
        ),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } | E::PeerMisbehaved(_) => {
            handshake(
                "the server broke the TLS protocol during the handshake (a faulty or non-standard TLS \
                 server: check its TLS software)"
                    .into(),
            )
        }
        E::PeerIncompatible(_) => handshake(
            "the server has no TLS version, cipher suite, key exchange group or signature scheme in common \
             with this probe (it speaks TLS 1.2 and 1.3 with current suites: update the server's TLS \
             settings)"
                .into(),
        ),
        E::NoCertificatesPresented => {
            handshake("the server presented no certificate (configure one on the server)".into())
        }
        E::DecryptError => handshake(
            "the handshake could not be decrypted (a damaged connection, or a server whose key does not \
             match its certificate)"
                .into(),
        ),
        E::PeerSentOversizedRecord => {
            handshake("the server sent a TLS record larger than the protocol allows (a faulty server)".into())
        }
        E::NoApplicationProtocol => handshake(no_application_protocol()),
        E::UnsupportedNameType => {
            handshake(format!("{host} is not a name TLS can check (use a DNS name or an IP address)"))
        }
        E::FailedToGetCurrentTime => handshake(
            "this machine's clock could not be read, so the certificate's dates cannot be checked".into(),
        ),
        E::FailedToGetRandomBytes => {
            handshake("this machine's random number generator failed during the handshake".into())
        }
        E::General(text) => handshake(format!("the TLS handshake failed: {text}")),
        _ => {
            tracing::debug!(error = ?error, "unclassified TLS error");
            handshake(
                "the TLS handshake failed inside this probe (run with VANTAGE_LOG=debug to see rustls' \
                 error)"
                    .into(),
            )
        }
    }
}

/// Why a `--ca` certificate cannot be a trust root (rustls refused to add
/// it to the root store), as a phrase: `it is not a well-formed X.509
/// certificate`.
pub(super) fn ca_problem(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => format!("it {}", certificate(cert).problem),
        _ => "it cannot be read as an X.509 certificate (give PEM CERTIFICATE blocks)".into(),
    }
}

/// What is wrong with a certificate: the reason, a phrase that follows
/// "certificate for HOST", and what to do.
struct Finding {
    reason: TlsReason,
    problem: String,
    fix: String,
}

impl Finding {
    fn new(reason: TlsReason, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { reason, problem: problem.into(), fix: fix.into() }
    }
}

const GIVE_CA: &str = "give its CA with --ca FILE";
const RENEW: &str = "renew it on the server";
const REISSUE_NAME: &str =
    "check it by a name the certificate lists, or reissue it with this name in its subject alternative names";
const CHECK_CLOCK: &str = "check this machine's clock, or wait until the certificate starts";
const FIX_CHAIN: &str = "fix the certificate chain the server sends";
const SHOW_CHAIN: &str = "see what the server sends with: openssl s_client -connect HOST:PORT -showcerts";

fn certificate(error: &CertificateError) -> Finding {
    use CertificateError as C;
    use TlsReason::{Expired, Handshake, HostnameMismatch, UnknownIssuer};
    match error {
        C::UnknownIssuer => Finding::new(UnknownIssuer, "is signed by an unknown issuer", GIVE_CA),
        C::BadSignature => Finding::new(
            UnknownIssuer,
            "has a signature that its issuer's key does not verify",
            "give the CA that really issued it with --ca FILE, or fix the chain the server sends",
        ),
        C::Expired => Finding::new(Expired, "has expired", RENEW),
        C::ExpiredContext { time, not_after } => {
            let ago = days_between(*not_after, *time);
            Finding::new(Expired, format!("expired at {} ({ago} ago)", rfc3339(*not_after)), RENEW)
        }
        C::NotValidYet => Finding::new(Expired, "is not valid yet", CHECK_CLOCK),
        C::NotValidYetContext { time, not_before } => {
            let ahead = days_between(*time, *not_before);
            Finding::new(
                Expired,
                format!("is not valid until {} ({ahead} from now)", rfc3339(*not_before)),
                CHECK_CLOCK,
            )
        }
        C::NotValidForName => Finding::new(HostnameMismatch, "is not valid for that name", REISSUE_NAME),
        C::NotValidForNameContext { presented, .. } => {
            let names: Vec<String> = presented.iter().filter_map(|name| presented_name(name)).collect();
            let lists = match names.as_slice() {
                [] => "it lists no DNS names or IP addresses as subject alternative names".to_string(),
                names => format!("it lists only {}", names.join(", ")),
            };
            Finding::new(HostnameMismatch, format!("is not valid for that name: {lists}"), REISSUE_NAME)
        }
        C::Revoked => {
            Finding::new(Handshake, "has been revoked by its issuer", "the server needs a new certificate")
        }
        C::BadEncoding => Finding::new(
            Handshake,
            "is not a well-formed X.509 certificate",
            "the server sends a damaged certificate: check its certificate file",
        ),
        C::UnhandledCriticalExtension => critical_extension(),
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => Finding::new(
            Handshake,
            "is signed with an algorithm this probe does not support",
            "reissue it with ECDSA P-256 or P-384, Ed25519, or RSA with SHA-256 or stronger",
        ),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => not_for_servers(),
        C::UnknownRevocationStatus | C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            Finding::new(Handshake, "has a revocation status that cannot be determined", "update the CRLs")
        }
        C::InvalidOcspResponse => Finding::new(
            Handshake,
            "comes with an invalid stapled OCSP response",
            "fix OCSP stapling on the server",
        ),
        C::ApplicationVerificationFailure => {
            Finding::new(Handshake, "was refused after verification", SHOW_CHAIN)
        }
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki) => webpki_finding(webpki),
            None => unverifiable(),
        },
        _ => unverifiable(),
    }
}

/// The webpki errors rustls does not map to a `CertificateError` of its
/// own.
fn webpki_finding(error: &webpki::Error) -> Finding {
    use webpki::Error as W;
    use TlsReason::{Handshake, UnknownIssuer};
    match error {
        // A self-signed certificate as `openssl req -x509` makes it, given
        // with no --ca (or another one): pinned certificates never get here.
        W::CaUsedAsEndEntity => Finding::new(
            UnknownIssuer,
            "is a CA certificate (CA:TRUE) presented as the server's own, and no --ca file holds this \
             exact certificate",
            "if it is the server's self-signed certificate, pin it: give this same certificate with --ca FILE",
        ),
        W::EndEntityUsedAsCa => {
            Finding::new(Handshake, "chains through a certificate that is not a CA (CA:FALSE)", FIX_CHAIN)
        }
        W::PathLenConstraintViolated => {
            Finding::new(Handshake, "chains through more CAs than a path length constraint allows", FIX_CHAIN)
        }
        W::NameConstraintViolation => Finding::new(
            Handshake,
            "names a host that its CA's name constraints exclude",
            "reissue it from a CA allowed to issue for this name",
        ),
        W::MaximumPathDepthExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumNameConstraintComparisonsExceeded => Finding::new(
            Handshake,
            "comes with a chain too long or too tangled to verify",
            "send only the certificate and its intermediates",
        ),
        W::UnsupportedCertVersion => {
            Finding::new(Handshake, "is not an X.509 version 3 certificate", "reissue it as version 3")
        }
        W::UnsupportedCriticalExtension => critical_extension(),
        W::EmptyEkuExtension => not_for_servers(),
        W::CertDistrusted => {
            Finding::new(Handshake, "has a key that is explicitly distrusted", "the server needs a new key")
        }
        W::SignatureAlgorithmMismatch => Finding::new(
            Handshake,
            "is signed with an algorithm that does not match its issuer's key",
            FIX_CHAIN,
        ),
        W::UnsupportedNameType => Finding::new(
            Handshake,
            "lists names in a form this probe cannot check",
            "reissue it with DNS names or IP addresses as subject alternative names",
        ),
        W::BadDer
        | W::BadDerTime
        | W::TrailingData(_)
        | W::ExtensionValueInvalid
        | W::MalformedExtensions
        | W::MalformedDnsIdentifier
        | W::MalformedNameConstraint
        | W::InvalidNetworkMaskConstraint
        | W::InvalidSerialNumber
        | W::InvalidCertValidity => Finding::new(
            Handshake,
            "is malformed",
            "reissue it; `openssl x509 -noout -text` shows what it holds",
        ),
        _ => unverifiable(),
    }
}

/// A subject alternative name as webpki reports it (its `Debug` form:
/// `DnsName("localhost")`, `IpAddress(0::1)`), as written in a URL
/// (`localhost`, `::1`); `None` for names a check cannot match (directory
/// names, unsupported kinds). Text in another form is kept as it is.
fn presented_name(reported: &str) -> Option<String> {
    let quoted = |prefix: &str| reported.strip_prefix(prefix)?.strip_suffix("\")").map(str::to_string);
    if let Some(name) = quoted("DnsName(\"").or_else(|| quoted("UniformResourceIdentifier(\"")) {
        return Some(name);
    }
    if let Some(ip) = reported.strip_prefix("IpAddress(").and_then(|r| r.strip_suffix(')')) {
        return Some(ip.parse::<std::net::IpAddr>().map_or_else(|_| ip.to_string(), |ip| ip.to_string()));
    }
    if reported == "DirectoryName" || reported.starts_with("Unsupported(") {
        return None;
    }
    Some(reported.to_string())
}

fn critical_extension() -> Finding {
    Finding::new(
        TlsReason::Handshake,
        "has a critical extension this probe does not understand",
        "reissue it without that extension",
    )
}

fn not_for_servers() -> Finding {
    Finding::new(
        TlsReason::Handshake,
        "is not meant for TLS servers (its extended key usage lacks serverAuth)",
        "reissue it with extendedKeyUsage = serverAuth",
    )
}

fn unverifiable() -> Finding {
    Finding::new(TlsReason::Handshake, "could not be verified", SHOW_CHAIN)
}

fn no_application_protocol() -> String {
    "the server accepts none of the application protocols (ALPN) this check offers (h2, http/1.1)".into()
}

/// A fatal alert from the server, in words.
fn alert_message(alert: AlertDescription, host: &str) -> String {
    use AlertDescription as A;
    let name = alert_name(alert);
    match alert {
        A::HandshakeFailure => format!(
            "the server refused the handshake (alert {name}): it shares no TLS version, cipher suite or \
             signature scheme with this probe, or requires something checks do not send"
        ),
        A::ProtocolVersion => format!(
            "the server refused this probe's TLS versions (alert {name}): the probe speaks TLS 1.2 and 1.3, \
             so enable one of them on the server"
        ),
        A::InsufficientSecurity => {
            format!("the server wants stronger cipher suites than this probe offers (alert {name})")
        }
        A::UnrecognisedName => {
            format!("the server does not serve {host} (alert {name}): check the host name in the URL")
        }
        A::CertificateRequired => {
            format!("the server requires a client certificate (alert {name}), which checks do not present")
        }
        A::InternalError => {
            format!("the server failed during the handshake (alert {name}): check its TLS setup and logs")
        }
        A::NoApplicationProtocol => format!("{} (alert {name})", no_application_protocol()),
        A::AccessDenied => format!("the server denied access during the handshake (alert {name})"),
        _ => format!("the server ended the handshake with alert {name} (check its TLS setup and logs)"),
    }
}

/// An alert's name as the TLS RFCs write it (`handshake_failure`).
fn alert_name(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let name = match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::DecryptionFailed => "decryption_failed",
        A::RecordOverflow => "record_overflow",
        A::DecompressionFailure => "decompression_failure",
        A::HandshakeFailure => "handshake_failure",
        A::NoCertificate => "no_certificate",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ExportRestriction => "export_restriction",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::NoRenegotiation => "no_renegotiation",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::CertificateUnobtainable => "certificate_unobtainable",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::BadCertificateHashValue => "bad_certificate_hash_value",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        A::EncryptedClientHelloRequired => "ech_required",
        _ => return format!("number {}", u8::from(alert)),
    };
    name.to_string()
}

fn rfc3339(time: UnixTime) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(time.as_secs()))
        .to_string()
}

/// `3 days`, `1 day` or `less than a day` from `earlier` to `later`.
fn days_between(earlier: UnixTime, later: UnixTime) -> String {
    match later.as_secs().saturating_sub(earlier.as_secs()) / 86_400 {
        0 => "less than a day".into(),
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{CertificateError as C, Error as E, OtherError};
    use rustls_pki_types::ServerName;

    use super::*;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn webpki(error: webpki::Error) -> E {
        E::InvalidCertificate(C::Other(OtherError(Arc::new(error))))
    }

    #[test]
    fn certificate_errors_name_the_host_the_problem_and_the_fix() {
        const DAY: u64 = 86_400;
        let cases: Vec<(E, TlsReason, &str)> = vec![
            (
                C::UnknownIssuer.into(),
                TlsReason::UnknownIssuer,
                "certificate for localhost is signed by an unknown issuer (give its CA with --ca FILE)",
            ),
            (
                webpki(webpki::Error::CaUsedAsEndEntity),
                TlsReason::UnknownIssuer,
                "certificate for localhost is a CA certificate (CA:TRUE) presented as the server's own, and no \
                 --ca file holds this exact certificate (if it is the server's self-signed certificate, pin \
                 it: give this same certificate with --ca FILE)",
            ),
            (
                C::ExpiredContext { time: at(20_000 * DAY + 5), not_after: at(19_997 * DAY) }.into(),
                TlsReason::Expired,
                "certificate for localhost expired at 2024-10-01T00:00:00Z (3 days ago) (renew it on the server)",
            ),
            (
                C::NotValidYetContext { time: at(20_000 * DAY), not_before: at(20_000 * DAY + 60) }.into(),
                TlsReason::Expired,
                "certificate for localhost is not valid until 2024-10-04T00:01:00Z (less than a day from now) \
                 (check this machine's clock, or wait until the certificate starts)",
            ),
            (
                C::NotValidForNameContext {
                    expected: ServerName::try_from("localhost").unwrap(),
                    presented: vec![
                        "DnsName(\"other.invalid\")".into(),
                        "IpAddress(10.0.0.1)".into(),
                        "IpAddress(0::1)".into(),
                        "DirectoryName".into(),
                    ],
                }
                .into(),
                TlsReason::HostnameMismatch,
                "certificate for localhost is not valid for that name: it lists only other.invalid, 10.0.0.1, \
                 ::1 (check it by a name the certificate lists, or reissue it with this name in its subject \
                 alternative names)",
            ),
            (
                C::BadSignature.into(),
                TlsReason::UnknownIssuer,
                "certificate for localhost has a signature that its issuer's key does not verify (give the CA \
                 that really issued it with --ca FILE, or fix the chain the server sends)",
            ),
            (
                C::Revoked.into(),
                TlsReason::Handshake,
                "certificate for localhost has been revoked by its issuer (the server needs a new certificate)",
            ),
            (
                E::AlertReceived(AlertDescription::HandshakeFailure),
                TlsReason::Handshake,
                "the server refused the handshake (alert handshake_failure): it shares no TLS version, cipher \
                 suite or signature scheme with this probe, or requires something checks do not send",
            ),
            (
                E::AlertReceived(AlertDescription::Unknown(200)),
                TlsReason::Handshake,
                "the server ended the handshake with alert number 200 (check its TLS setup and logs)",
            ),
        ];
        for (error, reason, message) in cases {
            assert_eq!(describe(&error, "localhost"), (reason, message.to_string()), "{error:?}");
        }
    }

    /// No message, whatever the error, shows an enum's `Debug` form.
    #[test]
    fn no_message_is_a_debug_dump() {
        #[allow(deprecated)]
        let certificate_errors = vec![
            C::BadEncoding,
            C::Expired,
            C::NotValidYet,
            C::Revoked,
            C::UnhandledCriticalExtension,
            C::UnknownIssuer,
            C::UnknownRevocationStatus,
            C::ExpiredRevocationList,
            C::BadSignature,
            C::UnsupportedSignatureAlgorithm,
            C::NotValidForName,
            C::NotValidForNameContext {
                expected: ServerName::try_from("a.test").unwrap(),
                presented: vec![],
            },
            C::NotValidForNameContext {
                expected: ServerName::try_from("a.test").unwrap(),
                presented: vec![
                    "DnsName(\"b.test\")".into(),
                    "UniformResourceIdentifier(\"spiffe://x\")".into(),
                ],
            },
            C::InvalidPurpose,
            C::InvalidOcspResponse,
            C::ApplicationVerificationFailure,
            C::Other(OtherError(Arc::new(std::io::Error::other("opaque")))),
        ];
        let webpki_errors = [
            webpki::Error::CaUsedAsEndEntity,
            webpki::Error::EndEntityUsedAsCa,
            webpki::Error::PathLenConstraintViolated,
            webpki::Error::NameConstraintViolation,
            webpki::Error::MaximumPathDepthExceeded,
            webpki::Error::UnsupportedCertVersion,
            webpki::Error::UnsupportedCriticalExtension,
            webpki::Error::EmptyEkuExtension,
            webpki::Error::BadDer,
            webpki::Error::UnsupportedCrlVersion,
        ];
        let mut errors: Vec<E> = certificate_errors.into_iter().map(E::InvalidCertificate).collect();
        errors.extend(webpki_errors.into_iter().map(webpki));
        errors.extend([
            E::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            E::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
            E::PeerMisbehaved(rustls::PeerMisbehaved::IllegalMiddleboxChangeCipherSpec),
            E::NoCertificatesPresented,
            E::DecryptError,
            E::NoApplicationProtocol,
            E::UnsupportedNameType,
            E::HandshakeNotComplete,
            E::Other(OtherError(Arc::new(std::io::Error::other("opaque")))),
        ]);
        errors.extend(
            (0..=u8::MAX).map(AlertDescription::from).filter(|a| a.as_str().is_some()).map(E::AlertReceived),
        );
        for error in &errors {
            let (_, message) = describe(error, "svc.test");
            for debug_mark in ["Other(", "OtherError", "{", "Context", "::", "Unknown("] {
                assert!(!message.contains(debug_mark), "{error:?} → {message}");
            }
            // No CamelCase enum names: only the X.509 names and acronyms
            // the fixes use mix cases.
            for word in message.split(|c: char| !c.is_alphanumeric() && c != '_') {
                let word = word.strip_suffix('s').unwrap_or(word); // CAs
                let camel =
                    word.chars().skip(1).any(char::is_uppercase) && word.chars().any(char::is_lowercase);
                assert!(
                    !camel || ["serverAuth", "extendedKeyUsage"].contains(&word),
                    "{error:?} → {message}: {word}"
                );
            }
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn unusable_ca_certificates_are_explained() {
        assert_eq!(ca_problem(&C::BadEncoding.into()), "it is not a well-formed X.509 certificate");
        assert_eq!(
            ca_problem(&webpki(webpki::Error::UnsupportedCertVersion)),
            "it is not an X.509 version 3 certificate"
        );
    }
}
