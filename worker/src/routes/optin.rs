//! Double opt-in and the preference centre, for recipients:
//! `GET|POST /confirm/{token}` (the button confirms, so mail scanners following links cannot) and
//! `GET|POST /p/{token}` (see and change consent per purpose and channel).

use epistola_core::consent::{current, preference_changes};
use epistola_core::event::{CaptureJob, SendJob};
use epistola_core::site::{Channel, SiteConfig};
use epistola_core::token::{Claims, Purpose, TokenError};
use epistola_core::track::UNSUBSCRIBE_TTL_SECONDS;
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

/// `GET /confirm/{token}`: a page with one button. Confirms nothing.
pub fn confirm_page(env: &Env, token: &str, now: u64) -> Response {
    match config::verify_token(env, token, Purpose::Confirm, now) {
        Ok(_) => http::page(
            200,
            "Confirm your address",
            "<p>Press the button to confirm your e-mail address.</p>\
<form method=\"post\"><button type=\"submit\">Confirm my address</button></form>",
        ),
        Err(e) => invalid_page("Confirm your address", &e),
    }
}

/// `POST /confirm/{token}`: confirms the capture (once), queues the promised item, and offers the
/// other purposes instead of subscribing the visitor to them.
pub async fn confirm(req: Request, env: &Env, token: &str, now: u64) -> Response {
    const TITLE: &str = "Confirm your address";
    let claims = match config::verify_token(env, token, Purpose::Confirm, now) {
        Ok(c) => c,
        Err(e) => return invalid_page(TITLE, &e),
    };
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
    match status {
        Ok(Some(s)) if s == "confirmed" => {}
        Ok(_) => return http::page(400, TITLE, "<p>We could not find this sign-up.</p>"),
        Err(e) => return unavailable(TITLE, "confirm", e),
    }
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
    if let Err(e) = store::enqueue(env, bindings::SENDS, &SendJob::LeadConfirmedV1(job)).await {
        return unavailable(TITLE, "confirm: delivery not queued", e);
    }
    let site = store::get_site(env, &claims.campaign).await.ok().flatten();
    let promise = site.as_ref().map_or(String::new(), |s| {
        format!(
            "<p>{} is on its way to your inbox.</p>",
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
    match render_preferences(env, &claims, None).await {
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
    let wanted: Vec<(String, Channel)> = match req.form_data().await {
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
        Err(_) => return http::page(400, TITLE, "<p>Please use the form on the page.</p>"),
    };
    let (ip_hash, user_agent) = client(&req, env, now);
    let result = async {
        let site = store::get_site(env, &claims.campaign)
            .await?
            .ok_or("site is gone")?;
        let state = current(&store::consent_entries(env, &claims.contact, &claims.campaign).await?);
        let has_phone = store::contact_has_phone(env, &claims.contact).await?;
        let changes = preference_changes(&site, &state, &wanted, has_phone);
        store::append_consent_changes(
            env,
            &claims.contact,
            &claims.campaign,
            &changes,
            ip_hash.as_deref(),
            user_agent.as_deref(),
            now,
        )
        .await?;
        render_preferences(env, &claims, Some(&site)).await
    };
    match result.await {
        Ok(r) => r,
        Err(e) => unavailable(TITLE, "save preferences", e),
    }
}

async fn render_preferences(
    env: &Env,
    claims: &Claims,
    site: Option<&SiteConfig>,
) -> Result<Response, Box<dyn std::error::Error>> {
    let loaded;
    let site = match site {
        Some(s) => s,
        None => {
            loaded = store::get_site(env, &claims.campaign)
                .await?
                .ok_or("site is gone")?;
            &loaded
        }
    };
    let state = current(&store::consent_entries(env, &claims.contact, &claims.campaign).await?);
    let has_phone = store::contact_has_phone(env, &claims.contact).await?;
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
