//! Templates and campaigns: storage, the status machine's writes, fan-out pages and cursors, and
//! pausing or resuming a campaign or chain after a transport failure.

use epistola_worker_kit::db::{int, opt_text, text};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, Result};

use super::strings;
use crate::bindings;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct TemplateRow {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    pub sms: Option<String>,
    /// JSON object.
    pub audience: String,
    pub updated_at: i64,
}

/// Stores a template, unless a campaign using it is past approval or an activated chain sends it
/// (what was approved goes out).
/// Returns false when it is locked. Campaigns using it in draft or tested go back to draft.
pub async fn put_template(env: &Env, t: &TemplateRow, now: u64) -> Result<bool> {
    let db = env.d1(bindings::DB)?;
    // What was approved goes out: a campaign past approval, or a chain that was activated (an
    // approver's act too), locks the templates it sends.
    let locked = "(EXISTS (SELECT 1 FROM campaigns WHERE template_id = ?1 AND status IN ('approved', 'scheduled', 'sending')) \
                  OR EXISTS (SELECT 1 FROM chains h, json_each(h.steps) s WHERE h.status IN ('active', 'paused') \
                  AND json_extract(s.value, '$.template') = ?1))";
    let results = db
        .batch(vec![
            db.prepare(format!(
                "INSERT INTO templates (id, name, subject, html, text, sms, audience, created_at, updated_at) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8 WHERE NOT {locked} \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, subject = excluded.subject, html = excluded.html, \
                 text = excluded.text, sms = excluded.sms, audience = excluded.audience, updated_at = excluded.updated_at"
            ))
            .bind(&[
                text(&t.id),
                text(&t.name),
                text(&t.subject),
                text(&t.html),
                opt_text(t.text.as_deref()),
                opt_text(t.sms.as_deref()),
                text(&t.audience),
                int(now as i64),
            ])?,
            db.prepare(format!(
                "UPDATE campaigns SET status = 'draft', updated_at = ?2 WHERE template_id = ?1 AND status = 'tested' AND NOT {locked}"
            ))
            .bind(&[text(&t.id), int(now as i64)])?,
        ])
        .await?;
    let written = results
        .first()
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        .unwrap_or(0);
    Ok(written > 0)
}

pub async fn get_template(env: &Env, id: &str) -> Result<Option<TemplateRow>> {
    env.d1(bindings::DB)?
        .prepare("SELECT id, name, subject, html, text, sms, audience, updated_at FROM templates WHERE id = ?1")
        .bind(&[text(id)])?
        .first::<TemplateRow>(None)
        .await
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CampaignRow {
    pub id: String,
    pub name: String,
    pub site_id: String,
    pub template_id: String,
    pub purpose: String,
    /// JSON segment rule.
    pub segment: String,
    /// JSON window or NULL.
    pub send_window: Option<String>,
    pub anonymous: i64,
    pub status: String,
    pub audience_size: Option<i64>,
    pub scheduled_at: Option<i64>,
    pub cursor: String,
    pub base_url: String,
    pub sms_fallback_after: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why sending is paused by a transport failure (relay, account, configuration), if it is.
    #[serde(default)]
    pub paused_reason: Option<String>,
    #[serde(default)]
    pub paused_at: Option<i64>,
    /// 1 = may go to contacts who got the same content recently.
    #[serde(default)]
    pub allow_resend: i64,
    /// Who last edited it (`token:{id}` or `user:{id}`): above the approval threshold, not its
    /// approver.
    #[serde(default)]
    pub edited_by: Option<String>,
    /// The last test run (`POST …/test`) and when it was sent.
    #[serde(default)]
    pub last_test_run: Option<String>,
    #[serde(default)]
    pub last_test_at: Option<i64>,
}

const CAMPAIGN_COLUMNS: &str =
    "id, name, site_id, template_id, purpose, segment, send_window, anonymous, status, \
     audience_size, scheduled_at, cursor, base_url, sms_fallback_after, created_at, updated_at, \
     paused_reason, paused_at, allow_resend, edited_by, last_test_run, last_test_at";

pub async fn get_campaign(env: &Env, id: &str) -> Result<Option<CampaignRow>> {
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"
        ))
        .bind(&[text(id)])?
        .first::<CampaignRow>(None)
        .await
}

