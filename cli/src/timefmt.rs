//! Durations and instants as admins type and read them: `30s`, `1m30s`,
//! `2026-12-01T02:00:00Z`, `now`, `+2h`.
//!
//! Parsing is strict and formatting is compact and lossless, so what
//! `export` writes parses back to the same value.

use std::time::{Duration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses a duration such as `30s`, `1m30s`, `500ms` or `1h` (humantime
/// syntax; a bare number is refused so units are never guessed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} has no unit; write e.g. {text}s or {text}ms"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {e} (e.g. 30s, 1m30s, 500ms)"))
}

pub use vantage_core::time::{format_duration, format_ms};

/// Parses an RFC 3339 instant (any offset) into Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|e| format!("invalid time {text:?}: {e} (use RFC 3339, e.g. 2026-12-01T02:00:00Z)"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("time {text:?} is out of range"))
}

/// Parses an instant given on the command line: `now`, `+DUR` (from now)
/// or RFC 3339. `now` is passed in, so this stays pure.
pub fn parse_instant_ms(text: &str, now: SystemTime) -> Result<i64, String> {
    let text = text.trim();
    let now_ms = unix_ms(now);
    if text == "now" {
        return Ok(now_ms);
    }
    if let Some(rest) = text.strip_prefix('+') {
        let offset = parse_duration(rest)?;
        let offset = i64::try_from(offset.as_millis()).map_err(|_| format!("{text:?} is too far ahead"))?;
        return now_ms.checked_add(offset).ok_or_else(|| format!("{text:?} is too far ahead"));
    }
    parse_rfc3339_ms(text).map_err(|e| format!("{e}, now or +DURATION"))
}

/// Formats Unix milliseconds as RFC 3339 in UTC, with milliseconds only
/// when there are any, and then always three digits (`.090Z`, not `.09Z`),
/// so times line up in a table column.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return format!("@{ms}ms");
    };
    let whole = at.replace_millisecond(0).unwrap_or(at);
    // Rfc3339 prints no fraction for a whole second.
    let Ok(text) = whole.format(&Rfc3339) else {
        return format!("@{ms}ms");
    };
    match at.millisecond() {
        0 => text,
        millis => format!("{}.{millis:03}Z", text.trim_end_matches('Z')),
    }
}

/// A wall-clock time as Unix milliseconds (clamped at the epoch).
pub fn unix_ms(at: SystemTime) -> i64 {
    vantage_core::time::UnixMillis::from(at).as_i64()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn instants_print_milliseconds_as_three_digits_or_not_at_all() {
        assert_eq!(format_rfc3339_ms(1_796_000_000_000), "2026-11-30T00:53:20Z");
        assert_eq!(format_rfc3339_ms(1_796_000_000_090), "2026-11-30T00:53:20.090Z");
        assert_eq!(format_rfc3339_ms(1_796_000_000_045), "2026-11-30T00:53:20.045Z");
        assert_eq!(format_rfc3339_ms(1_796_000_000_100), "2026-11-30T00:53:20.100Z");
        for ms in [1_796_000_000_000, 1_796_000_000_090, 1_796_000_000_999] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn durations_round_trip_through_the_compact_form() {
        for (text, ms) in [
            ("0s", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("1d2h", 93_600_000),
            ("1s500ms", 1_500),
        ] {
            assert_eq!(format_ms(ms), text);
            assert_eq!(parse_duration(text).unwrap(), Duration::from_millis(ms), "{text}");
        }
    }

    #[test]
    fn a_bare_number_is_refused_with_a_hint() {
        let err = parse_duration("30").unwrap_err();
        assert!(err.contains("30s"), "{err}");
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn instants_accept_now_relative_and_rfc3339_with_offsets() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(parse_instant_ms("now", now).unwrap(), 1_000_000);
        assert_eq!(parse_instant_ms("+2h", now).unwrap(), 1_000_000 + 7_200_000);
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01Z", now).unwrap(), 1_000);
        assert_eq!(parse_instant_ms("1970-01-01T01:00:01+01:00", now).unwrap(), 1_000);
        let err = parse_instant_ms("tomorrow", now).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn rfc3339_formatting_is_utc_and_round_trips() {
        assert_eq!(format_rfc3339_ms(1_796_090_400_000), "2026-12-01T02:00:00Z");
        assert_eq!(format_rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(1_500)).unwrap(), 1_500);
    }
}
