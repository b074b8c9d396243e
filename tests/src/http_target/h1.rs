//! The hand-written HTTP/1.1 server: reads request heads off the raw stream
//! and writes each response byte exactly when its [`Behaviour`] says.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::behaviour::{reason_phrase, split_target, Behaviour, HUGE_BODY_BYTES};
use super::Counters;

/// Longest request head accepted; longer ones get a 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Piece size for streaming `huge=1` bodies.
const HUGE_PIECE: &[u8] = &[b'x'; 64 * 1024];

/// A byte stream with a TCP socket underneath, so `reset=1` can set
/// `SO_LINGER` on it whether or not TLS is in between.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Serves requests on one connection until either side closes it.
pub(super) async fn serve<S: Transport>(mut stream: S, counters: Arc<Counters>) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head = match read_head(&mut stream, &mut buf).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Io) => return,
            Err(HeadError::TooLarge) => {
                let _ = write_error(&mut stream, 431, "request head too large").await;
                return;
            }
            Err(HeadError::Malformed) => {
                let _ = write_error(&mut stream, 400, "malformed request head").await;
                return;
            }
        };
        counters.count_request();
        if discard_body(&mut stream, &mut buf, &head).await.is_err() {
            return;
        }
        let failing = counters.fails_for(head.user_agent.as_deref());
        match respond(&mut stream, &head, failing).await {
            Ok(After::KeepAlive) => continue,
            Ok(After::Close) => {
                // Graceful: FIN (and close_notify under TLS), not a reset.
                let _ = stream.shutdown().await;
                return;
            }
            Ok(After::Drop) | Err(_) => return,
        }
    }
}

/// What to do with the connection once a response is written.
enum After {
    KeepAlive,
    Close,
    /// Drop the socket as it is (after `reset=1` set a zero linger).
    Drop,
}

/// How a response body is delimited.
#[derive(Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    /// 1xx, 204 and 304 responses carry no body and no length.
    None,
}

