//! Accepting connections for a gRPC listener: plain TCP, or TLS done by
//! tokio-rustls with a given rustls server config (ring provider; tonic's
//! own TLS features would pull in aws-lc, a C build).
//!
//! [`incoming`] runs the accept loop: each handshake runs in its own task
//! with a deadline, at most [`MAX_PENDING_HANDSHAKES`] at once, so a slow or
//! hostile client cannot stall the listener; ready streams go to tonic's
//! `serve_with_incoming_shutdown`. The peer (Raft) port requires a client
//! certificate from the cluster CA; the API port does not.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::Connected;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting for tonic to pick them up.
const ACCEPT_BACKLOG: usize = 64;
/// Pause after a failed `accept` (for example out of file descriptors), so
/// the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// At most this many connections may be in their TLS handshake at once;
/// more are closed at once, so half-open connections cannot pile up.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// What a listener accepts.
#[derive(Clone)]
pub struct Acceptance {
    /// The port's name in logs (`raft`, `api`).
    pub port: &'static str,
    /// TLS with this config; `None` is plaintext (`insecure = true` only).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse clients without a certificate (the config's verifier decides
    /// which certificates are good).
    pub require_client_cert: bool,
}

/// The stream of accepted connections, and the tasks producing it.
pub struct Incoming {
    /// Ready connections for tonic.
    pub stream: ReceiverStream<Result<AcceptedStream, io::Error>>,
    guard: AcceptGuard,
}

impl Incoming {
    /// Splits into the stream and the guard that stops the accept loop
    /// when dropped.
    pub fn into_parts(self) -> (ReceiverStream<Result<AcceptedStream, io::Error>>, AcceptGuard) {
        (self.stream, self.guard)
    }
}

/// Stops the accept loop and its handshakes when dropped.
pub struct AcceptGuard {
    accept_loop: tokio::task::JoinHandle<()>,
    handshakes: TaskTracker,
}

impl Drop for AcceptGuard {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.handshakes.close();
    }
}

/// Starts accepting on `listener` until `shutdown`.
pub fn incoming(listener: TcpListener, acceptance: Acceptance, shutdown: CancellationToken) -> Incoming {
    let (accepted, stream) = mpsc::channel::<Result<AcceptedStream, io::Error>>(ACCEPT_BACKLOG);
    let handshakes = TaskTracker::new();
    let acceptor = acceptance.tls.map(tokio_rustls::TlsAcceptor::from);
    let accept_loop = {
        let handshakes = handshakes.clone();
        tokio::spawn(async move {
            accept_loop(
                listener,
                acceptor,
                accepted,
                handshakes,
                acceptance.port,
                acceptance.require_client_cert,
                shutdown,
            )
            .await;
        })
    };
    Incoming { stream: ReceiverStream::new(stream), guard: AcceptGuard { accept_loop, handshakes } }
}

/// Why an incoming connection was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptError {
    /// The TLS handshake failed (wrong CA, bad certificate, not TLS).
    #[error("tls handshake with {remote} failed: {source}")]
    Handshake {
        /// The connecting address.
        remote: SocketAddr,
        /// What rustls reported.
        #[source]
        source: io::Error,
    },
    /// The handshake did not finish in time.
    #[error("tls handshake with {remote} did not finish within {timeout:?}")]
    HandshakeTimeout {
        /// The connecting address.
        remote: SocketAddr,
        /// The limit.
        timeout: Duration,
    },
    /// The client completed a handshake without a certificate.
    #[error("{remote} presented no client certificate; this port requires one from the cluster CA")]
    NoClientCertificate {
        /// The connecting address.
        remote: SocketAddr,
    },
}

/// Turns an accepted TCP connection into a peer connection: a TLS
/// handshake that must present a client certificate, or plaintext when
/// `tls` is `None`.
pub(crate) async fn accept(
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    require_client_cert: bool,
    handshake_timeout: Duration,
) -> Result<AcceptedStream, AcceptError> {
    let Some(acceptor) = tls else {
        return Ok(AcceptedStream::Plain(stream, remote));
    };
    let tls_stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Err(_) => return Err(AcceptError::HandshakeTimeout { remote, timeout: handshake_timeout }),
        Ok(Err(source)) => return Err(AcceptError::Handshake { remote, source }),
        Ok(Ok(tls_stream)) => tls_stream,
    };
    if require_client_cert && tls_stream.get_ref().1.peer_certificates().is_none_or(|certs| certs.is_empty())
    {
        return Err(AcceptError::NoClientCertificate { remote });
    }
    Ok(AcceptedStream::Tls(Box::new(tls_stream), remote))
}

/// An accepted peer connection, plaintext or TLS.
pub enum AcceptedStream {
    /// Plaintext (`insecure = true`).
    Plain(TcpStream, SocketAddr),
    /// TLS with a verified client certificate.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, SocketAddr),
}

/// What the peer service learns about a connection.
#[derive(Debug, Clone)]
pub struct AcceptedInfo {
    /// The peer's address.
    #[allow(dead_code)] // kept for request extensions and debugging
    pub(crate) remote: SocketAddr,
}

impl Connected for AcceptedStream {
    type ConnectInfo = AcceptedInfo;

    fn connect_info(&self) -> AcceptedInfo {
        match self {
            AcceptedStream::Plain(_, remote) | AcceptedStream::Tls(_, remote) => {
                AcceptedInfo { remote: *remote }
            }
        }
    }
}

impl AsyncRead for AcceptedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AcceptedStream::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            AcceptedStream::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AcceptedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AcceptedStream::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            AcceptedStream::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AcceptedStream::Plain(s, _) => Pin::new(s).poll_flush(cx),
            AcceptedStream::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AcceptedStream::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            AcceptedStream::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AcceptedStream::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            AcceptedStream::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            AcceptedStream::Plain(s, _) => s.is_write_vectored(),
            AcceptedStream::Tls(s, _) => s.is_write_vectored(),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    accepted: mpsc::Sender<Result<AcceptedStream, std::io::Error>>,
    handshakes: TaskTracker,
    port: &'static str,
    require_client_cert: bool,
    shutdown: CancellationToken,
) {
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => return,
            result = listener.accept() => match result {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!(port, %error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::warn!(port, %remote, limit = MAX_PENDING_HANDSHAKES, "too many pending handshakes; closing the connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let accepted = accepted.clone();
        let shutdown = shutdown.clone();
        handshakes.spawn(async move {
            let peer = tokio::select! {
                () = shutdown.cancelled() => return,
                peer = accept(stream, remote, acceptor.as_ref(), require_client_cert, HANDSHAKE_TIMEOUT) => peer,
            };
            drop(permit);
            match peer {
                Ok(peer) => {
                    let _ = accepted.send(Ok(peer)).await;
                }
                Err(error) => log_refused(port, remote, &error),
            }
        });
    }
}

fn log_refused(port: &'static str, remote: SocketAddr, error: &AcceptError) {
    // A peer that gave up before saying anything (a probe that timed out
    // while this node was starting, a port scan) is not worth a warning.
    let closed_early = matches!(error, AcceptError::Handshake { source, .. }
        if source.kind() == std::io::ErrorKind::UnexpectedEof);
    if closed_early {
        tracing::debug!(port, %remote, %error, "a connection closed before its tls handshake");
    } else {
        tracing::warn!(port, %remote, %error, "refused a connection");
    }
}
