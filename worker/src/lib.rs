//! Epistola's Cloudflare Worker: a thin adapter around `epistola-core`.
//!
//! `fetch` routes requests (one module per route family under `routes/`); `queue` consumes tracked
//! events into D1 rollups and runs mail jobs; `scheduled` (cron) keeps tables bounded. Time is read
//! once per invocation here and passed down.

use worker::{
    event, Context, Date, Env, MessageBatch, Request, Response, Result, ScheduleContext,
    ScheduledEvent,
};

mod coalesce;
mod consumer;
mod known_bots;
mod routes;
mod store;

use epistola_worker_kit::{bindings, config, http, random};

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

/// Cron (wrangler.toml `[triggers]`, every minute): the sending worker's tick (campaign fan-out,
/// deferred sends that are due, webhooks), then housekeeping that keeps tables bounded (hourly:
/// series compaction and raw-event retention).
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let now = now_seconds();
    routes::tick_sender(&env, now).await;
    match store::prune_rate_limits(&env, now).await {
        Ok(n) if n > 0 => worker::console_log!("cron: pruned {n} expired rate-limit windows"),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: pruning rate limits failed: {e}"),
    }
    let hourly_hours = config::number(&env, "SERIES_HOURLY_HOURS", DEFAULT_SERIES_HOURLY_HOURS);
    let retention_days = config::number(&env, "EVENT_RETENTION_DAYS", DEFAULT_EVENT_RETENTION_DAYS);
    match store::maintain(&env, now, hourly_hours, retention_days).await {
        Ok(m) if m.ran => worker::console_log!(
            "cron: maintenance folded {} series hours into days, pruned {} raw events",
            m.hours_folded,
            m.events_pruned
        ),
        Ok(_) => {}
        Err(e) => worker::console_error!("cron: maintenance failed: {e}"),
    }
}

/// The time series stays hourly this long, then each day is one row.
const DEFAULT_SERIES_HOURLY_HOURS: u64 = 48;
/// Raw events are kept this long (13 months: a year-on-year comparison); counters forever.
const DEFAULT_EVENT_RETENTION_DAYS: u64 = 395;
