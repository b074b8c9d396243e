//! `certs init` and the TLS configurations built from its output: the files
//! and their modes, certificates that chain to the CA with the right names
//! and purposes, and real rustls handshakes on loopback — a peer with a node
//! certificate gets into the Raft listener; no certificate, a certificate
//! from another CA, or the admin certificate are refused in the handshake.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier as _;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::pem::PemObject as _;
use vantage_coordinator::certs::{self, ClusterPki, InitOptions};
use vantage_coordinator::config::TlsConfig;
use vantage_coordinator::tls::{self, TlsMaterial};
use vantage_core::clock::{FixedWallClock, SystemWallClock};
use x509_parser::extensions::{GeneralName, ParsedExtension};

const ALL_FILES: [&str; 10] = [
    "ca.pem",
    "ca-key.pem",
    "node-1.pem",
    "node-1-key.pem",
    "node-2.pem",
    "node-2-key.pem",
    "node-3.pem",
    "node-3-key.pem",
    "admin.pem",
    "admin-key.pem",
];

fn options(dir: &Path) -> InitOptions {
    InitOptions {
        dir: dir.to_path_buf(),
        nodes: 3,
        hosts: vec!["10.1.2.3".into(), "coord.example.com".into()],
        force: false,
        valid_days: certs::DEFAULT_VALID_DAYS,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

#[test]
fn init_writes_pem_files_with_private_keys_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let written = certs::init(&options(&pki), &SystemWallClock).unwrap();
    let names: Vec<_> = written.iter().map(|f| f.path.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(names, ALL_FILES);
    for file in &written {
        let text = std::fs::read_to_string(&file.path).unwrap();
        let name = file.path.file_name().unwrap().to_str().unwrap();
        if name.ends_with("-key.pem") {
            assert!(file.secret);
            assert_eq!(mode(&file.path), 0o600, "{name}");
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{name}");
        } else {
            assert!(!file.secret);
            assert_eq!(mode(&file.path), 0o644, "{name}");
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{name}");
        }
    }
    let entries = std::fs::read_dir(&pki).unwrap().count();
    assert_eq!(entries, ALL_FILES.len(), "no temporary files left behind");
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node-2.pem"), "mine").unwrap();
    let error = certs::init(&options(dir.path()), &SystemWallClock).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "refusing to overwrite {}: pass --force to replace them",
            dir.path().join("node-2.pem").display()
        )
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing written");
    assert_eq!(std::fs::read_to_string(dir.path().join("node-2.pem")).unwrap(), "mine");

    certs::init(&InitOptions { force: true, ..options(dir.path()) }, &SystemWallClock).unwrap();
    assert!(std::fs::read_to_string(dir.path().join("node-2.pem")).unwrap().starts_with("-----BEGIN"));

    // --force over a key file someone loosened ends at 0600 again.
    let key = dir.path().join("node-1-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let old = std::fs::read_to_string(&key).unwrap();
    certs::init(&InitOptions { force: true, ..options(dir.path()) }, &SystemWallClock).unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_ne!(std::fs::read_to_string(&key).unwrap(), old, "fresh keys");
}

#[test]
fn init_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(InitOptions, &str)] = &[
        (InitOptions { nodes: 0, ..options(dir.path()) }, "--nodes must be between 1 and 100, not 0"),
        (InitOptions { nodes: 101, ..options(dir.path()) }, "--nodes must be between 1 and 100, not 101"),
        (
            InitOptions { valid_days: 0, ..options(dir.path()) },
            "--valid-days must be between 1 and 3650 (the CA's lifetime), not 0",
        ),
        (
            InitOptions { hosts: vec!["bad host!".into()], ..options(dir.path()) },
            "--host \"bad host!\" is neither a DNS name nor an IP address",
        ),
        (
            InitOptions { hosts: vec![String::new()], ..options(dir.path()) },
            "--host \"\" is neither a DNS name nor an IP address",
        ),
    ];
    for (options, expected) in cases {
        assert_eq!(certs::init(options, &SystemWallClock).unwrap_err().to_string(), *expected);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn certificates_chain_to_the_ca_with_names_and_purposes() {
    let dir = tempfile::tempdir().unwrap();
    certs::init(&options(dir.path()), &SystemWallClock).unwrap();
    let ca = cert(&dir.path().join("ca.pem"));
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let servers =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build().unwrap();
    let clients =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build().unwrap();
    let now = UnixTime::now();

    for n in 1..=3u64 {
        let leaf = cert(&dir.path().join(format!("node-{n}.pem")));
        for name in ["localhost", "127.0.0.1", "::1", "10.1.2.3", "coord.example.com"] {
            let server_name = ServerName::try_from(name).unwrap();
            servers
                .verify_server_cert(&leaf, &[], &server_name, &[], now)
                .unwrap_or_else(|e| panic!("node-{n} as server for {name}: {e}"));
        }
        let elsewhere = ServerName::try_from("other.example.com").unwrap();
        assert!(servers.verify_server_cert(&leaf, &[], &elsewhere, &[], now).is_err());
        clients.verify_client_cert(&leaf, &[], now).unwrap_or_else(|e| panic!("node-{n} as client: {e}"));
        assert_eq!(tls::node_id_of(&leaf), Some(n));
        let (uris, purposes) = uris_and_purposes(&leaf);
        assert_eq!(uris, [format!("spiffe://vantage/node/{n}")]);
        assert_eq!(purposes, (true, true));
    }

    let admin = cert(&dir.path().join("admin.pem"));
    clients.verify_client_cert(&admin, &[], now).unwrap();
    let localhost = ServerName::try_from("localhost").unwrap();
    assert!(servers.verify_server_cert(&admin, &[], &localhost, &[], now).is_err(), "admin is client-only");
    assert_eq!(tls::node_id_of(&admin), None);
    assert_eq!(uris_and_purposes(&admin), (vec!["spiffe://vantage/admin".to_string()], (false, true)));

    let (_, ca_parsed) = x509_parser::parse_x509_certificate(ca.as_ref()).unwrap();
    assert!(ca_parsed.is_ca());
    let days =
        (ca_parsed.validity().not_after.timestamp() - ca_parsed.validity().not_before.timestamp()) / 86400;
    assert!(days >= i64::from(certs::CA_VALID_DAYS), "{days}");
}

#[test]
fn a_peer_with_a_node_certificate_is_accepted_by_the_raft_listener() {
    let pki = Pki::new();
    let node1 = pki.material(1);
    let node2 = pki.material(2);
    let outcome =
        handshake(node1.raft_server_config().unwrap(), node2.peer_client_config().unwrap(), "127.0.0.1");
    let server = outcome.server.expect("server side");
    assert_eq!(server.peer_node_id, Some(2), "the server learns which node connected");
    assert_eq!(server.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(server.version, Some(rustls::ProtocolVersion::TLSv1_3));
    outcome.client.expect("client side");

    // Both directions, over IPv6 loopback too.
    let outcome = handshake(node2.raft_server_config().unwrap(), node1.peer_client_config().unwrap(), "::1");
    assert_eq!(outcome.server.unwrap().peer_node_id, Some(1));
}

#[test]
fn the_raft_listener_refuses_clients_without_a_node_certificate_from_the_cluster_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let raft = pki.material(1).raft_server_config().unwrap();

    // No client certificate at all.
    let no_cert = tls::api_client_config(pki.ca_pem().as_bytes()).unwrap();
    let outcome = handshake(raft.clone(), no_cert, "127.0.0.1");
    assert_refused(&outcome, "peer sent no certificates");

    // A node certificate, but from another cluster's CA (which trusts our
    // server, so only the client certificate is at fault).
    let foreign = TlsMaterial::from_pem(
        pki.ca_pem().as_bytes(),
        other.pki.nodes[1].cert_pem.as_bytes(),
        other.pki.nodes[1].key_pem.as_bytes(),
    )
    .unwrap();
    let outcome = handshake(raft.clone(), foreign.peer_client_config().unwrap(), "127.0.0.1");
    assert_refused(
        &outcome,
        "other error: the client certificate is not signed by the cluster CA (every node's \
         tls.ca_file, cert_file and key_file must come from the same `vantage-coordinator certs init`)",
    );

    // The admin certificate: right CA, client auth, but not a node.
    let admin = TlsMaterial::from_pem(
        pki.ca_pem().as_bytes(),
        pki.pki.admin.cert_pem.as_bytes(),
        pki.pki.admin.key_pem.as_bytes(),
    )
    .unwrap();
    let outcome = handshake(raft, admin.peer_client_config().unwrap(), "127.0.0.1");
    assert_refused(
        &outcome,
        "other error: the client certificate has no node identity (a URI SAN \
         spiffe://vantage/node/N): only cluster nodes may connect",
    );
}

#[test]
fn the_peer_client_refuses_a_server_from_another_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let outcome = handshake(
        other.material(1).raft_server_config().unwrap(),
        pki.material(2).peer_client_config().unwrap(),
        "127.0.0.1",
    );
    let client = outcome.client.expect_err("client must refuse");
    assert_eq!(
        client,
        "other error: the peer's certificate is not signed by the cluster CA (every node's \
         tls.ca_file, cert_file and key_file must come from the same `vantage-coordinator certs init`)"
    );
}

#[test]
fn the_api_listener_needs_no_client_certificate_and_speaks_tls12_and_h2() {
    let pki = Pki::new();
    let node = pki.material(1);
    let client = tls::api_client_config(pki.ca_pem().as_bytes()).unwrap();
    let outcome = handshake(node.api_server_config().unwrap(), client, "localhost");
    let server = outcome.server.unwrap();
    assert_eq!(server.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(server.peer_node_id, None);
    outcome.client.unwrap();

    let tls12 = tls12_client(&pki.ca_pem());
    let outcome = handshake(node.api_server_config().unwrap(), tls12.clone(), "127.0.0.1");
    assert_eq!(outcome.server.unwrap().version, Some(rustls::ProtocolVersion::TLSv1_2));
    let outcome = handshake(node.http_server_config().unwrap(), tls12.clone(), "127.0.0.1");
    outcome.server.unwrap();
    // Peers speak TLS 1.3 only.
    let outcome = handshake(node.raft_server_config().unwrap(), tls12, "127.0.0.1");
    assert!(outcome.server.is_err());
}

#[test]
fn load_checks_the_files_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    certs::init(&options(dir.path()), &SystemWallClock).unwrap();
    let other = tempfile::tempdir().unwrap();
    certs::init(&options(other.path()), &SystemWallClock).unwrap();
    let path = |d: &tempfile::TempDir, name: &str| d.path().join(name);
    let tls_config = |ca: PathBuf, cert: PathBuf, key: PathBuf| TlsConfig {
        insecure: false,
        ca_file: Some(ca),
        cert_file: Some(cert),
        key_file: Some(key),
    };
    let good = tls_config(path(&dir, "ca.pem"), path(&dir, "node-2.pem"), path(&dir, "node-2-key.pem"));
    let configs = tls::load(&good, 2, &SystemWallClock).unwrap().expect("TLS configured");
    assert_eq!(configs.api_server.alpn_protocols, [b"h2".to_vec()]);
    assert_eq!(configs.http_server.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(tls::load(&TlsConfig { insecure: true, ..TlsConfig::default() }, 2, &SystemWallClock)
        .unwrap()
        .is_none());

    let label = |key: &str, p: PathBuf| format!("{key} {:?}", p.display().to_string());
    let cases: Vec<(TlsConfig, u64, String)> = vec![
        (
            good.clone(),
            1,
            format!(
                "{} is node 2's certificate, but this is node 1",
                label("tls.cert_file", path(&dir, "node-2.pem"))
            ),
        ),
        (
            tls_config(path(&dir, "ca.pem"), path(&other, "node-2.pem"), path(&other, "node-2-key.pem")),
            2,
            format!(
                "{} is not valid under {}: it is not signed by the cluster CA (every node's tls.ca_file, \
                 cert_file and key_file must come from the same `vantage-coordinator certs init`)",
                label("tls.cert_file", path(&other, "node-2.pem")),
                label("tls.ca_file", path(&dir, "ca.pem"))
            ),
        ),
        (
            tls_config(path(&dir, "ca.pem"), path(&dir, "admin.pem"), path(&dir, "admin-key.pem")),
            2,
            format!(
                "{} has no node identity (a URI SAN spiffe://vantage/node/N): use a node-N.pem from \
                 `vantage-coordinator certs init`",
                label("tls.cert_file", path(&dir, "admin.pem"))
            ),
        ),
        (
            tls_config(path(&dir, "ca.pem"), path(&dir, "node-2.pem"), path(&dir, "node-3-key.pem")),
            2,
            format!(
                "{} does not match {}: use the key generated with that certificate",
                label("tls.key_file", path(&dir, "node-3-key.pem")),
                label("tls.cert_file", path(&dir, "node-2.pem"))
            ),
        ),
        (
            tls_config(path(&dir, "node-2-key.pem"), path(&dir, "node-2.pem"), path(&dir, "node-2-key.pem")),
            2,
            format!("{}: no CERTIFICATE block found", label("tls.ca_file", path(&dir, "node-2-key.pem"))),
        ),
        (
            tls_config(path(&dir, "ca.pem"), path(&dir, "node-2.pem"), path(&dir, "node-2.pem")),
            2,
            format!("{}: invalid PEM: no items found", label("tls.key_file", path(&dir, "node-2.pem"))),
        ),
        (
            tls_config(path(&dir, "ca.pem"), path(&dir, "node-2.pem"), path(&dir, "missing.pem")),
            2,
            format!(
                "{}: cannot read it: No such file or directory (os error 2)",
                label("tls.key_file", path(&dir, "missing.pem"))
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (config, node_id, expected) in &cases {
        match tls::load(config, *node_id, &SystemWallClock) {
            Ok(_) => failures.push(format!("accepted, expected {expected}")),
            Err(e) if e.to_string() != *expected => failures.push(format!("   got: {e}\n  want: {expected}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // An expired certificate is refused at startup, not in every handshake.
    let far_future = FixedWallClock(SystemTime::now() + Duration::from_secs(900 * 86400));
    let error = tls::load(&good, 2, &far_future).unwrap_err().to_string();
    let prefix = format!(
        "{} is not valid under {}: it expired at ",
        label("tls.cert_file", path(&dir, "node-2.pem")),
        label("tls.ca_file", path(&dir, "ca.pem"))
    );
    assert!(error.starts_with(&prefix), "{error}");
    assert!(
        error.ends_with(
            "(issue new certificates with `vantage-coordinator certs init --force`, or check this machine's \
             clock)"
        ),
        "{error}"
    );
}

#[test]
fn the_binary_writes_certificates_prints_next_steps_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let run = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vantage-coordinator"));
        command.args(["certs", "init", "--dir"]).arg(&pki).args(["--nodes", "2", "--host", "10.9.8.7"]);
        command.args(extra).env("VANTAGE_LOG", "warn").output().unwrap()
    };
    let output = run(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let canonical = std::fs::canonicalize(&pki).unwrap();
    assert!(stdout.contains(&format!("Wrote 8 files to {}:", canonical.display())), "{stdout}");
    assert!(stdout.contains("node-2-key.pem  0600  node-2 private key"), "{stdout}");
    assert!(stdout.contains("Next steps:"), "{stdout}");
    assert!(stdout.contains(&format!("ca_file = \"{}/ca.pem\"", canonical.display())), "{stdout}");
    assert_eq!(tls::node_id_of(&cert(&pki.join("node-2.pem"))), Some(2));

    let output = run(&[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: refusing to overwrite "), "{stderr}");
    assert!(stderr.contains("pass --force to replace them"), "{stderr}");

    assert_eq!(run(&["--force"]).status.code(), Some(0));
}

/// A generated PKI held in memory.
struct Pki {
    pki: ClusterPki,
}

impl Pki {
    fn new() -> Pki {
        Pki { pki: ClusterPki::generate(3, &[], 30, SystemTime::now()).unwrap() }
    }

    fn ca_pem(&self) -> String {
        self.pki.ca.cert_pem.clone()
    }

    fn material(&self, node: u64) -> TlsMaterial {
        let issued = &self.pki.nodes[usize::try_from(node - 1).unwrap()];
        let material = TlsMaterial::from_pem(
            self.ca_pem().as_bytes(),
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .unwrap();
        material.check(node, SystemTime::now()).unwrap();
        material
    }
}

/// What the server saw of a successful handshake.
#[derive(Debug)]
struct ServerSide {
    peer_node_id: Option<u64>,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

struct Outcome {
    server: Result<ServerSide, String>,
    client: Result<(), String>,
}

/// Runs one TLS exchange on loopback (`ping` → `pong`) and reports each
/// side's result.
fn handshake(server_config: Arc<ServerConfig>, client_config: Arc<ClientConfig>, name: &str) -> Outcome {
    let bind = if name == "::1" { "[::1]:0" } else { "127.0.0.1:0" };
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || -> Result<ServerSide, String> {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = ServerConnection::new(server_config).map_err(|e| e.to_string())?;
        let mut tcp = tcp;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
        }
        let side = ServerSide {
            peer_node_id: conn.peer_certificates().and_then(|c| c.first()).and_then(tls::node_id_of),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
        };
        let mut stream = StreamOwned::new(conn, tcp);
        let mut ping = [0u8; 4];
        stream.read_exact(&mut ping).map_err(|e| e.to_string())?;
        assert_eq!(&ping, b"ping");
        stream.write_all(b"pong").map_err(|e| e.to_string())?;
        stream.conn.send_close_notify();
        let _ = stream.flush();
        Ok(side)
    });
    let client = (|| -> Result<(), String> {
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(client_config, server_name).map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(conn, tcp);
        stream.write_all(b"ping").map_err(|e| e.to_string())?;
        let mut pong = [0u8; 4];
        stream.read_exact(&mut pong).map_err(|e| e.to_string())?;
        assert_eq!(&pong, b"pong");
        Ok(())
    })();
    Outcome { server: server.join().unwrap(), client }
}

fn assert_refused(outcome: &Outcome, server_error: &str) {
    match &outcome.server {
        Ok(side) => panic!("server accepted: {side:?}"),
        Err(e) => assert!(e.contains(server_error), "server error {e:?} should mention {server_error:?}"),
    }
    assert!(outcome.client.is_err(), "the client must not get an answer");
}

fn tls12_client(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The URI SANs and (serverAuth, clientAuth) of a certificate.
fn uris_and_purposes(cert: &CertificateDer<'_>) -> (Vec<String>, (bool, bool)) {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
    let mut uris = Vec::new();
    let mut purposes = (false, false);
    for ext in parsed.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name {
                        uris.push(uri.to_string());
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => purposes = (eku.server_auth, eku.client_auth),
            _ => {}
        }
    }
    (uris, purposes)
}
