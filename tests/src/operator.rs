//! A Vantage deployment as an operator runs it, from real processes: a
//! coordinator cluster with TLS on loopback (`vantage-coordinator certs
//! init` and `run`), the real `vantagectl`, and `vantage-probe run` agents;
//! each killable with SIGKILL (a crash) or SIGTERM.
//!
//! Every file lives in one temporary directory: `pki/`, `nodeN.toml`,
//! `data/nodeN`, `admin.token`, and per probe `NAME.toml`, `NAME.token`,
//! `spool-NAME/`; each process logs to `NAME.log` there, and
//! [`Deployment::logs`] gathers their last lines for assertion messages.
//!
//! A deployment can also run on a network the test controls
//! ([`crate::faultnet`]): [`Deployment::start_with_links`] puts a [`Link`]
//! on every directed Raft link between coordinators (node *i* dials node
//! *j* through its own link, by `[[peers]] dial_raft_addr` in node *i*'s
//! config), and [`Deployment::wall_off_probe`] runs a probe on an
//! [`Island`] whose only ways out are links to the coordinators' API ports
//! and to the addresses it checks. The links run on a Tokio runtime of the
//! deployment's own, so tests stay synchronous.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;

use crate::faultnet::{Island, Link};
use crate::process::{free_ports, workspace_bin, ChildGuard};

/// A coordinator cluster, its admin CLI and probe agents.
pub struct Deployment {
    dir: tempfile::TempDir,
    coordinator: PathBuf,
    ctl: PathBuf,
    probe: PathBuf,
    /// Per node: api, raft and http ports.
    ports: Vec<[u16; 3]>,
    nodes: Vec<Option<ChildGuard>>,
    probes: BTreeMap<String, Option<ChildGuard>>,
    // Dropped after the processes above: the links outlive their users.
    /// (from, to) → the link node `from` dials node `to`'s Raft port through.
    raft_links: BTreeMap<(usize, usize), Link>,
    /// Probe name → the island it runs on.
    islands: BTreeMap<String, Island>,
    /// Runs the links; dropped last.
    net: Option<tokio::runtime::Runtime>,
}

impl Deployment {
    /// Certificates and `nodes` configs (all initial members; `tables` is
    /// appended to each, e.g. `[raft]` and `[mesh]` settings), then every
    /// node started.
    pub fn start(nodes: usize, tables: &str) -> anyhow::Result<Deployment> {
        Deployment::start_with(nodes, 0, tables)
    }

    /// Like [`Deployment::start`] for `members` initial members, plus
    /// `spares` more configs (nodes `members + 1 ..`) that list themselves
    /// as well and are not started: nodes to add with `cluster add-node`.
    pub fn start_with(members: usize, spares: usize, tables: &str) -> anyhow::Result<Deployment> {
        Deployment::build(members, spares, tables, false)
    }

    /// Like [`Deployment::start`], with a [`Link`] on every directed Raft
    /// link: node `i` reaches node `j`'s Raft port only through
    /// [`Deployment::raft_link`]`(i, j)` (transparent until a test says
    /// otherwise), so a fault can hit one direction between two nodes.
    pub fn start_with_links(nodes: usize, tables: &str) -> anyhow::Result<Deployment> {
        Deployment::build(nodes, 0, tables, true)
    }

