//! What one request asks the target to do, parsed from its query string.
//!
//! Shared by the HTTP/1.1 and HTTP/2 servers so both read the same knobs the
//! same way. Unknown parameters are ignored, so tests may add their own
//! (a cache-buster, a test name) without changing the response.

use std::time::Duration;

use bytes::Bytes;

/// Largest body `body_bytes=N` will build, to keep a typo from eating memory.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Bytes a `huge=1` response sends before giving up on the client.
pub(crate) const HUGE_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// The behaviour one request selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Behaviour {
    pub(crate) status: u16,
    /// Extra response headers, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) content_type: String,
    /// Wait before writing any response byte.
    pub(crate) headers_delay: Duration,
    pub(crate) drip: Option<Drip>,
    pub(crate) chunked: bool,
    /// `Location` of a redirect, already percent-decoded.
    pub(crate) redirect: Option<String>,
    pub(crate) redirect_status: u16,
    pub(crate) reset: bool,
    pub(crate) hang: bool,
    pub(crate) close_early: bool,
    pub(crate) malformed: bool,
    pub(crate) huge: bool,
}

/// Send the body in `chunks` equal pieces, sleeping `total / chunks` before
/// each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drip {
    pub(crate) total: Duration,
    pub(crate) chunks: usize,
}

impl Drip {
    /// Sleep before each piece.
    pub(crate) fn pause(&self) -> Duration {
        self.total / u32::try_from(self.chunks).unwrap_or(u32::MAX)
    }

    /// Splits `body` into `chunks` pieces of (nearly) equal length; the last
    /// piece takes the remainder. Pieces may be empty if the body is shorter
    /// than the number of chunks.
    pub(crate) fn split(&self, body: &Bytes) -> Vec<Bytes> {
        let size = body.len() / self.chunks;
        (0..self.chunks)
            .map(|i| {
                let start = i * size;
                let end = if i + 1 == self.chunks { body.len() } else { start + size };
                body.slice(start..end)
            })
            .collect()
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from_static(b"ok"),
            content_type: "text/plain; charset=utf-8".to_owned(),
            headers_delay: Duration::ZERO,
            drip: None,
            chunked: false,
            redirect: None,
            redirect_status: 302,
            reset: false,
            hang: false,
            close_early: false,
            malformed: false,
            huge: false,
        }
    }
}

impl Behaviour {
    /// Parses the query string (without the `?`) of a request target.
    ///
    /// Errors name the offending parameter; the servers answer them with a
    /// 400 so a mistyped test fails loudly.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Behaviour, String> {
        let mut behaviour = Behaviour::default();
        let mut drip_ms = None;
        let mut drip_chunks = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let value = percent_decode(value);
            match key.as_str() {
                "status" => behaviour.status = parse_status(&key, &value)?,
                "header" => {
                    let (name, value) = value
                        .split_once(':')
                        .ok_or_else(|| format!("header={value}: expected Name:Value"))?;
                    behaviour.headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
                "body" => behaviour.body = Bytes::from(value.into_bytes()),
                "body_bytes" => {
                    let n: usize = parse_number(&key, &value)?;
                    if n > MAX_BODY_BYTES {
                        return Err(format!("body_bytes={n}: at most {MAX_BODY_BYTES}"));
                    }
                    behaviour.body = Bytes::from(vec![b'x'; n]);
                }
                "content_type" => behaviour.content_type = value,
                "headers_delay_ms" => {
                    behaviour.headers_delay = Duration::from_millis(parse_number(&key, &value)?);
                }
                "drip_ms" => drip_ms = Some(parse_number::<u64>(&key, &value)?),
                "drip_chunks" => drip_chunks = Some(parse_number::<usize>(&key, &value)?),
                "chunked" => behaviour.chunked = parse_flag(&key, &value)?,
                "redirect" => behaviour.redirect = Some(value),
                "redirect_status" => {
                    behaviour.redirect_status = match parse_status(&key, &value)? {
                        status @ (301 | 302 | 303 | 307 | 308) => status,
                        other => return Err(format!("redirect_status={other}: not a redirect")),
                    };
                }
                "reset" => behaviour.reset = parse_flag(&key, &value)?,
                "hang" => behaviour.hang = parse_flag(&key, &value)?,
                "close_early" => behaviour.close_early = parse_flag(&key, &value)?,
                "malformed" => behaviour.malformed = parse_flag(&key, &value)?,
                "huge" => behaviour.huge = parse_flag(&key, &value)?,
                _ => {}
            }
        }
        if drip_ms.is_some() || drip_chunks.is_some() {
            let chunks = drip_chunks.unwrap_or(10);
            if chunks == 0 {
                return Err("drip_chunks=0: need at least one chunk".to_owned());
            }
            behaviour.drip = Some(Drip { total: Duration::from_millis(drip_ms.unwrap_or(0)), chunks });
        }
        Ok(behaviour)
    }

    /// The same behaviour, or a plain `503` when `failing` (a region the
    /// test told to fail).
    pub(crate) fn failing_if(self, failing: bool) -> Behaviour {
        if !failing {
            return self;
        }
        Behaviour {
            status: 503,
            body: Bytes::from_static(b"failing for this region\n"),
            content_type: "text/plain".into(),
            ..Behaviour::default()
        }
    }

    /// Whether the status forbids a body (1xx, 204, 304).
    pub(crate) fn status_has_no_body(status: u16) -> bool {
        (100..200).contains(&status) || status == 204 || status == 304
    }
}

