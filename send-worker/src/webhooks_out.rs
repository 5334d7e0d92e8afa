//! Delivers the webhook outbox (`webhook_deliveries`, filled by triggers; see
//! `migrations/0010_webhooks.sql`) from the cron tick: signed POSTs, Standard Webhooks headers,
//! retries on `core::webhook::RETRY_SCHEDULE`, then `failed`.

use epistola_core::stats::rfc3339_hour;
use epistola_core::webhook::{retry_delay, sign};
use serde_json::json;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

use crate::store::{self, DueDelivery};

/// Deliveries per tick: bounded so one tick stays well inside its time limit; the rest wait for
/// the next minute.
const PER_TICK: u32 = 200;

/// Attempts every due delivery once. Returns (delivered, failed attempts).
pub async fn deliver_due(env: &Env, now: u64) -> worker::Result<(usize, usize)> {
    let due = store::due_deliveries(env, now, PER_TICK).await?;
    let (mut delivered, mut failed) = (0, 0);
    for d in &due {
        match post(d, now).await {
            Ok(()) => {
                delivered += 1;
                store::delivery_done(env, &d.id, now).await?;
            }
            Err(why) => {
                failed += 1;
                let attempts = d.attempts + 1;
                let next = retry_delay(attempts).map(|delay| now + delay);
                store::delivery_failed(env, &d.id, attempts, next, &why, now).await?;
            }
        }
    }
    Ok((delivered, failed))
}

/// One signed POST. The error says what happened (status or transport), never the receiver's body.
async fn post(d: &DueDelivery, now: u64) -> Result<(), String> {
    let body = json!({
        "type": d.kind,
        "timestamp": timestamp(d.occurred_at),
        "data": serde_json::from_str::<serde_json::Value>(&d.payload).unwrap_or_default(),
    })
    .to_string();
    let signature = sign(&d.secret, &d.id, now, &body).map_err(|e| e.to_string())?;
    let headers = Headers::new();
    for (k, v) in [
        ("Content-Type", "application/json"),
        ("webhook-id", d.id.as_str()),
        ("webhook-timestamp", &now.to_string()),
        ("webhook-signature", &signature),
        ("User-Agent", "Epistola-Webhooks/1"),
    ] {
        headers.set(k, v).map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(&d.url, &init).map_err(|e| e.to_string())?;
    match Fetch::Request(req).send().await {
        Ok(resp) if (200..300).contains(&resp.status_code()) => Ok(()),
        Ok(resp) => Err(format!("receiver answered {}", resp.status_code())),
        Err(e) => Err(format!("receiver unreachable: {e}")),
    }
}

/// RFC 3339 UTC with seconds.
fn timestamp(unix: u64) -> String {
    let hour = rfc3339_hour(unix / 3600);
    format!("{}{:02}:{:02}Z", &hour[..14], (unix % 3600) / 60, unix % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_have_seconds() {
        assert_eq!(super::timestamp(1_700_000_123), "2023-11-14T22:15:23Z");
    }
}
