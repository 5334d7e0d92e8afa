//! The sending worker's D1 I/O, one room per table family. SQL lives here and nowhere else:
//! routes and jobs call named functions, never pass SQL.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, Result};

pub use epistola_worker_kit::db::{claim_period, get_site, suppress};

use epistola_worker_kit::db::text;

use crate::bindings;

mod audit;
mod campaigns;
mod chains;
mod contacts;
mod dashboard;
mod insight;
mod limits;
mod lists;
mod optin;
mod people;
mod sends;
mod suppressions;
mod webhook_outbox;

pub use audit::*;
pub use campaigns::*;
pub use chains::*;
pub use contacts::*;
pub use dashboard::*;
pub use insight::*;
pub use limits::*;
pub use lists::*;
pub use optin::*;
pub use people::*;
pub use sends::*;
pub use suppressions::*;
pub use webhook_outbox::*;

/// One text column of every row a query returns.
async fn strings(env: &Env, sql: &str, params: &[JsValue], column: &str) -> Result<Vec<String>> {
    let rows = env
        .d1(bindings::DB)?
        .prepare(sql)
        .bind(params)?
        .all()
        .await?
        .results::<serde_json::Value>()?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.get(column).and_then(|v| v.as_str()).map(str::to_owned))
        .collect())
}

/// Rows per bulk statement (keeps each JSON parameter far below D1's 2 MB value limit).
pub const BULK_ROWS: usize = 500;

/// `status → rows` of `table` where `column = value`. Table and column are our constants.
async fn counts_by_status(
    env: &Env,
    table: &str,
    column: &str,
    value: &str,
) -> Result<Vec<(String, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        status: String,
        n: u64,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(format!(
            "SELECT status, COUNT(*) AS n FROM {table} WHERE {column} = ?1 GROUP BY status ORDER BY status"
        ))
        .bind(&[text(value)])?
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.status, r.n))
        .collect())
}
