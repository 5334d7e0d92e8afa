//! The audit trail's adapter: for an API request that changes the workspace (`core::audit`), a
//! snapshot of the named thing before the change, and after a successful answer the row: who
//! (`token:{id}`), what, and each changed field as `[before, after]`.
//!
//! The row is written after the change, not in its transaction: if D1 fails in between, the change
//! stands without its row and the failure is logged. The token routes and the dashboard's forms
//! write theirs in the change's own transaction.

use epistola_core::audit::{audited, changes, Audited};
use epistola_core::auth::{bearer_token, hash_api_token};
use epistola_worker_kit::db::live_token;
use serde_json::{json, Value};
use worker::Env;

use crate::http::ApiResult;
use crate::store;

/// A change under way: what it is, and the thing as it was.
pub struct Watch<'a> {
    audited: Audited<'a>,
    before: Option<Value>,
}

/// Starts watching a `/v1` request if it is a change the log records.
pub async fn watch<'a>(env: &Env, method: &str, segments: &[&'a str]) -> Option<Watch<'a>> {
    let audited = audited(method, segments)?;
    let before = match store::audit_snapshot(env, audited.kind, audited.subject).await {
        Ok(s) => s,
        Err(e) => {
            worker::console_error!("audit: snapshot before {}: {e}", audited.action);
            None
        }
    };
    Some(Watch { audited, before })
}

/// The API token a request authenticated with, as an actor.
pub async fn token_actor(env: &Env, authorization: Option<&str>) -> Option<String> {
    let token = bearer_token(authorization)?;
    match live_token(env, &hash_api_token(token)).await {
        Ok(t) => t.map(|t| format!("token:{}", t.id)),
        Err(e) => {
            worker::console_error!("audit: actor: {e}");
            None
        }
    }
}

/// Appends the row for a change that was answered with `status` (only a success changed anything).
pub async fn record(
    env: &Env,
    watch: Watch<'_>,
    authorization: Option<&str>,
    status: u16,
    now: u64,
) {
    if !(200..300).contains(&status) {
        return;
    }
    // Only a request whose token was live got a success; "unknown" would be a token revoked in
    // the same instant.
    let actor = token_actor(env, authorization)
        .await
        .unwrap_or_else(|| "token:unknown".to_owned());
    record_as(env, watch, &actor, status, now).await;
}

/// Appends the row for a change by `actor` (a dashboard form names its signed-in viewer).
pub async fn record_as(env: &Env, watch: Watch<'_>, actor: &str, status: u16, now: u64) {
    if !(200..300).contains(&status) {
        return;
    }
    let Watch { audited, before } = watch;
    let after = match store::audit_snapshot(env, audited.kind, audited.subject).await {
        Ok(s) => s,
        Err(e) => {
            worker::console_error!("audit: snapshot after {}: {e}", audited.action);
            None
        }
    };
    let detail = json!({
        "status": status,
        "changes": changes(before.as_ref(), after.as_ref()),
    });
    if let Err(e) =
        store::append_audit(env, actor, audited.action, audited.subject, &detail, now).await
    {
        worker::console_error!("audit: {} not recorded: {e}", audited.action);
    }
}

/// Runs a dashboard form's change as `actor`, audited as the API call `method segments` it stands
/// for: the snapshot before, the change (answering with its success status), the row after.
pub async fn change_as<F>(
    env: &Env,
    method: &str,
    segments: &[&str],
    actor: &str,
    now: u64,
    change: F,
) -> ApiResult<u16>
where
    F: std::future::Future<Output = ApiResult<u16>>,
{
    let watch = watch(env, method, segments).await;
    let status = change.await?;
    if let Some(w) = watch {
        record_as(env, w, actor, status, now).await;
    }
    Ok(status)
}