    fn build(members: usize, spares: usize, tables: &str, links: bool) -> anyhow::Result<Deployment> {
        let nodes = members + spares;
        let dir = tempfile::tempdir()?;
        let coordinator = workspace_bin("vantage-coordinator")?;
        let out = Command::new(&coordinator)
            .args(["certs", "init", "--dir", "pki", "--nodes", &nodes.to_string()])
            .current_dir(dir.path())
            .output()?;
        ensure!(out.status.success(), "certs init: {}", String::from_utf8_lossy(&out.stderr));
        let free = free_ports(3 * nodes)?;
        let ports: Vec<[u16; 3]> = free.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        let (net, raft_links) = if links {
            let net = links_runtime()?;
            let mut raft_links = BTreeMap::new();
            {
                let _entered = net.enter();
                for from in 1..=nodes {
                    for to in (1..=nodes).filter(|to| *to != from) {
                        let target = format!("127.0.0.1:{}", ports[to - 1][1]).parse()?;
                        raft_links.insert((from, to), Link::start(target)?);
                    }
                }
            }
            (Some(net), raft_links)
        } else {
            (None, BTreeMap::new())
        };
        // Node `from`'s entry for node `n`.
        let peer = |from: usize, n: usize| {
            let [api, raft, _] = ports[n - 1];
            let dial = match raft_links.get(&(from, n)) {
                Some(link) => format!("dial_raft_addr = \"{}\"\n", link.addr()),
                None => String::new(),
            };
            format!(
                "[[peers]]\nid = {n}\napi_addr = \"127.0.0.1:{api}\"\nraft_addr = \"127.0.0.1:{raft}\"\n{dial}\n"
            )
        };
        for (i, [api, raft, http]) in ports.iter().enumerate() {
            let n = i + 1;
            let initial: String = (1..=members).map(|m| peer(n, m)).collect();
            // A spare lists itself too (every config names its own node).
            let peers = if n > members { format!("{initial}{}", peer(n, n)) } else { initial };
            let config = format!(
                "node_id = {n}\ndata_dir = \"data/node{n}\"\napi_addr = \"127.0.0.1:{api}\"\n\
                 raft_addr = \"127.0.0.1:{raft}\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
                 admin_token_file = \"admin.token\"\n\n{peers}\
                 [tls]\nca_file = \"pki/ca.pem\"\ncert_file = \"pki/node-{n}.pem\"\nkey_file = \"pki/node-{n}-key.pem\"\n\n\
                 {tables}\n"
            );
            std::fs::write(dir.path().join(format!("node{n}.toml")), config)?;
        }
        let mut deployment = Deployment {
            dir,
            coordinator,
            ctl: workspace_bin("vantagectl")?,
            probe: workspace_bin("vantage-probe")?,
            ports,
            nodes: (0..nodes).map(|_| None).collect(),
            probes: BTreeMap::new(),
            raft_links,
            islands: BTreeMap::new(),
            net,
        };
        for n in 1..=members {
            deployment.start_node(n)?;
        }
        Ok(deployment)
    }

    /// The directory every file is in.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Node `n`'s API address as a URL.
    pub fn api(&self, n: usize) -> String {
        format!("https://{}", self.api_addr(n))
    }

    /// Node `n`'s Raft address (`IP:PORT`).
    pub fn raft_addr(&self, n: usize) -> String {
        format!("127.0.0.1:{}", self.ports[n - 1][1])
    }

    /// Node `n`'s API address (`IP:PORT`).
    pub fn api_addr(&self, n: usize) -> String {
        format!("127.0.0.1:{}", self.ports[n - 1][0])
    }

    /// Node `n`'s HTTP address (`IP:PORT`: status page, JSON API,
    /// /healthz; TLS like the API).
    pub fn http_addr(&self, n: usize) -> String {
        format!("127.0.0.1:{}", self.ports[n - 1][2])
    }

    /// GETs `path` from node `n`'s HTTP port (TLS, the cluster CA
    /// trusted) and parses the JSON answer; errors on a non-200 status.
    pub fn http_json(&self, n: usize, path: &str) -> anyhow::Result<Value> {
        use rustls_pki_types::pem::PemObject as _;
        use std::io::{Read as _, Write as _};
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(self.path().join("pki/ca.pem"))? {
            roots.add(cert?)?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name)?;
        let tcp = std::net::TcpStream::connect(self.http_addr(n))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut stream = rustls::StreamOwned::new(tls, tcp);
        write!(stream, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        // A peer closing without close_notify still delivered the body.
        if let Err(e) = stream.read_to_end(&mut answer) {
            ensure!(e.kind() == std::io::ErrorKind::UnexpectedEof, "reading {path}: {e}");
        }
        let end = answer.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
        let head = String::from_utf8_lossy(&answer[..end]).to_string();
        ensure!(head.starts_with("HTTP/1.1 200"), "{path}: {}", head.lines().next().unwrap_or(""));
        let body = &answer[end + 4..];
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            bail!("{path}: chunked answers are not read here");
        }
        Ok(serde_json::from_slice(body)?)
    }

    /// Starts (or restarts) node `n`.
    pub fn start_node(&mut self, n: usize) -> anyhow::Result<()> {
        let mut command = Command::new(&self.coordinator);
        command
            .args(["run", "--config", &format!("node{n}.toml")])
            .current_dir(self.path())
            .env("VANTAGE_LOG", "info");
        let log = self.path().join(format!("node{n}.log"));
        self.nodes[n - 1] = Some(ChildGuard::spawn(format!("node {n}"), command, &log)?);
        Ok(())
    }

