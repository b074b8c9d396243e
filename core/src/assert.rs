//! What a check expects of its answer, and the pure evaluation of it.
//!
//! The probe gathers what it observed into an [`Observed`] and calls
//! [`Assertions::evaluate`]; the first expectation that fails becomes the
//! check's error (`http_status` for the status code, `assertion` for the
//! rest).

use std::fmt;
use std::time::Duration;

use crate::result::{duration_ms, CheckError, ErrorKind};
use crate::spec::SpecError;

/// A set of acceptable HTTP status codes, e.g. `200-299,301,404`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl Default for StatusSet {
    /// 200–399: success and redirects.
    fn default() -> Self {
        StatusSet(vec![(200, 399)])
    }
}

impl StatusSet {
    /// Parses a comma-separated list of codes and inclusive ranges.
    pub fn parse(text: &str) -> Result<StatusSet, SpecError> {
        let bad = |reason: String| SpecError::BadOption { field: "expect-status", reason };
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let code = |s: &str| -> Result<u16, SpecError> {
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| bad(format!("{s:?} is not an HTTP status code (100-599)")))
            };
            let (lo, hi) = (code(lo)?, code(hi)?);
            if lo > hi {
                return Err(bad(format!("range {part:?} is backwards")));
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(bad("empty list".into()));
        }
        Ok(StatusSet(ranges))
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// A compiled regular expression that compares by its source text.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `source`; `field` names the option in the error.
    pub fn new(field: &'static str, source: &str) -> Result<Pattern, SpecError> {
        regex::Regex::new(source)
            .map(Pattern)
            .map_err(|e| SpecError::BadOption { field, reason: format!("bad regex {source:?}: {e}") })
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The source text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// A response header that must be present, and optionally match a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderAssertion {
    /// The header's name, lowercase.
    pub name: String,
    /// A pattern one of its values must match.
    pub matches: Option<Pattern>,
}

impl HeaderAssertion {
    /// Parses `Name` or `Name: REGEX`.
    pub fn parse(text: &str) -> Result<HeaderAssertion, SpecError> {
        let (name, pattern) = match text.split_once(':') {
            Some((n, p)) => (n.trim(), Some(Pattern::new("expect-header", p.trim())?)),
            None => (text.trim(), None),
        };
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
        {
            return Err(SpecError::BadOption {
                field: "expect-header",
                reason: format!("{name:?} is not a header name (use NAME or NAME: REGEX)"),
            });
        }
        Ok(HeaderAssertion { name: name.to_ascii_lowercase(), matches: pattern })
    }
}

/// A JSON value that must be at a JSON pointer (RFC 6901) in the body.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonAssertion {
    /// The pointer, e.g. `/status`.
    pub pointer: String,
    /// The value that must be there.
    pub equals: serde_json::Value,
}

impl JsonAssertion {
    /// Parses `POINTER=VALUE`; VALUE is JSON, or a bare string.
    pub fn parse(text: &str) -> Result<JsonAssertion, SpecError> {
        let bad = |reason: String| SpecError::BadOption { field: "expect-json", reason };
        let (pointer, value) =
            text.split_once('=').ok_or_else(|| bad(format!("{text:?} is not POINTER=VALUE")))?;
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(bad(format!("pointer {pointer:?} must start with '/'")));
        }
        let equals =
            serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        Ok(JsonAssertion { pointer: pointer.to_string(), equals })
    }
}

/// Everything a check expects of its answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assertions {
    /// Acceptable status codes (HTTP only).
    pub status: StatusSet,
    /// Texts the body must contain.
    pub body_contains: Vec<String>,
    /// Patterns the body must match.
    pub body_matches: Vec<Pattern>,
    /// JSON values the body must hold.
    pub json: Vec<JsonAssertion>,
    /// Headers the response must carry.
    pub headers: Vec<HeaderAssertion>,
    /// Ceiling on the whole check's duration.
    pub max_total: Option<Duration>,
    /// Ceiling on time to first byte.
    pub max_ttfb: Option<Duration>,
    /// Minimum days before the certificate expires.
    pub min_cert_days: Option<i64>,
}

