//! `PUT|GET /v1/templates/{id}`: message content. A template is compiled when saved; errors name
//! the part and line, and nothing is stored. A template used by an approved (or later) campaign
//! is locked: what was approved is what goes out.

use std::collections::BTreeMap;

use epistola_core::auth::Scope;
use epistola_core::campaign::validate_audience;
use epistola_core::capture::normalize_email;
use epistola_core::ids::validate_id;
use epistola_core::token::Keyring;
use epistola_core::track::FieldErrors;
use epistola_sender::compose::{
    compose, Campaign, CampaignContext, ContactContext, LetterContext, Recipient, SiteContext,
};
use epistola_sender::sms::sms_text;
use epistola_sender::template::{check, Compiled, TemplateSource};
use epistola_worker_kit::auth::require_scope;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

use super::listing;
use crate::campaign_jobs::contact_attributes;
use crate::http::{self, read_json, ApiError, ApiResult};
use crate::random;
use crate::store::{self, TemplateRow};

const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub name: String,
    pub subject: String,
    pub html: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub sms: Option<String>,
    /// Attribute → value the recipient must have, e.g. `{"gender": "female"}`.
    #[serde(default)]
    pub audience: BTreeMap<String, String>,
}

pub async fn put(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::CampaignsWrite).await?;
    let input: TemplateInput = read_json(&mut req, MAX_TEMPLATE_BYTES).await?;
    let row = put_checked(env, id, input, now).await?;
    Ok(http::json(200, &json!({ "template": template_json(&row) })))
}

/// Compiles and stores template `id` (the API's `PUT` and the dashboard's editor): errors name
/// the part and line, and nothing is stored; a template an approved campaign sends is locked.
pub async fn put_checked(
    env: &Env,
    id: &str,
    input: TemplateInput,
    now: u64,
) -> ApiResult<TemplateRow> {
    validate_id(id, false).map_err(|e| ApiError::field("template", e.to_string()))?;
    let mut errors: FieldErrors = validate_audience(&input.audience);
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errors.insert("name".into(), "must be 1-200 characters".into());
    }
    let source = TemplateSource {
        subject: input.subject,
        html: input.html,
        text: input.text,
        sms: input.sms,
    };
    for problem in check(&source) {
        errors
            .entry(problem.part.to_owned())
            .or_insert(problem.message);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let row = TemplateRow {
        id: id.to_owned(),
        name: input.name,
        subject: source.subject,
        html: source.html,
        text: source.text,
        sms: source.sms,
        audience: serde_json::to_string(&input.audience)
            .map_err(|e| ApiError::internal("audience", e))?,
        updated_at: now as i64,
    };
    if !store::put_template(env, &row, now).await? {
        return Err(ApiError::new(
            409,
            "locked",
            "an approved campaign or an active chain sends this template; cancel or pause it, or use a new template",
        ));
    }
    Ok(row)
}

pub async fn get(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let row = store::get_template(env, id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such template"))?;
    Ok(http::json(200, &json!({ "template": template_json(&row) })))
}

/// `GET /v1/templates`: one page, newest first (names and subjects; bodies by id).
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let page = listing::requested(req)?;
    let rows = store::list_templates(env, &page).await?;
    Ok(listing::answer("templates", rows, page.limit))
}

/// `DELETE /v1/templates/{id}`: only a template no campaign or chain refers to.
pub async fn delete(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    listing::deletion(
        store::delete_unused_template(env, id).await?,
        "template",
        id,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// Contact id or address.
    pub contact: String,
    /// The site whose name and sender the letter carries.
    pub site: String,
    /// Unsaved edits: each part given replaces the stored one (all that is needed when the
    /// template is not stored yet: `subject` and `html`).
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub sms: Option<String>,
}

/// `POST /v1/templates/{id}/preview`: the letter exactly as `compose` makes it for one contact
/// (subject, HTML with the pixel, footer and hidden link, plain text, SMS) and the links that
/// will be tracked. Stores and sends nothing; its tokens are signed with a key made for this
/// preview alone, so opening or following them at the edge counts nothing.
pub async fn preview(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::CampaignsWrite).await?;
    let input: PreviewInput = read_json(&mut req, MAX_TEMPLATE_BYTES).await?;
    let base_url = http::public_base_url(&req, env)?;
    let preview = preview_of(env, id, input, &base_url, now).await?;
    Ok(http::json(200, &json!({ "preview": preview })))
}

