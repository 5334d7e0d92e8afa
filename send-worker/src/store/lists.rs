//! The list APIs' reads (keyset pages, newest first) and the deletion of drafts.

use epistola_core::listing::{capitalised, is_contact_column, ContactSearch, Page};
use epistola_worker_kit::db::{changes, int, text};
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{Env, Result};

use crate::bindings;

/// Up to `limit + 1` rows of `SELECT {select} FROM {from}` (newest first, after the cursor), so
/// the caller can tell whether another page follows. `select` must name `created_at` and `id`.
async fn keyset(
    env: &Env,
    select: &str,
    from: &str,
    mut conditions: Vec<String>,
    mut params: Vec<JsValue>,
    page: &Page,
) -> Result<Vec<Value>> {
    if let Some(after) = &page.after {
        let (at, id) = (params.len() + 1, params.len() + 2);
        conditions.push(format!(
            "(created_at < ?{at} OR (created_at = ?{at} AND id < ?{id}))"
        ));
        params.push(int(after.created_at));
        params.push(text(&after.id));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT {select} FROM {from}{filter} ORDER BY created_at DESC, id DESC LIMIT {}",
            page.limit + 1
        ))
        .bind(&params)?
        .all()
        .await?
        .results::<Value>()
}

/// Columns stored as JSON text, returned as JSON.
fn parse_json_columns(rows: &mut [Value], columns: &[&str]) {
    for row in rows {
        for column in columns {
            if let Some(s) = row.get(*column).and_then(Value::as_str).map(str::to_owned) {
                row[*column] = serde_json::from_slice(s.as_bytes()).unwrap_or_default();
            }
        }
    }
}

/// Binds `v` as the next parameter; its number.
fn bind(params: &mut Vec<JsValue>, v: &str) -> usize {
    params.push(text(v));
    params.len()
}

/// `GET /v1/contacts`: one page of contacts matching the search (all its terms).
pub async fn list_contacts(env: &Env, search: &ContactSearch, page: &Page) -> Result<Vec<Value>> {
    let mut conditions = Vec::new();
    let mut params: Vec<JsValue> = Vec::new();
    for word in &search.words {
        let (w, cap) = (
            bind(&mut params, word),
            bind(&mut params, &capitalised(word)),
        );
        conditions.push(format!(
            "(instr(email, ?{w}) > 0 OR instr(lower(name), ?{w}) > 0 OR instr(name, ?{cap}) > 0)"
        ));
    }
    for tag in &search.tags {
        let t = bind(&mut params, tag);
        conditions.push(format!(
            "id IN (SELECT contact_id FROM contact_tags WHERE tag = ?{t})"
        ));
    }
    for (name, value) in &search.equals {
        let v = bind(&mut params, value);
        if is_contact_column(name) {
            // A name from a fixed list of columns: safe to write into the SQL.
            conditions.push(format!("{name} = ?{v}"));
        } else {
            // `name` is [a-z0-9_] (core::listing), so the path needs no quoting; bound anyway.
            let path = bind(&mut params, &format!("$.{name}"));
            conditions.push(format!(
                "CAST(json_extract(fields, ?{path}) AS TEXT) = ?{v}"
            ));
        }
    }
    let mut rows = keyset(
        env,
        "id, email, phone, name, status, locale, time_zone, origin, test_list, created_at, updated_at, \
         (SELECT json_group_array(tag) FROM contact_tags t WHERE t.contact_id = contacts.id) AS tags",
        "contacts",
        conditions,
        params,
        page,
    )
    .await?;
    parse_json_columns(&mut rows, &["tags"]);
    for row in &mut rows {
        row["test_list"] = Value::Bool(row["test_list"].as_i64() == Some(1));
    }
    Ok(rows)
}

/// `GET /v1/templates`: names and subjects, not bodies (a page of bodies could be megabytes).
pub async fn list_templates(env: &Env, page: &Page) -> Result<Vec<Value>> {
    let mut rows = keyset(
        env,
        "id, name, subject, audience, text IS NOT NULL AS has_text, sms IS NOT NULL AS has_sms, created_at, updated_at",
        "templates",
        Vec::new(),
        Vec::new(),
        page,
    )
    .await?;
    parse_json_columns(&mut rows, &["audience"]);
    for row in &mut rows {
        for flag in ["has_text", "has_sms"] {
            row[flag] = Value::Bool(row[flag].as_i64() == Some(1));
        }
    }
    Ok(rows)
}

