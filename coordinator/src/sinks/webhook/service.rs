//! Sending one webhook delivery: the alert encoded in the webhook's format,
//! signed with its secret, POSTed by the shared one-attempt client
//! ([`crate::sinks::http`]: SSRF guard after resolution, fresh connection,
//! TLS, one timeout, answer cap, outcome classification). The webhook's
//! `allow_private` is what lifts the guard.

use std::time::SystemTime;

use bytes::Bytes;
use http::Request;
use vantage_core::webhook::WebhookSpec;

use super::alert::Alert;
use super::{encoder, request};
pub use crate::sinks::http::{
    classify, parse_retry_after, Answer, Attempt, AttemptOutcome, ClientError as ServiceError,
    ClientOptions as ServiceOptions, HttpClient, SendError, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
};

/// Sends webhook deliveries. Cheap to clone; shares only configuration:
/// each request resolves, connects and handshakes anew.
#[derive(Debug, Clone, Default)]
pub struct WebhookService {
    client: HttpClient,
}

impl WebhookService {
    /// A service trusting the public roots and `options.extra_roots`.
    pub fn new(options: ServiceOptions) -> Result<WebhookService, ServiceError> {
        Ok(WebhookService { client: HttpClient::new(options)? })
    }

    /// The options it was built with.
    pub fn options(&self) -> &ServiceOptions {
        self.client.options()
    }

    /// Sends `alert` to `webhook` once: the body in the webhook's format,
    /// signed with its secret at `now`, to its URL. A body that cannot be
    /// built or signed is a rejected attempt that sent nothing.
    pub async fn deliver(&self, webhook: &WebhookSpec, alert: &Alert, now: SystemTime) -> Attempt {
        let body = Bytes::from(encoder::encode(webhook.format, alert));
        self.deliver_body(webhook, &alert.message_id, body, now).await
    }

    /// Sends `body` to `webhook` once, signed at `now` as message
    /// `message_id` (what [`WebhookService::deliver`] does after encoding).
    pub async fn deliver_body(
        &self,
        webhook: &WebhookSpec,
        message_id: &str,
        body: Bytes,
        now: SystemTime,
    ) -> Attempt {
        let url = request::target_url(&webhook.url, webhook.format);
        let key = match encoder::signing_key(&webhook.secret.0) {
            Ok(key) => key,
            Err(e) => return Attempt::unsent(SendError::Secret { reason: e.to_string() }),
        };
        let timestamp_secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let delivery = request::Delivery { url: &url, msg_id: message_id, timestamp_secs, body };
        match request::build(&delivery, &key) {
            Ok(request) => self.send(request, webhook.allow_private).await,
            Err(e) => Attempt::unsent(SendError::BadUrl { url, reason: e.to_string() }),
        }
    }

    /// Sends `request` (an absolute `http`/`https` URI, as
    /// [`super::request::build`] makes) once. `allow_private` lifts the
    /// SSRF guard.
    pub async fn send(&self, request: Request<Bytes>, allow_private: bool) -> Attempt {
        self.client.send(request, allow_private).await
    }
}
