//! The bodies: Prometheus remote-write 1.0 (a protobuf `WriteRequest`,
//! snappy block format) and InfluxDB line protocol. Pure functions of the
//! records.
//!
//! Remote-write: one `TimeSeries` per sample, its labels sorted by name
//! with `__name__` (and `phase` for durations) in their sorted places. The
//! protobuf is written directly from the records (no intermediate owned
//! strings per label, which at 50,000 results/s would be millions of
//! allocations a second); [`prompb`] holds the same messages as prost
//! types, and the tests check the bytes are what prost itself encodes.
//!
//! Line protocol: results are points of the measurement `vantage_check`,
//! tagged like the series above; fields `success` (`1i`/`0i`), one per
//! phase measured, in seconds as floats (as Prometheus's
//! `vantage_check_duration_seconds`, so a dashboard's units agree), and
//! `status_code` and `cert_expiry` (Unix seconds) as integers when known.
//! The agreed state is `vantage_endpoint,endpoint=… state="down",
//! regions_down=2i`. Timestamps are milliseconds (`precision=ms`).
//! Escaping follows the line-protocol reference: in tag keys and values
//! `,`, `=` and space take a backslash; string field values are quoted
//! with `"` and `\` escaped. A backslash that ends a tag value is dropped
//! and one before `,`, `=` or a space is doubled ([`escape_tag`] says
//! why).

use std::fmt::Write as _;
use std::sync::Arc;

use super::model::{CheckRecord, LabelSet, Record, StateRecord, PHASES, STATES};

/// The remote-write protobuf messages (`prometheus/prompb/types.proto`,
/// `remote.proto`), for tests and for readers of the wire format.
pub mod prompb {
    /// `prometheus.WriteRequest` (metadata, field 3, is not sent).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Sorted by name.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// The name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// The value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Unix milliseconds.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// The metric names of a result's series.
pub mod names {
    /// 1 passed, 0 failed.
    pub const SUCCESS: &str = "vantage_check_success";
    /// Per phase, seconds.
    pub const DURATION: &str = "vantage_check_duration_seconds";
    /// The final HTTP status.
    pub const STATUS: &str = "vantage_check_http_status_code";
    /// The certificate's `notAfter`.
    pub const CERT_EXPIRY: &str = "vantage_check_tls_cert_expiry_timestamp_seconds";
    /// 1 for the endpoint's agreed state, 0 for the others.
    pub const STATE: &str = "vantage_endpoint_state";
    /// Regions Down in the last agreed transition.
    pub const REGIONS_DOWN: &str = "vantage_endpoint_regions_down";
    /// The InfluxDB measurement of results.
    pub const INFLUX_CHECK: &str = "vantage_check";
    /// The InfluxDB measurement of agreed states.
    pub const INFLUX_STATE: &str = "vantage_endpoint";
}

/// A reusable remote-write encoder (it keeps its buffers between batches).
pub struct RemoteWriteEncoder {
    protobuf: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for RemoteWriteEncoder {
    fn default() -> Self {
        RemoteWriteEncoder { protobuf: Vec::new(), snappy: snap::raw::Encoder::new() }
    }
}

impl std::fmt::Debug for RemoteWriteEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteEncoder").finish_non_exhaustive()
    }
}

impl RemoteWriteEncoder {
    /// The snappy-compressed `WriteRequest` of `records`.
    pub fn encode(&mut self, records: &[Arc<Record>]) -> bytes::Bytes {
        self.protobuf.clear();
        write_request(records, &mut self.protobuf);
        let mut out = vec![0u8; snap::raw::max_compress_len(self.protobuf.len())];
        let n =
            self.snappy.compress(&self.protobuf, &mut out).expect("the buffer has max_compress_len bytes");
        out.truncate(n);
        bytes::Bytes::from(out)
    }
}

/// The uncompressed `WriteRequest` protobuf of `records`, appended to `out`.
pub fn write_request(records: &[Arc<Record>], out: &mut Vec<u8>) {
    for record in records {
        match &**record {
            Record::Check(c) => check_series(c, out),
            Record::State(s) => state_series(s, out),
        }
    }
}

fn check_series(c: &CheckRecord, out: &mut Vec<u8>) {
    let ts = c.timestamp_ms;
    series(out, &c.labels, names::SUCCESS, None, f64::from(u8::from(c.success)), ts);
    for (phase, seconds) in PHASES.iter().zip(c.phases) {
        if let Some(seconds) = seconds {
            series(out, &c.labels, names::DURATION, Some(("phase", phase)), seconds, ts);
        }
    }
    if let Some(status) = c.status_code {
        series(out, &c.labels, names::STATUS, None, f64::from(status), ts);
    }
    if let Some(expiry) = c.cert_expiry_s {
        series(out, &c.labels, names::CERT_EXPIRY, None, expiry as f64, ts);
    }
}

