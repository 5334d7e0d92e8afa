//! `POST /v1/track/links`: signs the pixel, click and unsubscribe URLs of one message, so mail sent
//! by any tool can use Epistola's tracking.

use epistola_core::auth::Scope;
use epistola_core::track::{honeypot_html, sign_message, SignLinksRequest};
use serde::Serialize;
use worker::{Env, Request, Response};

use crate::http::{self, read_json, ApiError, ApiResult};
use crate::{config, store};
use epistola_worker_kit::auth::require_scope;

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct SignedLink {
    index: u16,
    url: String,
    tracked_url: String,
}

#[derive(Serialize)]
struct SignedUrls {
    pixel_url: String,
    links: Vec<SignedLink>,
    unsubscribe_url: String,
    /// The hidden honeypot link (only with a `message` id) and its markup for the start of the
    /// body: any request on it marks the message's clicks around it as a scanner's.
    #[serde(skip_serializing_if = "Option::is_none")]
    honeypot_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    honeypot_html: Option<String>,
    /// Headers to add to the message so mail clients offer one-click unsubscribe (RFC 8058).
    headers: UnsubscribeHeaders,
}

#[derive(Serialize)]
struct UnsubscribeHeaders {
    #[serde(rename = "List-Unsubscribe")]
    list_unsubscribe: String,
    #[serde(rename = "List-Unsubscribe-Post")]
    list_unsubscribe_post: &'static str,
}

pub async fn sign_links(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::TrackSign).await?;
    let body: SignLinksRequest = read_json(&mut req, MAX_BODY_BYTES).await?;
    let keys = config::keyring(env)
        .ok_or_else(|| ApiError::internal("sign", "signing keys not configured"))?;
    let signed = sign_message(&keys, &body, now).map_err(ApiError::invalid)?;
    let base = http::public_base_url(&req, env)?;
    let links: Vec<(u16, String)> = signed
        .clicks
        .iter()
        .map(|(i, url, _)| (*i, url.clone()))
        .collect();
    store::register_links(env, &body.campaign, &links).await?;
    let unsubscribe_url = format!("{base}/u/{}", signed.unsubscribe);
    let honeypot_url = signed.honeypot.map(|t| format!("{base}/c/{t}"));
    let out = SignedUrls {
        honeypot_html: honeypot_url.as_deref().map(honeypot_html),
        honeypot_url,
        pixel_url: format!("{base}/o/{}.gif", signed.open),
        links: signed
            .clicks
            .into_iter()
            .map(|(index, url, token)| SignedLink {
                index,
                url,
                tracked_url: format!("{base}/c/{token}"),
            })
            .collect(),
        headers: UnsubscribeHeaders {
            list_unsubscribe: format!("<{unsubscribe_url}>"),
            list_unsubscribe_post: "List-Unsubscribe=One-Click",
        },
        unsubscribe_url,
    };
    Ok(http::json(200, &out))
}
