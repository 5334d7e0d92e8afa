//! D1, KV and queue helpers both workers use. Worker-specific SQL stays in each worker's `store.rs`.

use epistola_core::site::SiteConfig;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, QueueContentType, RawMessageBuilder, Result};

use crate::bindings;

/// D1 binds at most 100 parameters per statement.
pub const MAX_BOUND_PARAMS: usize = 100;

/// User agents are kept for consent proof, up to this many bytes.
const MAX_USER_AGENT_BYTES: usize = 512;

pub fn clip_user_agent(ua: &str) -> &str {
    epistola_core::text::clip(ua, MAX_USER_AGENT_BYTES)
}

pub fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

/// A text value, or SQL NULL.
pub fn opt_text(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, text)
}

pub fn int(n: i64) -> JsValue {
    // D1 numbers are JS numbers; every value here is far below 2^53.
    JsValue::from_f64(n as f64)
}

/// Sends one message to a queue as JSON text: one string crosses into JS instead of an object
/// built field by field, which is most of the hot path's enqueue cost.
pub async fn enqueue<T: serde::Serialize>(env: &Env, queue: &str, message: &T) -> Result<()> {
    let json = serde_json::to_string(message)?;
    let message = RawMessageBuilder::new(JsValue::from_str(&json))
        .build_with_content_type(QueueContentType::Text);
    env.queue(queue)?.send_raw(message).await
}

/// Sends messages to a queue in batches of at most 100 (the platform's batch limit).
pub async fn enqueue_batch<T: serde::Serialize>(
    env: &Env,
    queue: &str,
    messages: &[T],
) -> Result<()> {
    let queue = env.queue(queue)?;
    for chunk in messages.chunks(100) {
        let mut batch = Vec::with_capacity(chunk.len());
        for m in chunk {
            let json = serde_json::to_string(m)?;
            batch.push(
                RawMessageBuilder::new(JsValue::from_str(&json))
                    .build_with_content_type(QueueContentType::Text),
            );
        }
        queue.send_raw_batch(batch).await?;
    }
    Ok(())
}

/// Scopes of the live API token with this hash, if any.
pub async fn token_scopes(env: &Env, token_hash: &str) -> Result<Option<String>> {
    env.d1(bindings::DB)?
        .prepare("SELECT scopes FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL")
        .bind(&[text(token_hash)])?
        .first::<String>(Some("scopes"))
        .await
}

/// Adds a contact to the suppression list (the first reason recorded is kept).
pub async fn suppress(
    env: &Env,
    contact: &str,
    reason: &str,
    campaign: &str,
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO suppressions (contact_id, reason, campaign_id, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (contact_id) DO NOTHING",
        )
        .bind(&[text(contact), text(reason), text(campaign), int(now as i64)])?
        .run()
        .await?;
    Ok(())
}

fn site_key(site: &str) -> String {
    format!("site:{site}")
}

/// Stores a site's configuration in KV, where the edge reads it.
pub async fn put_site(env: &Env, site: &str, config: &SiteConfig) -> Result<()> {
    let json = serde_json::to_string(config)?;
    env.kv(bindings::CONFIG)?
        .put(&site_key(site), json)?
        .execute()
        .await?;
    Ok(())
}

/// A site's configuration, if it exists.
pub async fn get_site(env: &Env, site: &str) -> Result<Option<SiteConfig>> {
    let Some(json) = env
        .kv(bindings::CONFIG)?
        .get(&site_key(site))
        .text()
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_str(&json)?))
}

/// The ledger of one contact on one site, in order.
pub async fn consent_entries(
    env: &Env,
    contact: &str,
    site: &str,
) -> Result<Vec<epistola_core::consent::Entry>> {
    #[derive(Deserialize)]
    struct Row {
        purpose: String,
        channel: String,
        action: String,
    }
    let rows = env
        .d1(bindings::DB)?
        .prepare("SELECT purpose, channel, action FROM consent_ledger WHERE contact_id = ?1 AND site_id = ?2 ORDER BY seq")
        .bind(&[text(contact), text(site)])?
        .all()
        .await?
        .results::<Row>()?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(epistola_core::consent::Entry {
                purpose: r.purpose,
                channel: epistola_core::site::Channel::parse(&r.channel)?,
                action: epistola_core::consent::Action::parse(&r.action)?,
            })
        })
        .collect())
}
