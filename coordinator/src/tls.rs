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
//!
//! A certificate that fails a check is explained in words
//! ([`CertificateProblem`]: what is wrong and what to do), never with
//! rustls' own text for it (`invalid peer certificate: UnknownIssuer`): at
//! startup in [`TlsError::NotIssuedByCa`], and in handshakes on the Raft
//! port, where the verifiers return the sentence as the rustls error (so
//! the listener's and the dialer's logs show it as it is).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct as Dss, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use vantage_core::clock::WallClock;
use x509_parser::extensions::GeneralName;

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
    #[error("{cert} is not valid under {ca}: it {problem}")]
    NotIssuedByCa {
        /// The certificate file.
        cert: String,
        /// The CA file.
        ca: String,
        /// What is wrong, in words.
        problem: CertificateProblem,
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

/// What is wrong with a certificate the cluster checks (a node's own at
/// startup, a peer's in a Raft handshake), and what to do. Each message
/// follows "it" or "the client certificate": `is not signed by the cluster
/// CA (…)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateProblem {
    /// It does not chain to the cluster CA (rustls: `UnknownIssuer`, or
    /// `BadSignature` for a CA of the same name with another key).
    #[error("is not signed by the cluster CA ({SAME_CERTS_INIT})")]
    NotFromClusterCa,
    /// Its `notAfter` has passed.
    #[error("expired at {not_after}, and this machine's clock says {now} ({RENEW})")]
    Expired {
        /// When it expired, RFC 3339.
        not_after: String,
        /// When it was checked, RFC 3339.
        now: String,
    },
    /// Its `notBefore` has not come yet.
    #[error(
        "is not valid until {not_before}, and this machine's clock says {now} (check this machine's clock)"
    )]
    NotValidYet {
        /// When it starts, RFC 3339.
        not_before: String,
        /// When it was checked, RFC 3339.
        now: String,
    },
    /// Expired or not valid yet, with no times to tell (a validity period
    /// that ends before it starts).
    #[error("is outside its validity period ({RENEW})")]
    OutsideValidity,
    /// Its extended key usage lacks what this use needs.
    #[error(
        "is not for {purpose} (use a node-N.pem from `vantage-coordinator certs init`: node certificates \
         are for server and client authentication)"
    )]
    WrongPurpose {
        /// `client authentication` or `server authentication`.
        purpose: &'static str,
    },
    /// A CA certificate (`CA:TRUE`) where a node certificate belongs.
    #[error(
        "is a CA certificate (CA:TRUE), not a node certificate (use a node-N.pem from `vantage-coordinator \
         certs init`, not ca.pem)"
    )]
    CaCertificate,
    /// It does not list the name or address a peer was dialed by.
    #[error(
        "is not valid for {name}: it names {listed} (dial the node by one of its names, or reissue the \
         certificates with `vantage-coordinator certs init --host {name}`)"
    )]
    WrongName {
        /// The name or address dialed.
        name: String,
        /// Its DNS names and IP addresses: `localhost, 127.0.0.1 and ::1`.
        listed: String,
    },
    /// It is from the cluster CA but carries no node identity (the admin
    /// certificate, say), and only nodes may speak Raft.
    #[error("has no node identity (a URI SAN {NODE_URI_PREFIX}N): only cluster nodes may connect")]
    NotANode,
    /// Not a DER certificate webpki can parse.
    #[error("is not a well-formed X.509 certificate ({SAME_CERTS_INIT})")]
    Malformed,
    /// Any other refusal (unsupported algorithms, critical extensions…).
    #[error(
        "cannot be verified against the cluster CA (check it with: openssl verify -CAfile CA_FILE CERT_FILE)"
    )]
    Unverifiable,
}

const SAME_CERTS_INIT: &str = "every node's tls.ca_file, cert_file and key_file must come from the same \
                               `vantage-coordinator certs init`";
const RENEW: &str = "issue new certificates with `vantage-coordinator certs init --force`, or check this \
                     machine's clock";