fn state_series(s: &StateRecord, out: &mut Vec<u8>) {
    for state in STATES {
        let value = f64::from(u8::from(state == s.state));
        series(out, &s.labels, names::STATE, Some(("state", state.as_str())), value, s.timestamp_ms);
    }
    series(out, &s.labels, names::REGIONS_DOWN, None, f64::from(s.regions_down), s.timestamp_ms);
}

/// Appends one `timeseries` field (1) holding `labels` + `__name__` +
/// `extra`, each in its sorted place, and one sample. Fields at their
/// proto3 default (empty strings, 0.0, timestamp 0) are left out, as prost
/// and Prometheus's Go code do.
fn series(
    out: &mut Vec<u8>,
    labels: &LabelSet,
    name: &str,
    extra: Option<(&str, &str)>,
    value: f64,
    timestamp_ms: i64,
) {
    let mut all: [Option<(&str, &str)>; 2] = [Some(("__name__", name)), extra];
    // Tiny sort of the two extra labels; the set's own are sorted already.
    if let [Some(a), Some(b)] = all {
        if b.0 < a.0 {
            all = [Some(b), Some(a)];
        }
    }
    let mut body_len = 0;
    let merged = Merge::new(labels.pairs(), all);
    for (k, v) in merged.clone() {
        body_len += field_len(label_len(k, v));
    }
    let sample = sample_len(value, timestamp_ms);
    body_len += field_len(sample);
    out.push(0x0a);
    varint(out, body_len as u64);
    for (k, v) in merged {
        out.push(0x0a);
        varint(out, label_len(k, v) as u64);
        string_field(out, 0x0a, k);
        string_field(out, 0x12, v);
    }
    out.push(0x12);
    varint(out, sample as u64);
    if value != 0.0 {
        out.push(0x09);
        out.extend_from_slice(&value.to_le_bytes());
    }
    if timestamp_ms != 0 {
        out.push(0x10);
        varint(out, timestamp_ms as u64);
    }
}

/// The set's sorted pairs merged with up to two more, in name order.
#[derive(Clone)]
struct Merge<'a> {
    pairs: std::slice::Iter<'a, (String, String)>,
    extra: [Option<(&'a str, &'a str)>; 2],
    next_extra: usize,
    peeked: Option<(&'a str, &'a str)>,
}

impl<'a> Merge<'a> {
    fn new(pairs: &'a [(String, String)], extra: [Option<(&'a str, &'a str)>; 2]) -> Merge<'a> {
        Merge { pairs: pairs.iter(), extra, next_extra: 0, peeked: None }
    }
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.peeked.is_none() {
            self.peeked = self.pairs.next().map(|(k, v)| (k.as_str(), v.as_str()));
        }
        let extra = self.extra.get(self.next_extra).copied().flatten();
        match (self.peeked, extra) {
            (Some(p), Some(e)) if e.0 < p.0 => {
                self.next_extra += 1;
                Some(e)
            }
            (Some(p), _) => {
                self.peeked = None;
                Some(p)
            }
            (None, Some(e)) => {
                self.next_extra += 1;
                Some(e)
            }
            (None, None) => None,
        }
    }
}

fn string_field(out: &mut Vec<u8>, tag: u8, s: &str) {
    if !s.is_empty() {
        out.push(tag);
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

fn label_len(k: &str, v: &str) -> usize {
    let part = |s: &str| if s.is_empty() { 0 } else { field_len(s.len()) };
    part(k) + part(v)
}

fn sample_len(value: f64, timestamp_ms: i64) -> usize {
    (if value != 0.0 { 9 } else { 0 })
        + (if timestamp_ms != 0 { 1 + varint_len(timestamp_ms as u64) } else { 0 })
}

/// A length-delimited field of `len` bytes: tag + length + body.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The line-protocol text of `records`, one line each.
pub fn line_protocol(records: &[Arc<Record>], out: &mut String) {
    for record in records {
        match &**record {
            Record::Check(c) => check_line(c, out),
            Record::State(s) => state_line(s, out),
        }
    }
}

fn check_line(c: &CheckRecord, out: &mut String) {
    out.push_str(names::INFLUX_CHECK);
    tags(&c.labels, out);
    out.push(' ');
    let _ = write!(out, "success={}i", u8::from(c.success));
    for (phase, seconds) in PHASES.iter().zip(c.phases) {
        if let Some(seconds) = seconds {
            let _ = write!(out, ",{phase}={}", float(seconds));
        }
    }
    if let Some(status) = c.status_code {
        let _ = write!(out, ",status_code={status}i");
    }
    if let Some(expiry) = c.cert_expiry_s {
        let _ = write!(out, ",cert_expiry={expiry}i");
    }
    let _ = writeln!(out, " {}", c.timestamp_ms);
}

fn state_line(s: &StateRecord, out: &mut String) {
    out.push_str(names::INFLUX_STATE);
    tags(&s.labels, out);
    out.push_str(" state=");
    string_value(s.state.as_str(), out);
    let _ = writeln!(out, ",regions_down={}i {}", s.regions_down, s.timestamp_ms);
}

fn tags(labels: &LabelSet, out: &mut String) {
    for (k, v) in labels.pairs() {
        out.push(',');
        escape_tag(k, out);
        out.push('=');
        escape_tag(v, out);
    }
}

/// A float as line protocol reads it back exactly (Rust's shortest
/// round-trip form; never exponent-free garbage for tiny values).
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "0".into()
    }
}

