//! The dispatcher's named events: each one logs (structured, with fields)
//! and counts, so a log line and its metric never drift apart.
//!
//! Metrics:
//! - `vantage_alert_deliveries_total{outcome}`: outbox attempts by what
//!   was recorded (`delivered`, `retry`, `failed`);
//! - `vantage_alert_attempts_total{outcome}`: webhook POSTs sent for the
//!   outbox, by what the receiver did (`delivered`, `retryable`,
//!   `rejected`); failures are the last two;
//! - `vantage_alert_attempt_duration_seconds{outcome}`: one attempt's
//!   latency, by what the receiver did (`delivered`, `retryable`,
//!   `rejected`);
//! - `vantage_alert_reposts_total{outcome}`: Alertmanager re-posts by the
//!   same attempt outcomes.

use crate::state::{DeliveryId, DeliveryOutcome, WebhookId};

use super::service::Attempt;

/// One outbox attempt ended.
pub(super) struct AttemptEvent<'a> {
    pub delivery: DeliveryId,
    pub message_id: &'a str,
    pub webhook: &'a str,
    pub event: &'a str,
    pub attempt: u32,
    pub sent: &'a Attempt,
    pub outcome: &'a DeliveryOutcome,
}

/// Logs and counts one outbox attempt.
pub(super) fn attempt_finished(e: &AttemptEvent<'_>) {
    let recorded = match e.outcome {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Failed { .. } => "failed",
    };
    metrics::counter!("vantage_alert_deliveries_total", "outcome" => recorded).increment(1);
    metrics::counter!("vantage_alert_attempts_total", "outcome" => e.sent.outcome.as_str()).increment(1);
    metrics::histogram!("vantage_alert_attempt_duration_seconds", "outcome" => e.sent.outcome.as_str())
        .record(e.sent.latency.as_secs_f64());
    let latency_ms = e.sent.latency.as_secs_f64() * 1000.0;
    match e.outcome {
        DeliveryOutcome::Delivered => tracing::info!(
            delivery = e.delivery.0,
            message_id = e.message_id,
            webhook = e.webhook,
            event = e.event,
            attempt = e.attempt,
            status = e.sent.status,
            latency_ms,
            "alert delivered"
        ),
        DeliveryOutcome::Retry { error, next_attempt_at } => tracing::warn!(
            delivery = e.delivery.0,
            message_id = e.message_id,
            webhook = e.webhook,
            event = e.event,
            attempt = e.attempt,
            status = e.sent.status,
            latency_ms,
            %error,
            next_attempt_at = next_attempt_at.0,
            "alert delivery failed; will retry"
        ),
        DeliveryOutcome::Failed { error } => tracing::error!(
            delivery = e.delivery.0,
            message_id = e.message_id,
            webhook = e.webhook,
            event = e.event,
            attempt = e.attempt,
            status = e.sent.status,
            latency_ms,
            %error,
            "alert delivery failed for good"
        ),
    }
}

/// A delivery's webhook was removed before it was delivered.
pub(super) fn webhook_gone(delivery: DeliveryId, webhook: WebhookId) {
    metrics::counter!("vantage_alert_deliveries_total", "outcome" => "failed").increment(1);
    tracing::warn!(
        delivery = delivery.0,
        webhook = webhook.0,
        "alert not delivered: its webhook was removed"
    );
}

/// An Alertmanager re-post ended.
pub(super) fn reposted(webhook: WebhookId, name: &str, alerts: usize, sent: &Attempt) {
    metrics::counter!("vantage_alert_reposts_total", "outcome" => sent.outcome.as_str()).increment(1);
    let (id, status) = (webhook.0, sent.status);
    match sent.outcome.error() {
        None => tracing::debug!(webhook = id, name, alerts, status, "alerts re-posted to alertmanager"),
        Some(error) => {
            tracing::warn!(webhook = id, name, alerts, status, %error, "re-posting alerts to alertmanager failed")
        }
    }
}