/// Creates a campaign, or edits one still in draft or tested (which makes it a draft again).
/// Returns false when the campaign exists in a later status.
pub async fn put_campaign(env: &Env, c: &CampaignRow, now: u64) -> Result<bool> {
    let result = env
        .d1(bindings::DB)?
        .prepare(
            "INSERT INTO campaigns (id, name, site_id, template_id, purpose, segment, send_window, anonymous, sms_fallback_after, \
             allow_resend, edited_by, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, ?12, 'draft', ?9, ?9) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, site_id = excluded.site_id, template_id = excluded.template_id, \
             purpose = excluded.purpose, segment = excluded.segment, send_window = excluded.send_window, \
             anonymous = excluded.anonymous, sms_fallback_after = excluded.sms_fallback_after, \
             allow_resend = excluded.allow_resend, edited_by = excluded.edited_by, status = 'draft', \
             updated_at = excluded.updated_at \
             WHERE campaigns.status IN ('draft', 'tested')",
        )
        .bind(&[
            text(&c.id),
            text(&c.name),
            text(&c.site_id),
            text(&c.template_id),
            text(&c.purpose),
            text(&c.segment),
            opt_text(c.send_window.as_deref()),
            int(c.anonymous),
            int(now as i64),
            c.sms_fallback_after.map_or(JsValue::NULL, int),
            int(c.allow_resend),
            opt_text(c.edited_by.as_deref()),
        ])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// Moves a campaign from one status to another if it is still in `from` (compare and set).
/// `extra` sets more columns in the same statement (e.g. `audience_size = ?4`), bound from ?4 on.
pub async fn set_campaign_status(
    env: &Env,
    id: &str,
    from: &str,
    to: &str,
    extra: (&str, &[JsValue]),
    now: u64,
) -> Result<bool> {
    let (set, values) = extra;
    let sql = format!(
        "UPDATE campaigns SET status = ?3, updated_at = ?4{set} WHERE id = ?1 AND status = ?2"
    );
    let mut params = vec![text(id), text(from), text(to), int(now as i64)];
    params.extend_from_slice(values);
    let result = env
        .d1(bindings::DB)?
        .prepare(sql)
        .bind(&params)?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// The most contacts a campaign can reach before segment rules and send-time checks: confirmed
/// contacts whose latest ledger entry for (site, purpose, email) grants consent and who are not
/// suppressed. Shown (and confirmed) at approval.
pub async fn audience_upper_bound(env: &Env, site: &str, purpose: &str) -> Result<i64> {
    let n = env
        .d1(bindings::DB)?
        .prepare(
            "SELECT COUNT(*) AS n FROM contacts k WHERE k.status = 'confirmed' \
             AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.contact_id = k.id) \
             AND (SELECT action FROM consent_ledger l WHERE l.contact_id = k.id AND l.site_id = ?1 \
                  AND l.purpose = ?2 AND l.channel = 'email' ORDER BY seq DESC LIMIT 1) IN ('given', 'confirmed')",
        )
        .bind(&[text(site), text(purpose)])?
        .first::<i64>(Some("n"))
        .await?;
    Ok(n.unwrap_or(0))
}

/// Ids of contacts on the test list.
pub async fn test_list(env: &Env) -> Result<Vec<String>> {
    strings(
        env,
        "SELECT id FROM contacts WHERE test_list = 1 ORDER BY id LIMIT 100",
        &[],
        "id",
    )
    .await
}

/// The last campaign other than `id` that went out (or is going out) to this site and purpose:
/// its name and the reach it was approved with. The approval screen shows the difference.
pub async fn previous_send(
    env: &Env,
    id: &str,
    site: &str,
    purpose: &str,
) -> Result<Option<(String, i64)>> {
    #[derive(Deserialize)]
    struct Row {
        name: String,
        audience_size: i64,
    }
    let row = env
        .d1(bindings::DB)?
        .prepare(
            "SELECT name, audience_size FROM campaigns WHERE site_id = ?1 AND purpose = ?2 AND id != ?3 \
             AND status IN ('sending', 'done', 'paused') AND audience_size IS NOT NULL \
             ORDER BY COALESCE(scheduled_at, updated_at) DESC LIMIT 1",
        )
        .bind(&[text(site), text(purpose), text(id)])?
        .first::<Row>(None)
        .await?;
    Ok(row.map(|r| (r.name, r.audience_size)))
}

/// Every site's configuration, by id (sites live in KV; a workspace has a handful: at most 100
/// are read).
pub async fn sites(env: &Env) -> Result<Vec<(String, epistola_core::site::SiteConfig)>> {
    let keys = env
        .kv(bindings::CONFIG)?
        .list()
        .prefix("site:".into())
        .limit(100)
        .execute()
        .await?
        .keys;
    let mut sites = Vec::new();
    for key in keys {
        let Some(site) = key.name.strip_prefix("site:") else {
            continue;
        };
        if let Some(config) = epistola_worker_kit::db::get_site(env, site).await? {
            sites.push((site.to_owned(), config));
        }
    }
    Ok(sites)
}

/// Campaign counters from the rollups: metric → label → n.
pub async fn campaign_counters(env: &Env, id: &str) -> Result<Vec<(String, String, i64)>> {
    #[derive(Deserialize)]
    struct Row {
        metric: String,
        label: String,
        n: i64,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(
            "SELECT metric, label, n FROM rollup_total WHERE campaign_id = ?1 AND link_index = -1 \
             AND metric IN ('sent', 'skipped', 'deferred', 'failed', 'sms_sent', 'sms_skipped', 'sms_deferred', 'sms_failed') \
             ORDER BY metric, label",
        )
        .bind(&[text(id)])?
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.metric, r.label, r.n))
        .collect())
}

