//! Probe registrations: which probes may connect, where they are, and how
//! much work each gets.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{ProbeId, UnixMillis};
use super::{validate, MeshState};

/// The largest probe weight.
pub const MAX_WEIGHT: u32 = 10_000;
/// The weight of a probe registered without one.
pub const DEFAULT_WEIGHT: u32 = 100;

/// A registered probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRegistration {
    /// Assigned by apply, never reused.
    pub id: ProbeId,
    /// Unique among probes.
    pub name: String,
    /// The region it checks from.
    pub region: String,
    /// Its share of the region's endpoints in weighted rendezvous hashing.
    pub weight: u32,
    /// A drained probe stays registered but gets no assignments.
    pub drained: bool,
    /// The hash of the token it authenticates with.
    pub token_hash: TokenHash,
    /// When it was registered.
    pub created_at: UnixMillis,
    /// When it last changed.
    pub updated_at: UnixMillis,
}

/// What an admin specifies to register a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Unique among probes.
    pub name: String,
    /// An existing region.
    pub region: String,
    /// 1 to [`MAX_WEIGHT`].
    pub weight: u32,
    /// The hash of the token issued to the probe. The token itself never
    /// enters the log.
    pub token_hash: TokenHash,
}

/// The SHA-256 of a secret token, as 64 lowercase hex digits. Hashing
/// happens where the token is issued or presented, never in apply.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(pub String);

impl TokenHash {
    /// Checks the form: 64 lowercase hex digits.
    pub fn validate(&self) -> Result<(), CommandError> {
        if self.0.len() != 64 || !self.0.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(CommandError::InvalidTokenHash {
                reason: "expected a SHA-256 as 64 lowercase hex digits".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for TokenHash {
    /// Shows only a prefix: enough to tell hashes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.0.get(..8).unwrap_or(&self.0))
    }
}

/// Applies [`Command::RegisterProbe`](super::Command::RegisterProbe).
pub(super) fn register_probe(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &ProbeSpec,
) -> Result<Outcome, CommandError> {
    validate::name(ObjectKind::Probe, &spec.name)?;
    check_weight(spec.weight)?;
    spec.token_hash.validate()?;
    if !state.tables.regions.contains_key(&spec.region) {
        return Err(CommandError::UnknownRegion { region: spec.region.clone() });
    }
    if state.tables.probes.values().any(|p| p.name == spec.name) {
        return Err(CommandError::DuplicateName { kind: ObjectKind::Probe, name: spec.name.clone() });
    }
    check_token_unused(state, &spec.token_hash)?;
    let id = state.tables.ids.next_probe();
    state.tables.probes.insert(
        id,
        ProbeRegistration {
            id,
            name: spec.name.clone(),
            region: spec.region.clone(),
            weight: spec.weight,
            drained: false,
            token_hash: spec.token_hash.clone(),
            created_at: at,
            updated_at: at,
        },
    );
    Ok(Outcome::ProbeRegistered { id })
}

/// Applies [`Command::SetProbeWeight`](super::Command::SetProbeWeight).
pub(super) fn set_probe_weight(
    state: &mut MeshState,
    at: UnixMillis,
    id: ProbeId,
    weight: u32,
) -> Result<Outcome, CommandError> {
    check_weight(weight)?;
    let probe = probe_mut(state, id)?;
    let changed = probe.weight != weight;
    if changed {
        probe.weight = weight;
        probe.updated_at = at;
    }
    Ok(Outcome::ProbeUpdated { id, changed })
}

/// Applies [`Command::SetProbeDrained`](super::Command::SetProbeDrained).
pub(super) fn set_probe_drained(
    state: &mut MeshState,
    at: UnixMillis,
    id: ProbeId,
    drained: bool,
) -> Result<Outcome, CommandError> {
    let probe = probe_mut(state, id)?;
    let changed = probe.drained != drained;
    if changed {
        probe.drained = drained;
        probe.updated_at = at;
    }
    Ok(Outcome::ProbeUpdated { id, changed })
}

/// Applies [`Command::RotateProbeToken`](super::Command::RotateProbeToken).
pub(super) fn rotate_probe_token(
    state: &mut MeshState,
    at: UnixMillis,
    id: ProbeId,
    token_hash: &TokenHash,
) -> Result<Outcome, CommandError> {
    token_hash.validate()?;
    probe_mut(state, id)?;
    check_token_unused(state, token_hash)?;
    let probe = probe_mut(state, id)?;
    probe.token_hash = token_hash.clone();
    probe.updated_at = at;
    Ok(Outcome::ProbeUpdated { id, changed: true })
}

/// Applies [`Command::RemoveProbe`](super::Command::RemoveProbe).
pub(super) fn remove_probe(state: &mut MeshState, id: ProbeId) -> Result<Outcome, CommandError> {
    state.tables.probes.remove(&id).ok_or(CommandError::NotFound { kind: ObjectKind::Probe, id: id.0 })?;
    super::pins::forget_probe(state, id);
    super::ingest::forget_probe(&mut state.tables.ingest, id);
    Ok(Outcome::ProbeRemoved { id })
}

fn probe_mut(state: &mut MeshState, id: ProbeId) -> Result<&mut ProbeRegistration, CommandError> {
    state.tables.probes.get_mut(&id).ok_or(CommandError::NotFound { kind: ObjectKind::Probe, id: id.0 })
}

fn check_weight(weight: u32) -> Result<(), CommandError> {
    if !(1..=MAX_WEIGHT).contains(&weight) {
        return Err(CommandError::InvalidWeight { weight, max: MAX_WEIGHT });
    }
    Ok(())
}

fn check_token_unused(state: &MeshState, token_hash: &TokenHash) -> Result<(), CommandError> {
    if state.tables.probes.values().any(|p| p.token_hash == *token_hash) {
        return Err(CommandError::DuplicateTokenHash { kind: ObjectKind::Probe });
    }
    Ok(())
}
