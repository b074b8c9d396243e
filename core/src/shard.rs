//! Sharding: which probes check which endpoint, in each region.
//!
//! Each endpoint is checked from every region it lists (all known regions by
//! default) by `replicas` probes per region (default 1). Within a region the
//! probes are chosen by weighted rendezvous hashing (highest random weight)
//! over the *eligible* probes: live (the caller decides that from
//! `probe_grace`), not drained, and of non-zero weight. Every (endpoint, probe)
//! pair gets a score from a stable hash and the probe's weight; an endpoint
//! goes to the best-scoring probes of each region. Because a pair's score
//! depends on nothing else, a probe joining or leaving changes only the pairs
//! that involve it: only about its share of endpoints move, and every move is
//! to the joining probe or away from the leaving one. The same inputs, in any
//! order, give the same assignment on every node, so a new leader rebuilds
//! the old one as probes reconnect instead of reshuffling.
//!
//! A pin (`shard pin ENDPOINT --region R --probe P`) takes one of the region's
//! replica slots while the pinned probe is eligible; otherwise the region falls
//! back to hashing and the pin is reported as unsatisfied. A region with no
//! eligible probe for an endpoint is reported as uncovered.
//!
//! # Scores
//!
//! Probe `p` with weight `w` scores `w / -log2(u)` for endpoint `e`, where `u`
//! in `(0, 1)` is a stable 64-bit hash of `(e, p)` (Schrijvers' "logarithmic
//! method"): `-ln(u)` is exponentially distributed, so `-ln(u) / w` is
//! exponential with rate `w`, and the smallest of independent exponentials
//! is probe `i` with probability `w_i / sum(w)`. Base 2 instead of `e` scales
//! every score by the same constant and changes no ranking.
//!
//! The logarithm is computed in integer fixed point and scores are compared by
//! exact cross-multiplication, never in floating point. `f64::ln` is delegated
//! to the platform's libm, which need not be correctly rounded (glibc, musl and
//! macOS may differ in the last bit), and a one-bit difference between two
//! coordinators could flip a near-tie. Integer arithmetic gives every node,
//! platform and compiler version bit-identical rankings. The hash is
//! [`splitmix64`], pinned by tests here and in [`crate::schedule`].
//!
//! Nothing here reads a clock or does I/O.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::schedule::splitmix64;

/// A probe the leader could assign endpoints to, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeCandidate {
    /// The probe's id: unique, never reused.
    pub id: u64,
    /// The region it checks from.
    pub region: String,
    /// Its share of the region's endpoints, relative to the region's other
    /// probes. A weight of 0 makes the probe ineligible.
    pub weight: u32,
    /// Connected now, or disconnected for less than `probe_grace`.
    pub live: bool,
    /// Drained by an admin: it keeps no endpoints, not even pinned ones.
    pub drained: bool,
}

impl ProbeCandidate {
    /// Whether the probe can be given endpoints: live, not drained, and of
    /// non-zero weight.
    pub fn is_eligible(&self) -> bool {
        self.live && !self.drained && self.weight > 0
    }
}

/// Where one endpoint must be checked from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointPlacement {
    /// The endpoint's id.
    pub endpoint_id: u64,
    /// The regions to check from; `None` means every known region. A listed
    /// region that no probe is in is reported as uncovered.
    pub regions: Option<BTreeSet<String>>,
    /// Probes per region. 0 is treated as 1: a placed endpoint is checked.
    pub replicas: u32,
    /// Region to pinned probe id, set by `shard pin`.
    pub pins: BTreeMap<String, u64>,
}

impl EndpointPlacement {
    /// An endpoint checked from every region by one probe each, unpinned.
    pub fn new(endpoint_id: u64) -> Self {
        Self { endpoint_id, regions: None, replicas: 1, pins: BTreeMap::new() }
    }
}

/// Who checks what: the result of [`assign`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    endpoints: BTreeMap<u64, BTreeMap<String, Vec<u64>>>,
    by_probe: BTreeMap<u64, BTreeSet<u64>>,
    uncovered: BTreeMap<u64, Vec<String>>,
    under_replicated: Vec<Shortfall>,
    unsatisfied_pins: Vec<UnsatisfiedPin>,
}

/// A region where an endpoint has some, but fewer than `replicas`, probes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shortfall {
    /// The endpoint.
    pub endpoint_id: u64,
    /// The region short of probes.
    pub region: String,
    /// The endpoint's `replicas`.
    pub wanted: u32,
    /// How many probes it got (at least 1; none is [`Assignment::uncovered`]).
    pub got: u32,
}

