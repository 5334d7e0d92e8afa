//! Public tracking routes: `/o` pixel, `/c` click redirect, `/u` one-click unsubscribe.
//!
//! The pixel and the redirect check the token's MAC and hand the event to the queue in
//! `wait_until`: the response never waits on the queue or the database.

use std::net::IpAddr;

use epistola_core::classify::{classify, Interaction, Signals};
use epistola_core::conversion::{append_query_param, is_first_party, ATTRIBUTION_PARAM};
use epistola_core::event::{event_id, EventKind, QueueMessage, TrackEvent};
use epistola_core::token::{Claims, Link, Purpose, TokenError};
use epistola_core::track::HONEYPOT_LINK;
use worker::{Context, Env, Method, Request, Response};

use crate::http::{self, escape_html};
use crate::{bindings, coalesce, config, known_bots, random, store};

/// `GET|HEAD /o/{token}[.gif]`: always the GIF; an open is recorded only for a genuine token.
pub fn open(req: &Request, env: &Env, ctx: &Context, token: &str, now: u64) -> Response {
    let token = token.strip_suffix(".gif").unwrap_or(token);
    if let Ok(claims) = config::verify_token(env, token, Purpose::Open, now) {
        record(req, env, ctx, EventKind::Open, &claims, now);
    }
    http::pixel()
}

/// `GET|HEAD /c/{token}`: `302` to the signed destination, or a `400` page with no `Location`.
/// A destination on one of the sites' own origins also gets the attribution parameter. The
/// letter's hidden honeypot link answers a page of its own: only machines follow it.
pub async fn click(req: &Request, env: &Env, ctx: &Context, token: &str, now: u64) -> Response {
    match config::verify_token(env, token, Purpose::Click, now) {
        Ok(claims) => {
            let Some(link) = &claims.link else {
                // verify() guarantees a link on click tokens; stay total anyway.
                return invalid_link_page();
            };
            if link.index == HONEYPOT_LINK {
                record(req, env, ctx, EventKind::Click, &claims, now);
                return http::page(200, "Nothing here", "<p>This link leads nowhere.</p>");
            }
            let origins = store::site_origins(env, now).await;
            let first_party = is_first_party(&origins, &link.url);
            let location = match first_party
                .then(|| attribution_token(env, &claims, link.index, now))
                .flatten()
            {
                Some(token) => append_query_param(&link.url, ATTRIBUTION_PARAM, &token),
                None => link.url.clone(),
            };
            record(req, env, ctx, EventKind::Click, &claims, now);
            http::redirect(&location)
        }
        Err(_) => invalid_link_page(),
    }
}

/// The short-lived conversion token the redirect hands to the site: which letter and link brought
/// the visitor, valid for the attribution window (`ATTRIBUTION_DAYS`, 0 = off).
fn attribution_token(env: &Env, click: &Claims, link: u16, now: u64) -> Option<String> {
    let days = config::attribution_days(env);
    if days == 0 {
        return None;
    }
    let issued_at = u32::try_from(now).ok()?;
    let claims = Claims {
        purpose: Purpose::Conversion,
        issued_at,
        expires_at: Some(issued_at.saturating_add(days.saturating_mul(86_400))),
        campaign: click.campaign.clone(),
        contact: click.contact.clone(),
        message: click.message.clone(),
        link: Some(Link {
            index: link,
            url: String::new(),
        }),
    };
    config::keyring(env)?.sign(&claims).ok()
}

/// `GET /u/{token}`: a page with one button. Changes nothing, so mail scanners that follow every
/// link cannot unsubscribe anyone.
pub fn unsubscribe_page(env: &Env, token: &str, now: u64) -> Response {
    match config::verify_token(env, token, Purpose::Unsubscribe, now) {
        Ok(_) => http::page(
            200,
            "Unsubscribe",
            "<p>Click the button to stop receiving these emails.</p>\
<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form>",
        ),
        Err(e) => unsubscribe_error_page(&e),
    }
}

