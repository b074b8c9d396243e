//! Phase deadlines and the I/O wrapper that timestamps the first request
//! byte written and the first response byte read.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use vantage_core::result::{CheckError, Phase};
use vantage_core::spec::PhaseTimeouts;

/// The deadlines of one check: the whole check's, and optional per-phase
/// ones inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    overall: tokio::time::Instant,
    timeout: Duration,
    phases: PhaseTimeouts,
}

impl Deadlines {
    /// Deadlines for a check starting now.
    pub(crate) fn start(timeout: Duration, phases: PhaseTimeouts) -> Self {
        Self { overall: tokio::time::Instant::now() + timeout, timeout, phases }
    }

    /// Runs `fut` as `phase`: it fails with a timeout naming the phase when
    /// the phase's own limit or the whole check's deadline passes first.
    pub(crate) async fn run<T>(
        &self,
        phase: Phase,
        fut: impl std::future::Future<Output = Result<T, CheckError>>,
    ) -> Result<T, CheckError> {
        let now = tokio::time::Instant::now();
        let (deadline, limit) = match self.phases.get(phase) {
            Some(limit) if now + limit < self.overall => (now + limit, limit),
            _ => (self.overall, self.timeout),
        };
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(result) => result,
            Err(_) => Err(CheckError::timeout(phase, limit)),
        }
    }
}

/// When the first byte was written, and the first byte read after it.
#[derive(Debug, Default)]
pub(crate) struct IoMarks {
    first_write: OnceLock<Instant>,
    first_read: OnceLock<Instant>,
}

impl IoMarks {
    /// When the first byte was accepted for writing.
    pub(crate) fn first_write(&self) -> Option<Instant> {
        self.first_write.get().copied()
    }

    /// When the first byte arrived after the first write.
    pub(crate) fn first_read(&self) -> Option<Instant> {
        self.first_read.get().copied()
    }
}

/// Wraps a stream (plain TCP, or TLS above it) and records [`IoMarks`].
///
/// Over TLS it wraps the TLS stream, so handshake traffic is not counted:
/// the first write is the first byte of the HTTP request, the first read the
/// first decrypted byte of the response.
#[derive(Debug)]
pub(crate) struct TimedIo<S> {
    inner: S,
    marks: Arc<IoMarks>,
}

impl<S> TimedIo<S> {
    pub(crate) fn new(inner: S) -> (Self, Arc<IoMarks>) {
        let marks = Arc::new(IoMarks::default());
        (Self { inner, marks: marks.clone() }, marks)
    }

    /// The time just before a write, until the first write has happened.
    ///
    /// Taken before the syscall, not after: on loopback the kernel delivers
    /// the bytes inside the write and may run the woken server on this CPU
    /// before the write returns, so a timestamp taken after it can be later
    /// than the server's answer (as curl's `time_pretransfer`, it is taken
    /// before sending).
    fn clock_before_write(&self) -> Option<Instant> {
        self.marks.first_write.get().is_none().then(Instant::now)
    }

    fn wrote(&self, n: usize, before: Option<Instant>) {
        if let (true, Some(at)) = (n > 0, before) {
            self.marks.first_write.get_or_init(|| at);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && self.marks.first_write.get().is_some()
        {
            self.marks.first_read.get_or_init(Instant::now);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let before = self.clock_before_write();
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.wrote(n, before);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let before = self.clock_before_write();
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.wrote(n, before);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_phase_limit_names_the_phase_and_the_overall_deadline_wins_when_sooner() {
        let mut phases = PhaseTimeouts::default();
        phases.set(Phase::Ttfb, Duration::from_secs(2));
        let d = Deadlines::start(Duration::from_secs(10), phases);
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), CheckError>(())
        };
        let e = d.run(Phase::Ttfb, slow()).await.unwrap_err();
        assert_eq!(e.phase, Some(Phase::Ttfb));
        assert_eq!(e.message, "no response within 2s (phase ttfb)");
        let e = d.run(Phase::Transfer, slow()).await.unwrap_err();
        assert_eq!(e.message, "body not complete within 10s (phase transfer)");
        // 12 s have passed: the overall deadline is gone, even for a phase with its own limit.
        let e = d.run(Phase::Ttfb, slow()).await.unwrap_err();
        assert_eq!(e.message, "no response within 10s (phase ttfb)");
    }
}
