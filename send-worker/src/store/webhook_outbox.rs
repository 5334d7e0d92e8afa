//! Outgoing webhooks: the endpoints marketers register and the outbox the tick delivers.

use epistola_worker_kit::db::{int, text};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, Result};

use super::counts_by_status;
use crate::bindings;

/// A webhook delivery that is due, with its endpoint's URL and secret.
#[derive(Deserialize)]
pub struct DueDelivery {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: String,
    pub occurred_at: u64,
    pub attempts: u32,
    pub url: String,
    pub secret: String,
}

/// Claims up to `limit` due deliveries to active endpoints, oldest first: they are pushed
/// `lease` seconds into the future in the same statement that selects them, so a tick running at
/// the same time cannot take them too. A crash mid-delivery retries them after the lease.
pub async fn claim_due_deliveries(
    env: &Env,
    now: u64,
    limit: u32,
    lease: u64,
) -> Result<Vec<DueDelivery>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE webhook_deliveries SET next_at = ?1 + ?3 WHERE id IN (SELECT d.id FROM webhook_deliveries d \
                 JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'active' \
                 WHERE d.status = 'pending' AND d.next_at <= ?1 ORDER BY d.next_at, d.id LIMIT ?2) \
                 RETURNING id, type, payload, occurred_at, attempts, endpoint_id",
            )
            .bind(&[int(now as i64), int(i64::from(limit)), int(lease as i64)])?,
            db.prepare("SELECT id, url, secret FROM webhook_endpoints WHERE status = 'active'"),
        ])
        .await?;
    #[derive(Deserialize)]
    struct Claimed {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        payload: String,
        occurred_at: u64,
        attempts: u32,
        endpoint_id: String,
    }
    #[derive(Deserialize)]
    struct Endpoint {
        id: String,
        url: String,
        secret: String,
    }
    let [claimed, endpoints] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    let endpoints: std::collections::HashMap<String, Endpoint> = endpoints
        .results::<Endpoint>()?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    Ok(claimed
        .results::<Claimed>()?
        .into_iter()
        .filter_map(|c| {
            let e = endpoints.get(&c.endpoint_id)?;
            Some(DueDelivery {
                id: c.id,
                kind: c.kind,
                payload: c.payload,
                occurred_at: c.occurred_at,
                attempts: c.attempts,
                url: e.url.clone(),
                secret: e.secret.clone(),
            })
        })
        .collect())
}

pub async fn delivery_done(env: &Env, id: &str, now: u64) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, \
             last_error = NULL, updated_at = ?2 WHERE id = ?1",
        )
        .bind(&[text(id), int(now as i64)])?
        .run()
        .await?;
    Ok(())
}

/// Records a failed attempt: due again at `next_at`, or `failed` when the schedule is exhausted.
pub async fn delivery_failed(
    env: &Env,
    id: &str,
    attempts: u32,
    next_at: Option<u64>,
    error: &str,
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "UPDATE webhook_deliveries SET status = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END, \
             attempts = ?2, next_at = COALESCE(?3, next_at), last_error = ?4, updated_at = ?5 WHERE id = ?1",
        )
        .bind(&[
            text(id),
            int(i64::from(attempts)),
            next_at.map_or(JsValue::NULL, |t| int(t as i64)),
            text(epistola_core::text::clip(error, 300)),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

#[derive(Deserialize, serde::Serialize)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub status: String,
    pub created_at: u64,
}

pub async fn create_endpoint(
    env: &Env,
    id: &str,
    url: &str,
    secret: &str,
    events: &[String],
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO webhook_endpoints (id, url, secret, events, status, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)",
        )
        .bind(&[
            text(id),
            text(url),
            text(secret),
            text(&serde_json::to_string(events)?),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

pub async fn list_endpoints(env: &Env) -> Result<Vec<EndpointRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT id, url, events, status, created_at FROM webhook_endpoints ORDER BY created_at, id",
        )
        .all()
        .await?
        .results::<EndpointRow>()
}

/// Delivery counts of one endpoint by status.
pub async fn endpoint_delivery_counts(env: &Env, id: &str) -> Result<Vec<(String, u64)>> {
    counts_by_status(env, "webhook_deliveries", "endpoint_id", id).await
}

/// Disables an endpoint; its pending deliveries are not sent. Returns whether it existed.
pub async fn disable_endpoint(env: &Env, id: &str, now: u64) -> Result<bool> {
    let result = env
        .d1(bindings::DB)?
        .prepare(
            "UPDATE webhook_endpoints SET status = 'disabled', updated_at = ?2 WHERE id = ?1 RETURNING id",
        )
        .bind(&[text(id), int(now as i64)])?
        .first::<String>(Some("id"))
        .await?;
    if result.is_some() {
        // Its pending deliveries will never go: say so, rather than leave them pending forever.
        env.d1(bindings::DB)?
            .prepare(
                "UPDATE webhook_deliveries SET status = 'endpoint_disabled', updated_at = ?2 \
                 WHERE endpoint_id = ?1 AND status = 'pending'",
            )
            .bind(&[text(id), int(now as i64)])?
            .run()
            .await?;
    }
    Ok(result.is_some())
}
