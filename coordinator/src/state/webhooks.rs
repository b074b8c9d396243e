//! Webhooks in the replicated state: the record around each
//! [`WebhookSpec`] (`vantage-core`'s, secret included) and the apply
//! functions of the webhook commands.

use serde::{Deserialize, Serialize};
use vantage_core::webhook::WebhookSpec;

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{UnixMillis, WebhookId};
use super::MeshState;

/// A webhook as stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Assigned by apply, never reused.
    pub id: WebhookId,
    /// What the admin asked for.
    pub spec: WebhookSpec,
    /// When it was added.
    pub created_at: UnixMillis,
    /// When its specification last changed.
    pub updated_at: UnixMillis,
}

/// Applies [`Command::AddWebhook`](super::Command::AddWebhook).
pub(super) fn add_webhook(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &WebhookSpec,
) -> Result<Outcome, CommandError> {
    check_spec(state, None, spec)?;
    let id = state.tables.ids.next_webhook();
    state.tables.webhooks.insert(id, Webhook { id, spec: spec.clone(), created_at: at, updated_at: at });
    Ok(Outcome::WebhookAdded { id })
}

/// Applies [`Command::UpdateWebhook`](super::Command::UpdateWebhook).
pub(super) fn update_webhook(
    state: &mut MeshState,
    at: UnixMillis,
    id: WebhookId,
    spec: &WebhookSpec,
) -> Result<Outcome, CommandError> {
    match state.tables.webhooks.get(&id) {
        None => return Err(not_found(id)),
        Some(webhook) if webhook.spec == *spec => return Ok(Outcome::WebhookUpdated { id, changed: false }),
        Some(_) => {}
    }
    check_spec(state, Some(id), spec)?;
    if let Some(webhook) = state.tables.webhooks.get_mut(&id) {
        webhook.spec = spec.clone();
        webhook.updated_at = at;
    }
    Ok(Outcome::WebhookUpdated { id, changed: true })
}

/// Applies [`Command::RemoveWebhook`](super::Command::RemoveWebhook).
pub(super) fn remove_webhook(state: &mut MeshState, id: WebhookId) -> Result<Outcome, CommandError> {
    state.tables.webhooks.remove(&id).ok_or_else(|| not_found(id))?;
    Ok(Outcome::WebhookRemoved { id })
}

fn check_spec(state: &MeshState, own_id: Option<WebhookId>, spec: &WebhookSpec) -> Result<(), CommandError> {
    spec.validate()?;
    spec.secret.validate()?;
    if state.tables.webhooks.values().any(|w| w.spec.name == spec.name && Some(w.id) != own_id) {
        return Err(CommandError::DuplicateName { kind: ObjectKind::Webhook, name: spec.name.clone() });
    }
    Ok(())
}

fn not_found(id: WebhookId) -> CommandError {
    CommandError::NotFound { kind: ObjectKind::Webhook, id: id.0 }
}
