//! A mergeable latency histogram with log-linear buckets.
//!
//! Values are microseconds. Below 32 µs every value has its own bucket;
//! above, each power of two is split into 32 equal sub-buckets (the layout
//! of HdrHistogram with 5 significant bits). A bucket is at most 1/32 of
//! its lower bound wide, and a quantile is answered with the bucket's
//! midpoint, so a reported quantile is within **1.6 %** of a value that
//! was recorded at that rank (and never outside the recorded min and max,
//! which are kept exactly).
//!
//! Merging adds counts bucket by bucket: integer arithmetic only, so every
//! node that merges the same inputs holds the same bytes, and the order of
//! merges does not matter. Storage is sparse: an hour of a steady endpoint
//! touches a dozen buckets, not the 1,184 the range allows.

use serde::{Deserialize, Serialize};

/// Significant bits kept per power of two.
const SUB_BITS: u32 = 5;
/// Sub-buckets per power of two (and the linear range at the bottom).
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// The largest value recorded as itself: 2^40 µs, about 12.7 days; longer
/// durations (none is: a check's timeout is at most 10 minutes) are
/// clamped to it.
pub const MAX_MICROS: u64 = 1 << 40;
/// The largest relative error of a reported quantile: half a bucket.
pub const RELATIVE_ERROR: f64 = 1.0 / (2.0 * SUB_BUCKETS as f64);

/// Counts of latencies in log-linear buckets, with their exact count, sum,
/// minimum and maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `(bucket index, count)`, sorted by index, no zero counts.
    buckets: Vec<(u16, u32)>,
    count: u64,
    sum_micros: u64,
    min_micros: u64,
    max_micros: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Records `n` occurrences of one value.
    pub fn record_n(&mut self, micros: u64, n: u32) {
        if n == 0 {
            return;
        }
        let micros = micros.min(MAX_MICROS);
        self.add_bucket(bucket_index(micros), n);
        if self.count == 0 {
            self.min_micros = micros;
            self.max_micros = micros;
        } else {
            self.min_micros = self.min_micros.min(micros);
            self.max_micros = self.max_micros.max(micros);
        }
        self.count += u64::from(n);
        self.sum_micros = self.sum_micros.saturating_add(micros.saturating_mul(u64::from(n)));
    }

    /// Adds every count of `other` to this one.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let mut merged = Vec::with_capacity(self.buckets.len().max(other.buckets.len()));
        let (mut a, mut b) = (self.buckets.iter().peekable(), other.buckets.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        merged.push((ia, ca.saturating_add(cb)));
                        a.next();
                        b.next();
                    } else if ia < ib {
                        merged.push((ia, ca));
                        a.next();
                    } else {
                        merged.push((ib, cb));
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    merged.push(x);
                    a.next();
                }
                (None, Some(&&x)) => {
                    merged.push(x);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.buckets = merged;
        self.count += other.count;
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
        self.min_micros = self.min_micros.min(other.min_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact mean, in microseconds.
    pub fn mean_micros(&self) -> Option<u64> {
        (self.count > 0).then(|| self.sum_micros / self.count)
    }

    /// The exact smallest value recorded.
    pub fn min_micros(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min_micros)
    }

    /// The exact largest value recorded.
    pub fn max_micros(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max_micros)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1; clamped), the value at rank
    /// ⌈q·count⌉: the midpoint of its bucket, clamped to the recorded
    /// minimum and maximum; within [`RELATIVE_ERROR`] of a recorded value.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // Float rank, then integer from here on.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return Some(self.max_micros);
        }
        let mut seen = 0u64;
        for &(index, count) in &self.buckets {
            seen += u64::from(count);
            if seen >= rank {
                let (low, width) = bucket_bounds(index);
                let middle = low + width / 2;
                return Some(middle.clamp(self.min_micros, self.max_micros));
            }
        }
        Some(self.max_micros)
    }

    /// How many recorded values are at most `micros`, counting a bucket
    /// that straddles it in proportion to the part below (so the answer
    /// is exact at bucket bounds and within one bucket's count otherwise).
    pub fn count_at_most(&self, micros: u64) -> u64 {
        if self.count == 0 || micros < self.min_micros {
            return 0;
        }
        if micros >= self.max_micros {
            return self.count;
        }
        let mut below = 0u64;
        for &(index, count) in &self.buckets {
            let (low, width) = bucket_bounds(index);
            if low + width <= micros + 1 {
                below += u64::from(count);
            } else if low <= micros {
                let part = (micros + 1 - low) as u128 * u128::from(count) / u128::from(width);
                below += part as u64;
            } else {
                break;
            }
        }
        below
    }

    /// The sparse buckets, `(index, count)` in index order.
    pub fn buckets(&self) -> &[(u16, u32)] {
        &self.buckets
    }

    /// Appends the compact binary form to `out` (varints; see
    /// [`Histogram::decode`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.count);
        if self.count == 0 {
            return;
        }
        put_varint(out, self.sum_micros);
        put_varint(out, self.min_micros);
        put_varint(out, self.max_micros - self.min_micros);
        put_varint(out, self.buckets.len() as u64);
        let mut previous = 0u16;
        for &(index, count) in &self.buckets {
            put_varint(out, u64::from(index - previous));
            put_varint(out, u64::from(count));
            previous = index;
        }
    }

    /// Reads the form [`Histogram::encode`] wrote from the front of
    /// `input`, advancing it; `None` when it is damaged (counts that do not
    /// add up, buckets out of order or out of range).
    pub fn decode(input: &mut &[u8]) -> Option<Histogram> {
        let count = get_varint(input)?;
        if count == 0 {
            return Some(Histogram::default());
        }
        let sum_micros = get_varint(input)?;
        let min_micros = get_varint(input)?;
        let max_micros = min_micros.checked_add(get_varint(input)?)?;
        let len = usize::try_from(get_varint(input)?).ok()?;
        if len > MAX_BUCKETS {
            return None;
        }
        let mut buckets = Vec::with_capacity(len);
        let mut index = 0u64;
        let mut total = 0u64;
        for i in 0..len {
            let delta = get_varint(input)?;
            if i > 0 && delta == 0 {
                return None;
            }
            index += delta;
            let count = u32::try_from(get_varint(input)?).ok().filter(|&c| c > 0)?;
            buckets.push((u16::try_from(index).ok().filter(|&i| usize::from(i) < MAX_BUCKETS)?, count));
            total += u64::from(count);
        }
        (total == count && min_micros <= max_micros).then_some(Histogram {
            buckets,
            count,
            sum_micros,
            min_micros,
            max_micros,
        })
    }

    fn add_bucket(&mut self, index: u16, n: u32) {
        match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) => self.buckets[at].1 = self.buckets[at].1.saturating_add(n),
            Err(at) => self.buckets.insert(at, (index, n)),
        }
    }
}