/// What node certificates are checked for: as clients (peers dialing the
/// Raft port, and this node's own at startup) and as servers.
const CLIENT_AUTH: &str = "client authentication";
const SERVER_AUTH: &str = "server authentication";

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
    with_names(cert, |names| {
        let mut ids = names.iter().filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX),
            _ => None,
        });
        let id: NodeId = ids.next()?.parse().ok()?;
        (ids.next().is_none() && id > 0).then_some(id)
    })
    .flatten()
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
        verifier.verify_client_cert(&self.chain[0], &self.chain[1..], now).map_err(|error| match error {
            rustls::Error::InvalidCertificate(error) => TlsError::NotIssuedByCa {
                cert: self.labels.cert.clone(),
                ca: self.labels.ca.clone(),
                problem: CertificateProblem::of(&error, &self.chain[0], CLIENT_AUTH),
            },
            source => TlsError::Rustls { what: self.labels.cert.clone(), source },
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
        let roots = Arc::new(root_store(&self.ca, &self.labels.ca)?);
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| rustls_error(what)(rustls::Error::General(e.to_string())))?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_error(what))?
            .dangerous()
            // The WebPKI verifier over the cluster CA, with its refusals in words.
            .with_custom_certificate_verifier(Arc::new(NodeServerVerifier { inner }))
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

impl CertificateProblem {
    /// What rustls' `error` says is wrong with `cert`, which was checked
    /// for `purpose` ([`CLIENT_AUTH`] or [`SERVER_AUTH`]).
    fn of(error: &CertificateError, cert: &CertificateDer<'_>, purpose: &'static str) -> CertificateProblem {
        use CertificateError as C;
        match error {
            C::UnknownIssuer | C::BadSignature => CertificateProblem::NotFromClusterCa,
            C::ExpiredContext { time, not_after } => {
                CertificateProblem::Expired { not_after: rfc3339(*not_after), now: rfc3339(*time) }
            }
            C::NotValidYetContext { time, not_before } => {
                CertificateProblem::NotValidYet { not_before: rfc3339(*not_before), now: rfc3339(*time) }
            }
            C::Expired | C::NotValidYet => CertificateProblem::OutsideValidity,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                CertificateProblem::WrongPurpose { purpose }
            }
            C::NotValidForNameContext { expected, .. } => CertificateProblem::WrongName {
                name: expected.to_str().into_owned(),
                listed: listed_names(cert),
            },
            C::BadEncoding => CertificateProblem::Malformed,
            // webpki's `CaUsedAsEndEntity` comes as `Other`; the certificate
            // itself says whether it is a CA.
            C::Other(_) if is_ca(cert) => CertificateProblem::CaCertificate,
            _ => {
                tracing::debug!(error = ?error, "unclassified certificate error");
                CertificateProblem::Unverifiable
            }
        }
    }
}

/// A peer's certificate refused in a handshake, in words: rustls' message
/// for the failed handshake becomes `other error: the client certificate
/// is not signed by the cluster CA (…)`.
#[derive(thiserror::Error)]
#[error("{whose} {problem}")]
struct PeerRefused {
    /// `the client certificate` or `the peer's certificate`.
    whose: &'static str,
    problem: CertificateProblem,
}

impl PeerRefused {
    /// A verifier's `error` for `cert`, checked for `purpose`, in words;
    /// errors that are not about the certificate pass as they are.
    fn explain(
        error: rustls::Error,
        whose: &'static str,
        cert: &CertificateDer<'_>,
        purpose: &'static str,
    ) -> rustls::Error {
        match error {
            rustls::Error::InvalidCertificate(error) => {
                PeerRefused { whose, problem: CertificateProblem::of(&error, cert, purpose) }.into_rustls()
            }
            error => error,
        }
    }

    /// As `rustls::Error::Other`, whose `Display` is ours: `other error:
    /// the client certificate …`. `InvalidCertificate(Other(…))` would
    /// send a certificate alert rather than `handshake_failure`, but rustls
    /// shows it as `invalid peer certificate: Other(OtherError(…))`.
    fn into_rustls(self) -> rustls::Error {
        rustls::Error::Other(rustls::OtherError(Arc::new(self)))
    }
}