/// Escapes a tag key or value (and a field key): `,` `=` and space take a
/// backslash. A backslash before one of them is doubled (the spec's
/// escape, which InfluxDB 2.x reads back as one backslash and 1.x keeps as
/// two), and backslashes that end the text are dropped: InfluxDB 1.x
/// cannot parse a tag value ending in one, however it is escaped. Line
/// protocol has no escape for line breaks, so they become spaces (labels
/// refuse control characters anyway).
pub fn escape_tag(s: &str, out: &mut String) {
    let s = s.trim_end_matches('\\');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push_str("\\ "),
            '\\' if matches!(chars.peek(), Some(',' | '=' | ' ' | '\n' | '\r')) => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
}

/// A string field value: quoted, with `"` and `\` escaped.
pub fn string_value(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use vantage_core::agreement::State;

    fn check(labels: &[(&str, &str)]) -> CheckRecord {
        let labels: std::collections::BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CheckRecord {
            labels: Arc::new(LabelSet::of_check("web", "eu", "eu-1", "https", &labels)),
            timestamp_ms: 1_700_000_000_123,
            success: true,
            phases: [None, Some(0.000_25), Some(0.0015), Some(0.012), None, Some(0.014)],
            status_code: Some(200),
            cert_expiry_s: Some(1_800_000_000),
        }
    }

    /// What prost encodes for the same series, built the slow way.
    fn prost_reference(records: &[Arc<Record>]) -> prompb::WriteRequest {
        let mut timeseries = Vec::new();
        let mut push = |labels: &LabelSet, name: &str, extra: Option<(&str, &str)>, value: f64, ts: i64| {
            let mut all: Vec<prompb::Label> = labels
                .pairs()
                .iter()
                .map(|(k, v)| prompb::Label { name: k.clone(), value: v.clone() })
                .collect();
            all.push(prompb::Label { name: "__name__".into(), value: name.into() });
            if let Some((k, v)) = extra {
                all.push(prompb::Label { name: k.into(), value: v.into() });
            }
            all.sort_by(|a, b| a.name.cmp(&b.name));
            timeseries.push(prompb::TimeSeries {
                labels: all,
                samples: vec![prompb::Sample { value, timestamp: ts }],
            });
        };
        for record in records {
            match &**record {
                Record::Check(c) => {
                    push(&c.labels, names::SUCCESS, None, f64::from(u8::from(c.success)), c.timestamp_ms);
                    for (phase, s) in PHASES.iter().zip(c.phases) {
                        if let Some(s) = s {
                            push(&c.labels, names::DURATION, Some(("phase", phase)), s, c.timestamp_ms);
                        }
                    }
                    if let Some(code) = c.status_code {
                        push(&c.labels, names::STATUS, None, f64::from(code), c.timestamp_ms);
                    }
                    if let Some(e) = c.cert_expiry_s {
                        push(&c.labels, names::CERT_EXPIRY, None, e as f64, c.timestamp_ms);
                    }
                }
                Record::State(s) => {
                    for state in STATES {
                        let v = f64::from(u8::from(state == s.state));
                        push(&s.labels, names::STATE, Some(("state", state.as_str())), v, s.timestamp_ms);
                    }
                    push(&s.labels, names::REGIONS_DOWN, None, f64::from(s.regions_down), s.timestamp_ms);
                }
            }
        }
        prompb::WriteRequest { timeseries }
    }

    #[test]
    fn remote_write_bytes_are_what_prost_encodes() {
        let mut failed = check(&[("Zone", "a"), ("team", "pay ments"), ("zz", "last")]);
        failed.success = false;
        failed.status_code = None;
        failed.cert_expiry_s = None;
        failed.timestamp_ms = 0; // a default field, left out by both
        let records: Vec<Arc<Record>> = vec![
            Arc::new(Record::Check(check(&[]))),
            Arc::new(Record::Check(failed)),
            Arc::new(Record::State(StateRecord {
                labels: Arc::new(LabelSet::of_endpoint("web")),
                timestamp_ms: 1_700_000_010_000,
                state: State::Down,
                regions_down: 2,
            })),
        ];
        let mut ours = Vec::new();
        write_request(&records, &mut ours);
        let reference = prost_reference(&records);
        assert_eq!(ours, reference.encode_to_vec(), "byte for byte");
        let decoded = prompb::WriteRequest::decode(ours.as_slice()).unwrap();
        assert_eq!(decoded.timeseries.len(), 7 + 5 + 8);
        for series in &decoded.timeseries {
            let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted, "labels sorted by name");
            assert!(names.contains(&"__name__"));
        }
        let first = &decoded.timeseries[0];
        assert_eq!(first.samples, [prompb::Sample { value: 1.0, timestamp: 1_700_000_000_123 }]);
    }

    #[test]
    fn a_small_write_request_has_these_exact_bytes() {
        // Worked by hand from the protobuf encoding rules: WriteRequest.1 {
        // TimeSeries.1 Label{__name__=m}, .1 Label{endpoint=e}, .2 Sample{1.0, 5} }.
        let record = Arc::new(Record::State(StateRecord {
            labels: Arc::new(LabelSet::of_endpoint("e")),
            timestamp_ms: 5,
            state: State::Up,
            regions_down: 0,
        }));
        let mut out = Vec::new();
        series(&mut out, &LabelSet::of_endpoint("e"), "m", None, 1.0, 5);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x0a, 0x2b,                                       // timeseries, 43 bytes
            0x0a, 0x0d, 0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0x12, 0x01, b'm',
            0x0a, 0x0d, 0x0a, 0x08, b'e', b'n', b'd', b'p', b'o', b'i', b'n', b't', 0x12, 0x01, b'e',
            0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x05, // sample 1.0 @ 5
        ];
        assert_eq!(out, want);
        // Snappy's block format of a short, repeat-free input is its length
        // (varint) and one literal: tag (len - 1) << 2.
        let body = RemoteWriteEncoder::default().encode(&[]);
        assert_eq!(&body[..], &[0x00]);
        let mut encoder = RemoteWriteEncoder::default();
        let compressed = encoder.encode(std::slice::from_ref(&record));
        let plain = snap::raw::Decoder::new().decompress_vec(&compressed).unwrap();
        let decoded = prompb::WriteRequest::decode(plain.as_slice()).unwrap();
        assert_eq!(decoded.timeseries.len(), 8);
        let tiny = snap::raw::Encoder::new().compress_vec(b"abc").unwrap();
        assert_eq!(tiny, [0x03, 0x08, b'a', b'b', b'c']);
    }

    #[test]
    fn line_protocol_lines_and_escaping() {
        let hostile = check(&[
            ("team", "a,b=c d"),
            ("quote", "say \"hi\""),
            ("slash", "ends with \\"),
            ("mid", "a\\b"),
            ("before", "a\\,b"),
        ]);
        let mut out = String::new();
        line_protocol(&[Arc::new(Record::Check(hostile))], &mut out);
        assert_eq!(
            out,
            "vantage_check,before=a\\\\\\,b,endpoint=web,kind=https,mid=a\\b,probe=eu-1,quote=say\\ \"hi\",\
             region=eu,slash=ends\\ with\\ ,team=a\\,b\\=c\\ d \
             success=1i,connect=0.00025,tls=0.0015,ttfb=0.012,total=0.014,status_code=200i,\
             cert_expiry=1800000000i 1700000000123\n"
        );
        let mut out = String::new();
        let state = StateRecord {
            labels: Arc::new(LabelSet::of_endpoint("web api")),
            timestamp_ms: 42,
            state: State::Maintenance,
            regions_down: 0,
        };
        line_protocol(&[Arc::new(Record::State(state))], &mut out);
        assert_eq!(out, "vantage_endpoint,endpoint=web\\ api state=\"maintenance\",regions_down=0i 42\n");
        let mut quoted = String::new();
        string_value("a\"b\\c", &mut quoted);
        assert_eq!(quoted, "\"a\\\"b\\\\c\"");
    }
}
