//! rustls configurations for a node, built from its `[tls]` files.
//!
//! Three roles (see `../shared/DESIGN.md`, "Security model"):
//!
//! - the **API** listener (`api_addr`, gRPC for probes and admins) and the
//!   **HTTP** listener present the node certificate and ask for no client
//!   certificate: admins and probes authenticate with bearer tokens;
//! - the **Raft** listener (`raft_addr`) requires a client certificate that
//!   chains to the cluster CA *and* carries a node identity (the URI SAN
//!   `spiffe://vantage/node/N` that `certs init` puts in node certificates),
//!   so an admin certificate from the same CA cannot speak Raft;
//! - the **peer client** (a node dialing another node's Raft listener)
//!   presents the node certificate and trusts only the cluster CA.
//!
//! Everything uses the `ring` provider explicitly, never the process
//! default (which could be aws-lc-rs). Peer traffic is TLS 1.3 only (we
//! control both ends); the API and HTTP listeners also accept TLS 1.2 for
//! older clients. gRPC listeners and clients negotiate ALPN `h2`.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use vantage_core::clock::WallClock;

use crate::certs::NODE_URI_PREFIX;
use crate::config::{TlsConfig, TlsFiles};
use crate::raft::NodeId;

/// ALPN for gRPC (HTTP/2).
pub const ALPN_H2: &[u8] = b"h2";

/// ALPN for HTTP/1.1, offered by the HTTP listener besides `h2`.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Every rustls configuration a node needs.
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    /// For the API listener: node certificate, TLS 1.2/1.3, ALPN `h2`, no
    /// client certificate.
    pub api_server: Arc<ServerConfig>,
    /// For the HTTP listener: node certificate, TLS 1.2/1.3, ALPN `h2` and
    /// `http/1.1`, no client certificate.
    pub http_server: Arc<ServerConfig>,
    /// For the Raft listener: node certificate, TLS 1.3, ALPN `h2`, and a
    /// required client certificate from the cluster CA with a node identity.
    pub raft_server: Arc<ServerConfig>,
    /// For dialing peers' Raft listeners: node certificate as client
    /// certificate, only the cluster CA trusted, TLS 1.3, ALPN `h2`.
    pub peer_client: Arc<ClientConfig>,
}

