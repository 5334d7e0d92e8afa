//! `GET /v1/stats/campaigns/{id}`: campaign statistics from the rollups, as JSON or CSV.

use epistola_core::auth::Scope;
use epistola_core::ids::validate_id;
use epistola_core::stats::CampaignStats;
use epistola_core::url::query_value;
use worker::{Env, Request, Response};

use crate::http::{self, ApiError, ApiResult};
use crate::store;
use epistola_worker_kit::auth::require_scope;

pub async fn campaign(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::StatsRead).await?;
    validate_id(id, false).map_err(|e| ApiError::field("campaign", e.to_string()))?;
    let url = req.inner().url();
    let format = query_value(&url, "format").unwrap_or("json");
    let view = query_value(&url, "view").unwrap_or("summary");
    let r = store::campaign_rollups(env, id).await?;
    let stats = CampaignStats::from_rollups(id, &r.totals, &r.series, &r.links);
    let mut resp = match (format, view) {
        ("json", _) => http::json(200, &stats),
        ("csv", "summary") => http::csv(stats.summary_csv(), &format!("{id}-summary.csv")),
        ("csv", "series") => http::csv(stats.series_csv(), &format!("{id}-hourly.csv")),
        ("csv", _) => return Err(ApiError::field("view", "must be `summary` or `series`")),
        _ => return Err(ApiError::field("format", "must be `json` or `csv`")),
    };
    // What the read cost, for dashboards and the scale benchmark (bench/stats-scale.mjs).
    let _ = resp.headers_mut().set(
        "Server-Timing",
        &format!("d1;desc=\"rows read {}\"", r.rows_read),
    );
    Ok(resp)
}
