//! `vantage-coordinator certs init`: a cluster CA and the certificates a
//! cluster needs, generated with rcgen so nobody needs openssl.
//!
//! Files written to `--dir` (PEM; every `*-key.pem` with mode 0600):
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem` | the cluster CA certificate: `[tls] ca_file` on every node, `vantagectl --ca` |
//! | `ca-key.pem` | the CA's private key: keep it offline; it issues more certificates |
//! | `node-N.pem`, `node-N-key.pem` | node N's certificate and key: `[tls] cert_file`, `key_file` |
//! | `admin.pem`, `admin-key.pem` | an admin client certificate and key |
//!
//! Node certificates are for both TLS server and client auth (a node
//! serves its listeners and dials its peers with the same certificate),
//! valid for `localhost`, `127.0.0.1`, `::1` and every `--host`, and carry
//! the URI SAN `spiffe://vantage/node/N`: the Raft listener accepts only
//! certificates with a node identity (see [`crate::tls`]), so the admin
//! certificate, from the same CA, cannot speak Raft. The admin certificate
//! is for client auth only and carries `spiffe://vantage/admin`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom as _;
use rustls_pki_types::ServerName;
use vantage_core::clock::WallClock;

use crate::raft::NodeId;

/// The names every node certificate is valid for, besides `--host` values.
pub const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The URI SAN prefix of node certificates; the node id follows.
pub const NODE_URI_PREFIX: &str = "spiffe://vantage/node/";

/// The URI SAN of admin certificates.
pub const ADMIN_URI: &str = "spiffe://vantage/admin";

/// The most nodes `certs init` generates certificates for.
pub const MAX_NODES: u32 = 100;

/// How long the CA is valid, in days (10 years).
pub const CA_VALID_DAYS: u32 = 3650;

/// Default validity of node and admin certificates, in days (the 825 days
/// browsers accept; renew before then).
pub const DEFAULT_VALID_DAYS: u32 = 825;

/// What `certs init` should generate, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// The directory to write to; created when missing.
    pub dir: PathBuf,
    /// Node certificates to generate: `node-1` … `node-N`.
    pub nodes: u32,
    /// Extra DNS names or IP addresses every node certificate is valid for
    /// (the addresses peers and clients dial).
    pub hosts: Vec<String>,
    /// Replace existing files instead of refusing.
    pub force: bool,
    /// Validity of the node and admin certificates, in days.
    pub valid_days: u32,
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The file stem: `ca`, `node-1`, `admin`.
    pub name: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8).
    pub key_pem: String,
}

/// A freshly generated cluster PKI, in memory.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    /// The cluster CA.
    pub ca: Issued,
    /// `node-1` … `node-N`, in order.
    pub nodes: Vec<Issued>,
    /// The admin client certificate.
    pub admin: Issued,
}

/// One file `certs init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// What it holds, for the summary.
    pub description: String,
    /// A private key (written with mode 0600).
    pub secret: bool,
}

/// Why certificates were not generated or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// `--nodes` out of range.
    #[error("--nodes must be between 1 and {MAX_NODES}, not {nodes}")]
    NodeCount {
        /// The value given.
        nodes: u32,
    },
    /// `--valid-days` out of range.
    #[error("--valid-days must be between 1 and {CA_VALID_DAYS} (the CA's lifetime), not {days}")]
    ValidDays {
        /// The value given.
        days: u32,
    },
    /// A `--host` value is neither a DNS name nor an IP address.
    #[error("--host {host:?} is neither a DNS name nor an IP address")]
    InvalidHost {
        /// The value given.
        host: String,
    },
    /// Files exist and `--force` was not given.
    #[error("refusing to overwrite {}: pass --force to replace them", list_paths(paths))]
    WouldOverwrite {
        /// The files that exist.
        paths: Vec<PathBuf>,
    },
    /// rcgen could not build a certificate.
    #[error("generating the {what} certificate: {source}")]
    Generate {
        /// Which certificate.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The clock is before 1970 or too far in the future.
    #[error("the system clock is out of range for certificate dates")]
    Clock,
    /// Writing a file failed.
    #[error("writing {path:?}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Generates the PKI and writes it to `options.dir`; refuses to overwrite
/// any existing file unless `options.force`. Nothing is written when any
/// file would be overwritten. Returns the files written, in order.
pub fn init(options: &InitOptions, clock: &dyn WallClock) -> Result<Vec<WrittenFile>, CertsError> {
    let pki = ClusterPki::generate(options.nodes, &options.hosts, options.valid_days, clock.now())?;
    let files = pki.files(&options.dir);
    if !options.force {
        let existing: Vec<PathBuf> =
            files.iter().filter(|f| f.path.symlink_metadata().is_ok()).map(|f| f.path.clone()).collect();
        if !existing.is_empty() {
            return Err(CertsError::WouldOverwrite { paths: existing });
        }
    }
    fs::create_dir_all(&options.dir)
        .map_err(|source| CertsError::Write { path: options.dir.clone(), source })?;
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        write_atomically(&file.path, file.contents.as_bytes(), if file.secret { 0o600 } else { 0o644 })?;
        written.push(WrittenFile { path: file.path, description: file.description, secret: file.secret });
    }
    Ok(written)
}

