//! The audit log (`audit_log`, append-only) and API tokens (`api_tokens`): a token's creation and
//! revocation are written together with their audit rows, in one transaction.

use epistola_core::audit::Kind;
use epistola_worker_kit::db::{changes, int, opt_text, text};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Env, Result};

use crate::bindings;

/// What an audit row snapshots of each kind of thing: the fields a person changes (never a
/// secret: a webhook endpoint's secret is not read).
fn snapshot_sql(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Campaign => {
            "SELECT json_object('name', name, 'status', status, 'site', site_id, 'template', template_id, \
             'purpose', purpose, 'segment', json(segment), 'send_window', json(send_window), \
             'audience_size', audience_size, 'scheduled_at', scheduled_at, 'allow_resend', allow_resend, \
             'sms_fallback_after', sms_fallback_after, 'paused_reason', paused_reason) AS s \
             FROM campaigns WHERE id = ?1"
        }
        Kind::Chain => {
            "SELECT json_object('name', name, 'status', status, 'site', site_id, 'purpose', purpose, \
             'trigger', trigger, 'steps', json(steps), 'paused_reason', paused_reason) AS s \
             FROM chains WHERE id = ?1"
        }
        Kind::Template => {
            "SELECT json_object('name', name, 'subject', subject, 'html', html, 'text', text, 'sms', sms, \
             'audience', json(audience)) AS s FROM templates WHERE id = ?1"
        }
        Kind::WebhookEndpoint => {
            "SELECT json_object('url', url, 'events', json(events), 'status', status) AS s \
             FROM webhook_endpoints WHERE id = ?1"
        }
        Kind::Unread => return None,
    })
}

/// The thing's fields as the log compares them, or `None` if it does not exist (or is of a kind
/// the log does not read).
pub async fn audit_snapshot(env: &Env, kind: Kind, id: &str) -> Result<Option<Value>> {
    let Some(sql) = snapshot_sql(kind) else {
        return Ok(None);
    };
    let s = env
        .d1(bindings::DB)?
        .prepare(sql)
        .bind(&[text(id)])?
        .first::<String>(Some("s"))
        .await?;
    Ok(s.and_then(|s| serde_json::from_slice(s.as_bytes()).ok()))
}

/// Appends one audit row.
pub async fn append_audit(
    env: &Env,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &Value,
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO audit_log (actor, action, subject, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&[
            text(actor),
            text(action),
            text(subject),
            text(&detail.to_string()),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}

/// One audit row as the API and the dashboard show it.
#[derive(Debug, Deserialize, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    #[serde(deserialize_with = "json_text")]
    pub detail: Value,
}

/// `detail` is stored as JSON text.
fn json_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
    let s = String::deserialize(d)?;
    Ok(serde_json::from_slice(s.as_bytes()).unwrap_or(Value::Null))
}

/// Up to `limit` rows before `before_seq` (newest first), optionally of one actor or subject.
pub async fn audit_rows(
    env: &Env,
    before_seq: Option<i64>,
    actor: Option<&str>,
    subject: Option<&str>,
    limit: usize,
) -> Result<Vec<AuditRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT seq, at, actor, action, subject, detail FROM audit_log \
             WHERE (?1 IS NULL OR seq < ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR subject = ?3) \
             ORDER BY seq DESC LIMIT ?4",
        )
        .bind(&[
            before_seq.map_or(wasm_bindgen::JsValue::NULL, int),
            opt_text(actor),
            opt_text(subject),
            int(limit as i64),
        ])?
        .all()
        .await?
        .results::<AuditRow>()
}

/// An API token as it is listed (never its hash).
#[derive(Debug, Deserialize, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub revoked_at: Option<i64>,
}

/// Every API token, live first, newest first (a workspace has tens, not thousands).
pub async fn list_tokens(env: &Env) -> Result<Vec<TokenRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT id, name, scopes, created_at, created_by, revoked_at FROM api_tokens \
             ORDER BY revoked_at IS NOT NULL, created_at DESC, id DESC LIMIT 500",
        )
        .all()
        .await?
        .results::<TokenRow>()
}

/// A new token and its audit row, in one transaction.
pub async fn create_token(
    env: &Env,
    token: &TokenRow,
    token_hash: &str,
    detail: &Value,
) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let actor = token.created_by.as_deref().unwrap_or_default();
    db.batch(vec![
        db.prepare(
            "INSERT INTO api_tokens (id, token_hash, name, scopes, created_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&[
            text(&token.id),
            text(token_hash),
            text(&token.name),
            text(&token.scopes),
            int(token.created_at),
            text(actor),
        ])?,
        db.prepare(
            "INSERT INTO audit_log (actor, action, subject, detail, at) VALUES (?1, 'token.create', ?2, ?3, ?4)",
        )
        .bind(&[
            text(actor),
            text(&format!("token:{}", token.id)),
            text(&detail.to_string()),
            int(token.created_at),
        ])?,
    ])
    .await?;
    Ok(())
}

/// Revokes a live token and logs it, in one transaction; false if there was no live token.
pub async fn revoke_token(env: &Env, id: &str, actor: &str, now: u64) -> Result<bool> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare("UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(&[text(id), int(now as i64)])?,
            db.prepare(
                "INSERT INTO audit_log (actor, action, subject, detail, at) \
                 SELECT ?2, 'token.revoke', 'token:' || ?1, json_object('status', 200, 'changes', json_object('revoked_at', json_array(NULL, ?3))), ?3 \
                 WHERE changes() > 0",
            )
            .bind(&[text(id), text(actor), int(now as i64)])?,
        ])
        .await?;
    Ok(changes(&results, 0) > 0)
}
