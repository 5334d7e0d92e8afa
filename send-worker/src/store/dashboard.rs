//! What the dashboard lists: campaigns and chains with their counters.

use epistola_core::stats::RollupRow;
use epistola_worker_kit::db::text;
use serde::Deserialize;
use worker::{Env, Result};

use crate::bindings;

/// A campaign (or chain step, or campaign only known from tracking) as the dashboard lists it.
#[derive(Deserialize)]
pub struct CampaignListing {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// A campaign's status as the dashboard shows it: with the reason when a transport failure paused it.
const SHOWN_STATUS: &str =
    "CASE WHEN paused_reason IS NULL THEN status ELSE status || ' · paused: ' || paused_reason END";

/// The newest campaigns, then campaigns known only from tracking (`POST /v1/track/links`); chain
/// steps are on the chains page.
pub async fn dashboard_campaigns(env: &Env) -> Result<Vec<CampaignListing>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(format!("SELECT id, name, {SHOWN_STATUS} AS status FROM campaigns ORDER BY created_at DESC, id LIMIT 100")),
            db.prepare(
                "SELECT DISTINCT r.campaign_id AS id, r.campaign_id AS name, 'tracked' AS status FROM rollup_total r \
                 WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = r.campaign_id) \
                 AND NOT EXISTS (SELECT 1 FROM chains h WHERE r.campaign_id LIKE h.id || '.%') \
                 ORDER BY r.campaign_id LIMIT 100",
            ),
        ])
        .await?;
    let mut out = Vec::new();
    for r in results {
        out.extend(r.results::<CampaignListing>()?);
    }
    Ok(out)
}

/// The name and status of one campaign or chain step, if it is one.
pub async fn campaign_listing(env: &Env, id: &str) -> Result<Option<CampaignListing>> {
    env.d1(bindings::DB)?
        .prepare(
            format!("SELECT id, name, {SHOWN_STATUS} AS status FROM campaigns WHERE id = ?1 \
             UNION ALL SELECT ?1, h.name || ' · step ' || CAST(substr(?1, length(h.id) + 2) AS INTEGER), \
             CASE WHEN h.paused_reason IS NULL THEN h.status ELSE h.status || ' · paused: ' || h.paused_reason END \
             FROM chains h WHERE ?1 LIKE h.id || '.%' LIMIT 1"),
        )
        .bind(&[text(id)])?
        .first::<CampaignListing>(None)
        .await
}

#[derive(Deserialize)]
struct TotalRecord {
    campaign_id: String,
    metric: String,
    label: String,
    link_index: i64,
    n: i64,
}

/// All-time totals (`rollup_total`) of these campaigns: rows per campaign, not per event.
pub async fn rollup_totals(
    env: &Env,
    campaigns: &[String],
) -> Result<std::collections::HashMap<String, Vec<RollupRow>>> {
    let mut out: std::collections::HashMap<String, Vec<RollupRow>> = Default::default();
    if campaigns.is_empty() {
        return Ok(out);
    }
    let rows = env
        .d1(bindings::DB)?
        .prepare(
            "SELECT campaign_id, metric, label, link_index, n FROM rollup_total \
             WHERE campaign_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&[text(&serde_json::to_string(campaigns)?)])?
        .all()
        .await?
        .results::<TotalRecord>()?;
    for r in rows {
        out.entry(r.campaign_id).or_default().push(RollupRow {
            metric: r.metric,
            label: r.label,
            link: r.link_index,
            hour: 0,
            n: r.n.max(0) as u64,
        });
    }
    Ok(out)
}

/// Letters still waiting per campaign (deferred, retrying, waiting for an SMS check, in
/// delivery), for the campaign list; read from the partial index `sends_campaign_waiting`.
pub async fn waiting_letters(
    env: &Env,
    campaigns: &[String],
) -> Result<std::collections::HashMap<String, u64>> {
    #[derive(Deserialize)]
    struct Row {
        campaign_id: String,
        n: i64,
    }
    if campaigns.is_empty() {
        return Ok(Default::default());
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(format!(
            "SELECT campaign_id, COUNT(*) AS n FROM sends WHERE campaign_id IN (SELECT value FROM json_each(?1)) \
             AND status IN ({}) GROUP BY campaign_id",
            super::campaigns::WAITING_STATES_SQL
        ))
        .bind(&[text(&serde_json::to_string(campaigns)?)])?
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.campaign_id, r.n.max(0) as u64))
        .collect())
}

#[derive(Deserialize)]
pub struct ChainListing {
    pub id: String,
    pub name: String,
    pub status: String,
    pub trigger: String,
    /// Number of steps.
    pub steps: i64,
}

#[derive(Deserialize)]
pub struct RunCount {
    pub chain_id: String,
    pub status: String,
    pub n: i64,
}

/// Chains with their number of steps, and run counts by status.
pub async fn dashboard_chains(env: &Env) -> Result<(Vec<ChainListing>, Vec<RunCount>)> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT id, name, status, trigger, json_array_length(steps) AS steps FROM chains \
                 ORDER BY created_at DESC, id LIMIT 100",
            ),
            db.prepare(
                "SELECT chain_id, status, COUNT(*) AS n FROM chain_runs GROUP BY chain_id, status",
            ),
        ])
        .await?;
    let mut results = results.into_iter();
    let chains = match results.next() {
        Some(r) => r.results::<ChainListing>()?,
        None => vec![],
    };
    let runs = match results.next() {
        Some(r) => r.results::<RunCount>()?,
        None => vec![],
    };
    Ok((chains, runs))
}
