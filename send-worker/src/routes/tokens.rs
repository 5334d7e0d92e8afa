//! `/v1/tokens` (scope `tokens:write`, the admin's): API tokens created (the secret shown once,
//! stored as its hash), listed and revoked; and `GET /v1/audit` (scope `audit:read`). The
//! dashboard's token forms call `mint` and `revoke` as the signed-in user.

use epistola_core::auth::{
    hash_api_token, validate_token_request, Scope, TokenRefusal, API_TOKEN_PREFIX,
};
use epistola_core::hex;
use epistola_core::ids::validate_id;
use epistola_worker_kit::auth::require_token;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

use super::listing;
use crate::http::{self, read_json, ApiError, ApiResult};
use crate::random;
use crate::store::{self, TokenRow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    name: String,
    scopes: Vec<String>,
}

/// A token just made: its row and the secret, which is never shown again.
pub struct Minted {
    pub row: TokenRow,
    pub secret: String,
}

/// Makes a token for `actor` (who holds `granted`): validated, no scope beyond the actor's own,
/// written with its audit row.
pub async fn mint(
    env: &Env,
    actor: &str,
    granted: &str,
    name: &str,
    scopes: &[String],
    now: u64,
) -> ApiResult<Minted> {
    let request = validate_token_request(name, scopes, granted).map_err(|r| match r {
        TokenRefusal::Invalid(fields) => ApiError::invalid(fields),
        TokenRefusal::Beyond(beyond) => {
            let names: Vec<&str> = beyond.iter().map(|s| s.as_str()).collect();
            let mut e = ApiError::new(
                403,
                "forbidden",
                "a token can only be given scopes its maker holds",
            );
            e.fields.insert(
                "scopes".into(),
                format!("beyond your own: {}", names.join(", ")),
            );
            e
        }
    })?;
    let id = random::id("tok_").ok_or_else(|| ApiError::internal("token id", "no randomness"))?;
    let seed = random::bytes::<32>().ok_or_else(|| ApiError::internal("token", "no randomness"))?;
    let secret = format!("{API_TOKEN_PREFIX}{}", hex::encode(&seed));
    let row = TokenRow {
        id,
        name: request.name.clone(),
        scopes: request.scope_list(),
        created_at: now as i64,
        created_by: Some(actor.to_owned()),
        revoked_at: None,
    };
    let detail = json!({
        "status": 201,
        "changes": { "name": [null, row.name], "scopes": [null, row.scopes] },
    });
    store::create_token(env, &row, &hash_api_token(&secret), &detail).await?;
    Ok(Minted { row, secret })
}

/// Revokes a live token as `actor`; `404` if there is none with this id.
pub async fn revoke(env: &Env, actor: &str, id: &str, now: u64) -> ApiResult<()> {
    validate_id(id, false).map_err(|e| ApiError::field("token", e.to_string()))?;
    if store::revoke_token(env, id, actor, now).await? {
        Ok(())
    } else {
        Err(ApiError::new(
            404,
            "not_found",
            "no live token with this id",
        ))
    }
}

fn listed(t: &TokenRow) -> serde_json::Value {
    let scopes: Vec<&str> = t.scopes.split_ascii_whitespace().collect();
    json!({
        "id": t.id, "name": t.name, "scopes": scopes, "created_at": t.created_at,
        "created_by": t.created_by, "revoked_at": t.revoked_at,
    })
}

/// `POST /v1/tokens` `{name, scopes}` → `201` with `token`, shown this once.
pub async fn create(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    let caller = require_token(&req, env, Scope::TokensWrite).await?;
    let input: TokenInput = read_json(&mut req, 4 * 1024).await?;
    let actor = format!("token:{}", caller.id);
    let minted = mint(env, &actor, &caller.scopes, &input.name, &input.scopes, now).await?;
    let mut body = listed(&minted.row);
    body["token"] = json!(minted.secret);
    Ok(http::json(201, &body))
}

/// `GET /v1/tokens`: every token, live first; never a secret or its hash.
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    require_token(req, env, Scope::TokensWrite).await?;
    let tokens: Vec<_> = store::list_tokens(env).await?.iter().map(listed).collect();
    Ok(http::json(200, &json!({ "tokens": tokens })))
}

/// `DELETE /v1/tokens/{id}`: revoked at once (its dashboard sessions end at their next request).
pub async fn delete(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    let caller = require_token(req, env, Scope::TokensWrite).await?;
    revoke(env, &format!("token:{}", caller.id), id, now).await?;
    Ok(http::json(200, &json!({ "id": id, "revoked_at": now })))
}

/// Most audit rows one request reads (a CSV export reads this many at once).
pub const MAX_AUDIT_ROWS: usize = 5_000;

/// An audit page's filters and where it starts, from `?actor=&subject=&cursor=&limit=`.
pub struct AuditQuery {
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// Reads the audit query; `max` bounds `limit` (a page, or an export).
pub fn audit_query(req: &Request, max: usize) -> ApiResult<AuditQuery> {
    let [actor, subject, cursor, limit] =
        listing::params(req, ["actor", "subject", "cursor", "limit"])?;
    let mut errors = epistola_core::track::FieldErrors::new();
    let before_seq = match cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match c.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errors.insert(
                    "cursor".into(),
                    "must be a next_cursor from an earlier page".into(),
                );
                None
            }
        },
    };
    let limit = match limit.as_deref().filter(|l| !l.is_empty()) {
        None => 50.min(max),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.insert("limit".into(), format!("must be 1-{max}"));
                0
            }
        },
    };
    let filter = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (actor, subject) = (filter(actor), filter(subject));
    for (name, value) in [("actor", &actor), ("subject", &subject)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            errors.insert(name.into(), "at most 200 characters".into());
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    Ok(AuditQuery {
        actor,
        subject,
        before_seq,
        limit,
    })
}

/// One page of the audit log, and the cursor of the next if there is one.
pub async fn audit_page(
    env: &Env,
    q: &AuditQuery,
) -> ApiResult<(Vec<store::AuditRow>, Option<String>)> {
    let mut rows = store::audit_rows(
        env,
        q.before_seq,
        q.actor.as_deref(),
        q.subject.as_deref(),
        q.limit + 1,
    )
    .await?;
    let next = (rows.len() > q.limit).then(|| {
        rows.truncate(q.limit);
        rows.last().map(|r| r.seq.to_string())
    });
    Ok((rows, next.flatten()))
}

/// `GET /v1/audit?actor=&subject=&cursor=&limit=`: newest first.
pub async fn audit(req: &Request, env: &Env) -> ApiResult<Response> {
    require_token(req, env, Scope::AuditRead).await?;
    let q = audit_query(req, epistola_core::listing::MAX_LIMIT)?;
    let (rows, next) = audit_page(env, &q).await?;
    Ok(http::json(
        200,
        &json!({ "entries": rows, "next_cursor": next }),
    ))
}