/// What to do after `certs init`, for the command's output.
pub fn next_steps(dir: &Path, nodes: u32) -> String {
    let d = dir.display();
    let mut text = String::from("Next steps:\n");
    text.push_str(&format!(
        "  1. Copy {d}/ca.pem and node-N.pem, node-N-key.pem to node N (keep key files mode 0600).\n"
    ));
    text.push_str("  2. In each node's coordinator.toml:\n");
    text.push_str(&format!(
        "       [tls]\n       ca_file = \"{d}/ca.pem\"\n       cert_file = \"{d}/node-N.pem\"\n       key_file = \"{d}/node-N-key.pem\"\n"
    ));
    text.push_str(&format!("     (N = 1..{nodes}, matching node_id.)\n"));
    text.push_str(&format!("  3. Point vantagectl at the cluster with --ca {d}/ca.pem.\n"));
    text.push_str(&format!(
        "  4. Move {d}/ca-key.pem somewhere offline: anyone holding it can join the cluster.\n"
    ));
    text.push_str(
        "Peers and clients must dial an address the node certificates name: localhost, 127.0.0.1, ::1\n",
    );
    text.push_str("and each --host; regenerate with --force and more --host values to add names.\n");
    text
}

impl ClusterPki {
    /// Generates a CA (valid [`CA_VALID_DAYS`]), node certificates
    /// `node-1` … `node-{nodes}` and an admin certificate (valid
    /// `valid_days`), all starting an hour before `now` to absorb clock
    /// skew between machines. Keys are ECDSA P-256.
    pub fn generate(
        nodes: u32,
        hosts: &[String],
        valid_days: u32,
        now: SystemTime,
    ) -> Result<ClusterPki, CertsError> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(CertsError::NodeCount { nodes });
        }
        if !(1..=CA_VALID_DAYS).contains(&valid_days) {
            return Err(CertsError::ValidDays { days: valid_days });
        }
        let mut names: Vec<SanType> = Vec::new();
        for host in LOOPBACK_NAMES.iter().map(|h| h.to_string()).chain(hosts.iter().cloned()) {
            let san = san(&host)?;
            if !names.contains(&san) {
                names.push(san);
            }
        }
        let not_before = now.checked_sub(Duration::from_secs(3600)).ok_or(CertsError::Clock)?;
        let random = ring::rand::SystemRandom::new();

        let ca_key = key_pair("CA")?;
        let mut ca_params = CertificateParams::default();
        // A random suffix tells clusters' CAs apart: with equal names, a
        // certificate from another cluster fails as a bad signature rather
        // than as an unknown issuer, which is harder to diagnose.
        ca_params.distinguished_name = subject(&format!("Vantage cluster CA {}", ca_suffix(&random)?));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.serial_number = Some(serial(&random)?);
        ca_params.not_before = offset(not_before)?;
        ca_params.not_after = offset(now + days(CA_VALID_DAYS))?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(generate("CA"))?;
        let ca = Issued { name: "ca".into(), cert_pem: ca_cert.pem(), key_pem: ca_key.serialize_pem() };
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = Leaf { issuer: &issuer, random: &random, not_before, now, valid_days };
        let nodes =
            (1..=u64::from(nodes)).map(|id| leaf.issue_node(id, &names)).collect::<Result<Vec<_>, _>>()?;
        let admin = leaf.issue_admin()?;
        Ok(ClusterPki { ca, nodes, admin })
    }

    fn files(&self, dir: &Path) -> Vec<PkiFile> {
        let mut files = Vec::new();
        let mut add = |issued: &Issued, what: &str, key_note: &str| {
            files.push(PkiFile {
                path: dir.join(format!("{}.pem", issued.name)),
                description: format!("{what} certificate"),
                contents: issued.cert_pem.clone(),
                secret: false,
            });
            files.push(PkiFile {
                path: dir.join(format!("{}-key.pem", issued.name)),
                description: format!("{what} private key{key_note}"),
                contents: issued.key_pem.clone(),
                secret: true,
            });
        };
        add(&self.ca, "cluster CA", " (keep offline)");
        for node in &self.nodes {
            add(node, &node.name, "");
        }
        add(&self.admin, "admin client", "");
        files
    }
}

