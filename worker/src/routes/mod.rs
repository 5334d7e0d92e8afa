//! Request routing: one module per route family, named handler functions.

use worker::{Context, Env, Method, Request, Response};

use crate::http::{self, ApiError};

mod capture;
mod convert;
mod sender;
mod sites;
mod stats;
mod track_api;
mod tracking;
mod widget;

/// Routes a request. Every outcome, including our own failures, is a response.
pub async fn dispatch(req: Request, env: Env, ctx: Context, now: u64) -> Response {
    let path = req.path();
    let method = req.method();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (segments.as_slice(), method) {
        (["w.js"], Method::Get | Method::Head) => widget::script(&req),
        // The dashboard is served by the sending worker (the back office), keeping the edge small.
        (["dashboard", ..], _) => sender::forward(req, &env).await,
        (["healthz"], Method::Get | Method::Head) => {
            http::json(200, &serde_json::json!({"status": "ok"}))
        }
        (["o", token], Method::Get | Method::Head) => tracking::open(&req, &env, &ctx, token, now),
        // A pixel URL mangled by a mail client or a proxy still gets an image, never a broken one.
        (["o", _, ..], Method::Get | Method::Head) => http::pixel(),
        (["c", token], Method::Get | Method::Head) => {
            tracking::click(&req, &env, &ctx, token, now).await
        }
        (["o", _, ..] | ["c", _], _) => http::method_not_allowed("GET, HEAD"),
        (["u", token], Method::Get) => tracking::unsubscribe_page(&env, token, now),
        (["u", token], Method::Head) => http::head(tracking::unsubscribe_page(&env, token, now)),
        (["u", token], Method::Post) => tracking::unsubscribe(req, &env, &ctx, token, now).await,
        (["u", _], _) => http::method_not_allowed("GET, HEAD, POST"),
        // Double opt-in and the preference centre read and write contacts and the ledger: the
        // sending worker serves them (no hot path, and the edge bundle stays small).
        (["confirm" | "p", _], _) => sender::forward(req, &env).await,
        (["v1", "track", "links"], Method::Post) => {
            respond(track_api::sign_links(req, &env, now).await)
        }
        (["v1", "track", "links"], _) => http::method_not_allowed("POST"),
        (["v1", "stats", "campaigns", id], Method::Get) => {
            respond(stats::campaign(&req, &env, id).await)
        }
        (["v1", "stats", "campaigns", _], _) => http::method_not_allowed("GET"),
        (["v1", "sites", site], Method::Put) => respond(sites::put_site(req, &env, site).await),
        (["v1", "sites", _], _) => http::method_not_allowed("PUT"),
        (["v1", "sites", site, "widget"], Method::Get) => {
            respond(sites::widget_config(&req, &env, site).await)
        }
        (["v1", "sites", site, "widget"], Method::Options) => {
            respond(sites::preflight(&req, &env, site).await)
        }
        (["v1", "sites", _, "widget"], _) => http::method_not_allowed("GET, OPTIONS"),
        (["v1", "capture"], Method::Post) => respond(capture::capture(req, &env, now).await),
        // The site is in the body, so the preflight cannot check the origin; the POST itself does,
        // and only an allowed origin gets to read its answer.
        (["v1", "capture" | "convert"], Method::Options) => {
            let origin = http::header(&req, "Origin");
            http::preflight(origin.as_deref())
        }
        (["v1", "capture"], _) => http::method_not_allowed("POST"),
        (["v1", "convert"], Method::Post) => respond(convert::convert(req, &env, now).await),
        (["v1", "convert"], _) => http::method_not_allowed("POST"),
        (["v1", family, ..], _) if sender::SENDER_FAMILIES.contains(family) => {
            sender::forward(req, &env).await
        }
        _ => ApiError::new(404, "not_found", "no such route").into_response(),
    }
}

/// Runs the sending worker's tick (see `send-worker/src/campaign_jobs.rs`).
pub async fn tick_sender(env: &Env, now: u64) {
    sender::tick(env, now).await;
}

fn respond(result: http::ApiResult<Response>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}
