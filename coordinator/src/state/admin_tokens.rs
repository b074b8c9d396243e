//! Admin tokens: bearer tokens for the admin API, stored only as hashes.

use serde::{Deserialize, Serialize};

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{AdminTokenId, UnixMillis};
use super::probes::TokenHash;
use super::{validate, MeshState};

/// An admin token as stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Assigned by apply, never reused.
    pub id: AdminTokenId,
    /// Unique among admin tokens, e.g. who holds it.
    pub name: String,
    /// The SHA-256 of the token.
    pub token_hash: TokenHash,
    /// When it was added.
    pub created_at: UnixMillis,
}

/// What an admin specifies to add a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenSpec {
    /// Unique among admin tokens.
    pub name: String,
    /// The SHA-256 of the token; the token itself never enters the log.
    pub token_hash: TokenHash,
}

/// Applies [`Command::AddAdminToken`](super::Command::AddAdminToken).
pub(super) fn add_admin_token(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &AdminTokenSpec,
) -> Result<Outcome, CommandError> {
    validate::name(ObjectKind::AdminToken, &spec.name)?;
    spec.token_hash.validate()?;
    if state.tables.admin_tokens.values().any(|t| t.name == spec.name) {
        return Err(CommandError::DuplicateName { kind: ObjectKind::AdminToken, name: spec.name.clone() });
    }
    if state.tables.admin_tokens.values().any(|t| t.token_hash == spec.token_hash) {
        return Err(CommandError::DuplicateTokenHash { kind: ObjectKind::AdminToken });
    }
    let id = state.tables.ids.next_admin_token();
    state.tables.admin_tokens.insert(
        id,
        AdminToken { id, name: spec.name.clone(), token_hash: spec.token_hash.clone(), created_at: at },
    );
    Ok(Outcome::AdminTokenAdded { id })
}

/// Applies [`Command::RevokeAdminToken`](super::Command::RevokeAdminToken).
pub(super) fn revoke_admin_token(state: &mut MeshState, id: AdminTokenId) -> Result<Outcome, CommandError> {
    state
        .tables
        .admin_tokens
        .remove(&id)
        .ok_or(CommandError::NotFound { kind: ObjectKind::AdminToken, id: id.0 })?;
    Ok(Outcome::AdminTokenRevoked { id })
}
