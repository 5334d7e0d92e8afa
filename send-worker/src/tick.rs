//! The sending worker's tick, once a minute from the edge's cron through the service binding:
//! campaign fan-out and due campaign letters, due chain steps, the daily jobs, and the webhook
//! outbox. Each part bounds its own work per tick.

use serde_json::json;
use worker::Env;

use crate::{campaign_jobs, chain_jobs, daily, webhook_outbox};

/// Runs every periodic part once; returns what each did.
pub async fn run(env: &Env, now: u64) -> worker::Result<serde_json::Value> {
    let campaigns = campaign_jobs::tick(env, now).await?;
    // Daily events first: a chain run they enrol with no delay is queued in this same tick.
    let daily = daily::run(env, now).await?;
    let chain_runs_due = chain_jobs::tick(env, now).await?;
    let (webhooks_delivered, webhook_failures) = webhook_outbox::deliver_due(env, now).await?;
    Ok(json!({
        "queued": campaigns.queued, "contacts_read": campaigns.contacts_read,
        "fanout_write_statements": campaigns.fanout_writes, "finished": campaigns.finished,
        "requeued_deferred": campaigns.requeued,
        "chain_runs_due": chain_runs_due, "daily_enrolments": daily.enrolled,
        "webhooks_delivered": webhooks_delivered, "webhook_failures": webhook_failures,
        "expired_captures": daily.expired.captures, "expired_contacts": daily.expired.contacts,
    }))
}
