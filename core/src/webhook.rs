//! Webhooks: where alerts are delivered, in which format, for which events
//! and endpoints, signed with a per-webhook secret.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::ObjectKind;
use crate::validate::{self, Labels, ValidationError};

/// The longest webhook URL, in bytes.
pub const MAX_URL_LEN: usize = 2_048;
/// The shortest webhook secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest webhook secret, in bytes.
pub const MAX_SECRET_LEN: usize = 512;

/// What an admin specifies for a webhook.
///
/// Its serde form is the replicated form and the `--json` form of
/// `vantagectl`; the secret is write-only, so specifications read back
/// through the admin API carry an empty one, which is left out. Webhooks
/// once kept `events` and `labels` in a nested `filter`; that form still
/// reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WebhookSpecForm")]
pub struct WebhookSpec {
    /// Unique among webhooks.
    pub name: String,
    /// An `http` or `https` URL.
    pub url: String,
    /// The key deliveries are signed with; empty when read back.
    #[serde(skip_serializing_if = "WebhookSecret::is_empty")]
    pub secret: WebhookSecret,
    /// The body's shape.
    pub format: WebhookFormat,
    /// Events delivered; empty means all.
    pub events: BTreeSet<AlertEvent>,
    /// Labels an endpoint must all carry; empty means every endpoint.
    pub labels: Labels,
    /// Lets deliveries through the SSRF guard to loopback, private and
    /// link-local addresses (a receiver inside the operator's network, a
    /// test receiver on 127.0.0.1). Off by default; left out of the serde
    /// form when off, so older replicated forms read unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_private: bool,
}

impl WebhookSpec {
    /// A standard-format webhook for every event and endpoint.
    pub fn new(name: impl Into<String>, url: impl Into<String>, secret: impl Into<String>) -> WebhookSpec {
        WebhookSpec {
            name: name.into(),
            url: url.into(),
            secret: WebhookSecret(secret.into()),
            format: WebhookFormat::Standard,
            events: BTreeSet::new(),
            labels: Labels::new(),
            allow_private: false,
        }
    }

    /// Checks the name, URL and labels. A URL whose host is an IP address
    /// the SSRF guard refuses is refused here already unless
    /// `allow_private`; names resolving to such addresses are refused when
    /// a delivery is sent (after resolution, as the guard must be). The secret is checked on its own
    /// ([`WebhookSecret::validate`]): clients validate a specification
    /// before they know the secret.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::name(ObjectKind::Webhook, &self.name)?;
        check_url(&self.url, self.allow_private)?;
        validate::labels(&self.labels)
    }
}

/// The accepted serde forms of a [`WebhookSpec`]: today's flat one and the
/// older one with a nested `filter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpecForm {
    name: String,
    url: String,
    #[serde(default)]
    secret: WebhookSecret,
    #[serde(default)]
    format: WebhookFormat,
    #[serde(default)]
    events: BTreeSet<AlertEvent>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    filter: Option<LegacyFilter>,
    #[serde(default)]
    allow_private: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyFilter {
    #[serde(default)]
    events: BTreeSet<AlertEvent>,
    #[serde(default)]
    labels: Labels,
}

impl TryFrom<WebhookSpecForm> for WebhookSpec {
    type Error = &'static str;
    fn try_from(form: WebhookSpecForm) -> Result<Self, &'static str> {
        let (events, labels) = match form.filter {
            None => (form.events, form.labels),
            Some(filter) if form.events.is_empty() && form.labels.is_empty() => {
                (filter.events, filter.labels)
            }
            Some(_) => return Err("give events and labels either in filter or beside it, not both"),
        };
        Ok(WebhookSpec {
            name: form.name,
            url: form.url,
            secret: form.secret,
            format: form.format,
            events,
            labels,
            allow_private: form.allow_private,
        })
    }
}

/// A webhook's signing secret; `Debug` does not show it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(pub String);

