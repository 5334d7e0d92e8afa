//! The sending worker's D1 I/O. SQL lives here and nowhere else.

use epistola_core::stats::RollupRow;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, Result};

pub use epistola_worker_kit::db::{claim_daily, get_site, suppress};
use epistola_worker_kit::db::{int, opt_text, rate_limit_hit, text};

use crate::bindings;

mod optin;
mod sends;
pub use optin::*;
pub use sends::*;

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

// ---------------------------------------------------------------------------------------------
// Contacts. Bulk statements pass their rows as one JSON parameter read with json_each, so one
// statement writes hundreds of rows (D1 binds at most 100 parameters per statement).

/// Rows per bulk statement (keeps each JSON parameter far below D1's 2 MB value limit).
pub const BULK_ROWS: usize = 500;

/// Upserts contacts by address, adds their tags, and records imported consents, all in one
/// transaction. An imported consent is recorded only where the ledger has nothing yet for that
/// (site, purpose, channel): an import never overrides a withdrawal.
pub async fn upsert_contacts(env: &Env, rows: &[serde_json::Value], now: u64) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for chunk in rows.chunks(BULK_ROWS) {
        let json = text(&serde_json::to_string(chunk)?);
        let at = int(now as i64);
        statements.push(db.prepare(
            "INSERT INTO contacts (id, email, phone, status, fields, name, gender, birthday, locale, time_zone, test_list, created_at, updated_at) \
             SELECT json_extract(j.value, '$.id'), json_extract(j.value, '$.email'), json_extract(j.value, '$.phone'), \
             CASE WHEN json_array_length(j.value, '$.consents') > 0 THEN 'confirmed' ELSE 'pending' END, \
             json_extract(j.value, '$.fields'), json_extract(j.value, '$.name'), json_extract(j.value, '$.gender'), \
             json_extract(j.value, '$.birthday'), json_extract(j.value, '$.locale'), json_extract(j.value, '$.time_zone'), \
             json_extract(j.value, '$.test_list'), ?2, ?2 FROM json_each(?1) j WHERE true \
             ON CONFLICT (email) DO UPDATE SET phone = COALESCE(excluded.phone, phone), \
             fields = json_patch(fields, excluded.fields), name = COALESCE(excluded.name, name), \
             gender = COALESCE(excluded.gender, gender), birthday = COALESCE(excluded.birthday, birthday), \
             locale = COALESCE(excluded.locale, locale), time_zone = COALESCE(excluded.time_zone, time_zone), \
             test_list = excluded.test_list, \
             status = CASE WHEN excluded.status = 'confirmed' THEN 'confirmed' ELSE status END, \
             origin = 'api', updated_at = excluded.updated_at",
        ).bind(&[json.clone(), at.clone()])?);
        statements.push(db.prepare(
            "INSERT INTO contact_tags (contact_id, tag) \
             SELECT k.id, t.value FROM json_each(?1) j JOIN contacts k ON k.email = json_extract(j.value, '$.email'), \
             json_each(j.value, '$.tags') t WHERE true ON CONFLICT DO NOTHING",
        ).bind(std::slice::from_ref(&json))?);
        statements.push(db.prepare(
            "INSERT INTO consent_ledger (contact_id, site_id, capture_id, purpose, channel, action, text_version, method, ip_hash, user_agent, at) \
             SELECT k.id, json_extract(c.value, '$[0]'), NULL, json_extract(c.value, '$[1]'), json_extract(c.value, '$[2]'), \
             'confirmed', json_extract(c.value, '$[3]'), 'api_import', NULL, NULL, ?2 \
             FROM json_each(?1) j JOIN contacts k ON k.email = json_extract(j.value, '$.email'), json_each(j.value, '$.consents') c \
             WHERE NOT EXISTS (SELECT 1 FROM consent_ledger l WHERE l.contact_id = k.id AND l.site_id = json_extract(c.value, '$[0]') \
             AND l.purpose = json_extract(c.value, '$[1]') AND l.channel = json_extract(c.value, '$[2]'))",
        ).bind(&[json, at])?);
    }
    if statements.is_empty() {
        return Ok(());
    }
    // One D1 batch is one transaction: the whole import lands, or nothing does.
    db.batch(statements).await?;
    Ok(())
}

/// The id of the contact with this (normalised) address.
pub async fn contact_id_by_email(env: &Env, email: &str) -> Result<Option<String>> {
    env.d1(bindings::DB)?
        .prepare("SELECT id FROM contacts WHERE email = ?1")
        .bind(&[text(email)])?
        .first::<String>(Some("id"))
        .await
}

