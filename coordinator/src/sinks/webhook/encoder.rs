//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>):
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! so receivers verify deliveries with any Standard Webhooks library.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The prefix of a Standard Webhooks secret whose key is base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    /// `whsec_…` with a part that is not base64.
    #[error("webhook secret starts with whsec_ but the rest is not base64: {reason} (use whsec_ followed by base64, or a secret without the prefix)")]
    NotBase64 {
        /// What the decoder said.
        reason: String,
    },
}

/// The HMAC key of a webhook secret: the base64-decoded part after
/// `whsec_` (the form Standard Webhooks libraries generate and expect), or
/// the secret's own bytes when it has no prefix.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, SigningKeyError> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => {
            STANDARD.decode(encoded).map_err(|e| SigningKeyError::NotBase64 { reason: e.to_string() })
        }
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// The `webhook-signature` value of one delivery: `v1,` and the base64
/// HMAC-SHA256 of `{msg_id}.{timestamp}.{body}` under `key`.
pub fn signature(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(msg_id.as_bytes());
    context.update(b".");
    context.update(timestamp_secs.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of the reference implementation's own test
    /// (`standardwebhooks` 1.0.0 on PyPI, `tests/test_webhooks.py`,
    /// `test_sign_function`).
    #[test]
    fn the_reference_vector_signs_alike() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn keys_come_from_the_prefix_form_or_the_bytes() {
        assert_eq!(signing_key("whsec_AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(signing_key("0123456789abcdef").unwrap(), b"0123456789abcdef");
        let err = signing_key("whsec_***").unwrap_err().to_string();
        assert!(err.contains("not base64"), "{err}");
        let key = signing_key("0123456789abcdef").unwrap();
        assert_ne!(signature(&key, "a", 1, b"x"), signature(&key, "b", 1, b"x"), "the id is signed");
        assert_ne!(signature(&key, "a", 1, b"x"), signature(&key, "a", 2, b"x"), "the time is signed");
    }
}
