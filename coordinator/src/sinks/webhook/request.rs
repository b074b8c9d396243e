//! The HTTP request one webhook delivery sends, built without I/O: the
//! body as encoded, `Content-Type`, a `User-Agent` naming the coordinator,
//! and the three Standard Webhooks headers. Every attempt for one
//! transition and webhook carries the same `webhook-id` (so receivers
//! de-duplicate retries and failovers); the timestamp and signature are of
//! the attempt.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Uri};

use vantage_core::webhook::WebhookFormat;

use super::encoder::signature;

/// The `User-Agent` of deliveries.
pub const DELIVERY_USER_AGENT: &str = concat!("vantage-coordinator/", env!("CARGO_PKG_VERSION"));

/// Why a delivery request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The webhook's URL does not parse as an HTTP URI.
    #[error("webhook URL {url:?} is not a valid HTTP URI: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// The message id has characters a header cannot carry.
    #[error("webhook-id {id:?} cannot be sent as a header")]
    BadId {
        /// The id.
        id: String,
    },
}

/// One delivery attempt, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Where to.
    pub url: &'a str,
    /// The same for every attempt of one transition and webhook.
    pub msg_id: &'a str,
    /// When this attempt is signed, in Unix seconds.
    pub timestamp_secs: i64,
    /// The encoded body (JSON).
    pub body: Bytes,
}

/// The path Alertmanager's API v2 takes alerts at.
pub const ALERTMANAGER_PATH: &str = "/api/v2/alerts";

/// Where a webhook's deliveries go: its URL, except that an Alertmanager
/// URL without a path (`http://alertmanager:9093`) means its
/// [`ALERTMANAGER_PATH`].
pub fn target_url(url: &str, format: WebhookFormat) -> String {
    if format == WebhookFormat::Alertmanager {
        if let Ok(mut parsed) = url::Url::parse(url) {
            if parsed.path().is_empty() || parsed.path() == "/" {
                parsed.set_path(ALERTMANAGER_PATH);
                return parsed.to_string();
            }
        }
    }
    url.to_string()
}

/// Builds the POST for `delivery`, signed with `key`.
pub fn build(delivery: &Delivery<'_>, key: &[u8]) -> Result<Request<Bytes>, RequestError> {
    let uri: Uri = delivery.url.parse().map_err(|e: http::uri::InvalidUri| RequestError::BadUrl {
        url: delivery.url.to_string(),
        reason: e.to_string(),
    })?;
    let id = HeaderValue::from_str(delivery.msg_id)
        .map_err(|_| RequestError::BadId { id: delivery.msg_id.to_string() })?;
    let signed = signature(key, delivery.msg_id, delivery.timestamp_secs, &delivery.body);
    let mut request = Request::new(delivery.body.clone());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(DELIVERY_USER_AGENT));
    headers.insert("webhook-id", id);
    headers.insert("webhook-timestamp", HeaderValue::from(delivery.timestamp_secs));
    // Base64 and "v1," only: always a valid header value.
    headers.insert("webhook-signature", HeaderValue::from_str(&signed).expect("base64 is header-safe"));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::webhook::encoder::signing_key;

    #[test]
    fn a_delivery_carries_the_standard_headers() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let delivery = Delivery {
            url: "https://hooks.example.com/x?y=1",
            msg_id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp_secs: 1_614_265_330,
            body: Bytes::from_static(br#"{"test": 2432232314}"#),
        };
        let request = build(&delivery, &key).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "https://hooks.example.com/x?y=1");
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("webhook-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(header("webhook-timestamp"), "1614265330");
        assert_eq!(header("webhook-signature"), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(header("content-type"), "application/json");
        assert!(header("user-agent").starts_with("vantage-coordinator/"));
        assert_eq!(request.body(), &delivery.body);
    }

    #[test]
    fn alertmanager_urls_without_a_path_post_to_the_alerts_api() {
        let am = WebhookFormat::Alertmanager;
        assert_eq!(target_url("http://am:9093", am), "http://am:9093/api/v2/alerts");
        assert_eq!(target_url("http://am:9093/", am), "http://am:9093/api/v2/alerts");
        assert_eq!(
            target_url("http://am:9093/proxy/api/v2/alerts", am),
            "http://am:9093/proxy/api/v2/alerts"
        );
        assert_eq!(target_url("http://hooks/", WebhookFormat::Standard), "http://hooks/");
    }

    #[test]
    fn bad_urls_and_ids_are_refused_with_a_reason() {
        let delivery = Delivery { url: "not a url", msg_id: "m", timestamp_secs: 0, body: Bytes::new() };
        assert!(matches!(build(&delivery, b"k"), Err(RequestError::BadUrl { .. })));
        let delivery = Delivery { url: "https://x/", msg_id: "m\n", timestamp_secs: 0, body: Bytes::new() };
        assert!(matches!(build(&delivery, b"k"), Err(RequestError::BadId { .. })));
    }
}
