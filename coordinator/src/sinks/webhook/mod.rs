//! The webhook sink, split by concern (see [`crate::sinks`]):
//!
//! - config: `vantage_core::webhook::WebhookSpec` (replicated; URL rules,
//!   the write-only secret, format, filters, `allow_private`);
//! - [`alert`]: what one alert says, gathered from the replicated state;
//! - [`encoder`]: the bodies (`standard`, `slack`, `alertmanager`; the
//!   standard JSON schema is documented there) and Standard Webhooks
//!   signatures and secrets;
//! - [`request`]: the signed POST a delivery sends, without I/O;
//! - [`service`]: sending one request (resolution, SSRF guard, fresh
//!   connection, TLS, timeout, body cap) and classifying the outcome;
//! - [`dispatcher`]: the outbox sink on the leader: due deliveries, bounded
//!   concurrency, retries, recorded outcomes, Alertmanager re-posts;
//! - `events`: the dispatcher's log lines and metrics, one function each.
//!
//! [`send_test`] sends the `test` event of `vantagectl webhook test`.

pub mod alert;
pub mod dispatcher;
pub mod encoder;
mod events;
pub mod request;
pub mod service;

use std::time::SystemTime;

use vantage_core::webhook::WebhookSpec;

pub use self::dispatcher::{Dispatcher, DispatcherOptions};
pub use self::service::{Attempt, AttemptOutcome, SendError, ServiceOptions, WebhookService};

/// A `test` event sent to one webhook.
#[derive(Debug, Clone)]
pub struct TestDelivery {
    /// The `webhook-id` it carried (random, `msg_vantage_test_…`).
    pub message_id: String,
    /// How the attempt went.
    pub attempt: Attempt,
}

/// Sends a signed `test` event to `webhook` now, once, without the outbox.
pub async fn send_test(
    service: &WebhookService,
    webhook: &WebhookSpec,
    now: SystemTime,
    base_url: Option<&str>,
) -> TestDelivery {
    let mut random = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let message_id = format!("msg_vantage_test_{:016x}", u64::from_le_bytes(random));
    let alert = alert::Alert::test(message_id.clone(), now, base_url);
    let attempt = service.deliver(webhook, &alert, now).await;
    TestDelivery { message_id, attempt }
}
