//! Delivers the webhook outbox (`webhook_deliveries`, filled by triggers; see
//! `migrations/0010_webhooks.sql`) from the cron tick: signed POSTs, Standard Webhooks headers,
//! retries on `core::webhook::RETRY_SCHEDULE`, then `failed`.

use epistola_core::stats::rfc3339_hour;
use epistola_core::webhook::{retry_delay, sign};
use futures_util::future::{join_all, select, Either};
use serde_json::json;
use worker::{Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

use crate::store::{self, DueDelivery};

/// Deliveries per tick: bounded so one tick stays well inside its time limit; the rest wait for
/// the next minute.
const PER_TICK: u32 = 200;
/// Deliveries in flight at once, and how long one receiver may take.
const PARALLEL: usize = 10;
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a claimed delivery is left alone by other ticks: longer than a tick's work.
const LEASE_SECONDS: u64 = 120;

/// Claims due deliveries (so an overlapping tick never posts them again) and attempts each once,
/// several at a time. Returns (delivered, failed attempts).
pub async fn deliver_due(env: &Env, now: u64) -> worker::Result<(usize, usize)> {
    let due = store::claim_due_deliveries(env, now, PER_TICK, LEASE_SECONDS).await?;
    let (mut delivered, mut failed) = (0, 0);
    for batch in due.chunks(PARALLEL) {
        let results = join_all(batch.iter().map(|d| post(d, now))).await;
        for (d, result) in batch.iter().zip(results) {
            match result {
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
    }
    Ok((delivered, failed))
}

/// One signed POST, within [`TIMEOUT`], following no redirect (a receiver that redirects, to
/// another scheme or anywhere, has not received it: the URL to call is the one registered). The
/// error says what happened (status, timeout or transport), never the receiver's body.
async fn post(d: &DueDelivery, now: u64) -> Result<(), String> {
    let body = json!({
        "type": d.kind,
        "timestamp": timestamp(d.occurred_at),
        "data": serde_json::from_slice::<serde_json::Value>(d.payload.as_bytes()).unwrap_or_default(),
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
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(&d.url, &init).map_err(|e| e.to_string())?;
    let fetch = Fetch::Request(req);
    let send = std::pin::pin!(fetch.send());
    let timeout = std::pin::pin!(Delay::from(TIMEOUT));
    match select(send, timeout).await {
        Either::Left((Ok(resp), _)) => match resp.status_code() {
            200..=299 => Ok(()),
            300..=399 => Err(format!(
                "receiver redirected ({}); not followed",
                resp.status_code()
            )),
            code => Err(format!("receiver answered {code}")),
        },
        Either::Left((Err(e), _)) => Err(format!("receiver unreachable: {e}")),
        Either::Right(_) => Err(format!(
            "receiver did not answer within {} s",
            TIMEOUT.as_secs()
        )),
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
