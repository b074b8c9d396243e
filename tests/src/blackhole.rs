//! Loopback addresses that fail the way remote hosts do: one where a TCP
//! connect never completes, and one where it is refused at once.
//!
//! The black hole is a listener with a backlog of 0 that never accepts,
//! whose accept queue is filled by a few connections of our own. Linux then
//! drops further SYNs, so a client's connect stays pending until its own
//! timeout — the same symptom as a firewall silently dropping packets,
//! without leaving loopback.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};

/// How long a filler connect may take before we conclude the queue is full.
const FILL_PROBE_TIMEOUT: Duration = Duration::from_millis(150);

/// At most this many filler connections; the kernel needs one or two.
const MAX_FILLERS: usize = 8;

/// A loopback TCP address where new connects never complete. Dropping it
/// closes the listener and the filler connections.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    // Held only to keep the listener and its full queue alive.
    _listener: Socket,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    /// Opens the listener and fills its accept queue.
    ///
    /// Blocks for about 150 ms while it confirms the queue is full. Needs no
    /// Tokio runtime.
    pub fn start() -> anyhow::Result<Blackhole> {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .context("create blackhole socket")?;
        listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).context("bind blackhole")?;
        listener.listen(0).context("listen on blackhole")?;
        let addr = listener.local_addr()?.as_socket().context("blackhole has no inet address")?;

        let mut fillers = Vec::new();
        while fillers.len() < MAX_FILLERS {
            match TcpStream::connect_timeout(&addr, FILL_PROBE_TIMEOUT) {
                Ok(stream) => fillers.push(stream),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    // This connect got no answer: the queue is full.
                    return Ok(Blackhole { addr, _listener: listener, _fillers: fillers });
                }
                Err(error) => return Err(error).context("fill blackhole accept queue"),
            }
        }
        anyhow::bail!("blackhole accept queue did not fill after {MAX_FILLERS} connections")
    }

    /// The address whose connects never complete.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A loopback address with nothing listening, so connects are refused.
///
/// Binds an ephemeral port and releases it; another process could in
/// principle take the port in between, which on a test machine is
/// vanishingly unlikely.
///
/// # Panics
///
/// If no loopback port can be bound at all.
pub fn refused_addr() -> SocketAddr {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral loopback port");
    listener.local_addr().expect("bound listener has an address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_to_blackhole_never_completes() {
        let blackhole = Blackhole::start().unwrap();
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(blackhole.addr()),
        )
        .await;
        assert!(attempt.is_err(), "connect completed: {attempt:?}");
    }

    #[tokio::test]
    async fn refused_addr_refuses() {
        let error = tokio::net::TcpStream::connect(refused_addr()).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
