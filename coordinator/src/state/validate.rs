//! Validation rules shared by the apply functions. All pure: the same input
//! gives the same verdict on every node.

use std::collections::BTreeMap;

use super::command::{CommandError, ObjectKind};

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

/// Checks a human-chosen name (endpoints, probes, webhooks, tokens): not
/// empty, no surrounding spaces, no control characters, and not all digits,
/// so "NAME or id" arguments are never ambiguous.
pub fn name(kind: ObjectKind, name: &str) -> Result<(), CommandError> {
    let bad = |reason: &str| {
        Err(CommandError::InvalidName { kind, name: name.to_string(), reason: reason.to_string() })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 128 bytes");
    }
    if name.trim() != name {
        return bad("starts or ends with whitespace");
    }
    if name.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return bad("all digits; such names would read as ids");
    }
    Ok(())
}

/// Checks a region name: 1–63 bytes of lowercase ASCII letters, digits and
/// `-`, starting with a letter or digit (like a DNS label).
pub fn region_name(name: &str) -> Result<(), CommandError> {
    let bad = |reason: &str| {
        Err(CommandError::InvalidName {
            kind: ObjectKind::Region,
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_REGION_NAME_LEN {
        return bad("must be 1 to 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return bad("use lowercase letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("must not start or end with '-'");
    }
    Ok(())
}

/// Checks labels: at most 32; keys of 1–63 bytes of ASCII letters, digits
/// and `_.-/`; values of at most 256 bytes without control characters.
pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), CommandError> {
    if labels.len() > MAX_LABELS {
        let key = labels.keys().nth(MAX_LABELS).cloned().unwrap_or_default();
        return Err(CommandError::InvalidLabel { key, reason: "more than 32 labels".into() });
    }
    for (key, value) in labels {
        let bad = |reason: &str| Err(CommandError::InvalidLabel { key: key.clone(), reason: reason.into() });
        if key.is_empty() || key.len() > MAX_LABEL_KEY_LEN {
            return bad("keys must be 1 to 63 characters");
        }
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)) {
            return bad("keys use ASCII letters, digits and '_', '.', '-', '/'");
        }
        if value.len() > MAX_LABEL_VALUE_LEN {
            return bad("values must be at most 256 bytes");
        }
        if value.chars().any(char::is_control) {
            return bad("values must not contain control characters");
        }
    }
    Ok(())
}