/// A pin that could not be honoured; the region fell back to hashing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnsatisfiedPin {
    /// The pinned endpoint.
    pub endpoint_id: u64,
    /// The region of the pin.
    pub region: String,
    /// The pinned probe.
    pub probe_id: u64,
    /// Why it was not honoured.
    pub reason: PinProblem,
}

/// Why a pin was not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PinProblem {
    /// No such probe among the candidates.
    UnknownProbe,
    /// The probe is in another region than the pin names.
    OtherRegion,
    /// The probe is disconnected beyond grace, drained, or of weight 0.
    NotEligible,
    /// The endpoint is not checked from the pin's region.
    RegionNotChecked,
}

/// What changed for one probe between two assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeDelta {
    /// Endpoints the probe must start checking.
    pub added: BTreeSet<u64>,
    /// Endpoints the probe must stop checking.
    pub removed: BTreeSet<u64>,
}

/// The eligible probes among `probes`, best first for `endpoint_id`, by
/// weighted rendezvous hashing. Regions are ignored: pass one region's probes.
/// If an id appears more than once, the entry that sorts first is used, so the
/// result never depends on input order.
pub fn rank(endpoint_id: u64, probes: &[ProbeCandidate]) -> Vec<u64> {
    let eligible: Vec<Weighted> = unique_probes(probes)
        .into_values()
        .filter(|p| p.is_eligible())
        .map(|p| Weighted { id: p.id, weight: p.weight })
        .collect();
    best(endpoint_id, &eligible, eligible.len(), &[])
}

/// Assigns every placed endpoint to `replicas` eligible probes in each of its
/// regions (`all_regions` for endpoints that list none), honouring pins where
/// the pinned probe is eligible and in the pin's region.
///
/// A probe whose region is not in `all_regions` gets only endpoints that list
/// its region. The result depends only on the set of inputs, never on their
/// order: where an endpoint or probe id appears more than once, the entry that
/// sorts first is used.
pub fn assign(
    placements: &[EndpointPlacement],
    probes: &[ProbeCandidate],
    all_regions: &BTreeSet<String>,
) -> Assignment {
    let probes = unique_probes(probes);
    let mut eligible_by_region: BTreeMap<&str, Vec<Weighted>> = BTreeMap::new();
    for probe in probes.values().filter(|p| p.is_eligible()) {
        eligible_by_region
            .entry(probe.region.as_str())
            .or_default()
            .push(Weighted { id: probe.id, weight: probe.weight });
    }

    let mut out = Assignment::default();
    for placement in unique_placements(placements).into_values() {
        let endpoint_id = placement.endpoint_id;
        let wanted = placement.replicas.max(1);
        let regions: Vec<&String> = match &placement.regions {
            Some(listed) => listed.iter().collect(),
            None => all_regions.iter().collect(),
        };
        let mut per_region = BTreeMap::new();
        for region in regions {
            let eligible = eligible_by_region.get(region.as_str()).map_or(&[][..], Vec::as_slice);
            let mut chosen = Vec::new();
            if let Some(&probe_id) = placement.pins.get(region) {
                let problem = match probes.get(&probe_id) {
                    None => Some(PinProblem::UnknownProbe),
                    Some(p) if p.region != *region => Some(PinProblem::OtherRegion),
                    Some(p) if !p.is_eligible() => Some(PinProblem::NotEligible),
                    Some(_) => None,
                };
                match problem {
                    None => chosen.push(probe_id),
                    Some(reason) => out.unsatisfied_pins.push(UnsatisfiedPin {
                        endpoint_id,
                        region: region.clone(),
                        probe_id,
                        reason,
                    }),
                }
            }
            let still_wanted = wanted as usize - chosen.len();
            chosen.extend(best(endpoint_id, eligible, still_wanted, &chosen));

            let got = chosen.len() as u32;
            if got == 0 {
                out.uncovered.entry(endpoint_id).or_default().push(region.clone());
            } else if got < wanted {
                out.under_replicated.push(Shortfall { endpoint_id, region: region.clone(), wanted, got });
            }
            for &probe_id in &chosen {
                out.by_probe.entry(probe_id).or_default().insert(endpoint_id);
            }
            per_region.insert(region.clone(), chosen);
        }
        for (region, &probe_id) in &placement.pins {
            if !per_region.contains_key(region) {
                out.unsatisfied_pins.push(UnsatisfiedPin {
                    endpoint_id,
                    region: region.clone(),
                    probe_id,
                    reason: PinProblem::RegionNotChecked,
                });
            }
        }
        out.endpoints.insert(endpoint_id, per_region);
    }
    out.unsatisfied_pins.sort();
    out
}