async fn respond<S: Transport>(stream: &mut S, request: &RequestHead, failing: bool) -> io::Result<After> {
    let (_path, query) = split_target(&request.target);
    let behaviour = match Behaviour::from_query(query).map(|b| b.failing_if(failing)) {
        Ok(behaviour) => behaviour,
        Err(message) => {
            write_error(stream, 400, &message).await?;
            return Ok(After::Close);
        }
    };
    if behaviour.hang {
        std::future::pending::<()>().await;
    }
    if !behaviour.headers_delay.is_zero() {
        tokio::time::sleep(behaviour.headers_delay).await;
    }
    if behaviour.malformed {
        stream.write_all(b"HELLO\r\n\r\n").await?;
        stream.flush().await?;
        return Ok(After::Close);
    }
    if behaviour.reset {
        stream.tcp().set_zero_linger()?;
        return Ok(After::Drop);
    }

    let send_body = request.method != "HEAD";
    if behaviour.close_early {
        let mut out = response_head(&behaviour, behaviour.status, Framing::Length(1000), &[], true);
        if send_body {
            out.extend_from_slice(&[b'x'; 10]);
        }
        stream.write_all(&out).await?;
        stream.flush().await?;
        return Ok(After::Close);
    }

    let close = !request.keep_alive();
    if let Some(location) = &behaviour.redirect {
        let location = [("Location", location.as_str())];
        let out = response_head(&behaviour, behaviour.redirect_status, Framing::Length(0), &location, close);
        stream.write_all(&out).await?;
        stream.flush().await?;
        return Ok(after(close));
    }

    if behaviour.huge {
        let framing = if behaviour.chunked { Framing::Chunked } else { Framing::Length(HUGE_BODY_BYTES) };
        let out = response_head(&behaviour, behaviour.status, framing, &[], true);
        stream.write_all(&out).await?;
        if send_body {
            let mut sent = 0;
            while sent < HUGE_BODY_BYTES {
                write_piece(stream, framing, HUGE_PIECE).await?;
                sent += HUGE_PIECE.len() as u64;
            }
            finish_body(stream, framing).await?;
        }
        stream.flush().await?;
        return Ok(After::Close);
    }

    let framing = if Behaviour::status_has_no_body(behaviour.status) {
        Framing::None
    } else if behaviour.chunked {
        Framing::Chunked
    } else {
        Framing::Length(behaviour.body.len() as u64)
    };
    let head = response_head(&behaviour, behaviour.status, framing, &[], close);
    if !send_body || matches!(framing, Framing::None) {
        stream.write_all(&head).await?;
    } else if let Some(drip) = behaviour.drip {
        stream.write_all(&head).await?;
        stream.flush().await?;
        for piece in drip.split(&behaviour.body) {
            tokio::time::sleep(drip.pause()).await;
            write_piece(stream, framing, &piece).await?;
            stream.flush().await?;
        }
        finish_body(stream, framing).await?;
    } else {
        // One write, so head and body normally leave in one segment.
        let mut out = head;
        frame_piece(&mut out, framing, &behaviour.body);
        if matches!(framing, Framing::Chunked) {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        stream.write_all(&out).await?;
    }
    stream.flush().await?;
    Ok(after(close))
}

fn after(close: bool) -> After {
    if close {
        After::Close
    } else {
        After::KeepAlive
    }
}

fn response_head(
    behaviour: &Behaviour,
    status: u16,
    framing: Framing,
    extra: &[(&str, &str)],
    close: bool,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    match framing {
        Framing::Length(length) => {
            head.push_str(&format!("Content-Length: {length}\r\n"));
            head.push_str(&format!("Content-Type: {}\r\n", behaviour.content_type));
        }
        Framing::Chunked => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            head.push_str(&format!("Content-Type: {}\r\n", behaviour.content_type));
        }
        Framing::None => {}
    }
    for (name, value) in extra
        .iter()
        .copied()
        .chain(behaviour.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())))
    {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Appends one body piece in the given framing. Empty pieces are skipped
/// under chunked framing, where an empty chunk would end the body.
fn frame_piece(out: &mut Vec<u8>, framing: Framing, piece: &[u8]) {
    match framing {
        Framing::Chunked if piece.is_empty() => {}
        Framing::Chunked => {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Length(_) => out.extend_from_slice(piece),
        Framing::None => {}
    }
}

async fn write_piece<S: Transport>(stream: &mut S, framing: Framing, piece: &[u8]) -> io::Result<()> {
    if let Framing::Length(_) = framing {
        return stream.write_all(piece).await;
    }
    let mut out = Vec::with_capacity(piece.len() + 16);
    frame_piece(&mut out, framing, piece);
    stream.write_all(&out).await
}

async fn finish_body<S: Transport>(stream: &mut S, framing: Framing) -> io::Result<()> {
    match framing {
        Framing::Chunked => stream.write_all(b"0\r\n\r\n").await,
        Framing::Length(_) | Framing::None => Ok(()),
    }
}

async fn write_error<S: Transport>(stream: &mut S, status: u16, message: &str) -> io::Result<()> {
    let body = format!("vantage-tests: {message}\n");
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// The parts of a request head the server acts on.
#[derive(Debug)]
struct RequestHead {
    method: String,
    target: String,
    http_1_0: bool,
    content_length: Option<u64>,
    /// A chunked request body; we do not parse it, so the connection closes
    /// after the response instead of guessing where the next request starts.
    chunked_body: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    user_agent: Option<String>,
}

impl RequestHead {
    fn keep_alive(&self) -> bool {
        if self.chunked_body || self.connection_close {
            return false;
        }
        !self.http_1_0 || self.connection_keep_alive
    }
}

enum HeadError {
    Io,
    TooLarge,
    Malformed,
}

/// Reads one request head; `Ok(None)` when the client closed cleanly
/// between requests. Bytes after the head stay in `buf`.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Option<RequestHead>, HeadError> {
    loop {
        // RFC 9112 §2.2: ignore empty lines before a request line.
        let blank = buf.iter().take_while(|&&byte| byte == b'\r' || byte == b'\n').count();
        buf.drain(..blank);
        if let Some(end) = buf.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = parse_head(&buf[..end]).ok_or(HeadError::Malformed)?;
            buf.drain(..end + 4);
            return Ok(Some(head));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        match stream.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(HeadError::Io),
            Ok(_) => {}
        }
    }
}

fn parse_head(bytes: &[u8]) -> Option<RequestHead> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let http_1_0 = match request_line.next()? {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return None,
    };
    if method.is_empty() || target.is_empty() || request_line.next().is_some() {
        return None;
    }
    let mut head = RequestHead {
        method,
        target,
        http_1_0,
        content_length: None,
        chunked_body: false,
        connection_close: false,
        connection_keep_alive: false,
        user_agent: None,
    };
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked_body |= value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("user-agent") {
            head.user_agent = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                head.connection_close |= token.eq_ignore_ascii_case("close");
                head.connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    Some(head)
}

/// Reads and drops a `Content-Length` request body.
async fn discard_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> io::Result<()> {
    let Some(length) = head.content_length else {
        return Ok(());
    };
    let buffered = buf.len().min(usize::try_from(length).unwrap_or(usize::MAX));
    buf.drain(..buffered);
    let remaining = length - buffered as u64;
    let copied = tokio::io::copy(&mut (&mut *stream).take(remaining), &mut tokio::io::sink()).await?;
    if copied < remaining {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