    /// SIGKILLs node `n`.
    pub fn kill_node(&mut self, n: usize) {
        if let Some(mut node) = self.nodes[n - 1].take() {
            node.kill();
        }
    }

    /// SIGTERMs node `n` and waits for its exit.
    pub fn stop_node(&mut self, n: usize, within: Duration) -> anyhow::Result<ExitStatus> {
        let mut node = self.nodes[n - 1].take().with_context(|| format!("node {n} is not running"))?;
        node.terminate(within)
    }

    /// The process id of node `n`, while it runs.
    pub fn node_pid(&self, n: usize) -> Option<u32> {
        self.nodes[n - 1].as_ref().map(ChildGuard::id)
    }

    /// The nodes running now.
    pub fn running_nodes(&self) -> Vec<usize> {
        (1..=self.nodes.len()).filter(|&n| self.nodes[n - 1].is_some()).collect()
    }

    /// Runs vantagectl against node `n`.
    pub fn ctl(&self, n: usize, args: &[&str]) -> anyhow::Result<Output> {
        let token = self.path().join("admin.token");
        let ca = self.path().join("pki/ca.pem");
        Ok(Command::new(&self.ctl)
            .args(["--server", &self.api(n)])
            .args(["--ca", &ca.to_string_lossy(), "--token-file", &token.to_string_lossy()])
            .args(args)
            .current_dir(self.path())
            .output()?)
    }