/// Everything stored about one contact: the row, tags, ledger, messages and suppression.
pub async fn contact_record(env: &Env, id: &str) -> Result<Option<serde_json::Value>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT id, email, phone, status, name, gender, birthday, locale, time_zone, test_list, \
                 json(fields) AS fields, created_at, updated_at FROM contacts WHERE id = ?1",
            )
            .bind(&[text(id)])?,
            db.prepare("SELECT tag FROM contact_tags WHERE contact_id = ?1 ORDER BY tag").bind(&[text(id)])?,
            db.prepare(
                "SELECT seq, site_id, capture_id, purpose, channel, action, text_version, method, at \
                 FROM consent_ledger WHERE contact_id = ?1 ORDER BY seq",
            )
            .bind(&[text(id)])?,
            db.prepare(
                "SELECT send_key, kind, campaign_id, channel, status, reason, attempts, created_at, updated_at \
                 FROM sends WHERE contact_id = ?1 ORDER BY created_at, send_key",
            )
            .bind(&[text(id)])?,
            db.prepare("SELECT reason, campaign_id, created_at FROM suppressions WHERE contact_id = ?1").bind(&[text(id)])?,
        ])
        .await?;
    let rows = |i: usize| -> Result<Vec<serde_json::Value>> {
        results
            .get(i)
            .map_or(Ok(Vec::new()), |r| r.results::<serde_json::Value>())
    };
    let Some(mut contact) = rows(0)?.into_iter().next() else {
        return Ok(None);
    };
    if let Some(fields) = contact
        .get("fields")
        .and_then(|f| f.as_str())
        .map(str::to_owned)
    {
        contact["fields"] = serde_json::from_str(&fields).unwrap_or_default();
    }
    contact["test_list"] = serde_json::Value::Bool(contact["test_list"].as_i64() == Some(1));
    contact["tags"] = rows(1)?
        .into_iter()
        .filter_map(|t| t.get("tag").cloned())
        .collect();
    contact["consent_ledger"] = rows(2)?.into();
    contact["messages"] = rows(3)?.into();
    contact["suppression"] = rows(4)?
        .into_iter()
        .next()
        .unwrap_or(serde_json::Value::Null);
    Ok(Some(contact))
}

/// GDPR erasure, in one transaction: everything that names the person goes — the row, tags,
/// captures, consent proof, tracked events, shop events, chain runs, RFM scores, undelivered
/// webhooks — and what must stay for honest numbers is anonymised (conversions and send outcomes
/// lose the contact id, unique-visitor records get a random one). Aggregated counters are not
/// touched. An opt-out survives as the address's hash on the suppression list, so a re-import
/// never mails the person again. Returns false if there was no such contact.
pub async fn erase_contact(env: &Env, id: &str) -> Result<bool> {
    let db = env.d1(bindings::DB)?;
    let Some(email) = db
        .prepare("SELECT email FROM contacts WHERE id = ?1")
        .bind(&[text(id)])?
        .first::<String>(Some("email"))
        .await?
    else {
        return Ok(false);
    };
    let hash = epistola_core::contact::address_hash(&email);
    let arg = [text(id)];
    let with_hash = [text(id), text(&hash)];
    let mut statements = vec![
        // First, while the suppression row still says why: the opt-out outlives the person.
        db.prepare(
            "INSERT INTO address_suppressions (address_hash, reason, source, created_at) \
             SELECT ?2, reason, 'erasure', created_at FROM suppressions WHERE contact_id = ?1 \
             ON CONFLICT DO NOTHING",
        )
        .bind(&with_hash)?,
        db.prepare("UPDATE suppression_ledger SET contact_id = NULL WHERE contact_id = ?1")
            .bind(&arg)?,
    ];
    for table in [
        "contact_tags",
        "consent_ledger",
        "captures",
        "events",
        "contact_events",
        "chain_runs",
        "contact_rfm",
        "suppressions",
    ] {
        statements.push(
            db.prepare(format!("DELETE FROM {table} WHERE contact_id = ?1"))
                .bind(&arg)?,
        );
    }
    statements.extend([
        db.prepare("UPDATE sends SET contact_id = '', detail = NULL WHERE contact_id = ?1")
            .bind(&arg)?,
        db.prepare("UPDATE conversions SET contact_id = '' WHERE contact_id = ?1")
            .bind(&arg)?,
        // Unique counts stay right: each record keeps a random stand-in for the id.
        db.prepare(
            "UPDATE first_seen SET contact_id = 'erased-' || lower(hex(randomblob(12))) WHERE contact_id = ?1",
        )
        .bind(&arg)?,
        // Undelivered webhooks carry the address; delivered ones are the receiver's to erase.
        db.prepare("DELETE FROM webhook_deliveries WHERE contact_id = ?1 AND status <> 'delivered'")
            .bind(&arg)?,
        db.prepare("UPDATE webhook_deliveries SET payload = '{}', contact_id = '' WHERE contact_id = ?1")
            .bind(&arg)?,
        db.prepare("DELETE FROM contacts WHERE id = ?1").bind(&arg)?,
    ]);
    let results = db.batch(statements).await?;
    let deleted = results
        .last()
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        .unwrap_or(0);
    Ok(deleted > 0)
}

