//! All D1 and queue I/O. SQL lives here and nowhere else.

use epistola_core::capture::ValidCapture;
use epistola_core::event::{hour_bucket, ConversionEvent, TrackEvent};
use epistola_core::stats::NO_LINK;
use serde::Deserialize;
use worker::{D1PreparedStatement, Env, Result};

pub use epistola_worker_kit::db::{
    campaign_rollups, enqueue, get_site, put_site, site_origins, suppress,
};
use epistola_worker_kit::db::{
    changes, claim_period, clip_user_agent, conversion_statements, int, opt_text, rate_limit_hit,
    text, MAX_BOUND_PARAMS,
};

use crate::bindings;

/// Remembers the destination of each link index (first one wins), in one round trip.
pub async fn register_links(env: &Env, campaign: &str, links: &[(u16, String)]) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    let db = env.d1(bindings::DB)?;
    let rows_per_statement = MAX_BOUND_PARAMS / 3;
    let mut statements = Vec::new();
    for chunk in links.chunks(rows_per_statement) {
        let placeholders = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO campaign_links (campaign_id, link_index, url) VALUES {placeholders} ON CONFLICT DO NOTHING"
        );
        let mut params = Vec::with_capacity(chunk.len() * 3);
        for (index, url) in chunk {
            params.extend([text(campaign), int(i64::from(*index)), text(url)]);
        }
        statements.push(db.prepare(sql).bind(&params)?);
    }
    db.batch(statements).await?;
    Ok(())
}

const EVENT_COLUMNS: usize = 12;

/// Stores new events and conversions in one transaction. Counting is done by triggers on insert
/// (see `migrations/0001_spine.sql`, `0008_conversions.sql`), and an id (or order id) already
/// stored is skipped, so replays change nothing.
pub async fn record_events(
    env: &Env,
    events: &[TrackEvent],
    conversions: &[ConversionEvent],
    inject_failure: bool,
    now: u64,
) -> Result<()> {
    if events.is_empty() && conversions.is_empty() {
        return Ok(());
    }
    let db = env.d1(bindings::DB)?;
    let mut statements: Vec<D1PreparedStatement> = conversion_statements(&db, conversions, now)?;
    for chunk in events.chunks(MAX_BOUND_PARAMS / EVENT_COLUMNS) {
        let row = format!("({})", ["?"; EVENT_COLUMNS].join(", "));
        let sql = format!(
            "INSERT INTO events (id, kind, campaign_id, contact_id, message_id, link_index, label, reason, \
             occurred_at, hour, ip_hash, received_at) VALUES {} ON CONFLICT (id) DO NOTHING",
            vec![row; chunk.len()].join(", ")
        );
        let mut params = Vec::with_capacity(chunk.len() * EVENT_COLUMNS);
        for e in chunk {
            params.extend([
                text(&e.id),
                text(e.kind.as_str()),
                text(&e.campaign),
                text(&e.contact),
                text(&e.message),
                int(e.link.map_or(NO_LINK, i64::from)),
                text(e.label.map_or("", |l| l.as_str())),
                text(e.reason.map_or("", |r| r.as_str())),
                int(e.at as i64),
                int(hour_bucket(e.at) as i64),
                opt_text(e.ip_hash.as_deref()),
                int(now as i64),
            ]);
        }
        statements.push(db.prepare(sql).bind(&params)?);
    }
    if inject_failure {
        // Fault injection (tests only): a statement D1 refuses, last, after every real write.
        statements.push(db.prepare("INSERT INTO fault_injection_missing_table VALUES (1)"));
    }
    // A D1 batch is one transaction: all of these events are stored and counted, or none.
    db.batch(statements).await?;
    Ok(())
}

/// Counts one hit on each `(key, (limit, window seconds))` and tells whether all are within their
/// limit; `Err(seconds)` says when the tightest exceeded window ends.
pub async fn count_and_check(
    env: &Env,
    limits: &[(&str, (u32, u64))],
    now: u64,
) -> Result<std::result::Result<(), u64>> {
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::with_capacity(limits.len());
    for (key, (_, window)) in limits {
        statements.push(rate_limit_hit(&db, key, *window, now)?);
    }
    let results = db.batch(statements).await?;
    let mut retry_after = None;
    for ((_, (limit, window)), result) in limits.iter().zip(&results) {
        #[derive(Deserialize)]
        struct Count {
            n: u32,
        }
        let n = result.results::<Count>()?.first().map_or(0, |c| c.n);
        if n > *limit {
            let wait = window - now % window;
            retry_after = Some(retry_after.map_or(wait, |w: u64| w.max(wait)));
        }
    }
    Ok(retry_after.map_or(Ok(()), Err))
}

/// A capture ready to store.
#[derive(Debug)]
pub struct NewCapture<'a> {
    pub id: &'a str,
    /// Used only if no contact has this address yet.
    pub new_contact_id: &'a str,
    pub site: &'a str,
    pub valid: &'a ValidCapture,
    pub ip_hash: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub now: u64,
}

