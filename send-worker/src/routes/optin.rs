//! Double opt-in and the preference centre, for recipients:
//! `GET|POST /confirm/{token}` (the button confirms, so mail scanners following links cannot) and
//! `GET|POST /p/{token}` (see and change consent per purpose and channel).

use epistola_core::consent::{current, pending_requests, preference_changes, texts_to_confirm};
use epistola_core::event::{CaptureJob, SendJob};
use epistola_core::site::{Channel, SiteConfig};
use epistola_core::token::{Claims, Purpose, TokenError};
use epistola_core::track::UNSUBSCRIBE_TTL_SECONDS;
use epistola_worker_kit::db::{consent_entries, enqueue};
use worker::{Env, FormEntry, Request, Response};

use crate::http::{self, escape_html};
use crate::{bindings, config, store};

fn invalid_page(title: &str, e: &TokenError) -> Response {
    let why = match e {
        TokenError::Expired => "This link has expired.",
        _ => "This link is not valid. It may have been altered or cut off.",
    };
    http::page(400, title, &format!("<p>{}</p>", escape_html(why)))
}

fn too_large(title: &str) -> Response {
    http::page(
        413,
        title,
        "<p>This form is larger than any form on this page.</p>",
    )
}

fn unavailable(title: &str, context: &str, e: impl std::fmt::Display) -> Response {
    worker::console_error!("{context}: {e}");
    http::page(
        503,
        title,
        "<p>We could not do this right now. Please try again in a minute.</p>",
    )
}

fn client(req: &Request, env: &Env, now: u64) -> (Option<String>, Option<String>) {
    let ip_hash =
        config::hash_client_ip(env, http::header(req, "CF-Connecting-IP").as_deref(), now);
    (ip_hash, http::header(req, "User-Agent"))
}

/// `GET /confirm/{token}`: what confirming will grant and the details that will be saved, and
/// one button. Confirms nothing.
pub async fn confirm_page(env: &Env, token: &str, now: u64) -> Response {
    const TITLE: &str = "Confirm your address";
    let claims = match config::verify_token(env, token, Purpose::Confirm, now) {
        Ok(c) => c,
        Err(e) => return invalid_page(TITLE, &e),
    };
    let (capture, site) = match (
        store::pending_capture(env, &claims.message, &claims.contact).await,
        store::get_site(env, &claims.campaign).await,
    ) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => return unavailable(TITLE, "confirm page", e),
    };
    let (Some(capture), Some(site)) = (capture, site) else {
        return http::page(400, TITLE, "<p>We could not find this sign-up.</p>");
    };
    if capture.status != "pending_confirmation" {
        return http::page(200, TITLE, "<p>This address is already confirmed.</p>");
    }
    let requested = pending_requests(&capture.consents).unwrap_or_default();
    let grants: String = texts_to_confirm(&site, &requested)
        .iter()
        .map(|t| format!("<li>{}</li>", escape_html(&t.text)))
        .collect();
    // The details come from whoever filled in the form: the address's owner sees them before they
    // are saved, and can leave instead of confirming.
    let mut details = String::new();
    let fields: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(capture.fields.as_bytes()).unwrap_or_default();
    let labelled = fields.iter().map(|(name, value)| {
        let label = site
            .fields
            .iter()
            .find(|f| &f.name == name)
            .map(|f| f.label.as_str())
            .or_else(|| {
                site.quiz
                    .iter()
                    .find(|q| &q.id == name)
                    .map(|q| q.question.as_str())
            })
            .unwrap_or(name);
        (label, value.as_str())
    });
    for (label, value) in labelled.chain(capture.phone.as_deref().map(|p| ("Phone", p))) {
        details.push_str(&format!(
            "<li>{}: {}</li>",
            escape_html(label),
            escape_html(value)
        ));
    }
    if !details.is_empty() {
        details = format!("<p>These details will be saved with it:</p><ul>{details}</ul>");
    }
    http::page(
        200,
        TITLE,
        &format!(
            "<p>{}: press the button to confirm your e-mail address and agree to:</p><ul>{grants}</ul>{details}\
<form method=\"post\"><button type=\"submit\">Confirm my address</button></form>\
<p><small>If you did not sign up, ignore this page: nothing is saved or sent without the button.</small></p>",
            escape_html(&site.name)
        ),
    )
}