    /// Runs vantagectl against node `n` and returns its standard output;
    /// a failure's error carries its output and the processes' logs.
    pub fn ok(&self, n: usize, args: &[&str]) -> anyhow::Result<String> {
        let out = self.ctl(n, args)?;
        ensure!(
            out.status.success(),
            "vantagectl {args:?} against node {n} failed ({:?}): {}{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Like [`Deployment::ok`] with `--json`, parsed.
    pub fn json(&self, n: usize, args: &[&str]) -> anyhow::Result<Value> {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(n, &args)?;
        serde_json::from_str(&text).with_context(|| format!("{args:?}: not JSON: {text}"))
    }

    /// Polls `vantagectl ARGS --json` against node `n` (failures count as
    /// not yet) until `check` holds; returns that answer.
    pub fn wait_json(
        &self,
        n: usize,
        args: &[&str],
        within: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.json(n, args) {
                Ok(value) if check(&value) => return Ok(value),
                Ok(value) => value.to_string(),
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() > deadline {
                bail!("{what}: not within {within:?}; last answer: {last}{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `cluster status --json` on the running nodes until one names a
    /// running node as leader; returns it.
    pub fn leader(&self, within: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            for n in self.running_nodes() {
                let Ok(out) = self.ctl(n, &["cluster", "status", "--json"]) else { continue };
                if !out.status.success() {
                    continue;
                }
                let status: Value = serde_json::from_slice(&out.stdout)?;
                if let Some(leader) = status["leader_id"].as_u64().map(|id| id as usize) {
                    if self.running_nodes().contains(&leader) {
                        return Ok(leader);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("no leader among the running nodes within {within:?}{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Issues a token for probe `name` in `region` and writes its token
    /// file (0600) and config (every node listed; `extra` appended), without
    /// starting it. Returns `probe token create --json`'s answer.
    pub fn add_probe(
        &mut self,
        admin_node: usize,
        name: &str,
        region: &str,
        extra: &str,
    ) -> anyhow::Result<Value> {
        let issued =
            self.json(admin_node, &["probe", "token", "create", "--probe", name, "--region", region])?;
        let token = issued["token"].as_str().context("no token in the reply")?.to_string();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.token_file(name))?;
        writeln!(file, "{token}")?;
        drop(file);
        let mode = std::fs::metadata(self.token_file(name))?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "the token file of {name} has mode {mode:o}, not 600");
        let coordinators: Vec<String> =
            (1..=self.nodes.len()).map(|n| format!("\"{}\"", self.api(n))).collect();
        let config = format!(
            "probe_id = \"{name}\"\nregion = \"{region}\"\ncoordinators = [{}]\n\
             token_file = \"{name}.token\"\nca_file = \"pki/ca.pem\"\nspool_dir = \"spool-{name}\"\n{extra}\n",
            coordinators.join(", ")
        );
        std::fs::write(self.path().join(format!("{name}.toml")), config)?;
        self.probes.insert(name.to_string(), None);
        Ok(issued)
    }

    fn token_file(&self, name: &str) -> PathBuf {
        self.path().join(format!("{name}.token"))
    }

    /// Starts (or restarts) probe `name`, added before.
    pub fn start_probe(&mut self, name: &str) -> anyhow::Result<()> {
        ensure!(self.probes.contains_key(name), "probe {name} was never added");
        let mut command = Command::new(&self.probe);
        command
            .args(["run", "--config", &format!("{name}.toml")])
            .current_dir(self.path())
            .env("VANTAGE_LOG", "info");
        if let Some(island) = self.islands.get(name) {
            command = island.wrap(name, &command)?;
        }
        let log = self.path().join(format!("{name}.log"));
        let child = ChildGuard::spawn(format!("probe {name}"), command, &log)?;
        self.probes.insert(name.to_string(), Some(child));
        Ok(())
    }

    /// The probes running now, by name.
    pub fn running_probes(&self) -> Vec<String> {
        self.probes.iter().filter(|(_, p)| p.is_some()).map(|(name, _)| name.clone()).collect()
    }

    /// SIGKILLs probe `name`.
    pub fn kill_probe(&mut self, name: &str) {
        if let Some(mut probe) = self.probes.get_mut(name).and_then(Option::take) {
            probe.kill();
        }
    }

    /// SIGTERMs probe `name` and waits for its exit.
    pub fn stop_probe(&mut self, name: &str, within: Duration) -> anyhow::Result<ExitStatus> {
        let mut probe = self.probes.get_mut(name).and_then(Option::take).context("not running")?;
        probe.terminate(within)
    }

    /// The text of `file` in the directory ("" if absent).
    pub fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_default()
    }

    /// The last lines of every process's log.
    pub fn logs(&self) -> String {
        let mut files: Vec<String> = (1..=self.nodes.len()).map(|n| format!("node{n}.log")).collect();
        files.extend(self.probes.keys().map(|name| format!("{name}.log")));
        let mut text: String = files
            .iter()
            .map(|f| {
                let text = self.log(f);
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "\n--- {f} (last lines) ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        if !self.raft_links.is_empty() || !self.islands.is_empty() {
            text.push_str("\n--- links ---");
            for ((from, to), link) in &self.raft_links {
                text.push_str(&format!("\nraft {from} → {to}: {:?}", link.stats()));
            }
            for (name, island) in &self.islands {
                for (target, link) in island.links() {
                    text.push_str(&format!("\n{name} → {target}: {:?}", link.stats()));
                }
            }
        }
        text
    }

    /// The link node `from` dials node `to`'s Raft port through.
    ///
    /// # Panics
    ///
    /// If the deployment was not started [with
    /// links](Deployment::start_with_links), or there is no such pair.
    pub fn raft_link(&self, from: usize, to: usize) -> &Link {
        self.raft_links
            .get(&(from, to))
            .unwrap_or_else(|| panic!("no raft link {from} → {to}: start the deployment with links"))
    }

    /// Every Raft link from or to node `n` (both directions to each peer).
    pub fn raft_links_of(&self, n: usize) -> Vec<&Link> {
        self.raft_links.iter().filter(|((from, to), _)| *from == n || *to == n).map(|(_, l)| l).collect()
    }

    /// Blackholes every Raft link from and to node `n`: it stays up, but
    /// hears from no peer and no peer hears from it, by timeouts rather
    /// than resets.
    pub fn isolate_node(&self, n: usize) {
        for link in self.raft_links_of(n) {
            link.blackhole();
        }
    }

    /// Heals every link of the deployment, Raft and probes' alike.
    pub fn heal_all(&self) {
        for link in self.raft_links.values() {
            link.heal();
        }
        for island in self.islands.values() {
            for (_, link) in island.links() {
                link.heal();
            }
        }
    }

    /// Runs probe `name` (added, not started) on an [`Island`] from its
    /// next start: its only ways out are a link to each coordinator's API
    /// port and one to each address in `checks` (the targets it checks),
    /// each at its own address, so what it learns from the coordinators
    /// leads through the links too. Needs network namespaces
    /// (`unshare --net`: root or `CAP_SYS_ADMIN`); fails saying so if not.
    pub fn wall_off_probe(&mut self, name: &str, checks: &[std::net::SocketAddr]) -> anyhow::Result<()> {
        ensure!(self.probes.contains_key(name), "probe {name} was never added");
        Island::check_supported()?;
        let dir = self.dir.path().join(format!("net-{name}"));
        std::fs::create_dir_all(&dir)?;
        let mut targets: Vec<std::net::SocketAddr> =
            (1..=self.nodes.len()).map(|n| self.api_addr(n).parse()).collect::<Result<_, _>>()?;
        targets.extend(checks);
        if self.net.is_none() {
            self.net = Some(links_runtime()?);
        }
        let net = self.net.as_ref().context("the links' runtime")?;
        let island = {
            let _entered = net.enter();
            Island::new(&dir, &targets)?
        };
        self.islands.insert(name.to_string(), island);
        Ok(())
    }

    /// The link probe `name` (walled off) reaches node `n`'s API through.
    ///
    /// # Panics
    ///
    /// If the probe was not [walled off](Deployment::wall_off_probe).
    pub fn probe_link(&self, name: &str, n: usize) -> &Link {
        let island = self.islands.get(name).unwrap_or_else(|| panic!("probe {name} is not walled off"));
        island.link(self.api_addr(n).parse().expect("a socket address"))
    }

    /// Every link from probe `name` (walled off) to a coordinator's API.
    pub fn probe_links(&self, name: &str) -> Vec<&Link> {
        (1..=self.nodes.len()).map(|n| self.probe_link(name, n)).collect()
    }
}

/// What a probe's log says of its runs: per start, `(previous_last_seq,
/// next_seq)` of "spool opened"; of its last SIGTERM, `(unacked,
/// last_seq)` of "session closed for shutdown". Compared with a
/// coordinator's ingest ledger (`probe list --json`: `processed_seqs`), it
/// shows whether every result the probe produced was counted exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLog {
    /// Per run of the probe: `(previous_last_seq, next_seq)`.
    pub starts: Vec<(u64, u64)>,
    /// Of the last clean shutdown: `(unacked, last_seq)`.
    pub shutdown: Option<(u64, u64)>,
}

impl ProbeLog {
    /// Every sequence number the probe handed out, as merged inclusive
    /// ranges: run i numbered from its `next_seq` up to where the next run
    /// found the previous one ended, the last run up to its `last_seq`.
    ///
    /// # Panics
    ///
    /// If the log has no clean shutdown (stop the probe with SIGTERM
    /// first).
    pub fn handed_out(&self) -> Vec<(u64, u64)> {
        let (_, last_seq) = self.shutdown.expect("a clean shutdown");
        let ends = self.starts.iter().skip(1).map(|s| s.0).chain([last_seq]);
        let mut runs: Vec<(u64, u64)> =
            self.starts.iter().map(|s| s.1).zip(ends).filter(|(first, last)| first <= last).collect();
        runs.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (first, last) in runs {
            match merged.last_mut() {
                Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        merged
    }
}

impl Deployment {
    /// Probe `name`'s runs and shutdown, from its log.
    pub fn probe_log(&self, name: &str) -> anyhow::Result<ProbeLog> {
        let text = self.log(&format!("{name}.log"));
        let mut starts = Vec::new();
        for line in text.lines().filter(|l| l.contains("spool opened")) {
            let previous = log_field(line, "previous_last_seq").context("no previous_last_seq=")?;
            starts.push((previous, log_field(line, "next_seq").context("no next_seq=")?));
        }
        let shutdown = match text.lines().rfind(|l| l.contains("session closed for shutdown")) {
            Some(line) => Some((
                log_field(line, "unacked").context("no unacked=")?,
                log_field(line, "last_seq").context("no last_seq=")?,
            )),
            None => None,
        };
        Ok(ProbeLog { starts, shutdown })
    }
}

/// The number after ` NAME=` in a log line.
fn log_field(line: &str, name: &str) -> Option<u64> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The runtime a deployment's links run on: two threads, as the proxies'
/// work is light, and timers must fire on time while the test thread
/// blocks on processes.
fn links_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("faultnet")
        .enable_all()
        .build()?)
}