/// Stores address hashes of an imported suppression list; returns how many were new.
pub async fn import_address_suppressions(
    env: &Env,
    hashes: &[String],
    reason: &str,
    source: Option<&str>,
    now: u64,
) -> Result<u64> {
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for chunk in hashes.chunks(BULK_ROWS * 4) {
        statements.push(
            db.prepare(
                "INSERT INTO address_suppressions (address_hash, reason, source, created_at) \
                 SELECT value, ?2, ?3, ?4 FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING",
            )
            .bind(&[
                text(&serde_json::to_string(chunk)?),
                text(reason),
                opt_text(source),
                int(now as i64),
            ])?,
        );
    }
    if statements.is_empty() {
        return Ok(0);
    }
    let results = db.batch(statements).await?;
    Ok(results
        .iter()
        .filter_map(|r| r.meta().ok().flatten().and_then(|m| m.changes))
        .map(|c| c as u64)
        .sum())
}

// ---------------------------------------------------------------------------------------------
// Templates and campaigns.

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
}

const CAMPAIGN_COLUMNS: &str =
    "id, name, site_id, template_id, purpose, segment, send_window, anonymous, status, \
     audience_size, scheduled_at, cursor, base_url, sms_fallback_after, created_at, updated_at, \
     paused_reason, paused_at, allow_resend";

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
             allow_resend, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, 'draft', ?9, ?9) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, site_id = excluded.site_id, template_id = excluded.template_id, \
             purpose = excluded.purpose, segment = excluded.segment, send_window = excluded.send_window, \
             anonymous = excluded.anonymous, sms_fallback_after = excluded.sms_fallback_after, \
             allow_resend = excluded.allow_resend, status = 'draft', \
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

// ---------------------------------------------------------------------------------------------
// Campaign sending.

/// One contact as segment rules and chain conditions see it.
#[derive(Debug, Clone, Deserialize)]
pub struct ContactRow {
    pub id: String,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
    /// JSON object of custom fields.
    pub fields: String,
    /// JSON array of tags.
    #[serde(default)]
    pub tags: Option<String>,
}

const CONTACT_COLUMNS: &str = "k.id, k.name, k.gender, k.birthday, k.locale, k.time_zone, \
     k.fields, (SELECT json_group_array(tag) FROM contact_tags t WHERE t.contact_id = k.id) AS tags";

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

/// Contacts after `cursor` in id order, with tags (the fan-out's page).
pub async fn contacts_page(env: &Env, cursor: &str, limit: usize) -> Result<Vec<ContactRow>> {
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts k WHERE k.id > ?1 ORDER BY k.id LIMIT ?2"
        ))
        .bind(&[text(cursor), int(limit as i64)])?
        .all()
        .await?
        .results::<ContactRow>()
}

/// These contacts, with tags.
pub async fn contacts_by_id(env: &Env, ids: &[String]) -> Result<Vec<ContactRow>> {
    env.d1(bindings::DB)?
        .prepare(format!("SELECT {CONTACT_COLUMNS} FROM contacts k WHERE k.id IN (SELECT value FROM json_each(?1))"))
        .bind(&[text(&serde_json::to_string(ids)?)])?
        .all()
        .await?
        .results::<ContactRow>()
}

/// Human engagement and purchases of these contacts.
#[derive(Debug, Default)]
pub struct Engagement {
    /// (contact, campaign, metric) pairs: first human opens and clicks.
    pub seen: Vec<(String, String, String)>,
    /// contact → latest human open.
    pub last_open: std::collections::HashMap<String, u64>,
    /// contact → latest `purchase` event.
    pub last_purchase: std::collections::HashMap<String, u64>,
}