/// How many buckets the range has.
pub const MAX_BUCKETS: usize = bucket_index(MAX_MICROS) as usize + 1;

/// The bucket of a value (at most [`MAX_MICROS`]).
const fn bucket_index(micros: u64) -> u16 {
    if micros < SUB_BUCKETS {
        return micros as u16;
    }
    let exponent = 63 - micros.leading_zeros(); // ≥ SUB_BITS
    let shift = exponent - SUB_BITS;
    let sub = (micros >> shift) - SUB_BUCKETS; // 0..SUB_BUCKETS
    (SUB_BUCKETS + shift as u64 * SUB_BUCKETS + sub) as u16
}

/// A bucket's lower bound and width.
fn bucket_bounds(index: u16) -> (u64, u64) {
    let index = u64::from(index);
    if index < SUB_BUCKETS {
        return (index, 1);
    }
    let shift = (index - SUB_BUCKETS) / SUB_BUCKETS;
    let sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
    ((SUB_BUCKETS + sub) << shift, 1 << shift)
}

/// Appends `value` as an LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an LEB128 varint from the front of `input`.
pub(crate) fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_contains_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend([65_535, 65_536, 1_000_000, 59_999_999, MAX_MICROS - 1, MAX_MICROS]);
        for v in values {
            let (low, width) = bucket_bounds(bucket_index(v));
            assert!(low <= v && v < low + width, "{v} not in [{low}, {})", low + width);
            assert!(width == 1 || width * 32 <= low, "bucket of {v} too wide: {width} at {low}");
        }
        assert!(usize::from(bucket_index(MAX_MICROS)) < MAX_BUCKETS);
    }

    #[test]
    fn quantiles_are_within_the_stated_relative_error() {
        let mut h = Histogram::new();
        // 1 ms .. 10 s, uneven steps.
        let values: Vec<u64> = (0..10_000u64).map(|i| 1_000 + i * i / 10).collect();
        for &v in &values {
            h.record(v);
        }
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - exact).abs() / exact <= RELATIVE_ERROR, "q={q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), Some(*values.last().unwrap()));
        assert_eq!(h.min_micros(), Some(1_000));
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn merging_equals_recording_everything_in_one_and_order_does_not_matter() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for i in 0..500u64 {
            let v = (i * 7919) % 100_000 + 1;
            if i % 3 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
            all.record(v);
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, all);
        assert_eq!(ba, all);
        let mut empty = Histogram::new();
        empty.merge(&all);
        assert_eq!(empty, all);
    }

    #[test]
    fn the_binary_form_round_trips_and_refuses_damage() {
        let mut h = Histogram::new();
        for v in [3, 40_000, 41_000, 250_000, 250_001, 9_000_000] {
            h.record(v);
        }
        let mut bytes = Vec::new();
        h.encode(&mut bytes);
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        let mut input = bytes.as_slice();
        assert_eq!(Histogram::decode(&mut input), Some(h.clone()));
        assert!(input.is_empty());
        for cut in 0..bytes.len() {
            assert_eq!(Histogram::decode(&mut &bytes[..cut]), None, "cut at {cut}");
        }
        let mut empty = Vec::new();
        Histogram::new().encode(&mut empty);
        assert_eq!(Histogram::decode(&mut empty.as_slice()), Some(Histogram::new()));
    }

    #[test]
    fn counts_at_most_a_threshold_are_exact_at_bucket_bounds() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000); // 1 ms .. 1 s
        }
        assert_eq!(h.count_at_most(0), 0);
        assert_eq!(h.count_at_most(1_000_000), 1000);
        let at_500ms = h.count_at_most(500_000);
        assert!((495..=505).contains(&at_500ms), "{at_500ms}");
    }
}