impl WebhookSecret {
    /// No secret (a specification read back through the admin API).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 16 to 512 bytes of printable ASCII without spaces.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let len = self.0.len();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
            return Err(ValidationError::InvalidWebhookSecret {
                reason: format!(
                    "it has {len} bytes, use {MIN_SECRET_LEN} to {MAX_SECRET_LEN} (e.g. `openssl rand -hex 32`)"
                ),
            });
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::InvalidWebhookSecret {
                reason: "only printable ASCII without spaces is allowed".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The shape of a webhook delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// JSON signed as in the Standard Webhooks specification
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    #[default]
    Standard,
    /// A Slack incoming-webhook message.
    Slack,
    /// An Alertmanager API v2 `POST /api/v2/alerts` body, re-posted while
    /// the incident is open (Alertmanager resolves alerts it stops hearing
    /// about).
    Alertmanager,
}

/// The alert events a webhook can subscribe to. Ordered by name, so sets
/// of them list (and travel) alphabetically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl PartialOrd for AlertEvent {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AlertEvent {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// Names for the values of a small closed enum, one table per enum.
macro_rules! named_values {
    ($type:ty, $field:literal, [$($variant:path => $name:literal),+ $(,)?]) => {
        impl $type {
            /// Every value, in documentation order.
            pub const ALL: &'static [$type] = &[$($variant),+];

            /// The value's name, as the wire and documents write it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($variant => $name),+
                }
            }

            /// The value named `text` (surrounding whitespace and case
            /// ignored).
            pub fn parse(text: &str) -> Result<$type, ValidationError> {
                let wanted = text.trim();
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(wanted)).ok_or_else(|| {
                    ValidationError::InvalidChoice {
                        field: $field.to_string(),
                        given: text.to_string(),
                        choices: Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                    }
                })
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_values!(WebhookFormat, "webhook format", [
    WebhookFormat::Standard => "standard",
    WebhookFormat::Slack => "slack",
    WebhookFormat::Alertmanager => "alertmanager",
]);

named_values!(AlertEvent, "event", [
    AlertEvent::OutageOpened => "outage_opened",
    AlertEvent::OutageResolved => "outage_resolved",
    AlertEvent::Degraded => "degraded",
    AlertEvent::Flapping => "flapping",
]);

/// An `http` or `https` URL with a host, at most 2048 bytes, without
/// credentials (the secret signs each delivery), and, unless
/// `allow_private`, not at an address the SSRF guard refuses.
fn check_url(text: &str, allow_private: bool) -> Result<(), ValidationError> {
    let bad = |reason: &str| {
        Err(ValidationError::InvalidWebhookUrl { url: text.to_string(), reason: reason.into() })
    };
    if text.len() > MAX_URL_LEN {
        return bad("longer than 2048 bytes");
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(e) => return bad(&e.to_string()),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return bad("use http:// or https://");
    }
    if url.host().is_none() {
        return bad("missing host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("credentials in the URL are not supported; the secret signs each delivery");
    }
    if !allow_private {
        let refused = match url.host() {
            Some(url::Host::Ipv4(ip)) => crate::netguard::classify(ip.into()).map(|r| (ip.to_string(), r)),
            Some(url::Host::Ipv6(ip)) => crate::netguard::classify(ip.into()).map(|r| (ip.to_string(), r)),
            _ => None,
        };
        if let Some((host, reason)) = refused {
            return bad(&format!(
                "{host} is a {} address, refused by the SSRF guard; allow it with --allow-private \
                 (allow_private: true) if the receiver is meant to be inside your network",
                reason.describe()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WebhookSpec {
        WebhookSpec::new("oncall", "https://hooks.example.com/x", "0123456789abcdef")
    }

    #[test]
    fn webhook_rules() {
        assert!(spec().validate().is_ok());
        let url = |url: &str| WebhookSpec { url: url.into(), ..spec() }.validate().unwrap_err().to_string();
        assert!(url("tcp://x:1").contains("http://"), "{}", url("tcp://x:1"));
        assert!(url("https://user:pw@x/").contains("credentials"));
        assert!(url(&format!("https://x/{}", "a".repeat(2048))).contains("2048"));
        for private in
            ["http://127.0.0.1:9/", "http://10.1.2.3/", "http://[::1]/", "http://[::ffff:127.0.0.1]/"]
        {
            assert!(url(private).contains("SSRF guard"), "{private}: {}", url(private));
            let allowed = WebhookSpec { url: private.into(), allow_private: true, ..spec() };
            assert!(allowed.validate().is_ok(), "{private} with allow_private");
        }
        assert!(WebhookSpec { url: "http://169.254.169.254/".into(), ..spec() }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("link-local"));
        let secret = |s: &str| WebhookSecret(s.into()).validate().unwrap_err().to_string();
        assert!(secret("short").contains("16 to 512"), "{}", secret("short"));
        assert!(secret("0123456789 abcdef").contains("printable ASCII"));
        assert!(WebhookSecret("0123456789abcdef".into()).validate().is_ok());
        assert_eq!(format!("{:?}", spec().secret), "WebhookSecret(<redacted>)");
    }

    #[test]
    fn names_parse_and_list_the_choices() {
        assert_eq!(AlertEvent::parse(" Degraded ").unwrap(), AlertEvent::Degraded);
        assert_eq!(WebhookFormat::parse("slack").unwrap(), WebhookFormat::Slack);
        assert_eq!(
            WebhookFormat::parse("teams").unwrap_err().to_string(),
            "invalid webhook format \"teams\": use one of standard, slack, alertmanager"
        );
        assert_eq!(WebhookFormat::parse("AlertManager").unwrap(), WebhookFormat::Alertmanager);
        assert_eq!(AlertEvent::ALL.len(), 4);
    }

    #[test]
    fn both_replicated_forms_read_and_the_secret_is_left_out_when_unknown() {
        let old = r#"{"name":"w","url":"https://x/","secret":"0123456789abcdef","format":"slack",
            "filter":{"events":["degraded"],"labels":{"team":"core"}}}"#;
        let spec: WebhookSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.events, BTreeSet::from([AlertEvent::Degraded]));
        assert_eq!(spec.labels["team"], "core");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["secret"], "0123456789abcdef");
        assert_eq!(serde_json::from_value::<WebhookSpec>(json).unwrap(), spec);
        let read_back = WebhookSpec { secret: WebhookSecret::default(), ..spec };
        let json = serde_json::to_value(&read_back).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "w", "url": "https://x/", "format": "slack",
                "events": ["degraded"], "labels": {"team": "core"}})
        );
        assert!(serde_json::from_str::<WebhookSpec>(r#"{"name":"w","url":"u","sekret":"x"}"#).is_err());
        let private = WebhookSpec { allow_private: true, ..read_back };
        let json = serde_json::to_value(&private).unwrap();
        assert_eq!(json["allow_private"], true);
        assert_eq!(serde_json::from_value::<WebhookSpec>(json).unwrap(), private);
    }
}
