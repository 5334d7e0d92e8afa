//! Epistola's sending worker. It has no public route: the edge worker reaches it through a service
//! binding (`SENDER`) for the sending API (`/v1/contacts`, …) and for the cron tick, and it
//! consumes the `SENDS` queue (double opt-in letters, campaign chunks). Time is read once per
//! invocation here and passed down.

use worker::{event, Context, Date, Env, MessageBatch, Request, Response, Result};

mod audit;
mod campaign_jobs;
mod chain_jobs;
mod consumer;
mod daily;
mod doi;
mod jobs;
mod mailer;
mod people;
mod pipeline;
mod routes;
mod sms;
mod store;
mod tick;
mod webhook_outbox;

use epistola_worker_kit::{bindings, config, http, random};

/// Current unix time in seconds (the only clock read in this worker).
fn now_seconds() -> u64 {
    Date::now().as_millis() / 1000
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(routes::dispatch(req, env, now_seconds()).await)
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    consumer::consume(&batch, &env, now_seconds()).await;
    Ok(())
}
