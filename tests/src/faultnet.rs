//! A network the tests control: a userspace TCP proxy per link, in the
//! spirit of etcd's `pkg/proxy` and raft-rs's `harness/src/network.rs`.
//!
//! A [`Link`] listens on a loopback port and forwards every connection to
//! one target address. While it runs, the test changes what the link does
//! to the bytes crossing it:
//!
//! - [`Link::delay`] — added latency per direction. Every chunk read is
//!   delivered `delay` after it was read, and chunks are pipelined, so a
//!   stream of messages each sees the delay once (as on a long cable), not
//!   once per message in the queue.
//! - [`Link::blackhole`] — nothing crosses in either direction; connections
//!   stay open and new ones are accepted but not passed on, so peers see
//!   timeouts, never resets. [`Link::cut`] does the same to one direction
//!   only (A→B bytes stop, B→A bytes flow).
//! - [`Link::refuse_new`] — new connections are accepted and reset at once;
//!   the ones already open carry on.
//! - [`Link::reset`] — every open connection is reset (RST, with
//!   `SO_LINGER` 0) on both of its sides.
//! - [`Link::heal`] — back to transparent.
//!
//! Bytes held by a blackhole or a cut are kept, not dropped, and delivered
//! in order once the direction opens again: that is what TCP does after a
//! partition shorter than its retransmission timeout, and it keeps the
//! streams on both sides intact (a proxy that dropped bytes mid-stream would
//! corrupt them, which no real network does). A new connection is opened to
//! the target only while both directions flow, as a TCP handshake needs
//! both. The proxy is byte-level, so TLS passes through untouched.
//!
//! [`Link::stats`] counts connections and bytes, so a test can check that a
//! fault applied. [`Island`] runs a process in its own network namespace
//! whose only ways out are links, for a process (a probe agent) that learns
//! addresses at run time and would otherwise route around a proxy.
//!
//! Dropping a link or an island stops all of its tasks. Targets must be
//! loopback addresses. Constructors must be called from within a Tokio
//! runtime.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{ensure, Context as _};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::process::workspace_bin;
use crate::tasks::TaskSet;

/// One direction of a link's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client that dialed the link to the target.
    ToTarget,
    /// From the target back to the client.
    ToClient,
}

/// What a link has carried so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections accepted from clients (refused ones included).
    pub accepted: u64,
    /// New connections reset at once by [`Link::refuse_new`].
    pub refused: u64,
    /// Open connections reset by [`Link::reset`].
    pub reset: u64,
    /// Connections open to the target right now.
    pub open: u64,
    /// Bytes delivered to the target.
    pub bytes_to_target: u64,
    /// Bytes delivered to clients.
    pub bytes_to_client: u64,
}

/// A TCP proxy from a loopback port to one target, with faults applied at
/// run time. Dropping it closes the listener and every connection.
pub struct Link {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: TaskSet,
    /// The Unix socket file to remove on drop (links into an [`Island`]).
    socket_file: Option<PathBuf>,
}

impl Link {
    /// Listens on `127.0.0.1:0` and forwards to `target`, transparently
    /// until told otherwise. `target` must be a loopback address.
    pub fn start(target: SocketAddr) -> anyhow::Result<Link> {
        ensure_loopback(target)?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind link")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener).context("register link listener")?;
        Ok(Link::serve(Front::Tcp(listener), addr, target, None))
    }

    /// Listens on the Unix socket `path` (which must not exist) and
    /// forwards to `target`: the host side of a link into an [`Island`],
    /// whose processes dial `target` itself. [`Link::addr`] is `target`.
    pub fn start_unix(path: &Path, target: SocketAddr) -> anyhow::Result<Link> {
        ensure_loopback(target)?;
        let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
        Ok(Link::serve(Front::Unix(listener), target, target, Some(path.to_path_buf())))
    }