/// `GET /v1/campaigns`, optionally of one status and one site.
pub async fn list_campaigns(
    env: &Env,
    status: Option<&str>,
    site: Option<&str>,
    page: &Page,
) -> Result<Vec<Value>> {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for (column, value) in [("status", status), ("site_id", site)] {
        if let Some(v) = value {
            params.push(text(v));
            conditions.push(format!("{column} = ?{}", params.len()));
        }
    }
    keyset(
        env,
        "id, name, site_id, template_id, purpose, status, audience_size, scheduled_at, paused_reason, created_at, updated_at",
        "campaigns",
        conditions,
        params,
        page,
    )
    .await
}

/// `GET /v1/chains`: without their steps, but with how many there are.
pub async fn list_chains(env: &Env, page: &Page) -> Result<Vec<Value>> {
    keyset(
        env,
        "id, name, site_id, purpose, trigger, status, json_array_length(steps) AS steps, paused_reason, created_at, updated_at",
        "chains",
        Vec::new(),
        Vec::new(),
        page,
    )
    .await
}

/// What `DELETE` did with a draft.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    Missing,
    /// Kept, and why (the status it is in, or what uses it).
    Kept(String),
}

/// Deletes `id` from `table` where `deletable` holds, in one batch with the reads that say why
/// not: `why` returns one row with a `why` column when the row exists (and was kept).
async fn delete_where(
    env: &Env,
    table: &str,
    id: &str,
    deletable: &str,
    why: &str,
) -> Result<Deletion> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(format!("DELETE FROM {table} WHERE id = ?1 AND {deletable}"))
                .bind(&[text(id)])?,
            db.prepare(why).bind(&[text(id)])?,
        ])
        .await?;
    if changes(&results, 0) > 0 {
        return Ok(Deletion::Deleted);
    }
    let reason = results
        .get(1)
        .map(|r| r.results::<Value>())
        .transpose()?
        .and_then(|rows| rows.into_iter().next())
        .map(|row| row["why"].as_str().unwrap_or_default().to_owned());
    Ok(reason.map_or(Deletion::Missing, Deletion::Kept))
}

/// A campaign that never went past its test: draft or tested. Test letters already sent keep their
/// stats under the test run's id.
pub async fn delete_campaign_draft(env: &Env, id: &str) -> Result<Deletion> {
    delete_where(
        env,
        "campaigns",
        id,
        "status IN ('draft', 'tested')",
        "SELECT 'the campaign is ' || status AS why FROM campaigns WHERE id = ?1",
    )
    .await
}

/// A chain that was never activated (no runs).
pub async fn delete_chain_draft(env: &Env, id: &str) -> Result<Deletion> {
    delete_where(
        env,
        "chains",
        id,
        "status = 'draft' AND NOT EXISTS (SELECT 1 FROM chain_runs WHERE chain_id = ?1)",
        "SELECT CASE WHEN status = 'draft' THEN 'the chain has runs' ELSE 'the chain is ' || status END AS why \
         FROM chains WHERE id = ?1",
    )
    .await
}

/// A template no campaign and no chain refers to (in any status: a sent campaign's page shows its
/// template).
pub async fn delete_unused_template(env: &Env, id: &str) -> Result<Deletion> {
    let users = "SELECT 'campaign ' || id AS user FROM campaigns WHERE template_id = ?1 \
                 UNION ALL SELECT 'chain ' || h.id FROM chains h, json_each(h.steps) s \
                 WHERE json_extract(s.value, '$.template') = ?1";
    delete_where(
        env,
        "templates",
        id,
        &format!("NOT EXISTS ({users})"),
        &format!(
            "SELECT 'used by ' || (SELECT group_concat(user, ', ') FROM ({users} LIMIT 10)) AS why \
             FROM templates WHERE id = ?1"
        ),
    )
    .await
}
