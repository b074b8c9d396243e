//! TLS on the peer (Raft) port, with tokio-rustls over plain tokio sockets.
//!
//! tonic's own TLS features enable tokio-rustls's default crypto provider
//! (aws-lc, a C/CMake build) and take PEM files rather than ready rustls
//! configs, so the peer listener runs its own accept loop
//! ([`crate::listener`]) and the client its own connector (`PeerConnector`).
//! Both use the [`PeerTls`] configs exactly as given, so the provider is
//! whichever the configs were built with (ring, in this workspace).
//!
//! With [`PeerTls`] absent the port is plaintext: only for `insecure = true`
//! (dev mode, tests).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The TLS configuration of the peer port.
///
/// The server config must ask for client certificates and verify them
/// against the cluster CA (a `WebPkiClientVerifier` over the CA); the
/// acceptor also drops any connection that completed a handshake without a
/// client certificate, so a server config that merely offers client auth
/// cannot open the port. The client config presents this node's
/// certificate and trusts the cluster CA. A peer's certificate must name
/// the host part of its `raft_addr` (a DNS name or an IP address SAN).
#[derive(Clone)]
pub struct PeerTls {
    /// Used by the peer listener.
    pub server: Arc<rustls::ServerConfig>,
    /// Used when connecting to peers.
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// The configs with ALPN `h2` set where the caller left ALPN empty, as
    /// gRPC runs over HTTP/2 only.
    pub(crate) fn with_h2_alpn(&self) -> PeerTls {
        let mut server = self.server.clone();
        if server.alpn_protocols.is_empty() {
            let mut config = (*server).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            server = Arc::new(config);
        }
        let mut client = self.client.clone();
        if client.alpn_protocols.is_empty() {
            let mut config = (*client).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            client = Arc::new(config);
        }
        PeerTls { server, client }
    }
}

/// Connects to peers for tonic: TCP, then TLS with the client config when
/// one is set. The server name checked is the host of the URI (the peer's
/// `raft_addr`); the TCP connection goes there too, unless the connector
/// was made [`PeerConnector::dialing`] another address.
#[derive(Clone)]
pub(crate) struct PeerConnector {
    tls: Option<tokio_rustls::TlsConnector>,
    /// `host:port` to connect to instead of the URI's.
    dial: Option<String>,
}

impl PeerConnector {
    /// A connector using `client` for TLS, or plaintext with `None`.
    pub(crate) fn new(client: Option<Arc<rustls::ClientConfig>>) -> PeerConnector {
        PeerConnector { tls: client.map(tokio_rustls::TlsConnector::from), dial: None }
    }

    /// This connector, connecting TCP to `addr` (`host:port`: a proxy, a
    /// NAT) while TLS still checks the URI's host.
    pub(crate) fn dialing(&self, addr: String) -> PeerConnector {
        PeerConnector { tls: self.tls.clone(), dial: Some(addr) }
    }
}

/// Why connecting to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URI has no host or port.
    #[error("peer address {uri} has no host or port")]
    BadAddress {
        /// The URI.
        uri: String,
    },
    /// The host cannot be used as a TLS server name.
    #[error("peer host {host:?} is not a valid TLS server name")]
    BadServerName {
        /// The host.
        host: String,
    },
    /// TCP connect failed.
    #[error("cannot connect to peer {addr}: {source}")]
    Tcp {
        /// host:port.
        addr: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error("tls handshake with peer {addr} failed: {source}")]
    Handshake {
        /// host:port.
        addr: String,
        /// What rustls reported.
        #[source]
        source: io::Error,
    },
}

/// A connection to a peer, plaintext or TLS.
pub(crate) enum ClientStream {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tower_service::Service<Uri> for PeerConnector {
    type Response = TokioIo<ClientStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let dial = self.dial.clone();
        Box::pin(async move {
            let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
                return Err(ConnectError::BadAddress { uri: uri.to_string() });
            };
            // IPv6 literals come bracketed in URIs.
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let tcp = match &dial {
                None => TcpStream::connect((host.as_str(), port)).await,
                Some(dial) => TcpStream::connect(dial.as_str()).await,
            };
            let addr = match &dial {
                None => format!("{host}:{port}"),
                Some(dial) => format!("{host}:{port} (dialed at {dial})"),
            };
            let tcp = tcp.map_err(|source| ConnectError::Tcp { addr: addr.clone(), source })?;
            // Raft messages are small and latency-bound.
            let _ = tcp.set_nodelay(true);
            let Some(connector) = tls else {
                return Ok(TokioIo::new(ClientStream::Plain(tcp)));
            };
            let server_name = ServerName::try_from(host.clone())
                .map_err(|_| ConnectError::BadServerName { host: host.clone() })?;
            let stream = connector
                .connect(server_name, tcp)
                .await
                .map_err(|source| ConnectError::Handshake { addr, source })?;
            Ok(TokioIo::new(ClientStream::Tls(Box::new(stream))))
        })
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
