//! A rollup: what one endpoint's checks in one region showed over one
//! period (an hour or a day): counts, latency histograms and phase sums.
//!
//! Latency counts successful checks only: a failed check's time is the
//! time until it failed (often a timeout), which says nothing about how
//! fast the endpoint answers; failures are counted instead.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::histogram::{get_varint, put_varint, Histogram};
use crate::result::{CheckResult, Phases};

/// The phases whose sums a rollup keeps, in their order on the wire and
/// in [`Rollup::phase_sums`].
pub const PHASES: [&str; 5] = ["dns", "connect", "tls", "ttfb", "transfer"];

/// One period of one endpoint in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// Checks that ran (skipped slots and checks of a probe whose own
    /// canaries failed are not counted).
    pub checks: u32,
    /// Of those, how many failed.
    pub failures: u32,
    /// Total time of the successful checks.
    pub total: Histogram,
    /// Time to first byte of the successful checks that have one (HTTP).
    pub ttfb: Histogram,
    /// Per phase ([`PHASES`]), the sum over successful checks, in
    /// microseconds: the mean of each phase, stackable in a chart.
    pub phase_sums: [u64; 5],
}

impl Rollup {
    /// Adds one check's result.
    pub fn record(&mut self, result: &CheckResult) {
        self.checks = self.checks.saturating_add(1);
        if !result.ok {
            self.failures = self.failures.saturating_add(1);
            return;
        }
        self.total.record(micros(result.phases_ms.total));
        if !result.phases_ms.ttfb.is_zero() {
            self.ttfb.record(micros(result.phases_ms.ttfb));
        }
        for (sum, phase) in self.phase_sums.iter_mut().zip(phase_values(&result.phases_ms)) {
            *sum = sum.saturating_add(micros(phase));
        }
    }

    /// Adds another rollup of the same endpoint and region.
    pub fn merge(&mut self, other: &Rollup) {
        self.checks = self.checks.saturating_add(other.checks);
        self.failures = self.failures.saturating_add(other.failures);
        self.total.merge(&other.total);
        self.ttfb.merge(&other.ttfb);
        for (sum, add) in self.phase_sums.iter_mut().zip(other.phase_sums) {
            *sum = sum.saturating_add(add);
        }
    }

    /// Successful checks.
    pub fn successes(&self) -> u32 {
        self.checks - self.failures.min(self.checks)
    }

    /// Per phase ([`PHASES`]), the mean over successful checks.
    pub fn phase_means_micros(&self) -> [u64; 5] {
        let n = u64::from(self.successes()).max(1);
        self.phase_sums.map(|sum| sum / n)
    }

    /// The compact binary form (a version byte, then varints).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 4 * self.total.buckets().len());
        out.push(FORMAT);
        put_varint(&mut out, u64::from(self.checks));
        put_varint(&mut out, u64::from(self.failures));
        self.total.encode(&mut out);
        self.ttfb.encode(&mut out);
        for sum in self.phase_sums {
            put_varint(&mut out, sum);
        }
        out
    }

    /// Reads [`Rollup::encode`]'s form; `None` when damaged or of an
    /// unknown version.
    pub fn decode(bytes: &[u8]) -> Option<Rollup> {
        let (&format, mut input) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let checks = u32::try_from(get_varint(&mut input)?).ok()?;
        let failures = u32::try_from(get_varint(&mut input)?).ok()?;
        let total = Histogram::decode(&mut input)?;
        let ttfb = Histogram::decode(&mut input)?;
        let mut phase_sums = [0u64; 5];
        for sum in &mut phase_sums {
            *sum = get_varint(&mut input)?;
        }
        (input.is_empty() && failures <= checks).then_some(Rollup {
            checks,
            failures,
            total,
            ttfb,
            phase_sums,
        })
    }
}

/// The binary form's version.
const FORMAT: u8 = 1;

fn phase_values(p: &Phases) -> [Duration; 5] {
    [p.dns, p.connect, p.tls, p.ttfb, p.transfer]
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
