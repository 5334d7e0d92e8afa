//! Outgoing webhooks, Standard Webhooks style: each delivery has a stable id (`webhook-id`, the
//! same on every retry, so receivers deduplicate), a timestamp (`webhook-timestamp`) and an
//! HMAC-SHA256 signature over `{id}.{timestamp}.{body}` (`webhook-signature: v1,<base64>`), with a
//! per-endpoint secret `whsec_<base64>`. Failed deliveries are retried on a schedule (data, below),
//! then marked failed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::track::FieldErrors;

/// What a CRM can subscribe to.
pub const EVENT_TYPES: [&str; 6] = [
    "email.opened",
    "email.clicked",
    "contact.unsubscribed",
    "conversion.created",
    "consent.changed",
    "transport.failed",
];

/// Delay before each retry, in seconds (after the 1st, 2nd, … failed attempt): 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h; about 28 hours in all. The cron tick runs each minute, so the shortest
/// delays are rounded up to it.
pub const RETRY_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// Delay before the next attempt after `failed_attempts` failures; `None` = give up.
pub fn retry_delay(failed_attempts: u32) -> Option<u64> {
    let i = usize::try_from(failed_attempts).ok()?.checked_sub(1)?;
    RETRY_SCHEDULE.get(i).copied()
}

/// Prefix of endpoint secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret from 24 random bytes.
pub fn new_secret(random: [u8; 24]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
}

/// Why a signature could not be made or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("no signature matches")]
    BadSignature,
}

fn mac(secret: &str, id: &str, timestamp: u64, body: &str) -> Result<Hmac<Sha256>, WebhookError> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b| STANDARD.decode(b).ok())
        .filter(|k| !k.is_empty())
        .ok_or(WebhookError::BadSecret)?;
    let mut m = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| WebhookError::BadSecret)?;
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    Ok(m)
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &str, id: &str, timestamp: u64, body: &str) -> Result<String, WebhookError> {
    let tag = mac(secret, id, timestamp, body)?.finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// Checks a `webhook-signature` header (space-separated `v1,<base64>` entries, any may match), in
/// constant time. Receivers should also reject timestamps far from now.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: u64,
    body: &str,
    header: &str,
) -> Result<(), WebhookError> {
    let m = mac(secret, id, timestamp, body)?;
    for entry in header.split_ascii_whitespace() {
        if let Some(tag) = entry
            .strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
        {
            if m.clone().verify_slice(&tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(WebhookError::BadSignature)
}

/// `POST /v1/webhook-endpoints` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    pub url: String,
    /// Event types, or `["*"]` for all.
    pub events: Vec<String>,
}

/// Checks an endpoint: an `https` URL (plain `http` only to this machine, for development) and
/// known event types.
pub fn validate_endpoint(input: &EndpointInput) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let url = input.url.trim();
    let local = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| url.starts_with(p));
    if crate::url::validate_destination(url).is_err() || !(url.starts_with("https://") || local) {
        errors.insert(
            "url".into(),
            "must be an https URL (http only to 127.0.0.1 or localhost)".into(),
        );
    }
    if input.events.is_empty() {
        errors.insert(
            "events".into(),
            "name at least one event type, or \"*\"".into(),
        );
    }
    for (i, e) in input.events.iter().enumerate() {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            errors.insert(
                format!("events[{i}]"),
                format!("unknown event type; use one of {}", EVENT_TYPES.join(", ")),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1_614_265_330;
    const BODY: &str = r#"{"test": 2432232314}"#;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        assert_eq!(
            sign(SECRET, ID, TS, BODY),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into())
        );
    }

    #[test]
    fn verification_fails_on_any_change() {
        let sig = sign(SECRET, ID, TS, BODY).expect("signs");
        assert_eq!(verify(SECRET, ID, TS, BODY, &sig), Ok(()));
        assert_eq!(
            verify(SECRET, ID, TS, BODY, &format!("v1,bm9wZQ== {sig}")),
            Ok(()),
            "any of several signatures (rotation)"
        );
        for (id, ts, body) in [("msg_x", TS, BODY), (ID, TS + 1, BODY), (ID, TS, "{}")] {
            assert_eq!(
                verify(SECRET, id, ts, body, &sig),
                Err(WebhookError::BadSignature)
            );
        }
        assert_eq!(sign("nope", ID, TS, BODY), Err(WebhookError::BadSecret));
        assert!(new_secret([7; 24]).starts_with(SECRET_PREFIX));
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        assert_eq!(retry_delay(0), None);
        assert_eq!(retry_delay(1), Some(5));
        assert_eq!(retry_delay(2), Some(300));
        assert_eq!(retry_delay(7), Some(36_000));
        assert_eq!(retry_delay(8), None);
    }

    #[test]
    fn endpoints_are_checked() {
        let ok = EndpointInput {
            url: "https://crm.example/hooks".into(),
            events: vec!["email.clicked".into(), "*".into()],
        };
        assert!(validate_endpoint(&ok).is_empty());
        let local = EndpointInput {
            url: "http://127.0.0.1:9000/h".into(),
            ..ok.clone()
        };
        assert!(validate_endpoint(&local).is_empty());
        let bad = EndpointInput {
            url: "http://crm.example/hooks".into(),
            events: vec!["email.bounced".into()],
        };
        let errors = validate_endpoint(&bad);
        assert!(
            errors.contains_key("url") && errors.contains_key("events[0]"),
            "{errors:?}"
        );
    }
}