/// What each probe must add and remove to go from `old` to `new`: the deltas
/// pushed after a full assignment. Probes with no change are left out; a probe
/// missing from `new` loses everything it had.
pub fn diff(old: &Assignment, new: &Assignment) -> BTreeMap<u64, ProbeDelta> {
    let probe_ids: BTreeSet<u64> = old.by_probe.keys().chain(new.by_probe.keys()).copied().collect();
    let mut deltas = BTreeMap::new();
    for probe_id in probe_ids {
        let (before, after) = (old.by_probe(probe_id), new.by_probe(probe_id));
        let delta = ProbeDelta {
            added: after.difference(before).copied().collect(),
            removed: before.difference(after).copied().collect(),
        };
        if !delta.added.is_empty() || !delta.removed.is_empty() {
            deltas.insert(probe_id, delta);
        }
    }
    deltas
}

impl Assignment {
    /// The probes checking `endpoint_id` from `region`: a pinned probe first,
    /// then best score first. Empty if the endpoint is not checked from there
    /// or the region is uncovered.
    pub fn probes_for(&self, endpoint_id: u64, region: &str) -> &[u64] {
        self.endpoints.get(&endpoint_id).and_then(|r| r.get(region)).map_or(&[], Vec::as_slice)
    }

    /// Every region `endpoint_id` is checked from, with its probes (empty for
    /// an uncovered region); `None` for an endpoint that was not placed.
    pub fn endpoint(&self, endpoint_id: u64) -> Option<&BTreeMap<String, Vec<u64>>> {
        self.endpoints.get(&endpoint_id)
    }

    /// Every placed endpoint with its regions and probes, by endpoint id.
    pub fn endpoints(&self) -> &BTreeMap<u64, BTreeMap<String, Vec<u64>>> {
        &self.endpoints
    }

    /// The endpoints `probe_id` must check: its full assignment. Empty for a
    /// probe with none.
    pub fn by_probe(&self, probe_id: u64) -> &BTreeSet<u64> {
        static NONE: BTreeSet<u64> = BTreeSet::new();
        self.by_probe.get(&probe_id).unwrap_or(&NONE)
    }

    /// Every probe with at least one endpoint, and its endpoints.
    pub fn probes(&self) -> &BTreeMap<u64, BTreeSet<u64>> {
        &self.by_probe
    }

    /// Endpoint to the regions where it has no eligible probe, sorted.
    pub fn uncovered(&self) -> &BTreeMap<u64, Vec<String>> {
        &self.uncovered
    }

    /// Regions where an endpoint has fewer than `replicas` probes but at least
    /// one, by endpoint then region.
    pub fn under_replicated(&self) -> &[Shortfall] {
        &self.under_replicated
    }

    /// Pins that were not honoured, by endpoint then region.
    pub fn unsatisfied_pins(&self) -> &[UnsatisfiedPin] {
        &self.unsatisfied_pins
    }
}

/// An eligible probe of a region.
#[derive(Debug, Clone, Copy)]
struct Weighted {
    id: u64,
    weight: u32,
}

/// One probe's score for one endpoint: `weight / neg_log2`, kept as a
/// fraction so that comparing scores is exact integer arithmetic.
#[derive(Debug, Clone, Copy)]
struct Scored {
    probe_id: u64,
    weight: u32,
    hash: u64,
    /// `-log2(hash / 2^64)` in fixed point ([`FRAC_BITS`]); at least 1.
    neg_log2: u64,
}

impl Scored {
    /// Without `with_logarithm`, `neg_log2` is a constant 1: right only when
    /// every probe compared has the same weight (see [`best`]).
    fn new(endpoint_id: u64, probe: Weighted, with_logarithm: bool) -> Self {
        let hash = pair_hash(endpoint_id, probe.id);
        let neg_log2 = if with_logarithm { neg_log2_fraction(hash) } else { 1 };
        Self { probe_id: probe.id, weight: probe.weight, hash, neg_log2 }
    }

    /// Higher score first; equal scores by higher hash, then lower probe id,
    /// so the order is total and the same everywhere.
    fn best_first(a: &Self, b: &Self) -> Ordering {
        // a.weight / a.neg_log2 > b.weight / b.neg_log2, without dividing:
        // weights < 2^32 and neg_log2 < 2^(6 + FRAC_BITS), so each product
        // fits in a u128 with room to spare.
        let a_score = u128::from(a.weight) * u128::from(b.neg_log2);
        let b_score = u128::from(b.weight) * u128::from(a.neg_log2);
        b_score.cmp(&a_score).then(b.hash.cmp(&a.hash)).then(a.probe_id.cmp(&b.probe_id))
    }
}