/// A node's CA, certificate chain and key, parsed.
pub struct TlsMaterial {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    labels: Labels,
}

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{what}: cannot read it: {source}")]
    Read {
        /// Which file, e.g. `tls.ca_file "/etc/vantage/ca.pem"`.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// The PEM could not be parsed.
    #[error("{what}: invalid PEM: {message}")]
    Pem {
        /// Which file.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// No certificate in a file that should hold some.
    #[error("{what}: no CERTIFICATE block found")]
    NoCertificate {
        /// Which file.
        what: String,
    },
    /// A CA certificate rustls cannot use as a trust anchor.
    #[error("{what}: not a usable CA certificate: {source}")]
    BadCa {
        /// Which file.
        what: String,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The certificate does not chain to the CA, or is expired or not yet
    /// valid, or not for client and server auth.
    #[error("{cert} is not valid under {ca}: {source}")]
    NotIssuedByCa {
        /// The certificate file.
        cert: String,
        /// The CA file.
        ca: String,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The certificate has no node identity.
    #[error(
        "{cert} has no node identity (a URI SAN {NODE_URI_PREFIX}N): use a node-N.pem from \
         `vantage-coordinator certs init`"
    )]
    NotANodeCertificate {
        /// The certificate file.
        cert: String,
    },
    /// The certificate belongs to another node.
    #[error("{cert} is node {cert_node}'s certificate, but this is node {node_id}")]
    WrongNode {
        /// The certificate file.
        cert: String,
        /// The node id in the certificate.
        cert_node: NodeId,
        /// This node's id.
        node_id: NodeId,
    },
    /// The key is not the certificate's.
    #[error("{key} does not match {cert}: use the key generated with that certificate")]
    KeyMismatch {
        /// The key file.
        key: String,
        /// The certificate file.
        cert: String,
    },
    /// rustls refused the key or a configuration.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being built.
        what: String,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// Loads and checks the `[tls]` files for node `node_id` and builds every
/// configuration; `None` when the table says `insecure = true`.
///
/// Checks, so a broken setup fails at startup rather than in every
/// handshake: the certificate chains to the CA at `clock`'s now, is for
/// both server and client auth, carries node `node_id`'s identity, and
/// matches the key.
pub fn load(tls: &TlsConfig, node_id: NodeId, clock: &dyn WallClock) -> Result<Option<TlsConfigs>, TlsError> {
    let Some(files) = tls.files() else { return Ok(None) };
    let material = TlsMaterial::load(&files)?;
    material.check(node_id, clock.now())?;
    material.configs().map(Some)
}

/// A client configuration for the API listener trusting only the CA in
/// `ca_pem` (for `vantagectl --ca` and tests), ALPN `h2`.
pub fn api_client_config(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, TlsError> {
    let what = "CA certificate".to_string();
    let roots = root_store(&parse_certs(ca_pem, &what)?, &what)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error("the API client configuration"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The node id in a certificate's `spiffe://vantage/node/N` URI SAN, if
/// it has exactly one; the Raft server can use it to know which peer
/// connected.
pub fn node_id_of(cert: &CertificateDer<'_>) -> Option<NodeId> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let names = parsed.subject_alternative_name().ok()??;
    let mut ids = names.value.general_names.iter().filter_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX),
        _ => None,
    });
    let id: NodeId = ids.next()?.parse().ok()?;
    (ids.next().is_none() && id > 0).then_some(id)
}

impl TlsMaterial {
    /// Reads the three files.
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        let labels = Labels {
            ca: label("tls.ca_file", &files.ca_file),
            cert: label("tls.cert_file", &files.cert_file),
            key: label("tls.key_file", &files.key_file),
        };
        let read = |path: &Path, what: &String| {
            std::fs::read(path).map_err(|source| TlsError::Read { what: what.clone(), source })
        };
        let ca = read(&files.ca_file, &labels.ca)?;
        let cert = read(&files.cert_file, &labels.cert)?;
        let key = read(&files.key_file, &labels.key)?;
        TlsMaterial::parse(&ca, &cert, &key, labels)
    }

    /// Parses PEM text held in memory (tests; `certs init` output).
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsMaterial, TlsError> {
        let labels = Labels {
            ca: "CA certificate".into(),
            cert: "node certificate".into(),
            key: "node private key".into(),
        };
        TlsMaterial::parse(ca_pem, cert_pem, key_pem, labels)
    }

    /// The node id in this node's certificate.
    pub fn node_id(&self) -> Option<NodeId> {
        node_id_of(&self.chain[0])
    }

    /// Checks that the certificate chains to the CA at `now` (for client
    /// auth, as peers will check it), names node `node_id`, and matches the
    /// key.
    pub fn check(&self, node_id: NodeId, now: SystemTime) -> Result<(), TlsError> {
        let verifier = self.client_verifier()?;
        let now = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
        verifier.verify_client_cert(&self.chain[0], &self.chain[1..], now).map_err(|source| {
            TlsError::NotIssuedByCa { cert: self.labels.cert.clone(), ca: self.labels.ca.clone(), source }
        })?;
        match self.node_id() {
            None => return Err(TlsError::NotANodeCertificate { cert: self.labels.cert.clone() }),
            Some(cert_node) if cert_node != node_id => {
                return Err(TlsError::WrongNode { cert: self.labels.cert.clone(), cert_node, node_id })
            }
            Some(_) => {}
        }
        match rustls::sign::CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider()) {
            Ok(_) => Ok(()),
            Err(rustls::Error::InconsistentKeys(_)) => {
                Err(TlsError::KeyMismatch { key: self.labels.key.clone(), cert: self.labels.cert.clone() })
            }
            Err(source) => Err(TlsError::Rustls { what: self.labels.key.clone(), source }),
        }
    }

    /// Builds every configuration.
    pub fn configs(&self) -> Result<TlsConfigs, TlsError> {
        Ok(TlsConfigs {
            api_server: self.api_server_config()?,
            http_server: self.http_server_config()?,
            raft_server: self.raft_server_config()?,
            peer_client: self.peer_client_config()?,
        })
    }

    /// The API listener's configuration.
    pub fn api_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.public_server_config(&[ALPN_H2], "the API server configuration")
    }

    /// The HTTP listener's configuration.
    pub fn http_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.public_server_config(&[ALPN_H2, ALPN_HTTP11], "the HTTP server configuration")
    }

    /// The Raft listener's configuration: a node certificate from the
    /// cluster CA is required.
    pub fn raft_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let what = "the Raft server configuration";
        let verifier = Arc::new(NodeClientVerifier { inner: self.client_verifier()? });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_error(what))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(rustls_error(what))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// The configuration for dialing peers.
    pub fn peer_client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let what = "the peer client configuration";
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_error(what))?
            .with_root_certificates(root_store(&self.ca, &self.labels.ca)?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(rustls_error(what))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    fn parse(ca: &[u8], cert: &[u8], key: &[u8], labels: Labels) -> Result<TlsMaterial, TlsError> {
        let ca_certs = parse_certs(ca, &labels.ca)?;
        let chain = parse_certs(cert, &labels.cert)?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| TlsError::Pem { what: labels.key.clone(), message: e.to_string() })?;
        Ok(TlsMaterial { ca: ca_certs, chain, key, labels })
    }

    fn public_server_config(&self, alpn: &[&[u8]], what: &str) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(rustls_error(what))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(rustls_error(what))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let roots = Arc::new(root_store(&self.ca, &self.labels.ca)?);
        WebPkiClientVerifier::builder_with_provider(roots, provider()).build().map_err(|e| TlsError::Rustls {
            what: self.labels.ca.clone(),
            source: rustls::Error::General(e.to_string()),
        })
    }
}

impl fmt::Debug for TlsMaterial {
    // Keep the private key out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &self.labels.ca)
            .field("cert", &self.labels.cert)
            .finish_non_exhaustive()
    }
}

/// How errors name the three inputs.
struct Labels {
    ca: String,
    cert: String,
    key: String,
}

/// The cluster CA's WebPKI verifier, plus: the leaf must carry a node
/// identity. Everything else is delegated.
#[derive(Debug)]
struct NodeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

/// Why the Raft listener refused a certificate from the right CA.
#[derive(thiserror::Error)]
#[error("the client certificate has no node identity ({NODE_URI_PREFIX}N): only cluster nodes may connect")]
struct NotANode;

impl fmt::Debug for NotANode {
    // rustls shows `CertificateError::Other` with `Debug`; make that the
    // message rather than the type's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ClientCertVerifier for NodeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if node_id_of(end_entity).is_none() {
            let other = rustls::OtherError(Arc::new(NotANode));
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The ring provider, explicitly: never the process-wide default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { what: what.to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.to_string() });
    }
    Ok(certs)
}

fn root_store(ca: &[CertificateDer<'static>], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert.clone()).map_err(|source| TlsError::BadCa { what: what.to_string(), source })?;
    }
    Ok(roots)
}

fn label(key: &str, path: &Path) -> String {
    format!("{key} {:?}", path.display().to_string())
}

fn rustls_error(what: &str) -> impl FnOnce(rustls::Error) -> TlsError + '_ {
    move |source| TlsError::Rustls { what: what.to_string(), source }
}