/// Splits a request target into path and query.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are. `+` is
/// left alone (it is not a space outside HTML forms), so header values may
/// contain it.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The usual reason phrase for a status code (cosmetic: clients ignore it).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{key}={value}: expected a non-negative integer"))
}

fn parse_status(key: &str, value: &str) -> Result<u16, String> {
    match parse_number::<u16>(key, value)? {
        status @ 100..=999 => Ok(status),
        other => Err(format!("{key}={other}: expected a three-digit status")),
    }
}

fn parse_flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "" | "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(format!("{key}={other}: expected 1 or 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_200_ok() {
        let b = Behaviour::from_query(None).unwrap();
        assert_eq!(b, Behaviour::default());
        assert_eq!(b.status, 200);
        assert_eq!(&b.body[..], b"ok");
    }

    #[test]
    fn parses_every_knob() {
        let b = Behaviour::from_query(Some(
            "status=503&header=Retry-After:%2030&header=X-A:b+c&body=hi%20there&content_type=application/json\
             &headers_delay_ms=150&drip_ms=100&drip_chunks=4&chunked=1&redirect=http%3A%2F%2F127.0.0.1%2Fx%3Fa%3D1\
             &redirect_status=308&reset=1&hang=1&close_early=1&malformed=1&huge=1&unknown=whatever",
        ))
        .unwrap();
        assert_eq!(b.status, 503);
        assert_eq!(
            b.headers,
            vec![("Retry-After".to_owned(), "30".to_owned()), ("X-A".to_owned(), "b+c".to_owned())]
        );
        assert_eq!(&b.body[..], b"hi there");
        assert_eq!(b.content_type, "application/json");
        assert_eq!(b.headers_delay, Duration::from_millis(150));
        assert_eq!(b.drip, Some(Drip { total: Duration::from_millis(100), chunks: 4 }));
        assert!(b.chunked && b.reset && b.hang && b.close_early && b.malformed && b.huge);
        assert_eq!(b.redirect.as_deref(), Some("http://127.0.0.1/x?a=1"));
        assert_eq!(b.redirect_status, 308);
    }

    #[test]
    fn body_bytes_builds_x_body() {
        let b = Behaviour::from_query(Some("body_bytes=5")).unwrap();
        assert_eq!(&b.body[..], b"xxxxx");
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        for (query, key) in [
            ("status=abc", "status="),
            ("status=42", "status="),
            ("header=novalue", "header="),
            ("drip_chunks=0", "drip_chunks="),
            ("redirect_status=200", "redirect_status="),
            ("reset=yes", "reset="),
            ("body_bytes=999999999999", "body_bytes="),
        ] {
            let error = Behaviour::from_query(Some(query)).unwrap_err();
            assert!(error.starts_with(key), "{query}: {error}");
        }
    }

    #[test]
    fn drip_splits_evenly_with_remainder_last() {
        let drip = Drip { total: Duration::from_millis(100), chunks: 3 };
        let parts = drip.split(&Bytes::from_static(b"abcdefgh"));
        assert_eq!(parts, vec![&b"ab"[..], &b"cd"[..], &b"efgh"[..]]);
        assert_eq!(drip.pause(), Duration::from_nanos(33_333_333));
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%42"), "AB");
    }
}