/// What a check observed, for evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed<'a> {
    /// The HTTP status, for HTTP checks.
    pub status: Option<u16>,
    /// Response headers as (lowercase name, value).
    pub headers: &'a [(String, String)],
    /// The body read, when [`Assertions::needs_body`].
    pub body: Option<&'a [u8]>,
    /// The whole check's duration.
    pub total: Duration,
    /// Time to first byte.
    pub ttfb: Duration,
    /// Days left on the certificate, when TLS was used.
    pub cert_days_left: Option<i64>,
}

impl Assertions {
    /// Whether evaluation needs the body kept in memory.
    pub fn needs_body(&self) -> bool {
        !(self.body_contains.is_empty() && self.body_matches.is_empty() && self.json.is_empty())
    }

    /// Whether evaluation needs the response headers.
    pub fn needs_headers(&self) -> bool {
        !self.headers.is_empty()
    }

    /// Evaluates every expectation in a fixed order (status, headers, body,
    /// JSON, latency, certificate) and returns the first failure.
    pub fn evaluate(&self, seen: &Observed<'_>) -> Result<(), CheckError> {
        let fail = |message: String| Err(CheckError::new(ErrorKind::Assertion, message));
        if let Some(code) = seen.status {
            if !self.status.contains(code) {
                return Err(CheckError::new(
                    ErrorKind::HttpStatus,
                    format!("status {code} is not one of the expected {}", self.status),
                ));
            }
        }
        for want in &self.headers {
            let mut values = seen.headers.iter().filter(|(n, _)| *n == want.name).map(|(_, v)| v.as_str());
            match &want.matches {
                None if values.next().is_none() => return fail(format!("header {:?} is missing", want.name)),
                Some(p) if !values.any(|v| p.is_match(v)) => {
                    return fail(format!("header {:?} does not match {:?}", want.name, p.as_str()))
                }
                _ => {}
            }
        }
        if self.needs_body() {
            let body = seen.body.unwrap_or_default();
            let text = String::from_utf8_lossy(body);
            for needle in &self.body_contains {
                if !text.contains(needle.as_str()) {
                    return fail(format!("body does not contain {needle:?}"));
                }
            }
            for pattern in &self.body_matches {
                if !pattern.is_match(&text) {
                    return fail(format!("body does not match {:?}", pattern.as_str()));
                }
            }
            if !self.json.is_empty() {
                let doc: serde_json::Value = match serde_json::from_slice(body) {
                    Ok(doc) => doc,
                    Err(e) => return fail(format!("body is not JSON: {e}")),
                };
                for want in &self.json {
                    match doc.pointer(&want.pointer) {
                        Some(v) if *v == want.equals => {}
                        Some(v) => {
                            return fail(format!("JSON {} is {v}, expected {}", want.pointer, want.equals))
                        }
                        None => return fail(format!("JSON {} is missing", want.pointer)),
                    }
                }
            }
        }
        if let Some(max) = self.max_ttfb {
            if seen.ttfb > max {
                return fail(format!(
                    "ttfb {:.1} ms is over the {:.1} ms limit",
                    duration_ms(seen.ttfb),
                    duration_ms(max)
                ));
            }
        }
        if let Some(max) = self.max_total {
            if seen.total > max {
                return fail(format!(
                    "total {:.1} ms is over the {:.1} ms limit",
                    duration_ms(seen.total),
                    duration_ms(max)
                ));
            }
        }
        if let (Some(min), Some(left)) = (self.min_cert_days, seen.cert_days_left) {
            if left < min {
                return fail(format!("certificate expires in {left} days, fewer than the {min} required"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let set = StatusSet::parse("200-299, 301,404").unwrap();
        for (code, want) in [(200, true), (299, true), (300, false), (301, true), (404, true), (500, false)] {
            assert_eq!(set.contains(code), want, "{code}");
        }
        assert_eq!(set.to_string(), "200-299,301,404");
        assert!(StatusSet::default().contains(302));
        assert!(!StatusSet::default().contains(404));
        for bad in ["", "abc", "99", "600", "300-200"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn eval(a: &Assertions, seen: Observed<'_>) -> Result<(), (ErrorKind, String)> {
        a.evaluate(&seen).map_err(|e| (e.kind, e.message))
    }

    #[test]
    fn evaluates_in_order_with_clear_messages() {
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        let body = br#"{"status":"ok","n":3}"#;
        let ok = Observed {
            status: Some(200),
            headers: &headers,
            body: Some(body),
            total: Duration::from_millis(50),
            ttfb: Duration::from_millis(20),
            cert_days_left: Some(30),
        };
        let mut a = Assertions {
            body_contains: vec!["ok".into()],
            body_matches: vec![Pattern::new("expect-regex", r#""n":\d"#).unwrap()],
            json: vec![JsonAssertion::parse("/n=3").unwrap(), JsonAssertion::parse("/status=ok").unwrap()],
            headers: vec![HeaderAssertion::parse("Content-Type: ^application/json").unwrap()],
            max_total: Some(Duration::from_millis(100)),
            max_ttfb: Some(Duration::from_millis(30)),
            min_cert_days: Some(14),
            ..Default::default()
        };
        assert_eq!(eval(&a, ok), Ok(()));

        let cases: Vec<(Observed<'_>, ErrorKind, &str)> = vec![
            (
                Observed { status: Some(503), ..ok },
                ErrorKind::HttpStatus,
                "status 503 is not one of the expected 200-399",
            ),
            (
                Observed { headers: &[], ..ok },
                ErrorKind::Assertion,
                "header \"content-type\" does not match \"^application/json\"",
            ),
            (Observed { body: Some(b"nope"), ..ok }, ErrorKind::Assertion, "body does not contain \"ok\""),
            (
                Observed { body: Some(br#"{"status":"ok","n":4}"#), ..ok },
                ErrorKind::Assertion,
                "JSON /n is 4, expected 3",
            ),
            (
                Observed { body: Some(b"ok \"n\":1"), ..ok },
                ErrorKind::Assertion,
                "body is not JSON: expected value at line 1 column 1",
            ),
            (
                Observed { ttfb: Duration::from_millis(31), ..ok },
                ErrorKind::Assertion,
                "ttfb 31.0 ms is over the 30.0 ms limit",
            ),
            (
                Observed { total: Duration::from_millis(101), ..ok },
                ErrorKind::Assertion,
                "total 101.0 ms is over the 100.0 ms limit",
            ),
            (
                Observed { cert_days_left: Some(3), ..ok },
                ErrorKind::Assertion,
                "certificate expires in 3 days, fewer than the 14 required",
            ),
        ];
        for (seen, kind, message) in cases {
            assert_eq!(eval(&a, seen), Err((kind, message.to_string())));
        }
        a.json.clear();
        a.body_contains = vec!["absent".into()];
        assert_eq!(eval(&a, ok), Err((ErrorKind::Assertion, "body does not contain \"absent\"".into())));
    }

    #[test]
    fn parses_header_and_json_assertions() {
        assert_eq!(
            HeaderAssertion::parse("X-Ok").unwrap(),
            HeaderAssertion { name: "x-ok".into(), matches: None }
        );
        assert!(HeaderAssertion::parse("bad name: x").is_err());
        assert!(HeaderAssertion::parse("X: (").is_err());
        assert_eq!(JsonAssertion::parse("/a=true").unwrap().equals, serde_json::json!(true));
        assert_eq!(JsonAssertion::parse("/a=hello").unwrap().equals, serde_json::json!("hello"));
        assert!(JsonAssertion::parse("a=1").is_err());
        assert!(JsonAssertion::parse("/a").is_err());
    }
}
