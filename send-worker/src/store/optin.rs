//! Captures and the consent ledger: double opt-in letters (their send keys), confirmation, and
//! the preference centre.

use epistola_worker_kit::db::{changes, clip_user_agent, int, opt_text, text};
use serde::Deserialize;
use worker::{Env, Result};

use crate::bindings;

/// What a mail job needs about a capture.
#[derive(Debug, Deserialize)]
pub struct CaptureForMail {
    pub contact_id: String,
    pub site_id: String,
    /// JSON `[[purpose, channel, text_version], …]`: what confirming grants.
    pub consents: String,
}

pub async fn capture_for_mail(env: &Env, capture: &str) -> Result<Option<CaptureForMail>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT contact_id, site_id, json(consents) AS consents FROM captures WHERE id = ?1",
        )
        .bind(&[text(capture)])?
        .first::<CaptureForMail>(None)
        .await
}

/// What a pending capture asks for, as the confirmation page shows it.
#[derive(Debug, Deserialize)]
pub struct PendingCapture {
    pub status: String,
    /// JSON object of fields and answers.
    pub fields: String,
    pub phone: Option<String>,
    /// JSON `[[purpose, channel, text_version], ...]`.
    pub consents: String,
}

/// The capture a confirm token names, if it belongs to the contact.
pub async fn pending_capture(
    env: &Env,
    capture: &str,
    contact: &str,
) -> Result<Option<PendingCapture>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT status, json(fields) AS fields, phone, json(consents) AS consents FROM captures \
             WHERE id = ?1 AND contact_id = ?2",
        )
        .bind(&[text(capture), text(contact)])?
        .first::<PendingCapture>(None)
        .await
}

/// Confirms a capture (double opt-in) once, in one transaction: the consents it asked for get a
/// `given` row (when and how they were asked) and a `confirmed` row, its phone, fields and
/// answers are applied to the contact, and the contact becomes confirmed. Returns the capture's
/// status and requested consents afterwards, `None` if no such capture belongs to the contact.
pub async fn confirm_capture(
    env: &Env,
    capture: &str,
    contact: &str,
    ip_hash: Option<&str>,
    user_agent: Option<&str>,
    now: u64,
) -> Result<Option<(String, String)>> {
    let db = env.d1(bindings::DB)?;
    let pending = "c.id = ?1 AND c.contact_id = ?2 AND c.status = 'pending_confirmation'";
    let ua = user_agent.map(clip_user_agent);
    let args = [
        text(capture),
        text(contact),
        int(now as i64),
        opt_text(ip_hash),
        opt_text(ua),
    ];
    let results = db
        .batch(vec![
            // `given` keeps the moment, address and browser of the form; `confirmed` those of the
            // button. Ordered so each purpose's `given` precedes its `confirmed`.
            db.prepare(format!(
                "INSERT INTO consent_ledger (contact_id, site_id, capture_id, purpose, channel, action, text_version, \
                 method, ip_hash, user_agent, at) \
                 SELECT c.contact_id, c.site_id, c.id, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), \
                 a.action, json_extract(j.value, '$[2]'), a.method, \
                 CASE a.action WHEN 'given' THEN c.ip_hash ELSE ?4 END, \
                 CASE a.action WHEN 'given' THEN c.user_agent ELSE ?5 END, \
                 CASE a.action WHEN 'given' THEN c.created_at ELSE ?3 END \
                 FROM captures c, json_each(c.consents) j, \
                 (SELECT 0 AS o, 'given' AS action, 'widget_form' AS method \
                  UNION ALL SELECT 1, 'confirmed', 'double_opt_in') a \
                 WHERE {pending} ORDER BY j.key, a.o"
            ))
            .bind(&args)?,
            db.prepare(format!(
                "UPDATE contacts SET status = 'confirmed', \
                 phone = COALESCE((SELECT c.phone FROM captures c WHERE {pending}), phone), \
                 fields = json_patch(fields, (SELECT c.fields FROM captures c WHERE {pending})), \
                 updated_at = ?3 \
                 WHERE id = ?2 AND EXISTS (SELECT 1 FROM captures c WHERE {pending})"
            ))
            .bind(&args[..3])?,
            db.prepare(
                "UPDATE captures SET status = 'confirmed', confirmed_at = ?3 \
                 WHERE id = ?1 AND contact_id = ?2 AND status = 'pending_confirmation'",
            )
            .bind(&args[..3])?,
            db.prepare(
                "SELECT status, json(consents) AS consents FROM captures WHERE id = ?1 AND contact_id = ?2",
            )
            .bind(&args[..2])?,
        ])
        .await?;
    #[derive(Deserialize)]
    struct Status {
        status: String,
        consents: String,
    }
    let status = match results.last() {
        Some(r) => r
            .results::<Status>()?
            .into_iter()
            .next()
            .map(|s| (s.status, s.consents)),
        None => None,
    };
    Ok(status)
}

