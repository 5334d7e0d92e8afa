//! Workspace users, their one-time sign-in links, and the audit log.

use epistola_worker_kit::db::{changes, int, text};
use serde::Deserialize;
use worker::{Env, Result};

use crate::bindings;

/// A user who may sign in (not disabled).
#[derive(Debug, Clone, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
}

/// The active user with this id or address.
pub async fn active_user(env: &Env, id_or_email: &str) -> Result<Option<UserRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT id, email, role FROM users WHERE (id = ?1 OR email = ?1) AND disabled_at IS NULL",
        )
        .bind(&[text(id_or_email)])?
        .first::<UserRow>(None)
        .await
}

/// Links one user may ask for per window: enough to retry, too few to flood their mailbox.
pub const LINKS_PER_WINDOW: (i64, u64) = (3, 900);

/// Stores a new sign-in link unless the user asked for `LINKS_PER_WINDOW` already; false then.
pub async fn create_sign_in_link(
    env: &Env,
    id: &str,
    user_id: &str,
    now: u64,
    ttl: u64,
) -> Result<bool> {
    let (most, window) = LINKS_PER_WINDOW;
    let result = env
        .d1(bindings::DB)?
        .prepare(
            "INSERT INTO sign_in_links (id, user_id, created_at, expires_at) SELECT ?1, ?2, ?3, ?4 \
             WHERE (SELECT COUNT(*) FROM sign_in_links WHERE user_id = ?2 AND created_at > ?5) < ?6",
        )
        .bind(&[
            text(id),
            text(user_id),
            int(now as i64),
            int((now + ttl) as i64),
            int(now.saturating_sub(window) as i64),
            int(most),
        ])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

#[derive(Debug, Clone, Deserialize)]
pub struct SignInLink {
    pub id: String,
    pub user_id: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub async fn sign_in_link(env: &Env, id: &str) -> Result<Option<SignInLink>> {
    env.d1(bindings::DB)?
        .prepare("SELECT id, user_id, expires_at, used_at FROM sign_in_links WHERE id = ?1")
        .bind(&[text(id)])?
        .first::<SignInLink>(None)
        .await
}

/// Claims the link's letter just before the transport: false if it was mailed (or is being
/// mailed) already, so a redelivered job sends nothing twice.
pub async fn claim_sign_in_letter(env: &Env, id: &str, now: u64) -> Result<bool> {
    let result = env
        .d1(bindings::DB)?
        .prepare("UPDATE sign_in_links SET mailed_at = ?2 WHERE id = ?1 AND mailed_at IS NULL")
        .bind(&[text(id), int(now as i64)])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// Gives the claim back after a transport failure a retry may cure.
pub async fn release_sign_in_letter(env: &Env, id: &str) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare("UPDATE sign_in_links SET mailed_at = NULL WHERE id = ?1")
        .bind(&[text(id)])?
        .run()
        .await?;
    Ok(())
}

/// Uses a link once (compare and set: unused, unexpired, its user still active) and records the
/// sign-in in the audit log in the same transaction. False if the link was used, expired, or its
/// user disabled meanwhile.
pub async fn use_sign_in_link(env: &Env, id: &str, user_id: &str, now: u64) -> Result<bool> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE sign_in_links SET used_at = ?3 WHERE id = ?1 AND user_id = ?2 AND used_at IS NULL \
                 AND expires_at > ?3 AND EXISTS (SELECT 1 FROM users WHERE id = ?2 AND disabled_at IS NULL)",
            )
            .bind(&[text(id), text(user_id), int(now as i64)])?,
            db.prepare(
                "INSERT INTO audit_log (actor, action, subject, at) SELECT 'user:' || ?2, 'user.signed_in', \
                 'user:' || ?2, ?3 WHERE EXISTS (SELECT 1 FROM sign_in_links WHERE id = ?1 AND used_at = ?3)",
            )
            .bind(&[text(id), text(user_id), int(now as i64)])?,
        ])
        .await?;
    Ok(changes(&results, 0) > 0)
}

/// A workspace user as the users page lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct UserEntry {
    pub id: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

const USER_COLUMNS: &str = "id, email, role, created_at, disabled_at";

/// Every user, active first, by address (a workspace has people, not thousands: at most 500).
pub async fn list_users(env: &Env) -> Result<Vec<UserEntry>> {
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY disabled_at IS NOT NULL, email LIMIT 500"
        ))
        .all()
        .await?
        .results()
}

/// The user with this id or address, active or not.
pub async fn user_entry(env: &Env, id_or_email: &str) -> Result<Option<UserEntry>> {
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 OR email = ?1"
        ))
        .bind(&[text(id_or_email)])?
        .first::<UserEntry>(None)
        .await
}

/// Writes a user as `u` says (new, new role, disabled or enabled again) and its audit row, in
/// one transaction.
pub async fn save_user(
    env: &Env,
    u: &UserEntry,
    action: &str,
    detail: &serde_json::Value,
    actor: &str,
    now: u64,
) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let disabled = u.disabled_at.map_or(wasm_bindgen::JsValue::NULL, int);
    db.batch(vec![
        db.prepare(
            "INSERT INTO users (id, email, role, created_at, disabled_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET role = excluded.role, disabled_at = excluded.disabled_at",
        )
        .bind(&[text(&u.id), text(&u.email), text(&u.role), int(u.created_at), disabled])?,
        db.prepare(
            "INSERT INTO audit_log (actor, action, subject, detail, at) VALUES (?1, ?2, 'user:' || ?3, ?4, ?5)",
        )
        .bind(&[
            text(actor),
            text(action),
            text(&u.id),
            text(&detail.to_string()),
            int(now as i64),
        ])?,
    ])
    .await?;
    Ok(())
}
