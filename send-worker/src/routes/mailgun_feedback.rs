//! `POST /v1/webhooks/mailgun`: bounces, complaints and unsubscribes reported by the e-mail
//! provider. Public, so nothing is believed without a valid signature (HMAC with a signing key
//! from `MAILGUN_WEBHOOK_KEYS`, comma-separated so keys can rotate) and a fresh timestamp. A verified
//! event suppresses the address for every later send, whether or not it belongs to a contact.

use epistola_core::capture::normalize_email;
use epistola_core::contact::address_hash;
use epistola_sender::mailgun::{verify, WebhookPayload};
use serde_json::json;
use worker::{Env, Request, Response};

use crate::http::{self, ApiError, ApiResult};
use crate::{config, store};

/// Secret: the webhook signing key(s), newest first.
pub const MAILGUN_WEBHOOK_KEYS: &str = "MAILGUN_WEBHOOK_KEYS";
const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

pub async fn mailgun(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    let Some(keys) = config::text(env, MAILGUN_WEBHOOK_KEYS) else {
        worker::console_error!("{MAILGUN_WEBHOOK_KEYS} is not configured; refusing webhooks");
        return Err(ApiError::new(
            503,
            "unavailable",
            "webhooks are not configured",
        ));
    };
    let keys: Vec<&str> = keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let body = http::read_limited(&mut req, MAX_WEBHOOK_BYTES).await?;
    let payload: WebhookPayload = http::parse_json(&body)?;
    let feedback = verify(&payload, &keys, now)
        .map_err(|e| ApiError::new(401, "unauthorized", e.to_string()))?;
    // A signature is good for one request: a replay within the freshness window is refused.
    let (replay_key, remember_until) = payload.signature.replay_key();
    if !store::first_use(env, &replay_key, remember_until).await? {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "this signature was used already",
        ));
    }
    let Some(reason) = feedback.suppression_reason() else {
        return Ok(http::json(200, &json!({ "status": "ignored" })));
    };
    let Some(email) = payload
        .event_data
        .recipient
        .as_deref()
        .and_then(|r| normalize_email(r).ok())
    else {
        return Err(ApiError::field(
            "event-data.recipient",
            "must be an e-mail address",
        ));
    };
    store::import_address_suppressions(
        env,
        &[address_hash(&email)],
        reason,
        Some("mailgun-webhook"),
        now,
    )
    .await?;
    if let Some(contact) = store::contact_id_by_email(env, &email).await? {
        store::suppress(env, &contact, reason, "mailgun-webhook", now).await?;
    }
    Ok(http::json(
        200,
        &json!({ "status": "suppressed", "reason": reason }),
    ))
}
