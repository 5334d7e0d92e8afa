//! Mailgun's HTTP API as an e-mail transport and its webhooks as the bounce/complaint feed.
//! Pure: builds the `messages.mime` request (the MIME message Epistola composed, unchanged) and
//! verifies and reads webhook payloads; the worker does the fetch.
//!
//! Webhook signatures: HMAC-SHA256 with the webhook signing key over `timestamp ‖ token`, hex,
//! compared in constant time; old timestamps are refused so a captured payload cannot be replayed
//! later.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::sms::HttpRequest;

/// Where and as whom to send.
#[derive(Clone)]
pub struct Mailgun {
    /// e.g. `https://api.mailgun.net` (or `https://api.eu.mailgun.net`, or a local sink).
    pub base_url: String,
    pub domain: String,
    pub api_key: String,
}

impl std::fmt::Debug for Mailgun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailgun")
            .field("base_url", &self.base_url)
            .field("domain", &self.domain)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// `POST /v3/{domain}/messages.mime` as multipart/form-data with `to` and the `message` file.
/// `boundary` must not occur in the message (pass something derived from the Message-ID).
pub fn send_request(m: &Mailgun, to: &str, mime: &[u8], boundary: &str) -> (HttpRequest, Vec<u8>) {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("api:{}", m.api_key));
    let mut body = Vec::with_capacity(mime.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{to}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"; filename=\"message.eml\"\r\n\
             Content-Type: message/rfc822\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(mime);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        HttpRequest {
            url: format!(
                "{}/v3/{}/messages.mime",
                m.base_url.trim_end_matches('/'),
                m.domain
            ),
            authorization: format!("Basic {credentials}"),
            content_type: "multipart/form-data",
            body: String::new(),
        },
        body,
    )
}

/// A webhook payload (`application/json`), the parts Epistola reads.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookPayload {
    pub signature: Signature,
    #[serde(rename = "event-data")]
    pub event_data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    pub timestamp: String,
    pub token: String,
    pub signature: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub event: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
}

/// What a verified webhook event means for the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// A permanent failure: suppress as `bounced`.
    Bounced,
    /// A spam complaint: suppress as `complained`.
    Complained,
    /// Unsubscribed through the provider: suppress as `unsubscribed`.
    Unsubscribed,
    /// Anything else (delivered, temporary failure, opened…): nothing to do.
    Ignored,
}

impl Feedback {
    pub fn suppression_reason(self) -> Option<&'static str> {
        match self {
            Feedback::Bounced => Some("bounced"),
            Feedback::Complained => Some("complained"),
            Feedback::Unsubscribed => Some("unsubscribed"),
            Feedback::Ignored => None,
        }
    }
}

/// Why a webhook is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("timestamp is too old or in the future")]
    Stale,
}

/// Webhooks older (or newer) than this are refused.
pub const MAX_WEBHOOK_AGE_SECONDS: u64 = 15 * 60;

impl Signature {
    /// The key under which this signature's one use is remembered (its token names it; the
    /// timestamp is in the MAC), and until when it must be remembered: past that it is stale anyway.
    pub fn replay_key(&self) -> (String, u64) {
        let ts: u64 = self.timestamp.parse().unwrap_or(0);
        (
            format!("mailgun:{}:{}", self.timestamp, self.token),
            ts + MAX_WEBHOOK_AGE_SECONDS + 60,
        )
    }
}

/// Verifies a payload with any of the signing keys (several during rotation) at `now`.
pub fn verify(payload: &WebhookPayload, keys: &[&str], now: u64) -> Result<Feedback, WebhookError> {
    let s = &payload.signature;
    let ts: u64 = s.timestamp.parse().map_err(|_| WebhookError::Stale)?;
    if ts + MAX_WEBHOOK_AGE_SECONDS < now || ts > now + MAX_WEBHOOK_AGE_SECONDS {
        return Err(WebhookError::Stale);
    }
    let Some(given) = crate::hex_decode(&s.signature) else {
        return Err(WebhookError::BadSignature);
    };
    let verified = keys.iter().any(|key| {
        Hmac::<Sha256>::new_from_slice(key.as_bytes())
            .map(|mac| {
                mac.chain_update(s.timestamp.as_bytes())
                    .chain_update(s.token.as_bytes())
            })
            .is_ok_and(|mac| mac.verify_slice(&given).is_ok())
    });
    if !verified {
        return Err(WebhookError::BadSignature);
    }
    let e = &payload.event_data;
    Ok(match (e.event.as_str(), e.severity.as_deref()) {
        ("failed", Some("permanent")) => Feedback::Bounced,
        ("complained", _) => Feedback::Complained,
        ("unsubscribed", _) => Feedback::Unsubscribed,
        _ => Feedback::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: &str, severity: Option<&str>, ts: u64, key: &str) -> WebhookPayload {
        let token = "0123456789abcdef";
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
            .expect("any key")
            .chain_update(ts.to_string())
            .chain_update(token)
            .finalize()
            .into_bytes();
        WebhookPayload {
            signature: Signature {
                timestamp: ts.to_string(),
                token: token.into(),
                signature: epistola_core::hex::encode(&mac),
            },
            event_data: EventData {
                event: event.into(),
                severity: severity.map(Into::into),
                recipient: Some("ann@example.com".into()),
            },
        }
    }

    #[test]
    fn verified_events_map_to_suppressions() {
        let now = 1_790_000_000;
        let cases = [
            (("failed", Some("permanent")), Feedback::Bounced),
            (("failed", Some("temporary")), Feedback::Ignored),
            (("complained", None), Feedback::Complained),
            (("unsubscribed", None), Feedback::Unsubscribed),
            (("delivered", None), Feedback::Ignored),
        ];
        for ((event, severity), expected) in cases {
            assert_eq!(
                verify(&payload(event, severity, now, "key-1"), &["key-1"], now),
                Ok(expected)
            );
        }
    }

    #[test]
    fn forged_stale_and_rotated_keys() {
        let now = 1_790_000_000;
        let p = payload("complained", None, now, "old-key");
        assert_eq!(
            verify(&p, &["new-key"], now),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(&p, &["new-key", "old-key"], now),
            Ok(Feedback::Complained),
            "rotation: both keys accepted"
        );
        let mut tampered = p.clone();
        tampered.signature.token.push('x');
        assert_eq!(
            verify(&tampered, &["old-key"], now),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(&p, &["old-key"], now + 3600),
            Err(WebhookError::Stale)
        );
        let mut garbage = p;
        garbage.signature.signature = "zz".into();
        assert_eq!(
            verify(&garbage, &["old-key"], now),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn mime_goes_as_a_file_unchanged() {
        let m = Mailgun {
            base_url: "https://api.mailgun.net/".into(),
            domain: "mg.shop.example".into(),
            api_key: "key-secret".into(),
        };
        let (r, body) = send_request(&m, "ann@example.com", b"Subject: hi\r\n\r\nbody", "b0und");
        assert_eq!(
            r.url,
            "https://api.mailgun.net/v3/mg.shop.example/messages.mime"
        );
        assert_eq!(r.authorization, "Basic YXBpOmtleS1zZWNyZXQ=");
        let body = String::from_utf8(body).expect("utf-8");
        assert!(
            body.contains("name=\"to\"\r\n\r\nann@example.com\r\n"),
            "{body}"
        );
        assert!(
            body.contains(
                "Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n--b0und--\r\n"
            ),
            "{body}"
        );
        assert!(!format!("{m:?}").contains("secret"));
    }
}
