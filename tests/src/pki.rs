//! A throw-away test PKI: one CA and the leaf certificates the TLS checks
//! need to tell apart (valid, expired, wrong host, self-signed, and
//! self-signed marked as a CA, as `openssl req -x509` makes it).
//!
//! Everything is generated in memory by `rcgen` on each [`TestPki::new`], so
//! no key material is checked in and every test run uses fresh keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

/// Names every "good" leaf certificate is valid for.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The name the [`Leaf::WrongHost`] certificate is valid for: a reserved
/// `.invalid` name no test ever connects to.
pub const WRONG_HOST_NAME: &str = "other.invalid";

/// Days the [`Leaf::Valid`] certificate stays valid after [`TestPki::new`].
pub const VALID_DAYS: u64 = 90;

const DAY: Duration = days(1);

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 60 * 60)
}

/// Which leaf certificate a test server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leaf {
    /// Signed by the test CA for `localhost`, `127.0.0.1` and `::1`; valid
    /// from yesterday until [`VALID_DAYS`] days from now.
    Valid,
    /// Signed by the test CA for the loopback names, but `not_after` was two
    /// days ago.
    Expired,
    /// Signed by the test CA and currently valid, but only for
    /// [`WRONG_HOST_NAME`].
    WrongHost,
    /// Valid dates and loopback names, but self-signed: not issued by the
    /// test CA.
    SelfSigned,
    /// Self-signed for the loopback names with valid dates, and marked as a
    /// CA (basic constraints `CA:TRUE`, no key usage or extended key usage
    /// restrictions), as `openssl req -x509 -newkey rsa:2048 -nodes -subj
    /// /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1`
    /// makes it. Trusted when this very certificate is given as a CA
    /// ([`TestPki::leaf_der`]).
    SelfSignedCa,
}

/// A test CA plus one leaf certificate (and key) for each [`Leaf`].
#[derive(Debug)]
pub struct TestPki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    valid: LeafCert,
    expired: LeafCert,
    wrong_host: LeafCert,
    self_signed: LeafCert,
    self_signed_ca: LeafCert,
}

impl TestPki {
    /// Generates a fresh CA and the four leaf certificates.
    pub fn new() -> anyhow::Result<TestPki> {
        // Certificates store whole seconds; round now down so the dates
        // reported by `not_after` are exactly the ones in the certificates.
        let now = whole_seconds(SystemTime::now());

        let ca_key = KeyPair::generate().context("generate test CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, "Vantage Test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.not_before = to_offset(now - days(60))?;
        ca_params.not_after = to_offset(now + days(3650))?;
        let ca_cert = ca_params.self_signed(&ca_key).context("self-sign test CA")?;
        let ca_pem = ca_cert.pem();
        let ca_der = ca_cert.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);

        let by_ca = Signer::Ca(&issuer);
        let valid = LeafCert::issue(&LOOPBACK_NAMES, now - DAY, now + days(VALID_DAYS), by_ca)
            .context("issue valid leaf")?;
        let expired = LeafCert::issue(&LOOPBACK_NAMES, now - days(30), now - days(2), by_ca)
            .context("issue expired leaf")?;
        let wrong_host = LeafCert::issue(&[WRONG_HOST_NAME], now - DAY, now + days(VALID_DAYS), by_ca)
            .context("issue wrong-host leaf")?;
        let self_signed =
            LeafCert::issue(&LOOPBACK_NAMES, now - DAY, now + days(VALID_DAYS), Signer::SelfLeaf)
                .context("issue self-signed leaf")?;
        let self_signed_ca =
            LeafCert::issue(&LOOPBACK_NAMES, now - DAY, now + days(VALID_DAYS), Signer::SelfCa)
                .context("issue self-signed CA leaf")?;

        Ok(TestPki { ca_pem, ca_der, valid, expired, wrong_host, self_signed, self_signed_ca })
    }