    fn serve(front: Front, addr: SocketAddr, target: SocketAddr, socket_file: Option<PathBuf>) -> Link {
        let shared = Arc::new(Shared {
            target,
            faults: watch::Sender::new(Faults::default()),
            counters: Counters::default(),
        });
        let tasks = TaskSet::default();
        tasks.spawn(accept_loop(front, shared.clone(), tasks.clone()));
        Link { addr, shared, tasks, socket_file }
    }

    /// Where clients dial this link.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where this link forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Delivers bytes in `direction` `by` after they were read (zero:
    /// at once). Applies to bytes read from now on.
    pub fn delay(&self, direction: Direction, by: Duration) {
        self.shared.faults.send_modify(|f| f.flow_mut(direction).delay = by);
    }

    /// Stops every byte in both directions, on open connections and new
    /// ones, until [`Link::heal`]: peers see timeouts, not resets.
    pub fn blackhole(&self) {
        self.shared.faults.send_modify(|f| {
            f.to_target.held = true;
            f.to_client.held = true;
        });
    }

    /// Stops the bytes in `direction` only, until [`Link::heal`].
    pub fn cut(&self, direction: Direction) {
        self.shared.faults.send_modify(|f| f.flow_mut(direction).held = true);
    }

    /// Resets new connections as soon as they are accepted, until
    /// [`Link::heal`]; open connections are left alone.
    pub fn refuse_new(&self) {
        self.shared.faults.send_modify(|f| f.refuse_new = true);
    }

    /// Resets (RST) every connection open now, on both sides. A one-off:
    /// connections made afterwards are served as the other faults say.
    pub fn reset(&self) {
        self.shared.faults.send_modify(|f| f.resets += 1);
    }