/// The letter of template `id` (with `input`'s unsaved parts) as one contact gets it: the API's
/// preview and the dashboard editor's.
pub async fn preview_of(
    env: &Env,
    id: &str,
    input: PreviewInput,
    base_url: &str,
    now: u64,
) -> ApiResult<serde_json::Value> {
    validate_id(id, false).map_err(|e| ApiError::field("template", e.to_string()))?;
    let stored = store::get_template(env, id).await?;
    let mut errors = FieldErrors::new();
    let base =
        |part: Option<String>, stored: Option<&String>, name: &str, errors: &mut FieldErrors| {
            part.or_else(|| stored.cloned()).unwrap_or_else(|| {
                errors.insert(name.into(), format!("required: no template {id} is stored"));
                String::new()
            })
        };
    let source = TemplateSource {
        subject: base(
            input.subject,
            stored.as_ref().map(|t| &t.subject),
            "subject",
            &mut errors,
        ),
        html: base(
            input.html,
            stored.as_ref().map(|t| &t.html),
            "html",
            &mut errors,
        ),
        text: input
            .text
            .or_else(|| stored.as_ref().and_then(|t| t.text.clone())),
        sms: input
            .sms
            .or_else(|| stored.as_ref().and_then(|t| t.sms.clone())),
    };
    let name = stored.as_ref().map_or(id, |t| t.name.as_str());
    let letter = Letter {
        name,
        source,
        contact: input.contact,
        site: input.site,
    };
    preview_letter(env, letter, errors, base_url, now).await
}

/// A letter to preview: the template's name and parts, and whom and which site it is for.
pub struct Letter<'a> {
    pub name: &'a str,
    pub source: TemplateSource,
    /// Contact id or address.
    pub contact: String,
    pub site: String,
}

/// Composes `letter` for its contact (the editor passes exactly what is typed); `errors` already
/// found are answered with any others.
pub async fn preview_letter(
    env: &Env,
    letter: Letter<'_>,
    mut errors: FieldErrors,
    base_url: &str,
    now: u64,
) -> ApiResult<serde_json::Value> {
    let Letter {
        name,
        source,
        contact,
        site: site_id,
    } = letter;
    if errors.is_empty() {
        for problem in check(&source) {
            errors
                .entry(problem.part.to_owned())
                .or_insert(problem.message);
        }
    }
    let key = normalize_email(&contact).unwrap_or(contact);
    let contact = store::contact_by_key(env, &key).await?;
    if contact.is_none() {
        errors.insert(
            "contact".into(),
            "no such contact (give an id or an address)".into(),
        );
    }
    let site = store::get_site(env, &site_id).await?;
    if site.is_none() {
        errors.insert("site".into(), "no such site".into());
    }
    let (Some(contact), Some(site), true) = (contact, site, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let compiled = Compiled::new(&source).map_err(|e| ApiError::field(e.part, e.message))?;
    let secret =
        random::bytes::<32>().ok_or_else(|| ApiError::internal("preview", "no randomness"))?;
    let keys = Keyring::new(&[(255, &secret)]).map_err(|e| ApiError::internal("preview", e))?;
    let email = contact.email.clone().unwrap_or_default();
    let attributes = contact_attributes(&contact);
    let context = LetterContext {
        contact: ContactContext {
            email: &email,
            attributes: &attributes,
        },
        campaign: CampaignContext {
            id: "preview",
            name,
        },
        site: SiteContext { name: &site.name },
    };
    let composed = compose(
        &Campaign {
            id: "preview",
            site: &site_id,
            template: &compiled,
            base_url,
            from_name: &site.name,
            from: &site.from_email,
            anonymous: false,
            keys: &keys,
            now,
        },
        &Recipient {
            contact: &contact.id,
            email: &email,
            message: "preview",
            context: &context,
        },
    )
    .map_err(|e| ApiError::field("html", e.to_string()))?;
    let links: Vec<_> = composed
        .links
        .iter()
        .map(|(index, url)| json!({ "index": index, "url": url }))
        .collect();
    Ok(json!({
        "contact": contact.id, "to": email, "from": format!("{} <{}>", site.name, site.from_email),
        "subject": composed.subject, "html": composed.html, "text": composed.text,
        "sms": composed.sms.as_deref().map(sms_text), "links": links,
    }))
}

fn template_json(t: &TemplateRow) -> serde_json::Value {
    json!({
        "id": t.id, "name": t.name, "subject": t.subject, "html": t.html, "text": t.text, "sms": t.sms,
        "audience": serde_json::from_slice::<serde_json::Value>(t.audience.as_bytes()).unwrap_or_default(),
        "updated_at": t.updated_at,
    })
}