pub async fn engagement(env: &Env, contacts: &[String]) -> Result<Engagement> {
    #[derive(Deserialize)]
    struct Seen {
        contact_id: String,
        campaign_id: String,
        metric: String,
    }
    #[derive(Deserialize)]
    struct Last {
        contact_id: String,
        at: i64,
    }
    let db = env.d1(bindings::DB)?;
    let ids = text(&serde_json::to_string(contacts)?);
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT contact_id, campaign_id, metric FROM first_seen WHERE label = 'human' AND link_index = -1 \
                 AND metric IN ('open', 'click') AND contact_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(std::slice::from_ref(&ids))?,
            db.prepare(
                "SELECT contact_id, MAX(occurred_at) AS at FROM events WHERE kind = 'open' AND label = 'human' \
                 AND contact_id IN (SELECT value FROM json_each(?1)) GROUP BY contact_id",
            )
            .bind(std::slice::from_ref(&ids))?,
            db.prepare(
                "SELECT contact_id, MAX(at) AS at FROM contact_events WHERE type = 'purchase' \
                 AND contact_id IN (SELECT value FROM json_each(?1)) GROUP BY contact_id",
            )
            .bind(&[ids])?,
        ])
        .await?;
    let [seen, last, bought] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    let latest = |rows: Vec<Last>| {
        rows.into_iter()
            .map(|l| (l.contact_id, l.at.max(0) as u64))
            .collect()
    };
    Ok(Engagement {
        seen: seen
            .results::<Seen>()?
            .into_iter()
            .map(|s| (s.contact_id, s.campaign_id, s.metric))
            .collect(),
        last_open: latest(last.results::<Last>()?),
        last_purchase: latest(bought.results::<Last>()?),
    })
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

/// A deferred send (or a waiting SMS fallback) whose time has come.
#[derive(Debug, Deserialize)]
pub struct DueSend {
    pub campaign_id: String,
    pub contact_id: String,
    pub channel: String,
}