/// The send states that still wait to go out, exactly as the partial index
/// `sends_campaign_waiting` (migration 0019) names them, so a query with this list can use it.
pub const WAITING_STATES_SQL: &str = "'deferred', 'retrying', 'waiting', 'sending'";

/// What a campaign's letters still wait for, by state and reason (the partial index
/// `sends_campaign_waiting` holds only these rows).
pub async fn campaign_waiting(env: &Env, id: &str) -> Result<epistola_core::delivery::Waiting> {
    #[derive(Deserialize)]
    struct Row {
        status: String,
        reason: String,
        n: i64,
        next_at: Option<i64>,
    }
    let rows = env
        .d1(bindings::DB)?
        .prepare(format!(
            "SELECT status, COALESCE(reason, '') AS reason, COUNT(*) AS n, MIN(due_at) AS next_at \
             FROM sends WHERE campaign_id = ?1 AND status IN ({WAITING_STATES_SQL}) \
             GROUP BY status, reason ORDER BY status, reason"
        ))
        .bind(&[text(id)])?
        .all()
        .await?
        .results::<Row>()?;
    Ok(epistola_core::delivery::Waiting {
        groups: rows
            .into_iter()
            .map(|r| epistola_core::delivery::WaitingGroup {
                state: r.status,
                reason: r.reason,
                letters: r.n.max(0) as u64,
                next_at: r.next_at.map(|t| t.max(0) as u64),
            })
            .collect(),
    })
}

/// Scheduled campaigns whose time has come start sending; returns the campaigns now sending.
pub async fn campaigns_to_fan_out(env: &Env, now: u64) -> Result<Vec<CampaignRow>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE campaigns SET status = 'sending', updated_at = ?1 WHERE status = 'scheduled' AND scheduled_at <= ?1",
            )
            .bind(&[int(now as i64)])?,
            db.prepare(format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status = 'sending' AND paused_reason IS NULL \
                 ORDER BY scheduled_at LIMIT 10"
            )),
        ])
        .await?;
    match results.last() {
        Some(r) => r.results::<CampaignRow>(),
        None => Ok(Vec::new()),
    }
}

