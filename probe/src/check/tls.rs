//! TLS for checks: a fresh client configuration per check (no session
//! resumption, no early data), a verifier that keeps the server's leaf
//! certificate so it is reported even when verification fails or is off,
//! trust in the certificates given with `--ca` (as roots, and as pinned
//! server certificates), and the classification of handshake failures
//! ([`errors`]: a sentence with the fix for every rustls error).

mod errors;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use vantage_core::result::{days_left, CheckError, TlsInfo, TlsReason};

use super::CheckerError;

/// What every TLS check shares: the crypto provider and whom to trust.
#[derive(Debug, Clone)]
pub(crate) struct TlsContext {
    provider: Arc<CryptoProvider>,
    trust: Arc<ServerTrust>,
}

impl TlsContext {
    /// The public web roots plus `extra_roots`, which are also pinned (see
    /// [`ServerTrust`]).
    pub(crate) fn new(extra_roots: &[CertificateDer<'static>]) -> Result<Self, CheckerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for (i, cert) in extra_roots.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| CheckerError::Ca {
                reason: format!("certificate #{} is not a usable CA: {}", i + 1, errors::ca_problem(&e)),
            })?;
        }
        let chains = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| CheckerError::Ca { reason: e.to_string() })?;
        let trust = Arc::new(ServerTrust { pinned: extra_roots.to_vec(), chains });
        Ok(Self { provider, trust })
    }

    /// A client configuration for one connection, and the slot where its
    /// verifier leaves the server's leaf certificate.
    pub(crate) fn client_config(
        &self,
        verify: bool,
        alpn: &[&[u8]],
    ) -> (Arc<ClientConfig>, Arc<CapturedCert>) {
        let captured = Arc::new(CapturedCert::default());
        let verifier = Arc::new(CapturingVerifier {
            trust: verify.then(|| self.trust.clone()),
            provider: self.provider.clone(),
            captured: captured.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        config.enable_early_data = false;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        (Arc::new(config), captured)
    }
}

/// Whom a verified check trusts: a chain to the public roots or to a
/// certificate given with `--ca` (webpki), or, when the server presents as
/// its own a certificate byte-identical to one given with `--ca`, that
/// certificate itself (pinned).
///
/// Pinning is what makes the usual self-signed certificate work: `openssl
/// req -x509` marks it `CA:TRUE`, and webpki refuses any CA certificate as
/// an end entity (`CaUsedAsEndEntity`) even when it is a trusted root. The
/// operator named that exact certificate, as with curl's `--cacert`, so it
/// is trusted as is. Its name and validity period are still checked, and
/// rustls still verifies the handshake signature with its key (through
/// [`CapturingVerifier::verify_tls13_signature`]), which proves the server
/// holds that key.
#[derive(Debug)]
struct ServerTrust {
    pinned: Vec<CertificateDer<'static>>,
    chains: Arc<WebPkiServerVerifier>,
}

impl ServerTrust {
    fn is_pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.pinned.iter().any(|pinned| pinned.as_ref() == end_entity.as_ref())
    }
}

/// What is still checked of a pinned certificate: the validity period, an
/// extended key usage that allows TLS servers (when it has one), and the
/// server name against its subject alternative names. Errors are the
/// `CertificateError`s webpki reports for the same faults, so they are
/// classified and worded alike.
fn verify_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| CertificateError::BadEncoding)?;
    let not_before = unix_time(parsed.validity().not_before.timestamp());
    let not_after = unix_time(parsed.validity().not_after.timestamp());
    if now < not_before {
        return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
    }
    if now > not_after {
        return Err(CertificateError::ExpiredContext { time: now, not_after }.into());
    }
    match parsed.extended_key_usage() {
        Ok(Some(eku)) if !(eku.value.any || eku.value.server_auth) => {
            return Err(CertificateError::InvalidPurpose.into());
        }
        Ok(_) => {}
        Err(_) => return Err(CertificateError::BadEncoding.into()),
    }
    rustls::client::verify_server_name(&ParsedCertificate::try_from(cert)?, server_name)
}

fn unix_time(timestamp: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(timestamp).unwrap_or(0)))
}

