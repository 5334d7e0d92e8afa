//! `PUT|GET /v1/templates/{id}`: message content. A template is compiled when saved; errors name
//! the part and line, and nothing is stored. A template used by an approved (or later) campaign
//! is locked: what was approved is what goes out.

use std::collections::BTreeMap;

use epistola_core::auth::Scope;
use epistola_core::campaign::validate_audience;
use epistola_core::ids::validate_id;
use epistola_core::track::FieldErrors;
use epistola_sender::template::{check, TemplateSource};
use epistola_worker_kit::auth::require_scope;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

use crate::http::{self, read_json, ApiError, ApiResult};
use crate::store::{self, TemplateRow};

const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateInput {
    name: String,
    subject: String,
    html: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    sms: Option<String>,
    /// Attribute → value the recipient must have, e.g. `{"gender": "female"}`.
    #[serde(default)]
    audience: BTreeMap<String, String>,
}

pub async fn put(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::CampaignsWrite).await?;
    validate_id(id, false).map_err(|e| ApiError::field("template", e.to_string()))?;
    let input: TemplateInput = read_json(&mut req, MAX_TEMPLATE_BYTES).await?;
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
    Ok(http::json(200, &json!({ "template": template_json(&row) })))
}

pub async fn get(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let row = store::get_template(env, id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such template"))?;
    Ok(http::json(200, &json!({ "template": template_json(&row) })))
}

fn template_json(t: &TemplateRow) -> serde_json::Value {
    json!({
        "id": t.id, "name": t.name, "subject": t.subject, "html": t.html, "text": t.text, "sms": t.sms,
        "audience": serde_json::from_slice::<serde_json::Value>(t.audience.as_bytes()).unwrap_or_default(),
        "updated_at": t.updated_at,
    })
}
