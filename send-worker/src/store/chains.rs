//! Events and trigger chains: events stored by id that enrol contacts, chains and their runs,
//! and the daily event sources (birthdays, inactivity).

use epistola_worker_kit::db::{int, opt_text, text};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, Result};

use super::{counts_by_status, strings, BULK_ROWS};
use crate::bindings;

/// A contact event to store; enrols the contact in every active chain it triggers.
#[derive(Debug, serde::Serialize)]
pub struct NewEvent {
    pub id: String,
    pub contact_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: u64,
    /// JSON object as text.
    pub data: String,
}

/// Stores events and enrols their contacts, in one transaction. Both steps are idempotent: the
/// event id is the key, the run id is `{event id}.{chain}`, and a contact already running a chain
/// is not enrolled again. Returns how many runs started.
pub async fn record_events_and_enrol(env: &Env, events: &[NewEvent], now: u64) -> Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for chunk in events.chunks(BULK_ROWS) {
        let json = text(&serde_json::to_string(chunk)?);
        let at = int(now as i64);
        statements.push(
            db.prepare(
                "INSERT INTO chain_runs (id, chain_id, contact_id, status, step, started_at, due_at, updated_at) \
                 SELECT json_extract(e.value, '$.id') || '.' || c.id, c.id, json_extract(e.value, '$.contact_id'), 'active', 0, \
                 json_extract(e.value, '$.at'), json_extract(e.value, '$.at') + json_extract(c.steps, '$[0].delay_seconds'), ?2 \
                 FROM json_each(?1) e JOIN chains c ON c.status = 'active' AND c.trigger = json_extract(e.value, '$.type') \
                 WHERE NOT EXISTS (SELECT 1 FROM contact_events x WHERE x.id = json_extract(e.value, '$.id')) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&[json.clone(), at.clone()])?,
        );
        statements.push(
            db.prepare(
                "INSERT INTO contact_events (id, contact_id, type, at, data, received_at) \
                 SELECT json_extract(value, '$.id'), json_extract(value, '$.contact_id'), json_extract(value, '$.type'), \
                 json_extract(value, '$.at'), json_extract(value, '$.data'), ?2 FROM json_each(?1) WHERE true \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&[json, at])?,
        );
    }
    let results = db.batch(statements).await?;
    Ok(results
        .iter()
        .step_by(2)
        .filter_map(|r| r.meta().ok().flatten().and_then(|m| m.changes))
        .map(|c| c as u64)
        .sum())
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ChainRow {
    pub id: String,
    pub name: String,
    pub site_id: String,
    pub purpose: String,
    pub trigger: String,
    /// JSON array of steps.
    pub steps: String,
    pub status: String,
    pub base_url: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why sending is paused by a transport failure, if it is.
    #[serde(default)]
    pub paused_reason: Option<String>,
    #[serde(default)]
    pub paused_at: Option<i64>,
}

pub async fn put_chain(env: &Env, c: &ChainRow, now: u64) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO chains (id, name, site_id, purpose, trigger, steps, status, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'draft', ?7, ?7) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             site_id = excluded.site_id, purpose = excluded.purpose, trigger = excluded.trigger, steps = excluded.steps, \
             updated_at = excluded.updated_at",
        )
        .bind(&[
            text(&c.id),
            text(&c.name),
            text(&c.site_id),
            text(&c.purpose),
            text(&c.trigger),
            text(&c.steps),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

pub async fn get_chain(env: &Env, id: &str) -> Result<Option<ChainRow>> {
    env.d1(bindings::DB)?
        .prepare("SELECT id, name, site_id, purpose, trigger, steps, status, base_url, created_at, updated_at, \
                  paused_reason, paused_at FROM chains WHERE id = ?1")
        .bind(&[text(id)])?
        .first::<ChainRow>(None)
        .await
}

pub async fn set_chain_status(
    env: &Env,
    id: &str,
    status: &str,
    base_url: &str,
    now: u64,
) -> Result<bool> {
    let r = env
        .d1(bindings::DB)?
        .prepare("UPDATE chains SET status = ?2, base_url = ?3, updated_at = ?4 WHERE id = ?1")
        .bind(&[text(id), text(status), text(base_url), int(now as i64)])?
        .run()
        .await?;
    Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// Counts of a chain's runs by status.
pub async fn chain_run_counts(env: &Env, id: &str) -> Result<Vec<(String, u64)>> {
    counts_by_status(env, "chain_runs", "chain_id", id).await
}

/// A chain run whose next step is due.
#[derive(Debug, Deserialize)]
pub struct DueRun {
    pub id: String,
    pub chain_id: String,
    pub contact_id: String,
    pub step: i64,
}

/// Runs whose step is due, leased like deferred sends.
pub async fn due_chain_runs(env: &Env, now: u64, lease: u64) -> Result<Vec<DueRun>> {
    env.d1(bindings::DB)?
        .prepare(
            "UPDATE chain_runs SET due_at = ?1 + ?2 WHERE id IN (SELECT id FROM chain_runs \
             WHERE status = 'active' AND due_at <= ?1 LIMIT 1000) RETURNING id, chain_id, contact_id, step",
        )
        .bind(&[int(now as i64), int(lease as i64)])?
        .all()
        .await?
        .results::<DueRun>()
}

/// Run id → started_at for these runs (still at `step`), and which of their contacts had an event
/// of `event_type` since they entered.
pub async fn runs_at_step(
    env: &Env,
    runs: &[String],
    step: usize,
    event_type: Option<&str>,
) -> Result<(
    std::collections::HashMap<String, u64>,
    std::collections::HashSet<String>,
)> {
    #[derive(Deserialize)]
    struct Run {
        id: String,
        started_at: i64,
    }
    #[derive(Deserialize)]
    struct Hit {
        id: String,
    }
    let db = env.d1(bindings::DB)?;
    let ids = text(&serde_json::to_string(runs)?);
    let results = db
        .batch(vec![
            db.prepare("SELECT id, started_at FROM chain_runs WHERE status = 'active' AND step = ?2 AND id IN (SELECT value FROM json_each(?1))")
                .bind(&[ids.clone(), int(step as i64)])?,
            db.prepare(
                "SELECT r.id FROM chain_runs r WHERE r.id IN (SELECT value FROM json_each(?1)) AND EXISTS \
                 (SELECT 1 FROM contact_events e WHERE e.contact_id = r.contact_id AND e.type = ?2 AND e.at >= r.started_at)",
            )
            .bind(&[ids, text(event_type.unwrap_or(""))])?,
        ])
        .await?;
    let [runs, hits] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    Ok((
        runs.results::<Run>()?
            .into_iter()
            .map(|r| (r.id, r.started_at.max(0) as u64))
            .collect(),
        hits.results::<Hit>()?.into_iter().map(|h| h.id).collect(),
    ))
}

/// Moves a run on: to the next step due at `due_at`, done, exited (with why), or waiting at the
/// same step until `due_at` (a deferral). Only a run still active at `step` moves.
pub async fn advance_run(
    env: &Env,
    run: &str,
    step: usize,
    next: (&str, usize, Option<u64>, Option<&str>),
    now: u64,
) -> Result<()> {
    let (status, next_step, due_at, reason) = next;
    env.d1(bindings::DB)?
        .prepare(
            "UPDATE chain_runs SET status = ?3, step = ?4, due_at = ?5, exit_reason = ?6, updated_at = ?7 \
             WHERE id = ?1 AND step = ?2 AND status = 'active'",
        )
        .bind(&[
            text(run),
            int(step as i64),
            text(status),
            int(next_step as i64),
            due_at.map_or(JsValue::NULL, |t| int(t as i64)),
            opt_text(reason),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

/// Contacts whose birthday (YYYY-MM-DD) falls on this month and day: the standard attribute, or
/// where it is not set, a captured `birthday` field (a quiz answer) — the same rule as
/// `core::contact::attributes`, so the trigger sees what templates and segments see.
pub async fn birthdays(env: &Env, month_day: &str) -> Result<Vec<String>> {
    strings(
        env,
        "SELECT id FROM contacts WHERE \
         substr(COALESCE(NULLIF(birthday, ''), json_extract(fields, '$.birthday')), 6) = ?1",
        &[text(month_day)],
        "id",
    )
    .await
}

/// Triggers of active chains.
pub async fn active_chain_triggers(env: &Env) -> Result<Vec<String>> {
    strings(
        env,
        "SELECT DISTINCT trigger FROM chains WHERE status = 'active'",
        &[],
        "trigger",
    )
    .await
}

/// Contacts older than `since` without a human open or click since then, with their latest one
/// (0 = never): a churn risk.
pub async fn inactive_contacts(env: &Env, since: u64) -> Result<Vec<(String, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
        last: Option<i64>,
    }
    let rows = env
        .d1(bindings::DB)?
        .prepare(
            "SELECT id, last FROM (SELECT k.id, (SELECT MAX(occurred_at) FROM events e WHERE e.contact_id = k.id \
             AND e.kind IN ('open', 'click') AND e.label = 'human') AS last FROM contacts k WHERE k.created_at < ?1) \
             WHERE last IS NULL OR last < ?1",
        )
        .bind(&[int(since as i64)])?
        .all()
        .await?
        .results::<Row>()?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.last.unwrap_or(0).max(0) as u64))
        .collect())
}
