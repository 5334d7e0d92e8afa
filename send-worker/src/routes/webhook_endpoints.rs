//! `/v1/webhook-endpoints`: where a CRM receives opens, clicks, unsubscribes, conversions and
//! consent changes as signed webhooks (scope `webhooks:write`). The secret is shown once, at
//! creation.

use epistola_core::auth::Scope;
use epistola_core::ids::validate_id;
use epistola_core::webhook::{new_secret, validate_endpoint, EndpointInput};
use epistola_worker_kit::auth::require_scope;
use serde_json::json;
use worker::{Env, Request, Response};

use crate::http::{self, read_json, ApiError, ApiResult};
use crate::{random, store};

const MAX_ENDPOINT_BYTES: usize = 8 * 1024;

/// `POST /v1/webhook-endpoints` `{url, events}` → `201 {id, url, events, secret}`.
pub async fn create(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::WebhooksWrite).await?;
    let input: EndpointInput = read_json(&mut req, MAX_ENDPOINT_BYTES).await?;
    let errors = validate_endpoint(&input);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let id =
        random::id("whe_").ok_or_else(|| ApiError::internal("endpoint id", "no randomness"))?;
    let seed = random::bytes::<24>()
        .ok_or_else(|| ApiError::internal("endpoint secret", "no randomness"))?;
    let secret = new_secret(seed);
    let url = input.url.trim();
    store::create_endpoint(env, &id, url, &secret, &input.events, now).await?;
    Ok(http::json(
        201,
        &json!({ "id": id, "url": url, "events": input.events, "status": "active", "secret": secret }),
    ))
}

/// `GET /v1/webhook-endpoints`: endpoints (no secrets) with delivery counts.
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    require_scope(req, env, Scope::WebhooksWrite).await?;
    let mut out = Vec::new();
    for e in store::list_endpoints(env).await? {
        let counts: serde_json::Map<String, serde_json::Value> =
            store::endpoint_delivery_counts(env, &e.id)
                .await?
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
        out.push(json!({
            "id": e.id, "url": e.url, "status": e.status, "created_at": e.created_at,
            "events": serde_json::from_slice::<serde_json::Value>(e.events.as_bytes()).unwrap_or_default(),
            "deliveries": counts,
        }));
    }
    Ok(http::json(200, &json!({ "endpoints": out })))
}

/// `DELETE /v1/webhook-endpoints/{id}`: stops deliveries to it.
pub async fn disable(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(req, env, Scope::WebhooksWrite).await?;
    validate_id(id, false).map_err(|e| ApiError::field("endpoint", e.to_string()))?;
    if !store::disable_endpoint(env, id, now).await? {
        return Err(ApiError::new(404, "not_found", "no such webhook endpoint"));
    }
    Ok(http::json(200, &json!({ "id": id, "status": "disabled" })))
}