impl fmt::Debug for PeerRefused {
    // `Debug` of the rustls error shows this `Debug`: make it the message
    // rather than the type's fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The signature checks of a verifier that leaves them to its `inner`
/// WebPKI verifier (both below do: they only word its refusals).
macro_rules! delegate_signature_checks {
    () => {
        fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &Dss) -> Signed {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &Dss) -> Signed {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// What a handshake signature check returns.
type Signed = Result<HandshakeSignatureValid, rustls::Error>;

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
        const WHOSE: &str = "the client certificate";
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|error| PeerRefused::explain(error, WHOSE, end_entity, CLIENT_AUTH))?;
        if node_id_of(end_entity).is_none() {
            return Err(PeerRefused { whose: WHOSE, problem: CertificateProblem::NotANode }.into_rustls());
        }
        Ok(verified)
    }

    delegate_signature_checks!();
}

/// The cluster CA's WebPKI verifier for peers' server certificates, with
/// its refusals in words. Everything else is delegated.
#[derive(Debug)]
struct NodeServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|error| PeerRefused::explain(error, "the peer's certificate", end_entity, SERVER_AUTH))
    }

    delegate_signature_checks!();
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

/// Runs `f` on a certificate's subject alternative names; `None` when it
/// does not parse or has none.
fn with_names<T>(cert: &CertificateDer<'_>, f: impl FnOnce(&[GeneralName<'_>]) -> T) -> Option<T> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let names = parsed.subject_alternative_name().ok()??;
    Some(f(&names.value.general_names))
}

/// A certificate's DNS names and IP addresses as a URL writes them:
/// `localhost, 127.0.0.1 and ::1`.
fn listed_names(cert: &CertificateDer<'_>) -> String {
    let names = with_names(cert, |names| {
        names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_string()),
                GeneralName::IPAddress(&[a, b, c, d]) => {
                    Some(std::net::Ipv4Addr::new(a, b, c, d).to_string())
                }
                GeneralName::IPAddress(ip) => {
                    <[u8; 16]>::try_from(*ip).ok().map(|ip| std::net::Ipv6Addr::from(ip).to_string())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    })
    .unwrap_or_default();
    match names.split_last() {
        None => "no DNS name or IP address".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

fn is_ca(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, parsed)| parsed.is_ca())
}

