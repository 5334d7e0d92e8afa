//! Epistola's Cloudflare Worker: a thin adapter around `epistola-core`.
//!
//! `fetch` routes requests (one module per route family under `routes/`); `queue` consumes tracked
//! events into D1 rollups. Time is read once per invocation here and passed down.

use worker::{event, Context, Date, Env, MessageBatch, Request, Response, Result};

mod bindings;
mod config;
mod consumer;
mod doi;
mod http;
mod mailer;
mod random;
mod routes;
mod store;

/// Current unix time in seconds (the only clock read in the worker).
fn now_seconds() -> u64 {
    Date::now().as_millis() / 1000
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    Ok(routes::dispatch(req, env, ctx, now_seconds()).await)
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    consumer::consume(&batch, &env, now_seconds()).await;
    Ok(())
}