/// Deferred sends that are due, leased for `lease` seconds so the next tick does not queue them
/// again while they are in flight. Also gives up on sends left `sending` by a crash long ago:
/// their outcome is unknown, and sending again could double them.
pub async fn due_deferred(env: &Env, now: u64, lease: u64) -> Result<Vec<DueSend>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE sends SET status = 'failed', reason = 'outcome_unknown', updated_at = ?1 \
                 WHERE status = 'sending' AND updated_at < ?1 - 900",
            )
            .bind(&[int(now as i64)])?,
            db.prepare(
                "UPDATE sends SET due_at = ?1 + ?2 WHERE send_key IN (SELECT send_key FROM sends \
                 WHERE status IN ('deferred', 'waiting', 'retrying') AND due_at <= ?1 AND campaign_id IS NOT NULL \
                 AND (status <> 'retrying' OR campaign_id IN (SELECT id FROM campaigns)) LIMIT 1000) \
                 RETURNING campaign_id, contact_id, channel",
            )
            .bind(&[int(now as i64), int(lease as i64)])?,
        ])
        .await?;
    match results.last() {
        Some(r) => r.results::<DueSend>(),
        None => Ok(Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------------
// Events and trigger chains.

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

/// Contact ids for these addresses or ids (unknown ones are left out).
pub async fn resolve_contacts(
    env: &Env,
    keys: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
        email: String,
    }
    let rows = env
        .d1(bindings::DB)?
        .prepare(
            "SELECT id, email FROM contacts WHERE id IN (SELECT value FROM json_each(?1)) \
             OR email IN (SELECT value FROM json_each(?1))",
        )
        .bind(&[text(&serde_json::to_string(keys)?)])?
        .all()
        .await?
        .results::<Row>()?;
    let mut out = std::collections::HashMap::new();
    for r in rows {
        out.insert(r.email.clone(), r.id.clone());
        out.insert(r.id.clone(), r.id);
    }
    Ok(out)
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

/// A server-side `purchase` with an order, waiting to be attributed.
pub struct Purchase {
    pub contact_id: String,
    pub at: u64,
    pub order: epistola_core::conversion::Order,
}

/// Attributes purchases to the contact's latest human click within `window` seconds, or an SMS
/// received shortly before (`core::conversion::attribute`), and stores them as conversions (once
/// per order id). Returns how many were attributed.
pub async fn attribute_purchases(
    env: &Env,
    purchases: &[Purchase],
    window: u64,
    now: u64,
) -> Result<usize> {
    use epistola_core::conversion::{attribute, Source, Touch, SMS_WINDOW_SECONDS};
    use epistola_core::event::ConversionEvent;
    if purchases.is_empty() || window == 0 {
        return Ok(0);
    }
    #[derive(Deserialize)]
    struct Row {
        click: Option<String>,
        sms: Option<String>,
    }
    let db = env.d1(bindings::DB)?;
    let keys: Vec<serde_json::Value> = purchases
        .iter()
        .map(|p| serde_json::json!({ "contact": p.contact_id, "at": p.at }))
        .collect();
    // One row per purchase, in order: the latest human click and the latest SMS sent, as JSON.
    let rows = db
        .prepare(
            "SELECT \
               (SELECT json_array(e.campaign_id, e.message_id, e.link_index, e.occurred_at) FROM events e \
                WHERE e.contact_id = json_extract(p.value, '$.contact') AND e.kind = 'click' AND e.label = 'human' \
                  AND e.occurred_at BETWEEN json_extract(p.value, '$.at') - ?2 AND json_extract(p.value, '$.at') \
                ORDER BY e.occurred_at DESC LIMIT 1) AS click, \
               (SELECT json_array(s.campaign_id, s.send_key, s.updated_at) FROM sends s \
                WHERE s.contact_id = json_extract(p.value, '$.contact') AND s.channel = 'sms' AND s.status = 'sent' \
                  AND s.campaign_id IS NOT NULL \
                  AND s.updated_at BETWEEN json_extract(p.value, '$.at') - ?3 AND json_extract(p.value, '$.at') \
                ORDER BY s.updated_at DESC LIMIT 1) AS sms \
             FROM json_each(?1) p ORDER BY p.key",
        )
        .bind(&[
            text(&serde_json::to_string(&keys)?),
            int(window as i64),
            int(SMS_WINDOW_SECONDS as i64),
        ])?
        .all()
        .await?
        .results::<Row>()?;
    let mut conversions = Vec::new();
    for (p, row) in purchases.iter().zip(rows) {
        let click = row
            .click
            .and_then(|j| serde_json::from_str::<(String, String, i64, u64)>(&j).ok())
            .map(|(campaign, message, link, at)| Touch {
                campaign,
                message,
                link,
                channel: "email",
                at,
            });
        let sms = row
            .sms
            .and_then(|j| serde_json::from_str::<(String, String, u64)>(&j).ok())
            .map(|(campaign, send_key, at)| Touch {
                campaign,
                message: epistola_core::ids::message_id_for(&send_key),
                link: -1,
                channel: "sms",
                at,
            });
        if let Some(touch) = attribute(click, sms, p.at, window) {
            conversions.push(ConversionEvent {
                order_id: p.order.order_id.clone(),
                at: p.at,
                campaign: touch.campaign,
                contact: p.contact_id.clone(),
                message: touch.message,
                link: touch.link,
                channel: touch.channel.into(),
                value_minor: p.order.money.minor,
                currency: p.order.money.currency.clone(),
                source: Source::Api,
            });
        }
    }
    if !conversions.is_empty() {
        db.batch(epistola_worker_kit::db::conversion_statements(
            &db,
            &conversions,
            now,
        )?)
        .await?;
    }
    Ok(conversions.len())
}

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

#[derive(Deserialize)]
pub struct AnswerCount {
    pub site_id: String,
    pub question: String,
    pub answer: String,
    pub n: i64,
}

/// Capture answer counters, per site and question.
pub async fn answer_counts(env: &Env) -> Result<Vec<AnswerCount>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT site_id, question, answer, n FROM answer_counts ORDER BY site_id, question, n DESC, answer LIMIT 1000",
        )
        .all()
        .await?
        .results::<AnswerCount>()
}

/// A webhook delivery that is due, with its endpoint's URL and secret.
#[derive(Deserialize)]
pub struct DueDelivery {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: String,
    pub occurred_at: u64,
    pub attempts: u32,
    pub url: String,
    pub secret: String,
}

