//! Sites that embed the widget: `PUT /v1/sites/{site}` (marketers) and the public
//! `GET /v1/sites/{site}/widget` config, answered with CORS only for the site's own origins.

use epistola_core::auth::Scope;
use epistola_core::ids::validate_id;
use epistola_core::site::SiteConfig;
use worker::{Env, Request, Response};

use crate::http::{self, read_json, ApiError, ApiResult};
use crate::store;
use epistola_worker_kit::auth::require_scope;

const MAX_SITE_BYTES: usize = 32 * 1024;

/// `PUT /v1/sites/{site}`: creates or replaces a site's configuration.
pub async fn put_site(mut req: Request, env: &Env, site: &str) -> ApiResult<Response> {
    require_scope(&req, env, Scope::SitesWrite).await?;
    validate_id(site, false).map_err(|e| ApiError::field("site", e.to_string()))?;
    let config: SiteConfig = read_json(&mut req, MAX_SITE_BYTES).await?;
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    store::put_site(env, site, &config).await?;
    Ok(http::json(
        200,
        &serde_json::json!({ "site": site, "config": config }),
    ))
}

/// `GET /v1/sites/{site}/widget`: what the widget needs, for the site's allowed origins only.
pub async fn widget_config(req: &Request, env: &Env, site: &str) -> ApiResult<Response> {
    let (config, origin) = site_for_origin(req, env, site).await?;
    let resp = http::json(200, &config.public(site));
    Ok(http::with_cors(resp, origin.as_deref()))
}

/// `OPTIONS` preflight for the widget's routes.
pub async fn preflight(req: &Request, env: &Env, site: &str) -> ApiResult<Response> {
    let (_, origin) = site_for_origin(req, env, site).await?;
    Ok(http::preflight(origin.as_deref()))
}

/// Loads a site and checks the request's `Origin` against it. A request without `Origin` (not a
/// browser) may read the public config; a browser on another origin is refused.
pub async fn site_for_origin(
    req: &Request,
    env: &Env,
    site: &str,
) -> ApiResult<(SiteConfig, Option<String>)> {
    validate_id(site, false).map_err(|e| ApiError::field("site", e.to_string()))?;
    let config = store::get_site(env, site)
        .await?
        .ok_or_else(|| ApiError::new(404, "unknown_site", "no site with this id"))?;
    let origin = http::header(req, "Origin");
    if let Some(o) = &origin {
        if !config.allows_origin(o) {
            return Err(ApiError::new(
                403,
                "origin_not_allowed",
                "this origin may not use this site's widget",
            ));
        }
    }
    Ok((config, origin))
}

/// Reads a JSON body the widget posted. `text/plain` is how the widget avoids a CORS preflight;
/// the body is JSON either way.
pub async fn read_beacon<T: serde::de::DeserializeOwned>(
    req: &mut Request,
    limit: usize,
) -> ApiResult<T> {
    let content_type = http::content_type(req);
    if !(content_type.starts_with("application/json") || content_type.starts_with("text/plain")) {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send JSON as application/json or text/plain",
        ));
    }
    let body = http::read_limited(req, limit).await?;
    http::parse_json(&body)
}

/// The site a widget beacon (capture, convert) names, and the allowed `Origin` it came from.
/// Beacons come from browsers on the site: no `Origin` is refused.
pub async fn beacon_site(req: &Request, env: &Env, site: &str) -> ApiResult<(SiteConfig, String)> {
    let (config, origin) = site_for_origin(req, env, site)
        .await
        .map_err(|e| match e.code {
            "unknown_site" => ApiError::field("site", "no site with this id"),
            _ => e,
        })?;
    let origin = origin.ok_or_else(|| {
        ApiError::new(
            403,
            "origin_not_allowed",
            "this comes from the widget on an allowed origin",
        )
    })?;
    Ok((config, origin))
}
