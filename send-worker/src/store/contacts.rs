//! Contacts: upsert and bulk import (rows as one JSON parameter read with json_each, so one
//! statement writes hundreds of rows; D1 binds at most 100 parameters), the record, export and
//! erase, imported suppression lists and the audited lift of a suppression.

use epistola_worker_kit::db::{int, text};
use serde::Deserialize;
use worker::{Env, Result};

use super::BULK_ROWS;
use crate::bindings;

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
             COALESCE(json_extract(j.value, '$.test_list'), -1), ?2, ?2 FROM json_each(?1) j WHERE true \
             ON CONFLICT (email) DO UPDATE SET phone = COALESCE(excluded.phone, phone), \
             fields = json_patch(fields, excluded.fields), name = COALESCE(excluded.name, name), \
             gender = COALESCE(excluded.gender, gender), birthday = COALESCE(excluded.birthday, birthday), \
             locale = COALESCE(excluded.locale, locale), time_zone = COALESCE(excluded.time_zone, time_zone), \
             test_list = CASE excluded.test_list WHEN -1 THEN test_list ELSE excluded.test_list END, \
             status = CASE WHEN excluded.status = 'confirmed' THEN 'confirmed' ELSE status END, \
             origin = 'api', updated_at = excluded.updated_at",
        ).bind(&[json.clone(), at.clone()])?);
        // -1 above is "not mentioned": an update keeps the stored value (the upsert cannot see
        // the JSON, only `excluded`); a new contact mentioned nowhere is not on the test list.
        statements.push(
            db.prepare(
                "UPDATE contacts SET test_list = 0 WHERE test_list = -1 \
             AND email IN (SELECT json_extract(j.value, '$.email') FROM json_each(?1) j)",
            )
            .bind(std::slice::from_ref(&json))?,
        );
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

/// Everything stored about one contact: the row, tags, ledger, messages and suppression (its
/// own, or its address's on an imported list).
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
        contact["fields"] = serde_json::from_slice(fields.as_bytes()).unwrap_or_default();
    }
    contact["test_list"] = serde_json::Value::Bool(contact["test_list"].as_i64() == Some(1));
    contact["tags"] = rows(1)?
        .into_iter()
        .filter_map(|t| t.get("tag").cloned())
        .collect();
    contact["consent_ledger"] = rows(2)?.into();
    contact["messages"] = rows(3)?.into();
    contact["suppression"] = match rows(4)?.into_iter().next() {
        Some(own) => own,
        // An imported list (or an erased earlier contact) may suppress the address by its hash.
        None => {
            let email = contact["email"].as_str().unwrap_or_default();
            db.prepare(
                "SELECT reason, source, created_at FROM address_suppressions WHERE address_hash = ?1",
            )
            .bind(&[text(&epistola_core::contact::address_hash(email))])?
            .first::<serde_json::Value>(None)
            .await?
            .unwrap_or(serde_json::Value::Null)
        }
    };
    Ok(Some(contact))
}

/// Puts the contact on the test list or takes it off, with its audit row, in one transaction.
/// Returns false if nothing changed (no such contact, or it was so already: no row either).
pub async fn set_test_list(env: &Env, id: &str, on: bool, actor: &str, now: u64) -> Result<bool> {
    let db = env.d1(bindings::DB)?;
    let args = [text(id), int(i64::from(on)), int(now as i64), text(actor)];
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE contacts SET test_list = ?2, updated_at = ?3 WHERE id = ?1 AND test_list <> ?2",
            )
            .bind(&args[..3])?,
            db.prepare(
                "INSERT INTO audit_log (actor, action, subject, detail, at) \
                 SELECT ?4, 'contact.test_list', ?1, json_object('status', 200, 'changes', \
                 json_object('test_list', json_array(json(CASE ?2 WHEN 1 THEN 'false' ELSE 'true' END), \
                 json(CASE ?2 WHEN 1 THEN 'true' ELSE 'false' END)))), ?3 WHERE changes() > 0",
            )
            .bind(&args)?,
        ])
        .await?;
    Ok(epistola_worker_kit::db::changes(&results, 0) > 0)
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
    /// Only where a query asks for it (`contact_by_key`): the fan-out does not need it.
    #[serde(default)]
    pub email: Option<String>,
}

const CONTACT_COLUMNS: &str = "k.id, k.name, k.gender, k.birthday, k.locale, k.time_zone, \
     k.fields, (SELECT json_group_array(tag) FROM contact_tags t WHERE t.contact_id = k.id) AS tags";

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

/// One contact by id or address, with its address.
pub async fn contact_by_key(env: &Env, key: &str) -> Result<Option<ContactRow>> {
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT {CONTACT_COLUMNS}, k.email FROM contacts k WHERE k.id = ?1 OR k.email = ?1 LIMIT 1"
        ))
        .bind(&[text(key)])?
        .first::<ContactRow>(None)
        .await
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
                row[column] = serde_json::from_slice(text.as_bytes())
                    .unwrap_or(serde_json::Value::String(text));
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