/// `POST /confirm/{token}`: confirms the capture (once), queues the promised item, and offers the
/// other purposes instead of subscribing the visitor to them.
pub async fn confirm(mut req: Request, env: &Env, token: &str, now: u64) -> Response {
    const TITLE: &str = "Confirm your address";
    let claims = match config::verify_token(env, token, Purpose::Confirm, now) {
        Ok(c) => c,
        Err(e) => return invalid_page(TITLE, &e),
    };
    // The button posts an empty form; anything bigger than a form is refused unread.
    if let Err(e) = http::read_limited(&mut req, http::MAX_FORM_BYTES).await {
        if e.status == 413 {
            return too_large(TITLE);
        }
    }
    let (ip_hash, user_agent) = client(&req, env, now);
    let status = store::confirm_capture(
        env,
        &claims.message,
        &claims.contact,
        ip_hash.as_deref(),
        user_agent.as_deref(),
        now,
    )
    .await;
    let requested = match status {
        Ok(Some((s, consents))) if s == "confirmed" => {
            pending_requests(&consents).unwrap_or_default()
        }
        Ok(_) => return http::page(400, TITLE, "<p>We could not find this sign-up.</p>"),
        Err(e) => return unavailable(TITLE, "confirm", e),
    };
    // Queued on every confirmation POST: the delivery's send key makes repeats harmless, and a
    // failed enqueue is retried by pressing the button again.
    let base_url = match http::public_base_url(&req, env) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let job = CaptureJob {
        capture: claims.message.clone(),
        base_url: base_url.clone(),
    };
    if let Err(e) = enqueue(env, bindings::SENDS, &SendJob::LeadConfirmedV1(job)).await {
        return unavailable(TITLE, "confirm: delivery not queued", e);
    }
    let site = store::get_site(env, &claims.campaign).await.ok().flatten();
    let promise = site.as_ref().map_or(String::new(), |s| {
        let granted: String = texts_to_confirm(s, &requested)
            .iter()
            .map(|t| format!("<li>{}</li>", escape_html(&t.text)))
            .collect();
        format!(
            "<p>You agreed to:</p><ul>{granted}</ul><p>{} is on its way to your inbox.</p>",
            escape_html(&s.promise.title)
        )
    });
    let offer = match (
        site.as_ref(),
        config::sign_contact_token(
            env,
            Purpose::Preferences,
            &claims.campaign,
            &claims.contact,
            "",
            now,
            UNSUBSCRIBE_TTL_SECONDS,
        ),
    ) {
        (Some(site), Some(p)) if site.consents.iter().any(|c| !c.in_form) => {
            let items: String = site
                .consents
                .iter()
                .filter(|c| !c.in_form)
                .map(|c| format!("<li>{}</li>", escape_html(&c.text)))
                .collect();
            format!(
                "<p>Would you also like to hear from us? Nothing more is sent unless you choose it:</p><ul>{items}</ul>\
<p><a href=\"{}/p/{p}\">Choose what you receive</a></p>",
                escape_html(&base_url)
            )
        }
        _ => String::new(),
    };
    http::page(
        200,
        "Thank you, your address is confirmed",
        &format!("{promise}{offer}"),
    )
}

/// `GET /p/{token}`: every consent the site offers, as the contact has it now.
pub async fn preferences_page(env: &Env, token: &str, now: u64) -> Response {
    const TITLE: &str = "Your subscriptions";
    let claims = match config::verify_token(env, token, Purpose::Preferences, now) {
        Ok(c) => c,
        Err(e) => return invalid_page(TITLE, &e),
    };
    let page = async {
        match site_of(env, &claims).await? {
            Some((site_id, site)) => {
                render_preferences(env, &claims.contact, &site_id, &site).await
            }
            None => Ok(gone()),
        }
    };
    match page.await {
        Ok(r) => r,
        Err(e) => unavailable(TITLE, "preferences", e),
    }
}