/// `2027-06-01T10:00:00Z`.
fn rfc3339(time: UnixTime) -> String {
    let at = i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok());
    match at {
        Some(at) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        None => format!("{} seconds after 1970", time.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use rustls::ExtendedKeyPurpose;

    use super::*;
    use crate::certs::ClusterPki;

    const DAY: u64 = 86_400;

    fn pki() -> ClusterPki {
        ClusterPki::generate(1, &["coord.test".into()], 30, SystemTime::now()).unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[test]
    fn certificate_problems_say_what_is_wrong_and_what_to_do() {
        let pki = pki();
        let node = der(&pki.nodes[0].cert_pem);
        let ca = der(&pki.ca.cert_pem);
        let opaque = || C::Other(rustls::OtherError(Arc::new(io::Error::other("opaque"))));
        use CertificateError as C;
        let cases: Vec<(C, &CertificateDer<'_>, &str)> = vec![
            (
                C::UnknownIssuer,
                &node,
                "is not signed by the cluster CA (every node's tls.ca_file, cert_file and key_file must come \
                 from the same `vantage-coordinator certs init`)",
            ),
            (
                C::BadSignature,
                &node,
                "is not signed by the cluster CA (every node's tls.ca_file, cert_file and key_file must come \
                 from the same `vantage-coordinator certs init`)",
            ),
            (
                C::ExpiredContext { time: at(20_000 * DAY + 5), not_after: at(19_997 * DAY) },
                &node,
                "expired at 2024-10-01T00:00:00Z, and this machine's clock says 2024-10-04T00:00:05Z (issue \
                 new certificates with `vantage-coordinator certs init --force`, or check this machine's \
                 clock)",
            ),
            (
                C::NotValidYetContext { time: at(20_000 * DAY), not_before: at(20_000 * DAY + 60) },
                &node,
                "is not valid until 2024-10-04T00:01:00Z, and this machine's clock says 2024-10-04T00:00:00Z \
                 (check this machine's clock)",
            ),
            (
                C::InvalidPurposeContext {
                    required: ExtendedKeyPurpose::ClientAuth,
                    presented: vec![ExtendedKeyPurpose::ServerAuth],
                },
                &node,
                "is not for client authentication (use a node-N.pem from `vantage-coordinator certs init`: \
                 node certificates are for server and client authentication)",
            ),
            (
                C::NotValidForNameContext {
                    expected: ServerName::try_from("10.9.9.9").unwrap(),
                    presented: vec![],
                },
                &node,
                "is not valid for 10.9.9.9: it names localhost, 127.0.0.1, ::1 and coord.test (dial the node \
                 by one of its names, or reissue the certificates with `vantage-coordinator certs init \
                 --host 10.9.9.9`)",
            ),
            (
                C::NotValidForNameContext {
                    expected: ServerName::try_from("a.test").unwrap(),
                    presented: vec![],
                },
                &ca,
                "is not valid for a.test: it names no DNS name or IP address (dial the node by one of its \
                 names, or reissue the certificates with `vantage-coordinator certs init --host a.test`)",
            ),
            (
                C::BadEncoding,
                &node,
                "is not a well-formed X.509 certificate (every node's tls.ca_file, cert_file and key_file \
                 must come from the same `vantage-coordinator certs init`)",
            ),
            (
                opaque(),
                &ca,
                "is a CA certificate (CA:TRUE), not a node certificate (use a node-N.pem from \
                 `vantage-coordinator certs init`, not ca.pem)",
            ),
            (
                opaque(),
                &node,
                "cannot be verified against the cluster CA (check it with: openssl verify -CAfile CA_FILE \
                 CERT_FILE)",
            ),
            (
                C::Expired,
                &node,
                "is outside its validity period (issue new certificates with `vantage-coordinator certs init \
                 --force`, or check this machine's clock)",
            ),
        ];
        for (error, cert, want) in cases {
            let problem = CertificateProblem::of(&error, cert, CLIENT_AUTH).to_string();
            assert_eq!(problem, want, "{error:?}");
            for debug_mark in ["Other(", "OtherError", "{", "Context", "Unknown"] {
                assert!(!problem.contains(debug_mark), "{error:?} → {problem}");
            }
        }
    }

    #[test]
    fn the_ca_certificate_given_as_the_node_certificate_is_named_as_such_at_startup() {
        let pki = pki();
        let material = TlsMaterial::from_pem(
            pki.ca.cert_pem.as_bytes(),
            pki.ca.cert_pem.as_bytes(),
            pki.ca.key_pem.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            material.check(1, SystemTime::now()).unwrap_err().to_string(),
            "node certificate is not valid under CA certificate: it is a CA certificate (CA:TRUE), not a \
             node certificate (use a node-N.pem from `vantage-coordinator certs init`, not ca.pem)"
        );
    }

    #[test]
    fn a_peer_dialed_by_a_name_its_certificate_lacks_is_refused_in_words() {
        let pki = pki();
        let roots = Arc::new(root_store(&[der(&pki.ca.cert_pem)], "CA").unwrap());
        let verifier = NodeServerVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(roots, provider()).build().unwrap(),
        };
        let node = der(&pki.nodes[0].cert_pem);
        let now = UnixTime::now();
        let name = ServerName::try_from("10.9.9.9").unwrap();
        let error = verifier.verify_server_cert(&node, &[], &name, &[], now).unwrap_err();
        assert_eq!(
            error.to_string(),
            "other error: the peer's certificate is not valid for 10.9.9.9: it names localhost, 127.0.0.1, \
             ::1 and coord.test (dial the node by one of its names, or reissue the certificates with \
             `vantage-coordinator certs init --host 10.9.9.9`)"
        );
        let name = ServerName::try_from("coord.test").unwrap();
        verifier.verify_server_cert(&node, &[], &name, &[], now).expect("a name it lists");
        // The admin certificate is for client authentication only.
        let admin = der(&pki.admin.cert_pem);
        let error = verifier.verify_server_cert(&admin, &[], &name, &[], now).unwrap_err();
        assert_eq!(
            error.to_string(),
            "other error: the peer's certificate is not for server authentication (use a node-N.pem from \
             `vantage-coordinator certs init`: node certificates are for server and client authentication)"
        );
    }
}