/// Claims up to `limit` due deliveries to active endpoints, oldest first: they are pushed
/// `lease` seconds into the future in the same statement that selects them, so a tick running at
/// the same time cannot take them too. A crash mid-delivery retries them after the lease.
pub async fn claim_due_deliveries(
    env: &Env,
    now: u64,
    limit: u32,
    lease: u64,
) -> Result<Vec<DueDelivery>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE webhook_deliveries SET next_at = ?1 + ?3 WHERE id IN (SELECT d.id FROM webhook_deliveries d \
                 JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'active' \
                 WHERE d.status = 'pending' AND d.next_at <= ?1 ORDER BY d.next_at, d.id LIMIT ?2) \
                 RETURNING id, type, payload, occurred_at, attempts, endpoint_id",
            )
            .bind(&[int(now as i64), int(i64::from(limit)), int(lease as i64)])?,
            db.prepare("SELECT id, url, secret FROM webhook_endpoints WHERE status = 'active'"),
        ])
        .await?;
    #[derive(Deserialize)]
    struct Claimed {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        payload: String,
        occurred_at: u64,
        attempts: u32,
        endpoint_id: String,
    }
    #[derive(Deserialize)]
    struct Endpoint {
        id: String,
        url: String,
        secret: String,
    }
    let [claimed, endpoints] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    let endpoints: std::collections::HashMap<String, Endpoint> = endpoints
        .results::<Endpoint>()?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    Ok(claimed
        .results::<Claimed>()?
        .into_iter()
        .filter_map(|c| {
            let e = endpoints.get(&c.endpoint_id)?;
            Some(DueDelivery {
                id: c.id,
                kind: c.kind,
                payload: c.payload,
                occurred_at: c.occurred_at,
                attempts: c.attempts,
                url: e.url.clone(),
                secret: e.secret.clone(),
            })
        })
        .collect())
}

pub async fn delivery_done(env: &Env, id: &str, now: u64) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, \
             last_error = NULL, updated_at = ?2 WHERE id = ?1",
        )
        .bind(&[text(id), int(now as i64)])?
        .run()
        .await?;
    Ok(())
}

/// Records a failed attempt: due again at `next_at`, or `failed` when the schedule is exhausted.
pub async fn delivery_failed(
    env: &Env,
    id: &str,
    attempts: u32,
    next_at: Option<u64>,
    error: &str,
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "UPDATE webhook_deliveries SET status = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END, \
             attempts = ?2, next_at = COALESCE(?3, next_at), last_error = ?4, updated_at = ?5 WHERE id = ?1",
        )
        .bind(&[
            text(id),
            int(i64::from(attempts)),
            next_at.map_or(JsValue::NULL, |t| int(t as i64)),
            text(epistola_core::text::clip(error, 300)),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

#[derive(Deserialize, serde::Serialize)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub status: String,
    pub created_at: u64,
}

pub async fn create_endpoint(
    env: &Env,
    id: &str,
    url: &str,
    secret: &str,
    events: &[String],
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO webhook_endpoints (id, url, secret, events, status, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)",
        )
        .bind(&[
            text(id),
            text(url),
            text(secret),
            text(&serde_json::to_string(events)?),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

pub async fn list_endpoints(env: &Env) -> Result<Vec<EndpointRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT id, url, events, status, created_at FROM webhook_endpoints ORDER BY created_at, id",
        )
        .all()
        .await?
        .results::<EndpointRow>()
}

/// Delivery counts of one endpoint by status.
pub async fn endpoint_delivery_counts(env: &Env, id: &str) -> Result<Vec<(String, u64)>> {
    counts_by_status(env, "webhook_deliveries", "endpoint_id", id).await
}

/// Disables an endpoint; its pending deliveries are not sent. Returns whether it existed.
pub async fn disable_endpoint(env: &Env, id: &str, now: u64) -> Result<bool> {
    let result = env
        .d1(bindings::DB)?
        .prepare(
            "UPDATE webhook_endpoints SET status = 'disabled', updated_at = ?2 WHERE id = ?1 RETURNING id",
        )
        .bind(&[text(id), int(now as i64)])?
        .first::<String>(Some("id"))
        .await?;
    if result.is_some() {
        // Its pending deliveries will never go: say so, rather than leave them pending forever.
        env.d1(bindings::DB)?
            .prepare(
                "UPDATE webhook_deliveries SET status = 'endpoint_disabled', updated_at = ?2 \
                 WHERE endpoint_id = ?1 AND status = 'pending'",
            )
            .bind(&[text(id), int(now as i64)])?
            .run()
            .await?;
    }
    Ok(result.is_some())
}

/// Every buyer's orders from `purchase` events, an order counted once however many events report
/// it (the widget's `order.{id}` and the API's event for the same order id).
pub async fn purchase_history(env: &Env) -> Result<Vec<epistola_core::rfm::Purchases>> {
    #[derive(Deserialize)]
    struct Row {
        contact_id: String,
        orders: u64,
        total: Option<f64>,
        first_at: u64,
        last_at: u64,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(
            "SELECT contact_id, COUNT(*) AS orders, SUM(value) AS total, MIN(at) AS first_at, MAX(at) AS last_at FROM \
             (SELECT contact_id, COALESCE(json_extract(data, '$.order_id'), id) AS order_key, \
                     MAX(CAST(COALESCE(json_extract(data, '$.value'), 0) AS REAL)) AS value, MIN(at) AS at \
              FROM contact_events WHERE type = 'purchase' GROUP BY contact_id, order_key) \
             GROUP BY contact_id",
        )
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| epistola_core::rfm::Purchases {
            contact: r.contact_id,
            orders: r.orders,
            total: r.total.unwrap_or(0.0),
            first_at: r.first_at,
            last_at: r.last_at,
        })
        .collect())
}

