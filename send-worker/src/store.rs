//! The sending worker's D1 I/O. SQL lives here and nowhere else.

use serde::Deserialize;
use worker::{Env, Result};

pub use epistola_worker_kit::db::{get_site, suppress};
use epistola_worker_kit::db::{int, opt_text, text};

use crate::bindings;

/// What a mail job needs about a capture.
#[derive(Debug, Deserialize)]
pub struct CaptureForMail {
    pub contact_id: String,
    pub email: String,
    pub site_id: String,
    pub status: String,
}

pub async fn capture_for_mail(env: &Env, capture: &str) -> Result<Option<CaptureForMail>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT c.contact_id, k.email, c.site_id, c.status FROM captures c \
             JOIN contacts k ON k.id = c.contact_id WHERE c.id = ?1",
        )
        .bind(&[text(capture)])?
        .first::<CaptureForMail>(None)
        .await
}

/// Status of a send key (`sent`, `retrying`, `failed`), if it was ever tried.
pub async fn send_status(env: &Env, send_key: &str) -> Result<Option<String>> {
    env.d1(bindings::DB)?
        .prepare("SELECT status FROM sends WHERE send_key = ?1")
        .bind(&[text(send_key)])?
        .first::<String>(Some("status"))
        .await
}

/// Records the outcome of one attempt at a send key.
#[derive(Debug)]
pub struct SendOutcome<'a> {
    pub send_key: &'a str,
    pub kind: &'a str,
    pub contact: &'a str,
    pub capture: &'a str,
    pub status: &'a str,
    pub detail: Option<&'a str>,
}

pub async fn record_send(env: &Env, o: &SendOutcome<'_>, now: u64) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO sends (send_key, kind, contact_id, capture_id, status, attempts, detail, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?7) ON CONFLICT (send_key) DO UPDATE SET \
             status = excluded.status, attempts = attempts + 1, detail = excluded.detail, updated_at = excluded.updated_at",
        )
        .bind(&[
            text(o.send_key),
            text(o.kind),
            text(o.contact),
            text(o.capture),
            text(o.status),
            opt_text(o.detail),
            int(now as i64),
        ])?
        .run()
        .await?;
    Ok(())
}