/// `POST /p/{token}`: the ticked boxes become `given` / `withdrawn` ledger rows.
pub async fn save_preferences(mut req: Request, env: &Env, token: &str, now: u64) -> Response {
    const TITLE: &str = "Your subscriptions";
    let claims = match config::verify_token(env, token, Purpose::Preferences, now) {
        Ok(c) => c,
        Err(e) => return invalid_page(TITLE, &e),
    };
    if !http::content_type(&req).starts_with("application/x-www-form-urlencoded") {
        return http::page(415, TITLE, "<p>Please use the form on the page.</p>");
    }
    let wanted: Vec<(String, Channel)> = match http::read_form(&mut req, http::MAX_FORM_BYTES).await
    {
        Ok(form) => form
            .get_all("c")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| match entry {
                FormEntry::Field(v) => {
                    let (purpose, channel) = v.rsplit_once(':')?;
                    Some((purpose.to_owned(), Channel::parse(channel)?))
                }
                FormEntry::File(_) => None,
            })
            .collect(),
        Err(e) if e.status == 413 => return too_large(TITLE),
        Err(_) => return http::page(400, TITLE, "<p>Please use the form on the page.</p>"),
    };
    let (ip_hash, user_agent) = client(&req, env, now);
    let result = async {
        let Some((site_id, site)) = site_of(env, &claims).await? else {
            return Ok(gone());
        };
        let state = current(&consent_entries(env, &claims.contact, &site_id).await?);
        let has_phone = store::contact_has_phone(env, &claims.contact).await?;
        let changes = preference_changes(&site, &state, &wanted, has_phone);
        store::append_consent_changes(
            env,
            &claims.contact,
            &site_id,
            &changes,
            ip_hash.as_deref(),
            user_agent.as_deref(),
            now,
        )
        .await?;
        render_preferences(env, &claims.contact, &site_id, &site).await
    };
    match result.await {
        Ok(r) => r,
        Err(e) => unavailable(TITLE, "save preferences", e),
    }
}

type PageResult = Result<Response, Box<dyn std::error::Error>>;

fn gone() -> Response {
    http::page(
        404,
        "Your subscriptions",
        "<p>These subscriptions no longer exist.</p>",
    )
}

/// The site whose consents a preference link manages. Links sign the site id; letters sent before
/// that fix signed the campaign or chain step id instead, which is resolved to its site here, so
/// links already in inboxes keep working.
async fn site_of(
    env: &Env,
    claims: &Claims,
) -> Result<Option<(String, SiteConfig)>, worker::Error> {
    if let Some(site) = store::get_site(env, &claims.campaign).await? {
        return Ok(Some((claims.campaign.clone(), site)));
    }
    let Some(site_id) = store::site_of_sender(env, &claims.campaign).await? else {
        return Ok(None);
    };
    Ok(store::get_site(env, &site_id).await?.map(|s| (site_id, s)))
}

async fn render_preferences(
    env: &Env,
    contact: &str,
    site_id: &str,
    site: &SiteConfig,
) -> PageResult {
    let state = current(&consent_entries(env, contact, site_id).await?);
    let has_phone = store::contact_has_phone(env, contact).await?;
    let mut rows = String::new();
    for c in &site.consents {
        let key = (c.purpose.clone(), c.channel);
        let on = state.get(&key).copied().unwrap_or(false);
        let disabled = c.channel == Channel::Sms && !has_phone;
        let value = format!("{}:{}", c.purpose, c.channel.as_str());
        rows.push_str(&format!(
            "<p><label><input type=\"checkbox\" name=\"c\" value=\"{}\"{}{}> {} <small>({})</small></label>{}</p>",
            escape_html(&value),
            if on { " checked" } else { "" },
            if disabled { " disabled" } else { "" },
            escape_html(&c.text),
            escape_html(c.channel.as_str()),
            if disabled { " <small>— needs a phone number</small>" } else { "" },
        ));
    }
    let body = format!(
        "<p>{}: choose what you want to receive. Untick to stop; you can change this at any time.</p>\
<form method=\"post\">{rows}<button type=\"submit\">Save</button></form>",
        escape_html(&site.name)
    );
    Ok(http::page(200, "Your subscriptions", &body))
}