/// Replaces the stored RFM scores (buyers who are gone, e.g. erased, drop out).
pub async fn save_rfm(
    env: &Env,
    scores: &[epistola_core::rfm::Score],
    buyers: &[epistola_core::rfm::Purchases],
    now: u64,
) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let mut statements = vec![db
        .prepare("DELETE FROM contact_rfm WHERE computed_at < ?1")
        .bind(&[int(now as i64)])?];
    let rows: Vec<serde_json::Value> = scores
        .iter()
        .zip(buyers)
        .map(|(s, b)| {
            serde_json::json!({
                "c": s.contact, "r": s.r, "f": s.f, "m": s.m, "s": s.segment, "o": b.orders,
                "t": b.total, "l": b.last_at, "x": s.churn_risk,
            })
        })
        .collect();
    for chunk in rows.chunks(BULK_ROWS) {
        statements.push(
            db.prepare(
                "INSERT INTO contact_rfm (contact_id, r, f, m, segment, orders, total, last_at, churn_risk, computed_at) \
                 SELECT json_extract(value, '$.c'), json_extract(value, '$.r'), json_extract(value, '$.f'), \
                 json_extract(value, '$.m'), json_extract(value, '$.s'), json_extract(value, '$.o'), \
                 json_extract(value, '$.t'), json_extract(value, '$.l'), json_extract(value, '$.x'), ?2 \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (contact_id) DO UPDATE SET r = excluded.r, f = excluded.f, m = excluded.m, \
                 segment = excluded.segment, orders = excluded.orders, total = excluded.total, \
                 last_at = excluded.last_at, churn_risk = excluded.churn_risk, computed_at = excluded.computed_at",
            )
            .bind(&[text(&serde_json::to_string(chunk)?), int(now as i64)])?,
        );
    }
    // One transaction: readers see yesterday's scores or today's, never a mix.
    db.batch(statements).await?;
    Ok(())
}

/// RFM segments of these contacts (buyers only).
pub async fn rfm_segments(
    env: &Env,
    contacts: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    #[derive(Deserialize)]
    struct Row {
        contact_id: String,
        segment: String,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare("SELECT contact_id, segment FROM contact_rfm WHERE contact_id IN (SELECT value FROM json_each(?1))")
        .bind(&[text(&serde_json::to_string(contacts)?)])?
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.contact_id, r.segment))
        .collect())
}

/// Buyers per RFM segment, with how many are at churn risk.
pub async fn rfm_counts(env: &Env) -> Result<Vec<(String, u64, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        segment: String,
        n: u64,
        at_risk: u64,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(
            "SELECT segment, COUNT(*) AS n, SUM(churn_risk) AS at_risk FROM contact_rfm GROUP BY segment ORDER BY n DESC, segment",
        )
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.segment, r.n, r.at_risk))
        .collect())
}