/// The `count` best of `eligible` for `endpoint_id`, best first, skipping
/// those already `chosen`.
fn best(endpoint_id: u64, eligible: &[Weighted], count: usize, chosen: &[u64]) -> Vec<u64> {
    if count == 0 {
        return Vec::new();
    }
    // With equal weights a higher hash never scores lower (the logarithm is
    // non-increasing in the hash, and equal scores fall back to the hash), so
    // the ranking is the hash order and the logarithm, most of the cost, can
    // be skipped. Regions of default-weight probes take this path.
    let equal_weights = eligible.windows(2).all(|pair| pair[0].weight == pair[1].weight);
    let mut scored: Vec<Scored> = eligible
        .iter()
        .filter(|p| !chosen.contains(&p.id))
        .map(|&p| Scored::new(endpoint_id, p, !equal_weights))
        .collect();
    if scored.len() > count {
        scored.select_nth_unstable_by(count - 1, Scored::best_first);
        scored.truncate(count);
    }
    scored.sort_unstable_by(Scored::best_first);
    scored.into_iter().map(|s| s.probe_id).collect()
}

/// The stable 64-bit hash of an (endpoint, probe) pair. Both ids are mixed
/// before they are combined, and the probe's with a domain constant, so
/// consecutive ids and swapped pairs give unrelated values.
fn pair_hash(endpoint_id: u64, probe_id: u64) -> u64 {
    const PROBE_DOMAIN: u64 = 0x5348_4152_445F_5052; // "SHARD_PR"
    splitmix64(splitmix64(endpoint_id) ^ splitmix64(probe_id ^ PROBE_DOMAIN))
}

/// Fractional bits of [`neg_log2_fraction`]. 40 bits resolve scores far more
/// finely than any weight can matter (weights are at most 2^32), and keep
/// the logarithm to 40 integer squarings.
const FRAC_BITS: u32 = 40;

/// `-log2(hash / 2^64)` in fixed point with [`FRAC_BITS`] fractional bits:
/// `hash` read as a fraction in `(0, 1)`, a hash of 0 taken as 1. The
/// result is in `[1, 64 << FRAC_BITS]`: the fractional digits of `log2` are
/// truncated, so it is never 0 and no score is infinite.
///
/// Integer only, so bit-identical on every platform: the integer part from
/// the leading zeros, then one fractional bit per squaring of the mantissa
/// (the classic binary-logarithm digit recurrence). Non-increasing in `hash`.
fn neg_log2_fraction(hash: u64) -> u64 {
    let hash = hash.max(1);
    let int_part = 63 - hash.leading_zeros(); // floor(log2(hash))
                                              // Mantissa hash / 2^int_part, in [1, 2), as fixed point with 62
                                              // fractional bits: its square is below 4 and still fits in a u64.
    let mut mantissa = if int_part >= 62 { hash >> (int_part - 62) } else { hash << (62 - int_part) };
    let mut frac = 0u64;
    for _ in 0..FRAC_BITS {
        let square = ((u128::from(mantissa) * u128::from(mantissa)) >> 62) as u64;
        frac <<= 1;
        if square >= 1 << 63 {
            frac |= 1;
            mantissa = square >> 1;
        } else {
            mantissa = square;
        }
    }
    let log2_hash = (u64::from(int_part) << FRAC_BITS) | frac;
    (64 << FRAC_BITS) - log2_hash
}

/// Probes by id; for a repeated id, the entry that sorts first.
fn unique_probes(probes: &[ProbeCandidate]) -> BTreeMap<u64, &ProbeCandidate> {
    let mut unique: BTreeMap<u64, &ProbeCandidate> = BTreeMap::new();
    for probe in probes {
        unique.entry(probe.id).and_modify(|kept| *kept = (*kept).min(probe)).or_insert(probe);
    }
    unique
}