/// Stores the capture with everything it carries (phone, fields, answers, the consents asked
/// for), and creates an empty pending contact if the address is new, in one transaction. A known
/// contact is not touched: nothing is applied before the confirming `POST` ([`confirm_capture`]).
pub async fn store_capture(env: &Env, c: &NewCapture<'_>) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let fields = serde_json::to_string(&c.valid.fields)?;
    let consents: Vec<(&str, &str, &str)> = c
        .valid
        .consents
        .iter()
        .map(|(purpose, channel, version)| (purpose.as_str(), channel.as_str(), version.as_str()))
        .collect();
    let email = text(&c.valid.email);
    let now = int(c.now as i64);
    let mut statements = vec![
        db.prepare(
            "INSERT INTO contacts (id, email, status, fields, origin, created_at, updated_at) \
             VALUES (?1, ?2, 'pending', '{}', 'capture', ?3, ?3) ON CONFLICT (email) DO NOTHING",
        )
        .bind(&[text(c.new_contact_id), email.clone(), now.clone()])?,
        db.prepare(
            "INSERT INTO captures (id, contact_id, site_id, form, fields, phone, consents, status, ip_hash, user_agent, created_at) \
             VALUES (?1, (SELECT id FROM contacts WHERE email = ?2), ?3, ?4, ?5, ?6, ?7, 'pending_confirmation', ?8, ?9, ?10)",
        )
        .bind(&[
            text(c.id),
            email,
            text(c.site),
            text(&c.valid.form),
            text(&fields),
            opt_text(c.valid.phone.as_deref()),
            text(&serde_json::to_string(&consents)?),
            opt_text(c.ip_hash),
            opt_text(c.user_agent.map(clip_user_agent)),
            now,
        ])?,
    ];
    for (question, answer) in &c.valid.choices {
        statements.push(
            db.prepare(
                "INSERT INTO answer_counts (site_id, question, answer, n) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT DO UPDATE SET n = n + 1",
            )
            .bind(&[text(c.site), text(question), text(answer)])?,
        );
    }
    db.batch(statements).await?;
    Ok(())
}

/// Deletes rate-limit windows that have ended; returns how many rows went.
pub async fn prune_rate_limits(env: &Env, now: u64) -> Result<u64> {
    let result = env
        .d1(bindings::DB)?
        .prepare("DELETE FROM rate_limits WHERE expires_at <= ?1")
        .bind(&[int(now as i64)])?
        .run()
        .await?;
    Ok(result
        .meta()?
        .and_then(|m| m.changes)
        .map_or(0, |c| c as u64))
}

/// What one maintenance run did.
#[derive(Debug, Default)]
pub struct Maintenance {
    pub ran: bool,
    pub hours_folded: u64,
    pub events_pruned: u64,
}

/// The counted columns of `rollup_series` (migrations/0011_rollup_totals.sql).
const SERIES_COLUMNS: &str = "opens_human, opens_privacy_proxy, opens_scanner, clicks_human, \
clicks_privacy_proxy, clicks_scanner, unsubscribes, conversions, sent";

/// Raw events deleted per maintenance run at most: a run stays short; a backlog clears over hours.
const PRUNE_BATCH: u32 = 50_000;

/// Once an hour (claimed with `claim_period` for the hour: concurrent crons run it once): folds series hours
/// older than `hourly_hours` into their day (counts unchanged, fewer rows), and deletes raw events
/// and finished webhook deliveries older than `retention_days`. Counters are never pruned.
pub async fn maintain(
    env: &Env,
    now: u64,
    hourly_hours: u64,
    retention_days: u64,
) -> Result<Maintenance> {
    let hour = now / 3600;
    if !claim_period(env, "maintenance", &hour.to_string()).await? {
        return Ok(Maintenance::default());
    }
    let db = env.d1(bindings::DB)?;
    let fold_before = int(hour.saturating_sub(hourly_hours) as i64);
    let prune_before = int(now.saturating_sub(retention_days * 86_400) as i64);
    let results = db
        .batch(vec![
            db.prepare(format!(
                "INSERT INTO rollup_series (campaign_id, hour, {SERIES_COLUMNS}) \
                 SELECT campaign_id, hour - hour % 24, {sums} FROM rollup_series \
                 WHERE hour < ?1 AND hour % 24 <> 0 GROUP BY campaign_id, hour - hour % 24 \
                 ON CONFLICT DO UPDATE SET {adds}",
                sums = SERIES_COLUMNS
                    .split(", ")
                    .map(|c| format!("SUM({c})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                adds = SERIES_COLUMNS
                    .split(", ")
                    .map(|c| format!("{c} = {c} + excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ))
            .bind(std::slice::from_ref(&fold_before))?,
            db.prepare("DELETE FROM rollup_series WHERE hour < ?1 AND hour % 24 <> 0")
                .bind(&[fold_before])?,
            db.prepare(
                "DELETE FROM events WHERE id IN \
                 (SELECT id FROM events WHERE occurred_at < ?1 ORDER BY occurred_at LIMIT ?2)",
            )
            .bind(&[prune_before.clone(), int(i64::from(PRUNE_BATCH))])?,
            db.prepare(
                "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ?1",
            )
            .bind(&[prune_before])?,
        ])
        .await?;
    Ok(Maintenance {
        ran: true,
        hours_folded: changes(&results, 1),
        events_pruned: changes(&results, 2),
    })
}