/// The leaf certificate a server presented.
#[derive(Debug, Default)]
pub(crate) struct CapturedCert(Mutex<Option<CertificateDer<'static>>>);

impl CapturedCert {
    fn set(&self, cert: &CertificateDer<'_>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(cert.clone().into_owned());
    }

    fn get(&self) -> Option<CertificateDer<'static>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Keeps the leaf certificate, then verifies it with `trust` (or accepts it
/// when verification is off).
#[derive(Debug)]
struct CapturingVerifier {
    trust: Option<Arc<ServerTrust>>,
    provider: Arc<CryptoProvider>,
    captured: Arc<CapturedCert>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.captured.set(end_entity);
        match &self.trust {
            None => Ok(ServerCertVerified::assertion()),
            Some(trust) if trust.is_pinned(end_entity) => {
                verify_pinned(end_entity, server_name, now).map(|()| ServerCertVerified::assertion())
            }
            Some(trust) => {
                trust.chains.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The session facts known once a handshake completed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    pub(crate) version: String,
    pub(crate) cipher: String,
    pub(crate) alpn: Option<String>,
}

impl Session {
    pub(crate) fn of(conn: &rustls::ClientConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        let alpn = conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
        Self { version, cipher, alpn }
    }
}

/// Builds the report of a TLS connection from the captured certificate (if
/// the server got as far as sending one) and the session (if the handshake
/// completed).
pub(crate) fn tls_info(
    captured: &CapturedCert,
    session: Option<Session>,
    verified: bool,
    now: SystemTime,
) -> Option<TlsInfo> {
    let der = captured.get()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let not_after_secs = cert.validity().not_after.timestamp();
    let cert_not_after = if not_after_secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(not_after_secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(not_after_secs.unsigned_abs())
    };
    let session = session.unwrap_or_default();
    Some(TlsInfo {
        version: session.version,
        cipher: session.cipher,
        alpn: session.alpn,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        cert_not_after,
        cert_days_left: days_left(cert_not_after, now),
        verified,
    })
}

/// Classifies a failed handshake with `host` (as written in the target),
/// in a sentence that says what to do.
pub(crate) fn handshake_error(err: &std::io::Error, host: &str) -> CheckError {
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        let message = match err.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the server closed the connection during the handshake".to_string()
            }
            std::io::ErrorKind::ConnectionReset => {
                "the server reset the connection during the handshake".to_string()
            }
            _ => format!("handshake failed: {err}"),
        };
        return CheckError::tls(TlsReason::Handshake, message);
    };
    let (reason, message) = errors::describe(tls, host);
    CheckError::tls(reason, message)
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

    use super::*;

    /// A self-signed certificate as `openssl req -x509 -subj /CN=localhost
    /// -addext subjectAltName=DNS:localhost,IP:127.0.0.1` makes it:
    /// `CA:TRUE`, no key usage restrictions. rcgen's default validity is
    /// 1975 to 4096.
    fn self_signed_ca(
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        edit(&mut params);
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), Issuer::new(params, key))
    }

    fn name(text: &str) -> ServerName<'static> {
        ServerName::try_from(text.to_string()).unwrap()
    }

    fn year(y: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs((y - 1970) * 365 * 86_400))
    }

    fn verify(
        trusted: &[CertificateDer<'static>],
        presented: &CertificateDer<'_>,
        host: &str,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let context = TlsContext::new(trusted).unwrap();
        let verifier = CapturingVerifier {
            trust: Some(context.trust.clone()),
            provider: context.provider.clone(),
            captured: Arc::default(),
        };
        verifier.verify_server_cert(presented, &[], &name(host), &[], now).map(drop)
    }

    #[test]
    fn a_self_signed_ca_certificate_given_as_ca_is_pinned_by_its_names() {
        let (cert, _) = self_signed_ca(|_| {});
        let trusted = [cert.clone()];
        verify(&trusted, &cert, "localhost", UnixTime::now()).unwrap();
        verify(&trusted, &cert, "127.0.0.1", UnixTime::now()).unwrap();
        let wrong = verify(&trusted, &cert, "other.test", UnixTime::now()).unwrap_err();
        assert!(
            matches!(
                wrong,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{wrong:?}"
        );
    }

    #[test]
    fn a_pinned_certificate_is_still_checked_for_its_dates_and_purpose() {
        let (cert, _) = self_signed_ca(|_| {});
        let trusted = [cert.clone()];
        let expired = verify(&trusted, &cert, "localhost", year(5000)).unwrap_err();
        assert!(matches!(
            expired,
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
        ));
        let early = verify(&trusted, &cert, "localhost", year(1971)).unwrap_err();
        assert!(matches!(
            early,
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
        ));

        let (client_only, _) =
            self_signed_ca(|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]);
        let refused = verify(std::slice::from_ref(&client_only), &client_only, "localhost", UnixTime::now())
            .unwrap_err();
        assert_eq!(refused, rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose));
    }

    #[test]
    fn an_unpinned_ca_certificate_as_leaf_is_refused_in_words() {
        let (presented, _) = self_signed_ca(|_| {});
        let (other, _) = self_signed_ca(|_| {});
        let error = verify(&[other], &presented, "localhost", UnixTime::now()).unwrap_err();
        let (reason, message) = errors::describe(&error, "localhost");
        assert_eq!(reason, TlsReason::UnknownIssuer);
        assert!(message.contains("give this same certificate with --ca FILE"), "{message}");
    }

    #[test]
    fn leaves_issued_by_a_given_ca_still_verify_as_a_chain() {
        let (ca, issuer) = self_signed_ca(|_| {});
        let key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
        verify(std::slice::from_ref(&ca), leaf.der(), "localhost", UnixTime::now()).unwrap();
        let untrusted = verify(&[], leaf.der(), "localhost", UnixTime::now()).unwrap_err();
        assert_eq!(untrusted, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
    }
}
