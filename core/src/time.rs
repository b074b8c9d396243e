//! Instants and durations as plain values: Unix milliseconds for the
//! replicated state, Unix microseconds for the wire, and the compact
//! duration text (`30s`, `1m30s`, `500ms`) every message uses.
//!
//! Conversions only: nothing here reads a clock (that is
//! [`crate::clock::WallClock`]'s job).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Wall-clock time as milliseconds since the Unix epoch.
///
/// Time enters the replicated state only inside a command (stamped by the
/// node that proposed it); apply never reads a clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl From<SystemTime> for UnixMillis {
    /// Milliseconds since the epoch; 0 before it, saturating far after.
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

impl UnixMillis {
    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// As a signed number of milliseconds (the wire's `*_unix_ms` fields),
    /// saturating.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Microseconds since the Unix epoch, negative before it, saturating (the
/// wire's `*_unix_us` fields).
pub fn unix_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_micros().min(i64::MAX as u128) as i64),
    }
}

/// The instant `us` microseconds after (or, negative, before) the epoch.
pub fn from_unix_micros(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

/// Formats a duration compactly and exactly to the millisecond: `30s`,
/// `1m30s`, `1h`, `1s500ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Formats milliseconds as a duration (see [`format_duration`]).
pub fn format_ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_on_both_sides_of_the_epoch() {
        for us in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_000] {
            assert_eq!(unix_micros(from_unix_micros(us)), us, "{us}");
        }
    }

    #[test]
    fn millis_saturate_and_display() {
        assert_eq!(UnixMillis::from(UNIX_EPOCH - Duration::from_secs(1)), UnixMillis(0));
        assert_eq!(UnixMillis(1_500).to_system_time(), UNIX_EPOCH + Duration::from_millis(1_500));
        assert_eq!(UnixMillis(u64::MAX).as_i64(), i64::MAX);
        assert_eq!(UnixMillis(42).to_string(), "42ms");
    }

    #[test]
    fn durations_format_compactly() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (1_500, "1s500ms"),
            (30_000, "30s"),
            (90_000, "1m30s"),
            (86_400_000, "1d"),
        ] {
            assert_eq!(format_ms(ms), text);
        }
    }
}