impl fmt::Debug for Issued {
    // Keep private keys out of logs and test output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("name", &self.name).finish_non_exhaustive()
    }
}

struct PkiFile {
    path: PathBuf,
    description: String,
    contents: String,
    secret: bool,
}

/// What every leaf certificate shares.
struct Leaf<'a> {
    issuer: &'a Issuer<'static, KeyPair>,
    random: &'a ring::rand::SystemRandom,
    not_before: SystemTime,
    now: SystemTime,
    valid_days: u32,
}

impl Leaf<'_> {
    fn issue_node(&self, id: NodeId, names: &[SanType]) -> Result<Issued, CertsError> {
        let name = format!("node-{id}");
        let mut sans = names.to_vec();
        sans.push(SanType::URI(ia5(&format!("{NODE_URI_PREFIX}{id}"))?));
        let purposes = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, sans, purposes)
    }

    fn issue_admin(&self) -> Result<Issued, CertsError> {
        let sans = vec![SanType::URI(ia5(ADMIN_URI)?)];
        self.issue("admin".into(), sans, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    fn issue(
        &self,
        name: String,
        sans: Vec<SanType>,
        purposes: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<Issued, CertsError> {
        let key = key_pair(&name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = purposes;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial(self.random)?);
        params.not_before = offset(self.not_before)?;
        params.not_after = offset(self.now + days(self.valid_days))?;
        let cert = params.signed_by(&key, self.issuer).map_err(generate(&name))?;
        Ok(Issued { name, cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

fn san(host: &str) -> Result<SanType, CertsError> {
    let invalid = || CertsError::InvalidHost { host: host.to_string() };
    match ServerName::try_from(host).map_err(|_| invalid())? {
        ServerName::IpAddress(ip) => Ok(SanType::IpAddress(std::net::IpAddr::from(ip))),
        ServerName::DnsName(name) => Ok(SanType::DnsName(ia5(name.as_ref()).map_err(|_| invalid())?)),
        _ => Err(invalid()),
    }
}

fn ia5(text: &str) -> Result<rcgen::string::Ia5String, CertsError> {
    rcgen::string::Ia5String::try_from(text).map_err(generate(text))
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Vantage");
    name.push(DnType::CommonName, common_name);
    name
}

fn key_pair(what: &str) -> Result<KeyPair, CertsError> {
    KeyPair::generate().map_err(generate(what))
}

/// Eight random hex digits.
fn ca_suffix(random: &ring::rand::SystemRandom) -> Result<String, CertsError> {
    let mut bytes = [0u8; 4];
    random.fill(&mut bytes).map_err(|_| CertsError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A random positive 127-bit serial, as RFC 5280 recommends.
fn serial(random: &ring::rand::SystemRandom) -> Result<SerialNumber, CertsError> {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes).map_err(|_| CertsError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero byte: the DER stays 16 bytes
    Ok(SerialNumber::from_slice(&bytes))
}

fn generate(what: &str) -> impl FnOnce(rcgen::Error) -> CertsError + '_ {
    move |source| CertsError::Generate { what: what.to_string(), source }
}

const fn days(n: u32) -> Duration {
    Duration::from_secs(n as u64 * 24 * 60 * 60)
}

fn offset(t: SystemTime) -> Result<time::OffsetDateTime, CertsError> {
    let secs = t.duration_since(UNIX_EPOCH).map_err(|_| CertsError::Clock)?.as_secs();
    let secs = i64::try_from(secs).map_err(|_| CertsError::Clock)?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| CertsError::Clock)
}

/// Writes through a temporary file in the same directory, created with
/// `mode`, then renames it into place: a reader never sees a partial file,
/// and `--force` over an old, looser-permission file still ends at `mode`.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertsError> {
    let write_error = |source| CertsError::Write { path: path.to_path_buf(), source };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.tmp"));
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_error(e)),
    }
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp).map_err(write_error)?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(write_error)?;
    drop(file);
    fs::rename(&temp, path).map_err(write_error)?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write_error)?;
    }
    Ok(())
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