/// `POST /u/{token}` with `List-Unsubscribe=One-Click` (RFC 8058): suppresses the contact before
/// answering, so every later send sees it.
pub async fn unsubscribe(
    mut req: Request,
    env: &Env,
    ctx: &Context,
    token: &str,
    now: u64,
) -> Response {
    let claims = match config::verify_token(env, token, Purpose::Unsubscribe, now) {
        Ok(c) => c,
        Err(e) => return unsubscribe_error_page(&e),
    };
    match is_one_click_body(&mut req).await {
        Ok(true) => {}
        Ok(false) => {
            return http::page(
                400,
                "Unsubscribe",
                "<p>This request did not carry <code>List-Unsubscribe=One-Click</code>. Use the button on the unsubscribe page.</p>",
            )
        }
        Err(e) => return http::page(e.status, "Unsubscribe", &format!("<p>{}</p>", escape_html(&e.message))),
    }
    if let Err(e) =
        store::suppress(env, &claims.contact, "unsubscribed", &claims.campaign, now).await
    {
        worker::console_error!("unsubscribe: suppression not stored: {e}");
        return http::page(
            503,
            "Unsubscribe",
            "<p>We could not record this right now. Please try again in a minute.</p>",
        );
    }
    record(&req, env, ctx, EventKind::Unsubscribe, &claims, now);
    http::page(
        200,
        "Unsubscribed",
        "<p>You will not receive these emails any more.</p>",
    )
}

/// Accepts `application/x-www-form-urlencoded` and `multipart/form-data`, as RFC 8058 allows, of
/// at most [`http::MAX_FORM_BYTES`] (`Err` with `413` above).
async fn is_one_click_body(req: &mut Request) -> Result<bool, http::ApiError> {
    let content_type = http::content_type(req);
    if !(content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("multipart/form-data"))
    {
        return Ok(false);
    }
    match http::read_form(req, http::MAX_FORM_BYTES).await {
        Ok(form) => Ok(matches!(
            form.get_field("List-Unsubscribe").as_deref(),
            Some("One-Click")
        )),
        Err(e) if e.status == 413 => Err(e),
        Err(_) => Ok(false),
    }
}

fn invalid_link_page() -> Response {
    http::page(400, "This link is not valid", "<p>The link may have been altered or cut off. Try the link from the original email again.</p>")
}

fn unsubscribe_error_page(e: &TokenError) -> Response {
    let why = match e {
        TokenError::Expired => "This unsubscribe link has expired. Use the link in a more recent email, or reply to ask us to stop.",
        _ => "This unsubscribe link is not valid. It may have been altered or cut off.",
    };
    http::page(400, "Unsubscribe", &format!("<p>{}</p>", escape_html(why)))
}

/// Classifies the request and enqueues the event after the response is sent.
fn record(req: &Request, env: &Env, ctx: &Context, kind: EventKind, claims: &Claims, now: u64) {
    let header = |name: &str| http::header(req, name);
    let ip_text = header("CF-Connecting-IP");
    let (label, reason) = match kind {
        EventKind::Unsubscribe => (None, None),
        EventKind::Open | EventKind::Click => {
            let user_agent = header("User-Agent");
            let signals = Signals {
                is_head: req.method() == Method::Head,
                user_agent: user_agent.as_deref(),
                ip: ip_text.as_deref().and_then(|s| s.parse::<IpAddr>().ok()),
                asn: req.cf().and_then(|cf| cf.asn()),
                has_fetch_metadata: ["Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-Site"]
                    .iter()
                    .any(|h| header(h).is_some()),
                seconds_since_send: now as i64 - i64::from(claims.issued_at),
                known_bot: user_agent.as_deref().is_some_and(known_bots::is_known_bot),
                honeypot: claims
                    .link
                    .as_ref()
                    .is_some_and(|l| l.index == HONEYPOT_LINK),
            };
            let interaction = if kind == EventKind::Open {
                Interaction::Open
            } else {
                Interaction::Click
            };
            let c = classify(interaction, &signals);
            (Some(c.label), Some(c.reason))
        }
    };
    let ip_hash = config::hash_client_ip(env, ip_text.as_deref(), now);
    let Some(random) = random::bytes16() else {
        return;
    };
    let message = QueueMessage::TrackV1(TrackEvent {
        id: event_id(random),
        kind,
        at: now,
        campaign: claims.campaign.clone(),
        contact: claims.contact.clone(),
        message: claims.message.clone(),
        link: claims.link.as_ref().map(|l| l.index),
        label,
        reason,
        ip_hash,
    });
    coalesce::enqueue(env, ctx, bindings::EVENTS, &message);
}