    /// The CA certificate in PEM form, for a client's trust store.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA certificate in DER form.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns that path.
    pub fn write_ca(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem)
            .with_context(|| format!("write test CA to {}", path.display()))?;
        Ok(path)
    }

    /// A rustls server configuration presenting `which` leaf certificate and
    /// offering the `alpn` protocols (for example `&[b"h2", b"http/1.1"]`;
    /// empty for no ALPN).
    ///
    /// # Panics
    ///
    /// Only if rustls rejects the generated key pair, which would be a bug in
    /// this module.
    pub fn server_config(&self, which: Leaf, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let leaf = self.leaf(which);
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring provider supports the default TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.cert.clone()], leaf.key())
            .expect("generated leaf certificate and key match");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A rustls client configuration trusting only the test CA and offering
    /// the `alpn` protocols; convenient for tests that talk TLS themselves.
    ///
    /// # Panics
    ///
    /// Only if rustls rejects the generated CA certificate, which would be a
    /// bug in this module.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("generated CA certificate parses");
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring provider supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// The `not_after` of the [`Leaf::Valid`] certificate, exactly as encoded
    /// in it (whole seconds), so tests can check days-left reporting.
    pub fn valid_not_after(&self) -> SystemTime {
        self.valid.not_after
    }

    /// The `not_after` of any of the leaf certificates.
    pub fn not_after(&self, which: Leaf) -> SystemTime {
        self.leaf(which).not_after
    }

    /// The DER certificate of a leaf, for tests that inspect it directly.
    pub fn leaf_der(&self, which: Leaf) -> CertificateDer<'static> {
        self.leaf(which).cert.clone()
    }

    fn leaf(&self, which: Leaf) -> &LeafCert {
        match which {
            Leaf::Valid => &self.valid,
            Leaf::Expired => &self.expired,
            Leaf::WrongHost => &self.wrong_host,
            Leaf::SelfSigned => &self.self_signed,
            Leaf::SelfSignedCa => &self.self_signed_ca,
        }
    }
}

/// Who signs a leaf certificate.
#[derive(Clone, Copy)]
enum Signer<'a> {
    /// The test CA.
    Ca(&'a Issuer<'a, KeyPair>),
    /// The leaf's own key, as an end entity (`CA:FALSE`).
    SelfLeaf,
    /// The leaf's own key, marked `CA:TRUE` like `openssl req -x509`.
    SelfCa,
}

/// One issued leaf: its certificate, private key and expiry.
struct LeafCert {
    cert: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
    not_after: SystemTime,
}

impl std::fmt::Debug for LeafCert {
    // Keep key bytes out of test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCert").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

impl LeafCert {
    /// Issues a server certificate for `names`, signed by `signer`.
    fn issue(
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
        signer: Signer<'_>,
    ) -> anyhow::Result<LeafCert> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        if matches!(signer, Signer::SelfCa) {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        } else {
            params.is_ca = IsCa::NoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        params.use_authority_key_identifier_extension = matches!(signer, Signer::Ca(_));
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        let cert = match signer {
            Signer::Ca(issuer) => params.signed_by(&key, issuer)?,
            Signer::SelfLeaf | Signer::SelfCa => params.self_signed(&key)?,
        };
        Ok(LeafCert { cert: cert.der().clone(), key_pkcs8: key.serialize_der(), not_after })
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn to_offset(t: SystemTime) -> anyhow::Result<OffsetDateTime> {
    let secs = t.duration_since(UNIX_EPOCH).context("certificate date before 1970")?.as_secs();
    let secs = i64::try_from(secs).context("certificate date out of range")?;
    OffsetDateTime::from_unix_timestamp(secs).context("certificate date out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_leaf_expires_in_ninety_days() {
        let pki = TestPki::new().unwrap();
        let left = pki.valid_not_after().duration_since(SystemTime::now()).unwrap();
        assert!(left > days(89) && left <= days(90), "{left:?}");
        assert!(pki.not_after(Leaf::Expired) < SystemTime::now() - DAY);
    }

    #[test]
    fn write_ca_writes_the_pem() {
        let pki = TestPki::new().unwrap();
        let dir = std::env::temp_dir().join(format!("vantage-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = pki.write_ca(&dir).unwrap();
        assert_eq!(path, dir.join("ca.pem"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(text, pki.ca_pem());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn server_configs_carry_alpn() {
        let pki = TestPki::new().unwrap();
        for which in [Leaf::Valid, Leaf::Expired, Leaf::WrongHost, Leaf::SelfSigned, Leaf::SelfSignedCa] {
            let config = pki.server_config(which, &[b"h2", b"http/1.1"]);
            assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        }
    }
}