/// The site of a campaign or chain step (`{chain}.{step}`), for preference links signed before
/// they carried the site id.
pub async fn site_of_sender(env: &Env, id: &str) -> Result<Option<String>> {
    let chain = id.rsplit_once('.').map_or(id, |(chain, _)| chain);
    env.d1(bindings::DB)?
        .prepare(
            "SELECT site_id FROM campaigns WHERE id = ?1 UNION ALL SELECT site_id FROM chains WHERE id = ?2 LIMIT 1",
        )
        .bind(&[text(id), text(chain)])?
        .first::<String>(Some("site_id"))
        .await
}

/// Whether the contact has a phone number (SMS consent needs one).
pub async fn contact_has_phone(env: &Env, contact: &str) -> Result<bool> {
    let phone = env
        .d1(bindings::DB)?
        .prepare("SELECT phone FROM contacts WHERE id = ?1")
        .bind(&[text(contact)])?
        .first::<Option<String>>(Some("phone"))
        .await?;
    Ok(phone.flatten().is_some())
}

/// Appends preference-centre changes to the ledger in one transaction.
pub async fn append_consent_changes(
    env: &Env,
    contact: &str,
    site: &str,
    changes: &[epistola_core::consent::Change],
    ip_hash: Option<&str>,
    user_agent: Option<&str>,
    now: u64,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let db = env.d1(bindings::DB)?;
    let ua = user_agent.map(clip_user_agent);
    let mut statements = Vec::with_capacity(changes.len());
    for c in changes {
        statements.push(
            db.prepare(
                "INSERT INTO consent_ledger (contact_id, site_id, capture_id, purpose, channel, action, text_version, \
                 method, ip_hash, user_agent, at) VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, 'preference_centre', ?7, ?8, ?9)",
            )
            .bind(&[
                text(contact),
                text(site),
                text(&c.purpose),
                text(c.channel.as_str()),
                text(c.action.as_str()),
                text(&c.text_version),
                opt_text(ip_hash),
                opt_text(ua),
                int(now as i64),
            ])?,
        );
    }
    db.batch(statements).await?;
    Ok(())
}

/// What the retention of unconfirmed sign-ups removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub captures: u64,
    pub contacts: u64,
}

/// Deletes captures still unconfirmed after the retention period, and the contacts that only such
/// captures created (never confirmed, never imported), with their letters' records. Confirmed
/// contacts and contacts a marketer imported are never touched.
pub async fn delete_unconfirmed(env: &Env, created_before: u64) -> Result<Expired> {
    let db = env.d1(bindings::DB)?;
    let before = [int(created_before as i64)];
    let orphan = "origin = 'capture' AND status = 'pending' AND created_at < ?1 \
                  AND NOT EXISTS (SELECT 1 FROM captures c WHERE c.contact_id = contacts.id)";
    let results = db
        .batch(vec![
            db.prepare(
                "DELETE FROM captures WHERE status = 'pending_confirmation' AND created_at < ?1",
            )
            .bind(&before)?,
            db.prepare(format!(
                "DELETE FROM sends WHERE contact_id IN (SELECT id FROM contacts WHERE {orphan})"
            ))
            .bind(&before)?,
            db.prepare(format!(
                "DELETE FROM contact_tags WHERE contact_id IN (SELECT id FROM contacts WHERE {orphan})"
            ))
            .bind(&before)?,
            db.prepare(format!("DELETE FROM contacts WHERE {orphan}"))
                .bind(&before)?,
        ])
        .await?;
    Ok(Expired {
        captures: changes(&results, 0),
        contacts: changes(&results, 3),
    })
}