/// Moves the fan-out cursor if nobody else did (compare and set); `finished` also ends the
/// campaign's fan-out. One write statement per page.
pub async fn advance_cursor(
    env: &Env,
    id: &str,
    from: &str,
    to: &str,
    finished: bool,
    now: u64,
) -> Result<bool> {
    let status = if finished { "done" } else { "sending" };
    let result = env
        .d1(bindings::DB)?
        .prepare("UPDATE campaigns SET cursor = ?3, status = ?4, updated_at = ?5 WHERE id = ?1 AND cursor = ?2 AND status = 'sending'")
        .bind(&[text(id), text(from), text(to), text(status), int(now as i64)])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// Distinct contacts who got a campaign letter with this content fingerprint since `since`, from
/// campaigns other than `except_campaign`.
pub async fn content_recipients(
    env: &Env,
    fingerprint: &str,
    except_campaign: &str,
    since: u64,
) -> Result<i64> {
    let n = env
        .d1(bindings::DB)?
        .prepare(
            "SELECT COUNT(DISTINCT contact_id) AS n FROM sends WHERE content_hash = ?1 AND status = 'sent' \
             AND updated_at > ?3 AND campaign_id <> ?2",
        )
        .bind(&[text(fingerprint), text(except_campaign), int(since as i64)])?
        .first::<i64>(Some("n"))
        .await?;
    Ok(n.unwrap_or(0))
}

/// What a mailing's pause is recorded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused<'a> {
    Campaign(&'a str),
    Chain(&'a str),
}

impl Paused<'_> {
    fn table_and_id(&self) -> (&'static str, &str) {
        match self {
            Paused::Campaign(id) => ("campaigns", id),
            Paused::Chain(id) => ("chains", id),
        }
    }
}

/// Pauses a campaign or chain with the reason (a transport failure); the first pause since it
/// last worked keeps its reason and time (and announces `transport.failed` once, by trigger).
pub async fn pause_sending(env: &Env, what: Paused<'_>, reason: &str, now: u64) -> Result<()> {
    let (table, id) = what.table_and_id();
    env.d1(bindings::DB)?
        .prepare(format!(
            "UPDATE {table} SET paused_reason = ?2, paused_at = ?3 WHERE id = ?1 AND paused_reason IS NULL"
        ))
        .bind(&[text(id), text(reason), int(now as i64)])?
        .run()
        .await?;
    Ok(())
}

/// Resumes a paused campaign or chain (a delivery worked again).
pub async fn resume_sending(env: &Env, what: Paused<'_>) -> Result<()> {
    let (table, id) = what.table_and_id();
    env.d1(bindings::DB)?
        .prepare(format!(
            "UPDATE {table} SET paused_reason = NULL, paused_at = NULL WHERE id = ?1 AND paused_reason IS NOT NULL"
        ))
        .bind(&[text(id)])?
        .run()
        .await?;
    Ok(())
}

/// A campaign or chain paused by a transport failure, as the settings page lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct PausedRow {
    /// `campaign` or `chain`.
    pub kind: String,
    pub id: String,
    pub name: String,
    pub reason: String,
    pub at: i64,
}

/// What sending is paused now (the transport's last failures), newest first, at most `limit`.
pub async fn paused_sending(env: &Env, limit: usize) -> Result<Vec<PausedRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT 'campaign' AS kind, id, name, paused_reason AS reason, paused_at AS at FROM campaigns \
             WHERE paused_reason IS NOT NULL \
             UNION ALL SELECT 'chain', id, name, paused_reason, paused_at FROM chains WHERE paused_reason IS NOT NULL \
             ORDER BY at DESC LIMIT ?1",
        )
        .bind(&[int(limit as i64)])?
        .all()
        .await?
        .results()
}
