//! Client-side checks of what is about to be sent, so the common mistakes
//! get an immediate, specific answer. The coordinator validates again and
//! has the last word; these rules mirror its rules (`coordinator/src/state/`)
//! without depending on that crate.
//!
//! Every function returns a message that names the offending input.

use std::collections::BTreeMap;
use std::time::Duration;

use vantage_core::assert::{HeaderAssertion, JsonAssertion, Pattern, StatusSet};
use vantage_core::spec::{CheckKind, CheckSpec};

use crate::model::{
    EndpointSpec, Expectations, MaintenanceSpec, WebhookSpec, WEBHOOK_EVENTS, WEBHOOK_FORMATS,
};
use crate::timefmt::format_ms;

/// The shortest check interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest check interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest check timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest maintenance window.
pub const MAX_WINDOW: Duration = Duration::from_secs(31 * 24 * 60 * 60);
/// The shortest webhook secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest webhook secret, in bytes.
pub const MAX_SECRET_LEN: usize = 512;

/// Checks an object name: not empty, at most 128 bytes, no surrounding
/// whitespace or control characters, not all digits (it would read as an
/// id).
pub fn name(kind: &str, name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 128 {
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
    Err(format!("invalid {kind} name {name:?}: {reason}"))
}

/// Checks a region name: 1–63 lowercase letters, digits and `-`, not
/// starting or ending with `-`.
pub fn region_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid region name {name:?}: use 1 to 63 lowercase letters, digits and '-' (e.g. eu-west)"
        ))
    }
}

/// Parses a `KEY=VALUE` label. Keys are 1–63 ASCII letters, digits and
/// `_.-/`; values at most 256 bytes without control characters.
pub fn label(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("invalid label {text:?}: write KEY=VALUE, e.g. team=core"));
    };
    label_pair(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

/// Checks one label.
pub fn label_pair(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 63 {
        return Err(format!("invalid label key {key:?}: keys are 1 to 63 characters"));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)) {
        return Err(format!("invalid label key {key:?}: use ASCII letters, digits and '_', '.', '-', '/'"));
    }
    if value.len() > 256 || value.chars().any(char::is_control) {
        return Err(format!(
            "invalid label value {value:?} for {key:?}: at most 256 bytes, no control characters"
        ));
    }
    Ok(())
}

/// Checks labels (at most 32).
pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > 32 {
        return Err(format!("{} labels: at most 32 are allowed", labels.len()));
    }
    labels.iter().try_for_each(|(k, v)| label_pair(k, v))
}

/// Checks a check interval: 1 s to 24 h.
pub fn interval(interval: Duration) -> Result<(), String> {
    if (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        Ok(())
    } else {
        Err(format!(
            "invalid interval {}: must be between 1s and 24h",
            format_ms(interval.as_millis() as u64)
        ))
    }
}

/// Checks a check timeout on its own: above zero, at most 10 min.
pub fn timeout(timeout: Duration) -> Result<(), String> {
    if !timeout.is_zero() && timeout <= MAX_TIMEOUT {
        Ok(())
    } else {
        Err(format!(
            "invalid timeout {}: must be above zero and at most 10m",
            format_ms(timeout.as_millis() as u64)
        ))
    }
}

/// Checks expectations by compiling them as the probe will.
pub fn expectations(expect: &Expectations) -> Result<(), String> {
    if let Some(status) = &expect.status {
        StatusSet::parse(status).map_err(|e| e.to_string())?;
    }
    for source in &expect.body_matches {
        Pattern::new("expect-regex", source).map_err(|e| e.to_string())?;
    }
    for text in &expect.json {
        JsonAssertion::parse(text).map_err(|e| e.to_string())?;
    }
    for text in &expect.headers {
        HeaderAssertion::parse(text).map_err(|e| e.to_string())?;
    }
    let lists = [
        ("expect-body", &expect.body_contains),
        ("expect-regex", &expect.body_matches),
        ("expect-json", &expect.json),
        ("expect-header", &expect.headers),
    ];
    for (field, list) in lists {
        if list.len() > 16 {
            return Err(format!("invalid {field}: at most 16 expectations"));
        }
        if list.iter().any(|item| item.len() > 1024) {
            return Err(format!("invalid {field}: each at most 1024 bytes"));
        }
    }
    Ok(())
}

/// Checks a whole endpoint specification.
pub fn endpoint(spec: &EndpointSpec) -> Result<(), String> {
    name("endpoint", &spec.name)?;
    CheckSpec::parse(&spec.url).map_err(|e| e.to_string())?;
    interval(Duration::from_millis(spec.interval_ms))?;
    timeout(Duration::from_millis(spec.timeout_ms))?;
    if spec.timeout_ms >= spec.interval_ms {
        return Err(format!(
            "invalid timeout {}: must be below the interval ({})",
            format_ms(spec.timeout_ms),
            format_ms(spec.interval_ms)
        ));
    }
    expectations(&spec.expect)?;
    spec.regions.iter().try_for_each(|r| region_name(r))?;
    labels(&spec.labels)
}

