//! The ingest ledger: which result sequence numbers of each probe the mesh
//! has processed (stored or refused), committed through Raft in small
//! periodic checkpoints.
//!
//! Raw results never enter the Raft log; this ledger is what makes their
//! delivery exactly-once across leader changes. The leader acknowledges a
//! batch to its probe only after a checkpoint covering it has committed
//! ([`Command::RecordIngest`](super::Command::RecordIngest)), so:
//! - a result the probe saw acknowledged is in the ledger on every node
//!   (nothing acknowledged is lost);
//! - a result resent to a new leader is found in the ledger and
//!   acknowledged without being counted again (nothing counted twice);
//! - a result processed by a leader that died before its checkpoint
//!   committed is not in the ledger, was never acknowledged, and is resent
//!   and counted by the next leader.
//!
//! Each probe's processed numbers are kept as a few inclusive ranges. A
//! probe numbers its results consecutively and only jumps forward (after a
//! restart with an empty spool), so one range per probe run; the ranges are
//! capped at [`MAX_RANGES`] by merging the oldest gaps, which never fill
//! again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::Outcome;
use super::ids::{ProbeId, UnixMillis};
use super::MeshState;

/// The most ranges kept per probe; beyond it the two oldest ranges are
/// merged (the gap between them is treated as processed).
pub const MAX_RANGES: usize = 64;

/// A set of sequence numbers as sorted, disjoint, non-adjacent inclusive
/// ranges.
///
/// Serialized as a list of `[first, last]` pairs; decoding refuses a list
/// that breaks the invariant, so a snapshot never loads a set that
/// `contains` would misread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SeqRanges(Vec<(u64, u64)>);

impl<'de> Deserialize<'de> for SeqRanges {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let set = SeqRanges(Vec::deserialize(deserializer)?);
        if !set.is_well_formed() {
            return Err(serde::de::Error::custom(
                "sequence ranges must be [first, last] pairs, sorted, not overlapping or touching",
            ));
        }
        Ok(set)
    }
}

impl SeqRanges {
    /// An empty set.
    pub fn new() -> SeqRanges {
        SeqRanges::default()
    }

    /// The ranges, lowest first.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Whether no number is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many numbers the set holds.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(lo, hi)| hi - lo + 1).sum()
    }

    /// The highest number in the set.
    pub fn highest(&self) -> Option<u64> {
        self.0.last().map(|&(_, hi)| hi)
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < seq);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= seq)
    }

    /// Adds one number; returns whether it was new.
    pub fn insert(&mut self, seq: u64) -> bool {
        self.insert_range(seq, seq) == 1
    }

    /// Adds `lo..=hi` (nothing when `lo > hi`) and returns how many of its
    /// numbers were not in the set before.
    pub fn insert_range(&mut self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        // Ranges touching or overlapping [lo, hi] are merged into it.
        let start = self.0.partition_point(|&(_, h)| h.saturating_add(1) < lo);
        let end = self.0.partition_point(|&(l, _)| l <= hi.saturating_add(1));
        let mut already = 0;
        let (mut new_lo, mut new_hi) = (lo, hi);
        for &(l, h) in &self.0[start..end] {
            let (a, b) = (l.max(lo), h.min(hi));
            if a <= b {
                already += b - a + 1;
            }
            new_lo = new_lo.min(l);
            new_hi = new_hi.max(h);
        }
        self.0.splice(start..end, [(new_lo, new_hi)]);
        (hi - lo + 1) - already
    }

    /// Adds every range of `other`; returns how many numbers were new.
    pub fn extend(&mut self, other: &SeqRanges) -> u64 {
        other.0.iter().map(|&(lo, hi)| self.insert_range(lo, hi)).sum()
    }

    /// Merges the oldest gaps until at most `max` ranges remain.
    pub fn cap(&mut self, max: usize) {
        let max = max.max(1);
        while self.0.len() > max {
            let (lo, _) = self.0[0];
            let (_, hi) = self.0[1];
            self.0.splice(0..2, [(lo, hi)]);
        }
    }

    /// Whether the ranges are sorted, disjoint and non-adjacent (decoding
    /// checks it).
    pub fn is_well_formed(&self) -> bool {
        self.0.iter().all(|&(lo, hi)| lo <= hi)
            && self.0.windows(2).all(|w| w[0].1.saturating_add(1) < w[1].0)
    }
}

impl FromIterator<u64> for SeqRanges {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut set = SeqRanges::new();
        for seq in iter {
            set.insert(seq);
        }
        set
    }
}

/// What the ledger holds for one probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeLedger {
    /// Sequence numbers processed (stored or refused).
    pub processed: SeqRanges,
    /// Results stored.
    pub accepted: u64,
    /// Results refused (unassigned endpoint, malformed timings, ...).
    pub rejected: u64,
    /// Numbers a checkpoint recorded that the ledger already had: a
    /// result counted twice. Zero unless something is wrong; exported so
    /// it would be seen.
    pub duplicates: u64,
    /// When the last checkpoint for the probe was proposed.
    pub updated_at: UnixMillis,
}