    /// Back to transparent: no delay, nothing held (held bytes are
    /// delivered now), new connections served.
    pub fn heal(&self) {
        self.shared.faults.send_modify(|f| {
            let resets = f.resets;
            *f = Faults { resets, ..Faults::default() };
        });
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkStats {
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            reset: get(&c.reset),
            open: get(&c.open),
            bytes_to_target: get(&c.bytes_to_target),
            bytes_to_client: get(&c.bytes_to_client),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.tasks.close();
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field("faults", &*self.shared.faults.borrow())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A separate network namespace for one process, whose only ways out are
/// [`Link`]s: one per loopback address the process may dial, at that same
/// address, so addresses it learns at run time (a coordinator's advertised
/// API address) lead through a link too, and nothing else is reachable.
///
/// Inside the namespace, `vantage-netns-relay` listens on each address and
/// passes every connection over a Unix socket (which crosses namespaces) to
/// the link on the host side. The process is started by `unshare --net`
/// (needs root or `CAP_SYS_ADMIN`) through `sh`, which brings `lo` up,
/// starts the relay in the background and `exec`s the process, so the
/// process keeps its pid for signals; the relay exits when its parent does.
///
/// Traffic stays on loopback and Unix sockets. [`Link::reset`] on an
/// island's link closes the island side of a connection rather than
/// resetting it (a Unix socket has no RST); the relay then ends the TCP
/// connection inside the island.
pub struct Island {
    dir: PathBuf,
    links: BTreeMap<SocketAddr, Link>,
}

impl Island {
    /// An island whose process reaches exactly `targets`; the relay's Unix
    /// sockets go in `dir` (which must exist; keep its path short: a Unix
    /// socket path has at most 107 bytes).
    pub fn new(dir: &Path, targets: &[SocketAddr]) -> anyhow::Result<Island> {
        let mut links = BTreeMap::new();
        for target in targets {
            let path = dir.join(format!("link-{}.sock", target.port()));
            links.insert(*target, Link::start_unix(&path, *target)?);
        }
        Ok(Island { dir: dir.to_path_buf(), links })
    }

    /// The link to `target`.
    ///
    /// # Panics
    ///
    /// If the island has no link to `target`.
    pub fn link(&self, target: SocketAddr) -> &Link {
        self.links.get(&target).unwrap_or_else(|| panic!("the island has no link to {target}"))
    }

    /// Every link, by target.
    pub fn links(&self) -> impl Iterator<Item = (&SocketAddr, &Link)> {
        self.links.iter()
    }

    /// `command` made to run inside a fresh network namespace of this
    /// island: its program and arguments are kept, its environment and
    /// working directory too. `name` tells the relay's files apart.
    pub fn wrap(&self, name: &str, command: &Command) -> anyhow::Result<Command> {
        let relay = workspace_bin("vantage-netns-relay")?;
        let ready = self.dir.join(format!("relay-{name}.ready"));
        let _ = std::fs::remove_file(&ready);
        let mut relay_args =
            vec![quote(&relay.to_string_lossy()), "--ready".into(), quote(&ready.to_string_lossy())];
        for (target, link) in &self.links {
            let path = link.socket_file.as_ref().expect("island links listen on Unix sockets");
            relay_args.push("--map".into());
            relay_args.push(quote(&format!("{target}={}", path.display())));
        }
        let mut program = vec![quote(&command.get_program().to_string_lossy())];
        program.extend(command.get_args().map(|a| quote(&a.to_string_lossy())));
        // Bounded wait (5 s) for the relay to listen before the process
        // starts, so its first connects find the addresses open.
        let script = format!(
            "ip link set lo up || exit 97\n{} &\ni=0\nwhile [ ! -e {} ]; do i=$((i+1)); [ $i -gt 500 ] && exit 98; sleep 0.01; done\nexec {}",
            relay_args.join(" "),
            quote(&ready.to_string_lossy()),
            program.join(" ")
        );
        let mut wrapped = Command::new("unshare");
        wrapped.args(["--net", "--", "sh", "-c", &script]);
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        Ok(wrapped)
    }

    /// Fails, saying why, if this machine cannot make network namespaces
    /// (no `unshare`, or not allowed to).
    pub fn check_supported() -> anyhow::Result<()> {
        let out = Command::new("unshare")
            .args(["--net", "--", "sh", "-c", "ip link set lo up"])
            .output()
            .context("run unshare (util-linux) to make a network namespace")?;
        ensure!(
            out.status.success(),
            "cannot make a network namespace (unshare --net needs root or CAP_SYS_ADMIN, and `ip` from iproute2): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }
}

impl std::fmt::Debug for Island {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Island").field("dir", &self.dir).field("links", &self.links).finish()
    }
}

/// Single-quotes `text` for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn ensure_loopback(target: SocketAddr) -> anyhow::Result<()> {
    ensure!(
        target.ip().is_loopback(),
        "link target {target} is not a loopback address: tests stay on loopback"
    );
    Ok(())
}

/// The most bytes read in one go.
const CHUNK: usize = 16 * 1024;

/// Chunks read but not yet delivered, per direction and connection: what a
/// held or delayed direction keeps in the proxy before the kernel's buffers
/// take over.
const CHUNKS_IN_FLIGHT: usize = 16;

/// What the link does now; connections watch it.
#[derive(Debug, Clone, Default)]
struct Faults {
    to_target: Flow,
    to_client: Flow,
    refuse_new: bool,
    /// Incremented by each [`Link::reset`]; a connection accepted before
    /// the latest increment is reset.
    resets: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    held: bool,
    delay: Duration,
}

impl Faults {
    fn flow(&self, direction: Direction) -> Flow {
        match direction {
            Direction::ToTarget => self.to_target,
            Direction::ToClient => self.to_client,
        }
    }

    fn flow_mut(&mut self, direction: Direction) -> &mut Flow {
        match direction {
            Direction::ToTarget => &mut self.to_target,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

struct Shared {
    target: SocketAddr,
    faults: watch::Sender<Faults>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    open: AtomicU64,
    bytes_to_target: AtomicU64,
    bytes_to_client: AtomicU64,
}

impl Counters {
    fn bytes(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::ToTarget => &self.bytes_to_target,
            Direction::ToClient => &self.bytes_to_client,
        }
    }
}

enum Front {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Front {
    async fn accept(&self) -> io::Result<ClientStream> {
        match self {
            Front::Tcp(l) => l.accept().await.map(|(s, _)| ClientStream::Tcp(s)),
            Front::Unix(l) => l.accept().await.map(|(s, _)| ClientStream::Unix(s)),
        }
    }
}

async fn accept_loop(front: Front, shared: Arc<Shared>, tasks: TaskSet) {
    loop {
        let client = match front.accept().await {
            Ok(client) => client,
            Err(_) => {
                // Out of file descriptors, or a connection gone before it
                // was accepted: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let (refuse, epoch) = {
            let faults = shared.faults.borrow();
            (faults.refuse_new, faults.resets)
        };
        if refuse {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            client.abort();
            continue;
        }
        tasks.spawn(connection(client, epoch, shared.clone()));
    }
}

/// How a connection ended.
enum End {
    /// Both directions closed cleanly.
    Closed,
    /// One side failed (a reset, usually): reset the other.
    Broken,
    /// [`Link::reset`].
    Reset,
}

async fn connection(mut client: ClientStream, epoch: u64, shared: Arc<Shared>) {
    let mut faults = shared.faults.subscribe();
    // A handshake needs both directions: connect to the target only once
    // both flow (or give up on a reset).
    let opened = faults.wait_for(|f| f.resets != epoch || (!f.to_target.held && !f.to_client.held)).await;
    if opened.map_or(true, |f| f.resets != epoch) {
        shared.counters.reset.fetch_add(1, Ordering::Relaxed);
        client.abort();
        return;
    }
    let mut upstream = match TcpStream::connect(shared.target).await {
        Ok(stream) => stream,
        Err(_) => {
            // The target refused: so does the link.
            client.abort();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    client.set_nodelay();
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let end = {
        let (client_read, client_write) = tokio::io::split(&mut client);
        let (upstream_read, upstream_write) = upstream.split();
        let to_target = pump(client_read, upstream_write, Direction::ToTarget, &shared);
        let to_client = pump(upstream_read, client_write, Direction::ToClient, &shared);
        let mut reset = shared.faults.subscribe();
        tokio::select! {
            both = async { tokio::try_join!(to_target, to_client) } => {
                if both.is_ok() { End::Closed } else { End::Broken }
            }
            _ = reset.wait_for(|f| f.resets != epoch) => End::Reset,
        }
    };
    shared.counters.open.fetch_sub(1, Ordering::Relaxed);
    match end {
        End::Closed => {}
        End::Broken => {
            client.abort();
            abort_tcp(upstream);
        }
        End::Reset => {
            shared.counters.reset.fetch_add(1, Ordering::Relaxed);
            client.abort();
            abort_tcp(upstream);
        }
    }
}

/// Carries one direction: a reader stamping each chunk with when it is
/// due, and a writer delivering chunks in order once due and not held.
/// An end of stream is passed on as a half-close.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    shared: &Shared,
) -> io::Result<()> {
    // (when due, bytes); no bytes is the end of the stream.
    let (chunks, mut queued) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(CHUNKS_IN_FLIGHT);
    let read = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            let due = Instant::now() + shared.faults.borrow().flow(direction).delay;
            let bytes = (n > 0).then(|| buf[..n].to_vec());
            if chunks.send((due, bytes)).await.is_err() || n == 0 {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let write = async {
        let mut faults = shared.faults.subscribe();
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if faults.wait_for(|f| !f.flow(direction).held).await.is_err() {
                return Ok(());
            }
            match chunk {
                None => {
                    to.shutdown().await?;
                    return Ok(());
                }
                Some(bytes) => {
                    to.write_all(&bytes).await?;
                    shared.counters.bytes(direction).fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Closes `stream` with a reset (RST) instead of a FIN.
fn abort_tcp(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// A client's side of a connection: TCP, or a Unix socket from an
/// island's relay.
enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl ClientStream {
    fn set_nodelay(&self) {
        if let ClientStream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// Closes with a reset where the transport has one.
    fn abort(self) {
        match self {
            ClientStream::Tcp(s) => abort_tcp(s),
            ClientStream::Unix(s) => drop(s),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
