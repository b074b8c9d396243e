//! Webhooks: where alerts are delivered, signed with a per-webhook secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{UnixMillis, WebhookId};
use super::{validate, MeshState};

/// The longest webhook URL, in bytes.
pub const MAX_URL_LEN: usize = 2_048;
/// The shortest webhook secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest webhook secret, in bytes.
pub const MAX_SECRET_LEN: usize = 512;

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

/// What an admin specifies for a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Unique among webhooks.
    pub name: String,
    /// An `http` or `https` URL.
    pub url: String,
    /// The key deliveries are signed with. Replicated as is: the sender
    /// needs it, so it cannot be hashed.
    pub secret: WebhookSecret,
    /// The body's shape.
    pub format: WebhookFormat,
    /// Which alerts go to this webhook.
    #[serde(default)]
    pub filter: WebhookFilter,
}

/// A webhook's signing secret; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(pub String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The shape of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// JSON signed as in the Standard Webhooks specification
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Standard,
    /// A Slack incoming-webhook message.
    Slack,
}

/// The alert events a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A quorum of regions sees the endpoint down.
    OutageOpened,
    /// The outage is over.
    OutageResolved,
    /// Fewer than a quorum of regions see it down (a regional problem).
    Degraded,
    /// The endpoint keeps changing state.
    Flapping,
}

/// Which alerts a webhook receives. Empty sets match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    /// Events to deliver; empty means all.
    #[serde(default)]
    pub events: BTreeSet<AlertEvent>,
    /// Labels an endpoint must all carry; empty means every endpoint.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
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
    validate::name(ObjectKind::Webhook, &spec.name)?;
    check_url(&spec.url)?;
    let secret = &spec.secret.0;
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
        return Err(CommandError::InvalidWebhookSecret { reason: "must be 16 to 512 characters".into() });
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CommandError::InvalidWebhookSecret {
            reason: "only printable ASCII without spaces is allowed".into(),
        });
    }
    validate::labels(&spec.filter.labels)?;
    if state.tables.webhooks.values().any(|w| w.spec.name == spec.name && Some(w.id) != own_id) {
        return Err(CommandError::DuplicateName { kind: ObjectKind::Webhook, name: spec.name.clone() });
    }
    Ok(())
}

fn check_url(text: &str) -> Result<(), CommandError> {
    let bad =
        |reason: &str| Err(CommandError::InvalidWebhookUrl { url: text.to_string(), reason: reason.into() });
    if text.len() > MAX_URL_LEN {
        return bad("longer than 2048 bytes");
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(e) => return bad(&e.to_string()),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return bad("use an http or https URL");
    }
    if url.host().is_none() {
        return bad("missing host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("credentials in the URL are not supported; the secret signs each delivery");
    }
    Ok(())
}

fn not_found(id: WebhookId) -> CommandError {
    CommandError::NotFound { kind: ObjectKind::Webhook, id: id.0 }
}
