//! The rules every object the mesh manages obeys, and the one error type
//! that names what breaks them.
//!
//! The coordinator's state machine applies these rules (and has the last
//! word); `vantagectl` applies the same functions before it sends anything,
//! so a mistake gets an immediate answer. Everything here is pure: the same
//! input gives the same verdict on every node.
//!
//! Object-specific rules live with their objects:
//! [`EndpointSpec::validate`](crate::endpoint::EndpointSpec::validate),
//! [`WebhookSpec::validate`](crate::webhook::WebhookSpec::validate),
//! [`MaintenanceSpec::validate`](crate::maintenance::MaintenanceSpec::validate).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ObjectKind;
use crate::time::format_ms;

/// The longest object name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest region name, in bytes.
pub const MAX_REGION_NAME_LEN: usize = 63;
/// The most labels one object may carry.
pub const MAX_LABELS: usize = 32;
/// The longest label key, in bytes.
pub const MAX_LABEL_KEY_LEN: usize = 63;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 256;

/// Free-form `key=value` labels, ordered so equal sets compare and print
/// the same way everywhere.
pub type Labels = BTreeMap<String, String>;

/// Why an object's specification breaks the rules. Messages name the
/// offending input and, where it helps, what to write instead.
///
/// Serialized (snake_case variant names) because the state machine
/// replicates refusals; the variants keep the names they had there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ValidationError {
    /// A name breaks the naming rules of its kind.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What the name is for.
        kind: ObjectKind,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An endpoint's URL is not a target a probe can check.
    #[error("{reason}")]
    InvalidTarget {
        /// The URL given.
        url: String,
        /// What is wrong, naming the URL.
        reason: String,
    },
    /// The check interval is out of range.
    #[error("invalid interval {}: must be between 1s and 24h", format_ms(*interval_ms))]
    InvalidInterval {
        /// The interval given.
        interval_ms: u64,
    },
    /// The check timeout is zero, above the ceiling or not below the
    /// interval.
    #[error("invalid timeout {}: {}", format_ms(*timeout_ms), timeout_problem(*timeout_ms, *interval_ms))]
    InvalidTimeout {
        /// The timeout given.
        timeout_ms: u64,
        /// The interval it must stay below (`u64::MAX` when checked alone).
        interval_ms: u64,
    },
    /// Too many immediate re-checks of a failure.
    #[error("invalid retries {retries}: at most {}", crate::spec::MAX_RETRIES)]
    InvalidRetries {
        /// The number given.
        retries: u32,
    },
    /// An agreement setting (quorum, recovery rounds, minimum failure
    /// duration) is out of range.
    #[error("invalid agreement rule: {reason}")]
    InvalidAgreement {
        /// What is wrong.
        reason: String,
    },
    /// An expectation does not parse or breaks a limit.
    #[error("{reason}")]
    InvalidAssertion {
        /// What is wrong, naming the option (`invalid expect-status: …`).
        reason: String,
    },
    /// A label key or value breaks the label rules.
    #[error("invalid label {key:?}: {reason}")]
    InvalidLabel {
        /// The label's key (or the text given, when it has no `=`).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A webhook URL is not an http(s) URL.
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidWebhookUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A webhook secret is too short, too long or has odd characters.
    #[error("invalid webhook secret: {reason}")]
    InvalidWebhookSecret {
        /// What is wrong.
        reason: String,
    },
    /// A value that must be one of a few names is none of them.
    #[error("invalid {field} {given:?}: use one of {choices}")]
    InvalidChoice {
        /// What the value is for (`webhook format`, `event`).
        field: String,
        /// The text given.
        given: String,
        /// The names allowed, comma-separated.
        choices: String,
    },
    /// A maintenance window's times or reason are wrong.
    #[error("invalid maintenance window: {reason}")]
    InvalidMaintenanceWindow {
        /// What is wrong.
        reason: String,
    },
}

fn timeout_problem(timeout_ms: u64, interval_ms: u64) -> String {
    if timeout_ms == 0 {
        "must be above zero".to_string()
    } else if timeout_ms > crate::endpoint::MAX_TIMEOUT_MS {
        format!("must be at most {}", format_ms(crate::endpoint::MAX_TIMEOUT_MS))
    } else {
        format!("must be below the interval ({})", format_ms(interval_ms))
    }
}

/// Checks a human-chosen name (endpoints, probes, webhooks, tokens): not
/// empty, at most 128 bytes, no surrounding whitespace or control
/// characters, and not all digits, so "NAME or id" arguments are never
/// ambiguous.
pub fn name(kind: ObjectKind, name: &str) -> Result<(), ValidationError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 128 bytes"
    } else if name.trim() != name {
        "it starts or ends with whitespace"
    } else if name.chars().any(char::is_control) {
        "it contains control characters"
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        "it is all digits, which reads as an id"
    } else {
        return Ok(());
    };
    Err(ValidationError::InvalidName { kind, name: name.to_string(), reason: reason.to_string() })
}