/// One probe's progress since the previous checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestEntry {
    /// The probe.
    pub probe: ProbeId,
    /// The sequence numbers processed since the previous checkpoint.
    pub seqs: SeqRanges,
    /// How many of them were stored.
    pub accepted: u64,
    /// How many of them were refused.
    pub rejected: u64,
}

/// Applies [`Command::RecordIngest`](super::Command::RecordIngest). Entries
/// of probes removed meanwhile are ignored (their ledger went with them).
pub(super) fn record_ingest(state: &mut MeshState, at: UnixMillis, entries: &[IngestEntry]) -> Outcome {
    let mut duplicates = 0;
    for entry in entries {
        if !state.tables.probes.contains_key(&entry.probe) {
            continue;
        }
        let ledger = state.tables.ingest.entry(entry.probe).or_default();
        let added = ledger.processed.extend(&entry.seqs);
        let again = entry.seqs.count() - added;
        ledger.processed.cap(MAX_RANGES);
        ledger.accepted += entry.accepted;
        ledger.rejected += entry.rejected;
        ledger.duplicates += again;
        ledger.updated_at = at;
        duplicates += again;
    }
    Outcome::IngestRecorded { duplicates }
}

/// Drops a removed probe's ledger.
pub(super) fn forget_probe(ledgers: &mut BTreeMap<ProbeId, ProbeLedger>, probe: ProbeId) {
    ledgers.remove(&probe);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> SeqRanges {
        let mut s = SeqRanges::new();
        for &(lo, hi) in ranges {
            s.insert_range(lo, hi);
        }
        s
    }

    #[test]
    fn ranges_merge_touching_and_overlapping_numbers_and_count_what_was_new() {
        type Ranges = &'static [(u64, u64)];
        // (before, range added, how many were new, after)
        let cases: &[(Ranges, (u64, u64), u64, Ranges)] = &[
            (&[], (5, 9), 5, &[(5, 9)]),
            (&[(5, 9)], (10, 12), 3, &[(5, 12)]),
            (&[(5, 9)], (1, 4), 4, &[(1, 9)]),
            (&[(5, 9)], (7, 12), 3, &[(5, 12)]),
            (&[(5, 9)], (5, 9), 0, &[(5, 9)]),
            (&[(1, 2), (5, 6), (9, 10)], (2, 9), 4, &[(1, 10)]),
            (&[(1, 2), (9, 10)], (5, 6), 2, &[(1, 2), (5, 6), (9, 10)]),
            (&[(1, 2)], (u64::MAX - 1, u64::MAX), 2, &[(1, 2), (u64::MAX - 1, u64::MAX)]),
            (&[(3, 4)], (9, 2), 0, &[(3, 4)]),
        ];
        for (before, (lo, hi), new, after) in cases {
            let mut s = set(before);
            assert_eq!(s.insert_range(*lo, *hi), *new, "{before:?} + {lo}..={hi}");
            assert_eq!(s.ranges(), *after, "{before:?} + {lo}..={hi}");
            assert!(s.is_well_formed());
        }
    }

    #[test]
    fn contains_and_count_agree_with_a_plain_set() {
        let numbers = [1u64, 2, 3, 7, 8, 20, 21, 22, 23, 100];
        let s: SeqRanges = numbers.iter().copied().collect();
        assert_eq!(s.ranges(), [(1, 3), (7, 8), (20, 23), (100, 100)]);
        assert_eq!(s.count(), numbers.len() as u64);
        for n in 0..=101 {
            assert_eq!(s.contains(n), numbers.contains(&n), "{n}");
        }
        assert_eq!(s.highest(), Some(100));
    }

    #[test]
    fn decoding_refuses_ranges_that_break_the_invariant() {
        let good: SeqRanges = serde_json::from_str("[[1,3],[5,9]]").expect("well formed");
        assert_eq!(good.ranges(), [(1, 3), (5, 9)]);
        for bad in ["[[3,1]]", "[[5,9],[1,3]]", "[[1,5],[4,9]]", "[[1,3],[4,9]]"] {
            let error = serde_json::from_str::<SeqRanges>(bad).expect_err(bad).to_string();
            assert!(error.contains("sequence ranges must be"), "{bad}: {error}");
        }
    }

    #[test]
    fn capping_merges_the_oldest_gaps() {
        let mut s = set(&[(1, 1), (3, 3), (5, 5), (7, 7)]);
        s.cap(2);
        assert_eq!(s.ranges(), [(1, 5), (7, 7)]);
        assert!(s.is_well_formed());
    }
}
