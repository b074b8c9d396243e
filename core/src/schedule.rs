//! Slot arithmetic: when each check of an endpoint is due.
//!
//! Slots are aligned to the wall-clock epoch: `start(k) = k * interval +
//! offset(endpoint)`, where the offset is a hash of the endpoint id,
//! identical in every region. So all regions check the same round of an
//! endpoint at nearly the same moment (agreement compares like with like),
//! different endpoints spread over the interval instead of all firing at
//! :00, and a slot's start never depends on when the previous check ended
//! (no drift, no coordinated omission).
//!
//! Times are [`Duration`]s since the Unix epoch; nothing here reads a clock.

use std::time::Duration;

/// The offset of an endpoint's slots within its interval: a hash of the
/// endpoint id, in `[0, interval)` with millisecond granularity. The same on
/// every probe in every region.
pub fn slot_offset(endpoint_id: u64, interval: Duration) -> Duration {
    let interval_ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(splitmix64(endpoint_id) % interval_ms)
}

/// A slot: the round number and when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// Round number `k` (the same round in every region).
    pub round: u64,
    /// When it starts, since the Unix epoch.
    pub start: Duration,
}

/// The start of round `k`.
pub fn slot_start(round: u64, interval: Duration, offset: Duration) -> Duration {
    round_mul(round, interval) + offset
}

/// `round * interval`, saturating.
fn round_mul(round: u64, interval: Duration) -> Duration {
    let nanos = (interval.as_nanos()).saturating_mul(round as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The first slot starting at or after `now` (both since the Unix epoch).
pub fn next_slot(now: Duration, interval: Duration, offset: Duration) -> Slot {
    let interval_ns = interval.as_nanos().max(1);
    let since = now.as_nanos().saturating_sub(offset.as_nanos());
    let mut round = (since / interval_ns) as u64;
    if round_mul(round, interval) + offset < now {
        round += 1;
    }
    Slot { round, start: round_mul(round, interval) + offset }
}

/// SplitMix64: a fast, well-mixed, stable 64-bit hash (the same on every
/// platform and version, unlike `std`'s seeded hasher).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn offsets_are_stable_and_inside_the_interval() {
        for id in 0..1000 {
            let o = slot_offset(id, S(60));
            assert!(o < S(60));
            assert_eq!(o, slot_offset(id, S(60)), "deterministic");
        }
        // Pinned values: every region and version must agree.
        assert_eq!(slot_offset(1, S(60)), MS(splitmix64(1) % 60_000));
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn offsets_spread_endpoints_over_the_interval() {
        let mut buckets = [0u32; 10];
        for id in 0..10_000 {
            buckets[(slot_offset(id, S(10)).as_millis() / 1000) as usize] += 1;
        }
        assert!(buckets.iter().all(|b| (900..1100).contains(b)), "{buckets:?}");
    }

    #[test]
    fn next_slot_is_at_or_after_now_and_on_the_grid() {
        let cases = [
            // (now, interval, offset) -> (round, start)
            (MS(0), S(10), MS(0), 0, MS(0)),
            (MS(1), S(10), MS(0), 1, S(10)),
            (S(10), S(10), MS(0), 1, S(10)),
            (MS(10_001), S(10), MS(2_500), 1, MS(12_500)),
            (MS(12_500), S(10), MS(2_500), 1, MS(12_500)),
            (MS(12_501), S(10), MS(2_500), 2, MS(22_500)),
            (MS(1_000), S(10), MS(2_500), 0, MS(2_500)),
        ];
        for (now, interval, offset, round, start) in cases {
            assert_eq!(next_slot(now, interval, offset), Slot { round, start }, "now {now:?}");
            assert_eq!(slot_start(round, interval, offset), start);
        }
    }

    #[test]
    fn every_region_computes_the_same_round_for_the_same_moment() {
        let interval = S(30);
        let offset = slot_offset(42, interval);
        let now = Duration::from_secs(1_790_000_000) + MS(1234);
        let a = next_slot(now, interval, offset);
        let b = next_slot(now + MS(5), interval, offset);
        assert!(a == b || b.round == a.round + 1);
        assert_eq!(a.start, slot_start(a.round, interval, offset));
    }
}