/// Checks a region name: 1–63 bytes of lowercase ASCII letters, digits and
/// `-`, not starting or ending with `-` (like a DNS label).
pub fn region_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REGION_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        return Ok(());
    }
    Err(ValidationError::InvalidName {
        kind: ObjectKind::Region,
        name: name.to_string(),
        reason:
            "use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-' (e.g. eu-west)"
                .to_string(),
    })
}

/// Checks one label: keys of 1–63 bytes of ASCII letters, digits and
/// `_.-/`; values of at most 256 bytes without control characters.
pub fn label(key: &str, value: &str) -> Result<(), ValidationError> {
    let reason = if key.is_empty() || key.len() > MAX_LABEL_KEY_LEN {
        "keys are 1 to 63 characters"
    } else if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)) {
        "keys use ASCII letters, digits and '_', '.', '-', '/'"
    } else if value.len() > MAX_LABEL_VALUE_LEN || value.chars().any(char::is_control) {
        "values are at most 256 bytes, without control characters"
    } else {
        return Ok(());
    };
    Err(ValidationError::InvalidLabel { key: key.to_string(), reason: reason.to_string() })
}

/// Checks a set of labels: at most 32, each by [`label`].
pub fn labels(labels: &Labels) -> Result<(), ValidationError> {
    if labels.len() > MAX_LABELS {
        let key = labels.keys().nth(MAX_LABELS).cloned().unwrap_or_default();
        return Err(ValidationError::InvalidLabel {
            key,
            reason: format!("{} labels: at most 32 are allowed", labels.len()),
        });
    }
    labels.iter().try_for_each(|(key, value)| label(key, value))
}

/// Parses and checks a `KEY=VALUE` label as admins type it.
pub fn parse_label(text: &str) -> Result<(String, String), ValidationError> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(ValidationError::InvalidLabel {
            key: text.to_string(),
            reason: "write KEY=VALUE, e.g. team=core".to_string(),
        });
    };
    label(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("api", None),
            ("payments api", None),
            ("", Some("it is empty")),
            (" api", Some("whitespace")),
            ("a\tb", Some("control characters")),
            ("42", Some("reads as an id")),
        ];
        for (text, want) in cases {
            match (name(ObjectKind::Endpoint, text), want) {
                (Ok(()), None) => {}
                (Err(e), Some(want)) => {
                    let e = e.to_string();
                    assert!(e.starts_with(&format!("invalid endpoint name {text:?}: ")), "{e}");
                    assert!(e.contains(want), "{text:?}: {e}");
                }
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(name(ObjectKind::Webhook, &"x".repeat(129)).is_err());
        assert!(name(ObjectKind::Webhook, &"x".repeat(128)).is_ok());
    }

    #[test]
    fn region_names_look_like_dns_labels() {
        for ok in ["eu-west", "us1", "a"] {
            assert!(region_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "EU", "-eu", "eu-", "eu_west", &"a".repeat(64)] {
            let err = region_name(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid region name {bad:?}: ")), "{err}");
        }
    }

    #[test]
    fn labels_need_key_equals_value() {
        assert_eq!(parse_label("team=core").unwrap(), ("team".into(), "core".into()));
        assert_eq!(parse_label("empty=").unwrap(), ("empty".into(), String::new()));
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_label("team").unwrap_err().to_string().contains("KEY=VALUE"));
        assert!(parse_label("=x").unwrap_err().to_string().contains("1 to 63"));
        assert!(parse_label("bad key=x").unwrap_err().to_string().contains("ASCII letters"));
        assert!(parse_label(&format!("k={}", "v".repeat(257))).unwrap_err().to_string().contains("256"));
        let many: Labels = (0..33).map(|i| (format!("k{i:02}"), String::new())).collect();
        assert!(labels(&many).unwrap_err().to_string().contains("at most 32"));
    }

    #[test]
    fn refusals_keep_their_replicated_form() {
        let error = ValidationError::InvalidInterval { interval_ms: 500 };
        let json = serde_json::to_string(&error).unwrap();
        assert_eq!(json, r#"{"invalid_interval":{"interval_ms":500}}"#);
        assert_eq!(serde_json::from_str::<ValidationError>(&json).unwrap(), error);
    }

    #[test]
    fn timeout_messages_name_the_rule_broken() {
        let timeout =
            |timeout_ms, interval_ms| ValidationError::InvalidTimeout { timeout_ms, interval_ms }.to_string();
        assert_eq!(timeout(0, 5_000), "invalid timeout 0s: must be above zero");
        assert_eq!(timeout(700_000, u64::MAX), "invalid timeout 11m40s: must be at most 10m");
        assert_eq!(timeout(5_000, 5_000), "invalid timeout 5s: must be below the interval (5s)");
    }
}
