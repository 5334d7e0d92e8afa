//! Bearer-token authentication for `/v1` API routes.

use epistola_core::auth::{bearer_token, has_scope, hash_api_token, Scope};
use worker::{Env, Request};

use crate::db;
use crate::http::{ApiError, ApiResult};

/// Checks the request's bearer token and that it grants `scope`; returns the token's id (for
/// audit records).
pub async fn require_scope(req: &Request, env: &Env, scope: Scope) -> ApiResult<String> {
    require_token(req, env, scope).await.map(|t| t.id)
}

/// Like `require_scope`, and returns the whole live token (its id and every scope it holds).
pub async fn require_token(req: &Request, env: &Env, scope: Scope) -> ApiResult<db::LiveToken> {
    let live = live_bearer(req, env).await?;
    if !has_scope(&live.scopes, scope) {
        return Err(ApiError::new(
            403,
            "forbidden",
            format!("this token lacks the `{}` scope", scope.as_str()),
        ));
    }
    Ok(live)
}

/// The live token if it grants at least one of `scopes` (cancelling a campaign is open to those
/// who write it and to those who approve it).
pub async fn require_any(req: &Request, env: &Env, scopes: &[Scope]) -> ApiResult<db::LiveToken> {
    let live = live_bearer(req, env).await?;
    if !scopes.iter().any(|s| has_scope(&live.scopes, *s)) {
        let names: Vec<String> = scopes.iter().map(|s| format!("`{}`", s.as_str())).collect();
        return Err(ApiError::new(
            403,
            "forbidden",
            format!("this token lacks the {} scope", names.join(" or ")),
        ));
    }
    Ok(live)
}

/// The request's live bearer token, or `401`.
async fn live_bearer(req: &Request, env: &Env) -> ApiResult<db::LiveToken> {
    let header = crate::http::header(req, "Authorization");
    let token = bearer_token(header.as_deref()).ok_or_else(|| {
        ApiError::new(
            401,
            "unauthorized",
            "send `Authorization: Bearer <API token>`",
        )
    })?;
    db::live_token(env, &hash_api_token(token))
        .await?
        .ok_or_else(|| ApiError::new(401, "unauthorized", "unknown or revoked API token"))
}
