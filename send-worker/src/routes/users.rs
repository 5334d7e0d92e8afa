//! `/dashboard/users`: workspace users managed in the browser by whoever manages access
//! (`tokens:write`, the admin's): add someone with a role, change a role, disable (their sessions
//! end at their next request) and enable. A role is given only if the giver holds all its duties,
//! as a token is minted only with the minter's scopes; nobody disables or re-roles themself.
//! Each change is written with its audit row in one transaction.

use epistola_core::auth::{has_scope, scopes_beyond, Scope};
use epistola_core::capture::normalize_email;
use epistola_core::roles::Role;
use epistola_dashboard as page;
use serde_json::json;
use worker::{Env, Request, Response};

use super::dashboard::{form_viewer, minute, not_yours, see_other, Session};
use crate::http::{self, ApiError, ApiResult};
use crate::{random, store};

/// The roles `session` may give: those whose every scope it holds.
fn grantable(session: &Session) -> Vec<&'static str> {
    Role::ALL
        .iter()
        .filter(|r| scopes_beyond(&session.scopes, r.scopes()).is_empty())
        .map(|r| r.as_str())
        .collect()
}

/// The users page, with the last form's refusal if there was one.
pub async fn page(
    env: &Env,
    session: &Session,
    refused: Option<(&str, &str)>,
    status: u16,
) -> ApiResult<Response> {
    if !has_scope(&session.scopes, Scope::TokensWrite) {
        return Ok(not_yours("Users"));
    }
    let viewer = session.actor.strip_prefix("user:");
    let rows: Vec<page::UserLine> = store::list_users(env)
        .await?
        .into_iter()
        .map(|u| page::UserLine {
            is_viewer: Some(u.id.as_str()) == viewer,
            created: minute(u.created_at),
            disabled: u.disabled_at.map(minute),
            id: u.id,
            email: u.email,
            role: u.role,
        })
        .collect();
    Ok(http::html_document(
        status,
        page::with_viewer(
            &page::users(&rows, &grantable(session), refused),
            &session.viewer,
        ),
    ))
}

/// `POST /dashboard/users` (add, or enable again with a role) and
/// `POST /dashboard/users/{id}/{role|disable|enable}`.
pub async fn form(
    mut req: Request,
    env: &Env,
    target: Option<(&str, &str)>,
    now: u64,
) -> ApiResult<Response> {
    let session = match form_viewer(&req, env, &[Scope::TokensWrite], "Users", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let body = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
    let field = |k: &str| body.get_field(k).unwrap_or_default();
    let refuse = |field: &'static str, why: String, status: u16| (field, why, status);
    let outcome: Result<(), (&str, String, u16)> = async {
        let role = |typed: &str| {
            let role = Role::parse(typed.trim())
                .ok_or_else(|| refuse("role", format!("no role \"{}\"", typed.trim()), 400))?;
            if !grantable(&session).contains(&role.as_str()) {
                return Err(refuse(
                    "role",
                    format!(
                        "you can only give roles whose duties you hold, not {}",
                        role.as_str()
                    ),
                    403,
                ));
            }
            Ok(role)
        };
        let (user, action) = match target {
            None => {
                let email = normalize_email(&field("email"))
                    .map_err(|e| refuse("email", e.to_string(), 400))?;
                let role = role(&field("role"))?;
                let existing = store::user_entry(env, &email)
                    .await
                    .map_err(|e| refuse("form", e.to_string(), 500))?;
                let action = if existing.is_some() {
                    "user.updated"
                } else {
                    "user.created"
                };
                let user = match existing {
                    Some(u) => u,
                    None => store::UserEntry {
                        id: random::id("u_")
                            .ok_or_else(|| refuse("form", "no randomness".into(), 500))?,
                        email,
                        role: role.as_str().into(),
                        created_at: now as i64,
                        disabled_at: None,
                    },
                };
                let mut changed = user.clone();
                changed.role = role.as_str().into();
                changed.disabled_at = None;
                ((user, changed), action)
            }
            Some((id, step)) => {
                let user = store::user_entry(env, id)
                    .await
                    .map_err(|e| refuse("form", e.to_string(), 500))?
                    .filter(|u| u.id == id)
                    .ok_or_else(|| refuse("form", "no such user".into(), 404))?;
                let mut changed = user.clone();
                let action = match step {
                    "role" => {
                        changed.role = role(&field("role"))?.as_str().into();
                        "user.role_changed"
                    }
                    "disable" => {
                        changed.disabled_at = Some(now as i64);
                        "user.disabled"
                    }
                    _ => {
                        changed.disabled_at = None;
                        "user.enabled"
                    }
                };
                ((user, changed), action)
            }
        };
        let (before, after) = (&user.0, &user.1);
        // Nobody changes their own access, nor that of someone holding duties they lack (a desk
        // that only manages analysts cannot disable or demote an admin).
        if action != "user.created" {
            if session.actor == format!("user:{}", before.id) {
                return Err(refuse(
                    "form",
                    "you cannot change your own access: ask another admin".into(),
                    409,
                ));
            }
            if !grantable(&session).contains(&before.role.as_str()) {
                return Err(refuse(
                    "form",
                    format!(
                        "{} is {}: a role with duties you do not hold",
                        before.email, before.role
                    ),
                    403,
                ));
            }
        }
        let mut changes = serde_json::Map::new();
        if before.role != after.role || action == "user.created" {
            let was = (action != "user.created").then(|| before.role.clone());
            changes.insert("role".into(), json!([was, after.role]));
        }
        if before.disabled_at.is_some() != after.disabled_at.is_some() {
            changes.insert(
                "disabled".into(),
                json!([before.disabled_at.is_some(), after.disabled_at.is_some()]),
            );
        }
        let detail = json!({ "status": 200, "changes": changes });
        store::save_user(env, after, action, &detail, &session.actor, now)
            .await
            .map_err(|e| refuse("form", e.to_string(), 500))
    }
    .await;
    match outcome {
        Ok(()) => Ok(see_other("/dashboard/users", None)),
        Err((_, why, status)) if status >= 500 => Err(ApiError::internal("users", why)),
        Err((field, why, status)) => page(env, &session, Some((field, &why)), status).await,
    }
}