/// Checks a webhook specification (the secret is checked by
/// [`secret_text`] once it is known).
pub fn webhook(spec: &WebhookSpec) -> Result<(), String> {
    name("webhook", &spec.name)?;
    let kind = CheckSpec::parse(&spec.url).map_err(|e| format!("invalid webhook URL: {e}"))?.kind();
    if !matches!(kind, CheckKind::Http | CheckKind::Https) {
        return Err(format!("invalid webhook URL {:?}: use http:// or https://", spec.url));
    }
    format(&spec.format)?;
    spec.events.iter().try_for_each(|e| event(e))?;
    labels(&spec.labels)
}

/// Checks a webhook format name.
pub fn format(format: &str) -> Result<(), String> {
    if WEBHOOK_FORMATS.contains(&format) {
        Ok(())
    } else {
        Err(format!("invalid webhook format {format:?}: use {}", WEBHOOK_FORMATS.join(" or ")))
    }
}

/// Checks an alert event name.
pub fn event(event: &str) -> Result<(), String> {
    if WEBHOOK_EVENTS.contains(&event) {
        Ok(())
    } else {
        Err(format!("invalid event {event:?}: use one of {}", WEBHOOK_EVENTS.join(", ")))
    }
}

/// Checks a webhook secret's length.
pub fn secret_text(secret: &str) -> Result<(), String> {
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
        Ok(())
    } else {
        Err(format!(
            "invalid webhook secret: it has {} bytes, use {MIN_SECRET_LEN} to {MAX_SECRET_LEN} (e.g. `openssl rand -hex 32`)",
            secret.len()
        ))
    }
}

/// Checks a maintenance window's shape (the coordinator also refuses
/// windows already over).
pub fn maintenance(spec: &MaintenanceSpec) -> Result<(), String> {
    if spec.ends_at_unix_ms <= spec.starts_at_unix_ms {
        return Err("invalid maintenance window: the end must be after the start".into());
    }
    if (spec.ends_at_unix_ms - spec.starts_at_unix_ms) as u128 > MAX_WINDOW.as_millis() {
        return Err("invalid maintenance window: longer than 31 days".into());
    }
    if spec.reason.len() > 1024 || spec.reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err("invalid maintenance reason: at most 1024 bytes without control characters".into());
    }
    labels(&spec.labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rules_table() {
        let ok = EndpointSpec::new("api", "https://api.example.com/health");
        let cases: Vec<(&str, EndpointSpec, Option<&str>)> = vec![
            ("defaults are valid", ok.clone(), None),
            ("bad scheme", EndpointSpec { url: "ftp://x".into(), ..ok.clone() }, Some("unsupported scheme")),
            (
                "interval too short",
                EndpointSpec { interval_ms: 500, timeout_ms: 100, ..ok.clone() },
                Some("between 1s and 24h"),
            ),
            (
                "interval too long",
                EndpointSpec { interval_ms: 86_400_001, ..ok.clone() },
                Some("between 1s and 24h"),
            ),
            (
                "timeout not below interval",
                EndpointSpec { interval_ms: 5_000, timeout_ms: 5_000, ..ok.clone() },
                Some("below the interval (5s)"),
            ),
            ("numeric name", EndpointSpec { name: "42".into(), ..ok.clone() }, Some("reads as an id")),
            (
                "bad region",
                EndpointSpec { regions: ["EU".to_string()].into(), ..ok.clone() },
                Some("invalid region name \"EU\""),
            ),
            (
                "bad status list",
                EndpointSpec {
                    expect: Expectations { status: Some("abc".into()), ..Default::default() },
                    ..ok.clone()
                },
                Some("abc"),
            ),
        ];
        for (what, spec, want) in cases {
            match (endpoint(&spec), want) {
                (Ok(()), None) => {}
                (Err(e), Some(want)) => assert!(e.contains(want), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn labels_need_key_equals_value() {
        assert_eq!(label("team=core").unwrap(), ("team".into(), "core".into()));
        assert_eq!(label("empty=").unwrap(), ("empty".into(), String::new()));
        assert_eq!(label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(label("team").unwrap_err().contains("KEY=VALUE"));
        assert!(label("=x").unwrap_err().contains("1 to 63"));
        assert!(label("bad key=x").unwrap_err().contains("ASCII letters"));
    }

    #[test]
    fn webhook_and_maintenance_rules() {
        let spec = WebhookSpec {
            name: "oncall".into(),
            url: "https://hooks.example.com/x".into(),
            format: "standard".into(),
            events: Default::default(),
            labels: Default::default(),
        };
        assert!(webhook(&spec).is_ok());
        assert!(secret_text("short").unwrap_err().contains("16 to 512"));
        let tcp = WebhookSpec { url: "tcp://x:1".into(), ..spec.clone() };
        assert!(webhook(&tcp).unwrap_err().contains("http://"));
        let window = MaintenanceSpec {
            starts_at_unix_ms: 10,
            ends_at_unix_ms: 5,
            endpoints: Default::default(),
            labels: Default::default(),
            reason: String::new(),
        };
        assert!(maintenance(&window).unwrap_err().contains("after the start"));
    }
}
