//! TLS for checks: a fresh client configuration per check (no session
//! resumption, no early data), a verifier that keeps the server's leaf
//! certificate so it is reported even when verification fails or is off,
//! and the classification of handshake failures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use vantage_core::result::{days_left, CheckError, TlsInfo, TlsReason};

use super::CheckerError;

/// What every TLS check shares: the crypto provider and the trusted roots.
#[derive(Debug, Clone)]
pub(crate) struct TlsContext {
    provider: Arc<CryptoProvider>,
    verifier: Arc<WebPkiServerVerifier>,
}

impl TlsContext {
    /// The public web roots plus `extra_roots`.
    pub(crate) fn new(extra_roots: &[CertificateDer<'static>]) -> Result<Self, CheckerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for (i, cert) in extra_roots.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| CheckerError::Ca {
                reason: format!("certificate #{} is not a usable CA: {e}", i + 1),
            })?;
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| CheckerError::Ca { reason: e.to_string() })?;
        Ok(Self { provider, verifier })
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
            inner: verify.then(|| self.verifier.clone()),
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

#[derive(Debug)]
struct CapturingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
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
        match &self.inner {
            Some(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
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

/// Classifies a failed handshake.
pub(crate) fn handshake_error(err: &std::io::Error) -> CheckError {
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
    let reason = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => TlsReason::UnknownIssuer,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsReason::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsReason::HostnameMismatch
            }
            _ => TlsReason::Handshake,
        },
        _ => TlsReason::Handshake,
    };
    let message = match reason {
        TlsReason::UnknownIssuer => format!("certificate not trusted: {tls} (add its CA with --ca)"),
        _ => tls.to_string(),
    };
    CheckError::tls(reason, message)
}