/// Placements by endpoint id; for a repeated id, the entry that sorts first.
fn unique_placements(placements: &[EndpointPlacement]) -> BTreeMap<u64, &EndpointPlacement> {
    let mut unique: BTreeMap<u64, &EndpointPlacement> = BTreeMap::new();
    for placement in placements {
        unique
            .entry(placement.endpoint_id)
            .and_modify(|kept| *kept = (*kept).min(placement))
            .or_insert(placement);
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(id: u64, region: &str, weight: u32) -> ProbeCandidate {
        ProbeCandidate { id, region: region.to_owned(), weight, live: true, drained: false }
    }

    fn regions(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|r| (*r).to_owned()).collect()
    }

    fn endpoints(count: u64) -> Vec<EndpointPlacement> {
        (1..=count).map(EndpointPlacement::new).collect()
    }

    /// The one probe per endpoint in a one-region setup.
    fn owners(a: &Assignment, region: &str) -> BTreeMap<u64, u64> {
        a.endpoints().keys().map(|&e| (e, a.probes_for(e, region)[0])).collect()
    }

    /// A deterministic Fisher-Yates shuffle driven by splitmix64.
    fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
        let mut out = items.to_vec();
        let mut state = seed;
        for i in (1..out.len()).rev() {
            state = splitmix64(state);
            out.swap(i, (state % (i as u64 + 1)) as usize);
        }
        out
    }

    #[test]
    fn hash_and_logarithm_are_pinned() {
        // Every coordinator, platform and version must compute these.
        assert_eq!(pair_hash(1, 1), 0x9F45_9128_EE77_5E06);
        assert_eq!(pair_hash(42, 7), 0x8FEC_4158_DE7E_E4A2);
        assert_ne!(pair_hash(1, 2), pair_hash(2, 1));
        let cases = [
            // (hash, -log2(hash / 2^64) in fixed point)
            (0, 64 << FRAC_BITS),
            (1, 64 << FRAC_BITS),
            (1 << 63, 1 << FRAC_BITS),
            (1 << 32, 32 << FRAC_BITS),
            // -log2(0.75) = 0.415037499..., rounded 0x6A_3FE5_C604; the digits of
            // log2 are truncated, so its negation is one unit above.
            (3 << 62, 0x6A_3FE5_C605),
            (u64::MAX, 1), // never 0: every score is finite
        ];
        for (hash, expected) in cases {
            assert_eq!(neg_log2_fraction(hash), expected, "hash {hash:#x}");
        }
    }

    #[test]
    fn fixed_point_logarithm_matches_floating_point_and_is_monotone() {
        let scale = (1u64 << FRAC_BITS) as f64;
        let mut previous = (0u64, u64::MAX);
        let mut hashes: Vec<u64> = (0..2000).map(splitmix64).collect();
        hashes.sort_unstable();
        for hash in hashes {
            let fixed = neg_log2_fraction(hash) as f64 / scale;
            let float = -((hash as f64) / 2f64.powi(64)).log2();
            assert!((fixed - float).abs() < 1e-9, "hash {hash:#x}: {fixed} vs {float}");
            let neg_log2 = neg_log2_fraction(hash);
            assert!(neg_log2 <= previous.1, "not monotone at {hash:#x} after {:#x}", previous.0);
            previous = (hash, neg_log2);
        }
    }

    #[test]
    fn equal_weights_skip_the_logarithm_without_changing_the_order() {
        let order = |endpoint_id: u64, weight: u32, with_logarithm: bool| {
            let mut scored: Vec<Scored> =
                (0..12).map(|id| Scored::new(endpoint_id, Weighted { id, weight }, with_logarithm)).collect();
            scored.sort_unstable_by(Scored::best_first);
            scored.into_iter().map(|s| s.probe_id).collect::<Vec<_>>()
        };
        for endpoint_id in 0..2_000 {
            for weight in [1, 100, u32::MAX] {
                assert_eq!(order(endpoint_id, weight, true), order(endpoint_id, weight, false));
            }
        }
    }

    #[test]
    fn same_inputs_in_any_order_give_the_same_assignment() {
        let all = regions(&["eu", "us", "ap"]);
        let mut probes = Vec::new();
        for (i, region) in ["eu", "us", "ap"].iter().enumerate() {
            for j in 0..4 {
                probes.push(probe(10 * i as u64 + j, region, 100 + 50 * j as u32));
            }
        }
        probes[3].drained = true;
        probes[6].live = false;
        let mut placements = endpoints(500);
        placements[7].replicas = 2;
        placements[8].regions = Some(regions(&["eu"]));
        placements[9].pins.insert("us".into(), 12);
        let expected = assign(&placements, &probes, &all);
        for seed in 0..8 {
            let got = assign(&shuffled(&placements, seed), &shuffled(&probes, seed + 100), &all);
            assert_eq!(got, expected, "seed {seed}");
        }
        assert_eq!(rank(42, &probes[..4]), rank(42, &shuffled(&probes[..4], 7)));
        // Repeated ids resolve to the same entry whatever the order.
        let mut repeated = probes.clone();
        repeated.push(ProbeCandidate { weight: 1, ..probes[0].clone() });
        let a = assign(&placements, &repeated, &all);
        assert_eq!(a, assign(&placements, &shuffled(&repeated, 3), &all));
    }

    #[test]
    fn each_region_gets_replicas_distinct_probes_or_all_it_has() {
        struct Case {
            eligible: u64,
            ineligible: u64,
            replicas: u32,
            got: usize,
        }
        let cases = [
            Case { eligible: 5, ineligible: 0, replicas: 1, got: 1 },
            Case { eligible: 5, ineligible: 2, replicas: 3, got: 3 },
            Case { eligible: 3, ineligible: 2, replicas: 3, got: 3 },
            Case { eligible: 2, ineligible: 3, replicas: 3, got: 2 },
            Case { eligible: 1, ineligible: 0, replicas: 0, got: 1 },
            Case { eligible: 4, ineligible: 1, replicas: u32::MAX, got: 4 },
            Case { eligible: 0, ineligible: 2, replicas: 2, got: 0 },
        ];
        for (n, case) in cases.iter().enumerate() {
            let mut probes: Vec<_> = (0..case.eligible).map(|i| probe(i, "eu", 100)).collect();
            for i in 0..case.ineligible {
                let mut p = probe(100 + i, "eu", 100);
                match i % 3 {
                    0 => p.drained = true,
                    1 => p.live = false,
                    _ => p.weight = 0,
                }
                probes.push(p);
            }
            let mut placements = endpoints(200);
            for p in &mut placements {
                p.replicas = case.replicas;
            }
            let a = assign(&placements, &probes, &regions(&["eu"]));
            for e in 1..=200 {
                let chosen = a.probes_for(e, "eu");
                assert_eq!(chosen.len(), case.got, "case {n}, endpoint {e}");
                assert_eq!(chosen.iter().collect::<BTreeSet<_>>().len(), chosen.len(), "distinct");
                assert!(chosen.iter().all(|&p| p < case.eligible), "only eligible probes");
                assert_eq!(rank(e, &probes)[..case.got], *chosen, "assign agrees with rank");
            }
            let wanted = case.replicas.max(1) as usize;
            let short = if (1..wanted).contains(&case.got) { 200 } else { 0 };
            assert_eq!(a.under_replicated().len(), short, "case {n}");
            if let Some(s) = a.under_replicated().first() {
                assert_eq!((s.wanted, s.got), (wanted as u32, case.got as u32));
            }
            assert_eq!(a.uncovered().len(), if case.got == 0 { 200 } else { 0 }, "case {n}");
        }
    }

    #[test]
    fn shares_follow_weights() {
        let probes = [probe(1, "eu", 1), probe(2, "eu", 2), probe(3, "eu", 3)];
        let a = assign(&endpoints(30_000), &probes, &regions(&["eu"]));
        for (id, weight) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
            let share = a.by_probe(id).len() as f64 / 30_000.0;
            let expected = weight / 6.0;
            assert!((share - expected).abs() < 0.03, "probe {id}: share {share:.4}, expected {expected:.4}");
        }
    }

    #[test]
    fn adding_a_probe_moves_about_its_share_and_only_to_it() {
        let all = regions(&["eu"]);
        let placements = endpoints(30_000);
        let three: Vec<_> = (1..=3).map(|i| probe(i, "eu", 100)).collect();
        let mut four = three.clone();
        four.push(probe(4, "eu", 100));
        let (before, after) = (
            owners(&assign(&placements, &three, &all), "eu"),
            owners(&assign(&placements, &four, &all), "eu"),
        );
        let moved: Vec<u64> = before.keys().filter(|e| before[e] != after[e]).copied().collect();
        let fraction = moved.len() as f64 / 30_000.0;
        assert!((0.20..0.30).contains(&fraction), "moved {fraction:.4}");
        assert!(moved.iter().all(|e| after[e] == 4), "every move is to the new probe");
    }

    #[test]
    fn removing_draining_or_losing_a_probe_moves_only_its_endpoints() {
        let all = regions(&["eu"]);
        let placements = endpoints(10_000);
        let probes: Vec<_> = (1..=4).map(|i| probe(i, "eu", 100 * i as u32)).collect();
        let before = assign(&placements, &probes, &all);
        let removed: Vec<_> = probes.iter().filter(|p| p.id != 2).cloned().collect();
        let mut drained = probes.clone();
        drained[1].drained = true;
        let mut lost = probes.clone();
        lost[1].live = false;
        let after_removal = assign(&placements, &removed, &all);
        assert_eq!(assign(&placements, &drained, &all), after_removal, "draining is removing");
        assert_eq!(assign(&placements, &lost, &all), after_removal, "losing the stream is removing");
        assert!(after_removal.by_probe(2).is_empty(), "a drained probe keeps nothing");

        let (old, new) = (owners(&before, "eu"), owners(&after_removal, "eu"));
        let moved: BTreeSet<u64> = old.keys().filter(|e| old[e] != new[e]).copied().collect();
        assert_eq!(&moved, before.by_probe(2), "exactly probe 2's endpoints move");
        // Bringing it back moves back exactly those.
        let back = owners(&assign(&placements, &probes, &all), "eu");
        assert_eq!(back, old);
    }

    #[test]
    fn with_replicas_a_new_probe_replaces_at_most_one_per_endpoint() {
        let all = regions(&["eu"]);
        let mut placements = endpoints(5_000);
        for p in &mut placements {
            p.replicas = 2;
        }
        let mut probes: Vec<_> = (1..=5).map(|i| probe(i, "eu", 100)).collect();
        let before = assign(&placements, &probes, &all);
        probes.push(probe(6, "eu", 100));
        let after = assign(&placements, &probes, &all);
        let mut changed = 0;
        for e in 1..=5_000 {
            let old: BTreeSet<_> = before.probes_for(e, "eu").iter().copied().collect();
            let new: BTreeSet<_> = after.probes_for(e, "eu").iter().copied().collect();
            let gone: Vec<_> = old.difference(&new).collect();
            let came: Vec<_> = new.difference(&old).collect();
            assert!(gone.len() <= 1 && came.len() == gone.len(), "endpoint {e}: {old:?} -> {new:?}");
            assert!(came.iter().all(|&&p| p == 6), "endpoint {e}: {old:?} -> {new:?}");
            changed += came.len();
        }
        // The new probe takes its share of replica slots: 2/6 of endpoints.
        let fraction = changed as f64 / 5_000.0;
        assert!((0.29..0.38).contains(&fraction), "changed {fraction:.4}");
    }

    #[test]
    fn pins_are_honoured_when_the_pinned_probe_is_eligible() {
        let all = regions(&["eu", "us"]);
        let probes = [probe(1, "eu", 100), probe(2, "eu", 100), probe(3, "eu", 100), probe(4, "us", 100)];
        for e in 1..=50 {
            // Pin each endpoint to the probe hashing would rank last.
            let last = *rank(e, &probes[..3]).last().unwrap();
            let mut placement = EndpointPlacement::new(e);
            placement.pins.insert("eu".into(), last);
            let a = assign(&[placement.clone()], &probes, &all);
            assert_eq!(a.probes_for(e, "eu"), [last]);
            assert_eq!(a.probes_for(e, "us"), [4], "other regions unaffected");
            assert!(a.unsatisfied_pins().is_empty());
            // With two replicas the pin takes one slot; hashing fills the other.
            placement.replicas = 2;
            let a = assign(&[placement], &probes, &all);
            assert_eq!(a.probes_for(e, "eu"), [last, rank(e, &probes[..3])[0]]);
        }
    }

    #[test]
    fn unsatisfied_pins_fall_back_to_hashing_and_are_reported() {
        let all = regions(&["eu", "us"]);
        let mut probes = vec![probe(1, "eu", 100), probe(2, "eu", 100), probe(3, "us", 100)];
        probes.push(ProbeCandidate { drained: true, ..probe(4, "eu", 100) });
        probes.push(ProbeCandidate { live: false, ..probe(5, "eu", 100) });
        let listed_eu = Some(regions(&["eu"]));
        let cases = [
            // (pin region, pin probe, endpoint regions, reason)
            ("eu", 99, None, PinProblem::UnknownProbe),
            ("eu", 3, None, PinProblem::OtherRegion),
            ("eu", 4, None, PinProblem::NotEligible),
            ("eu", 5, None, PinProblem::NotEligible),
            ("us", 3, listed_eu.clone(), PinProblem::RegionNotChecked),
        ];
        for (region, probe_id, listed, reason) in cases {
            let mut placement = EndpointPlacement::new(7);
            placement.regions = listed;
            placement.pins.insert(region.into(), probe_id);
            let a = assign(&[placement], &probes, &all);
            let unpinned = assign(&[EndpointPlacement::new(7)], &probes, &all);
            assert_eq!(a.probes_for(7, "eu"), unpinned.probes_for(7, "eu"), "pin {probe_id}: fallback");
            let expected = UnsatisfiedPin { endpoint_id: 7, region: region.into(), probe_id, reason };
            assert_eq!(a.unsatisfied_pins(), [expected]);
        }
        // Several at once are listed by endpoint, then region.
        let mut placement = EndpointPlacement::new(7);
        placement.regions = listed_eu;
        placement.pins = BTreeMap::from([("eu".into(), 99), ("ap".into(), 1)]);
        let reported: Vec<_> = assign(&[placement], &probes, &all)
            .unsatisfied_pins()
            .iter()
            .map(|p| (p.region.clone(), p.reason))
            .collect();
        assert_eq!(
            reported,
            [("ap".to_owned(), PinProblem::RegionNotChecked), ("eu".to_owned(), PinProblem::UnknownProbe)]
        );
    }

    #[test]
    fn regions_with_no_eligible_probe_are_uncovered() {
        let all = regions(&["ap", "eu", "us"]);
        let probes = [
            probe(1, "eu", 100),
            ProbeCandidate { live: false, ..probe(2, "us", 100) },
            ProbeCandidate { drained: true, ..probe(3, "us", 100) },
        ];
        let a = assign(&endpoints(3), &probes, &all);
        for e in 1..=3 {
            assert_eq!(a.uncovered()[&e], ["ap", "us"]);
            assert_eq!(a.probes_for(e, "eu"), [1]);
            let checked: Vec<_> = a.endpoint(e).unwrap().keys().cloned().collect();
            assert_eq!(checked, ["ap", "eu", "us"], "uncovered regions are still listed");
        }
        assert!(assign(&endpoints(3), &[probe(9, "ap", 1)], &regions(&["ap"])).uncovered().is_empty());
    }

    #[test]
    fn endpoints_are_checked_only_from_the_regions_they_list() {
        let all = regions(&["ap", "eu", "us"]);
        let probes = [probe(1, "eu", 100), probe(2, "us", 100), probe(3, "ap", 100), probe(4, "sa", 100)];
        let mut listed = EndpointPlacement::new(1);
        listed.regions = Some(regions(&["eu", "sa"]));
        let a = assign(&[listed, EndpointPlacement::new(2)], &probes, &all);
        assert_eq!(a.endpoint(1).unwrap().keys().collect::<Vec<_>>(), ["eu", "sa"]);
        assert_eq!(
            (a.probes_for(1, "eu"), a.probes_for(1, "sa"), a.probes_for(1, "us")),
            (&[1][..], &[4][..], &[][..])
        );
        assert_eq!(
            a.endpoint(2).unwrap().keys().collect::<Vec<_>>(),
            ["ap", "eu", "us"],
            "default: every known region"
        );
        assert_eq!(a.by_probe(2), &BTreeSet::from([2]));
        assert_eq!(a.by_probe(4), &BTreeSet::from([1]));
        assert_eq!(a.by_probe(1), &BTreeSet::from([1, 2]));
        assert!(a.endpoint(3).is_none());
    }

    #[test]
    fn by_probe_is_the_inverse_of_the_endpoint_view() {
        let all = regions(&["eu", "us"]);
        let probes: Vec<_> =
            (0..8).map(|i| probe(i, if i % 2 == 0 { "eu" } else { "us" }, 1 + i as u32)).collect();
        let mut placements = endpoints(300);
        for p in &mut placements {
            p.replicas = 1 + (splitmix64(p.endpoint_id) % 3) as u32;
        }
        let a = assign(&placements, &probes, &all);
        let mut inverse: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for (&e, per_region) in a.endpoints() {
            for (region, chosen) in per_region {
                for &p in chosen {
                    assert_eq!(probes[p as usize].region, *region, "a probe only checks from its region");
                    inverse.entry(p).or_default().insert(e);
                }
            }
        }
        assert_eq!(a.probes(), &inverse);
    }

    #[test]
    fn diff_reports_exactly_the_changes() {
        let all = regions(&["eu", "us"]);
        let placements = endpoints(2_000);
        let old_probes = [probe(1, "eu", 100), probe(2, "eu", 100), probe(3, "us", 100), probe(4, "us", 100)];
        let mut new_probes = old_probes.to_vec();
        new_probes[0].drained = true; // 1 loses everything to 2
        new_probes.push(probe(5, "us", 100)); // 5 takes from 3 and 4
        let (old, new) = (assign(&placements, &old_probes, &all), assign(&placements, &new_probes, &all));
        let deltas = diff(&old, &new);

        assert_eq!(deltas[&1], ProbeDelta { added: BTreeSet::new(), removed: old.by_probe(1).clone() });
        assert_eq!(deltas[&2], ProbeDelta { added: old.by_probe(1).clone(), removed: BTreeSet::new() });
        assert_eq!(deltas[&5].added, *new.by_probe(5));
        assert!(deltas[&3].added.is_empty() && deltas[&4].added.is_empty());
        // Applying the deltas to the old per-probe sets gives the new ones.
        for probe_id in 1..=5 {
            let mut set = old.by_probe(probe_id).clone();
            if let Some(delta) = deltas.get(&probe_id) {
                assert!(delta.removed.is_subset(&set) && delta.added.is_disjoint(&set));
                set.retain(|e| !delta.removed.contains(e));
                set.extend(&delta.added);
            }
            assert_eq!(set, *new.by_probe(probe_id), "probe {probe_id}");
        }
        assert!(diff(&new, &new).is_empty(), "no change, no delta");
        assert_eq!(diff(&Assignment::default(), &new).len(), new.probes().len(), "a full push");
    }
}