/// Everything held about one contact, for a GDPR access request: the record (as
/// [`contact_record`]) plus captures, tracked opens and clicks, conversions, server-side events and
/// the RFM score. Keyed hashes (IP) are left out: they identify no one without the key.
pub async fn contact_export(env: &Env, id: &str) -> Result<Option<serde_json::Value>> {
    let Some(mut record) = contact_record(env, id).await? else {
        return Ok(None);
    };
    let db = env.d1(bindings::DB)?;
    let arg = [text(id)];
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT id, site_id, form, json(fields) AS fields, status, user_agent, created_at, confirmed_at \
                 FROM captures WHERE contact_id = ?1 ORDER BY created_at",
            )
            .bind(&arg)?,
            db.prepare(
                "SELECT e.kind, e.campaign_id, e.message_id, e.link_index, l.url, e.label, e.occurred_at \
                 FROM events e LEFT JOIN campaign_links l ON l.campaign_id = e.campaign_id AND l.link_index = e.link_index \
                 WHERE e.contact_id = ?1 ORDER BY e.occurred_at",
            )
            .bind(&arg)?,
            db.prepare(
                "SELECT order_id, campaign_id, link_index, channel, value_minor, currency, source, occurred_at \
                 FROM conversions WHERE contact_id = ?1 ORDER BY occurred_at",
            )
            .bind(&arg)?,
            db.prepare(
                "SELECT id, type, at, json(data) AS data FROM contact_events WHERE contact_id = ?1 ORDER BY at, id",
            )
            .bind(&arg)?,
            db.prepare(
                "SELECT r, f, m, segment, orders, total, last_at, churn_risk, computed_at FROM contact_rfm WHERE contact_id = ?1",
            )
            .bind(&arg)?,
        ])
        .await?;
    let rows = |i: usize| -> Result<Vec<serde_json::Value>> {
        results
            .get(i)
            .map_or(Ok(Vec::new()), |r| r.results::<serde_json::Value>())
    };
    // JSON columns come back as text: parse them so the export is one JSON document.
    let parse_json_column = |mut rows: Vec<serde_json::Value>, column: &str| {
        for row in &mut rows {
            if let Some(text) = row.get(column).and_then(|v| v.as_str()).map(str::to_owned) {
                row[column] =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            }
        }
        rows
    };
    record["captures"] = parse_json_column(rows(0)?, "fields").into();
    record["tracked_events"] = rows(1)?.into();
    record["conversions"] = rows(2)?.into();
    record["events"] = parse_json_column(rows(3)?, "data").into();
    record["rfm"] = rows(4)?
        .into_iter()
        .next()
        .unwrap_or(serde_json::Value::Null);
    Ok(Some(record))
}

// ---------------------------------------------------------------------------------------------
// Transport failures: pausing and resuming a campaign or chain.

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

/// Lifts the suppression of an address (its contact's own, and any imported one by hash), and
/// records it in the suppression ledger, in one transaction. Returns the reason it had been
/// suppressed for, or `None` if it was not suppressed (nothing written).
pub async fn lift_suppression(
    env: &Env,
    email: &str,
    hash: &str,
    reason: &str,
    actor: &str,
    now: u64,
) -> Result<Option<String>> {
    let db = env.d1(bindings::DB)?;
    let suppressed = "(SELECT s.reason FROM suppressions s JOIN contacts k ON k.id = s.contact_id WHERE k.email = ?1 \
                      UNION ALL SELECT reason FROM address_suppressions WHERE address_hash = ?2 LIMIT 1)";
    let args = [
        text(email),
        text(hash),
        text(reason),
        text(actor),
        int(now as i64),
    ];
    let results = db
        .batch(vec![
            db.prepare(format!(
                "INSERT INTO suppression_ledger (address_hash, contact_id, action, reason, previous_reason, actor, at) \
                 SELECT ?2, (SELECT id FROM contacts WHERE email = ?1), 'lifted', ?3, {suppressed}, ?4, ?5 \
                 WHERE {suppressed} IS NOT NULL RETURNING previous_reason"
            ))
            .bind(&args)?,
            db.prepare(
                "DELETE FROM suppressions WHERE contact_id = (SELECT id FROM contacts WHERE email = ?1)",
            )
            .bind(&args[..1])?,
            db.prepare("DELETE FROM address_suppressions WHERE address_hash = ?1")
                .bind(&args[1..2])?,
        ])
        .await?;
    #[derive(Deserialize)]
    struct Row {
        previous_reason: String,
    }
    Ok(match results.first() {
        Some(r) => r
            .results::<Row>()?
            .into_iter()
            .next()
            .map(|r| r.previous_reason),
        None => None,
    })
}

/// Records one use of `key` (kept until `expires_at`, then pruned with the rate-limit windows);
/// true only the first time. One row per key (window 0), whenever the uses come.
pub async fn first_use(env: &Env, key: &str, expires_at: u64) -> Result<bool> {
    let n = env
        .d1(bindings::DB)?
        .prepare(
            "INSERT INTO rate_limits (key, window, n, expires_at) VALUES (?1, 0, 1, ?2) \
             ON CONFLICT (key, window) DO UPDATE SET n = n + 1 RETURNING n",
        )
        .bind(&[text(key), int(expires_at as i64)])?
        .first::<i64>(Some("n"))
        .await?;
    Ok(n == Some(1))
}

/// Counts one hit on `key` in the current fixed window of `window` seconds; returns the count.
pub async fn count_hit(env: &Env, key: &str, window: u64, now: u64) -> Result<u32> {
    let db = env.d1(bindings::DB)?;
    let n = rate_limit_hit(&db, key, window, now)?
        .first::<u32>(Some("n"))
        .await?;
    Ok(n.unwrap_or(0))
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
