//! `/v1/chains/{id}` (trigger chains) and `POST /v1/events` (server-side events that enrol
//! contacts: `cart.abandoned`, `purchase`, custom types).

use epistola_core::auth::Scope;
use epistola_core::capture::normalize_email;
use epistola_core::chain::{step_stats_id, validate_chain, validate_event_type, ChainInput};
use epistola_core::conversion::{order_from_event_data, Order};
use epistola_core::ids::validate_id;
use epistola_core::track::FieldErrors;
use epistola_worker_kit::auth::require_scope;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Request, Response};

use super::listing;
use crate::http::{self, read_json, ApiError, ApiResult};
use crate::random;
use crate::store::{self, ChainRow, NewEvent, Purchase};
use epistola_worker_kit::config::attribution_days;

const MAX_CHAIN_BYTES: usize = 64 * 1024;
const MAX_EVENTS_BYTES: usize = 1024 * 1024;
const MAX_EVENTS: usize = 1000;
const MAX_EVENT_DATA_BYTES: usize = 4096;

/// `PUT /v1/chains/{id}`: creates or replaces a chain (as a draft; running contacts keep going
/// with the new steps from their current step on).
pub async fn put(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::CampaignsWrite).await?;
    validate_id(id, false).map_err(|e| ApiError::field("chain", e.to_string()))?;
    let input: ChainInput = read_json(&mut req, MAX_CHAIN_BYTES).await?;
    let mut errors = validate_chain(&input);
    for (i, step) in input.steps.iter().enumerate() {
        if !errors.contains_key(&format!("steps[{i}].template"))
            && store::get_template(env, &step.template).await?.is_none()
        {
            errors.insert(format!("steps[{i}].template"), "no such template".into());
        }
    }
    if !errors.contains_key("site") && store::get_site(env, &input.site).await?.is_none() {
        errors.insert("site".into(), "no such site".into());
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let row = ChainRow {
        id: id.to_owned(),
        name: input.name.trim().to_owned(),
        site_id: input.site,
        purpose: input.purpose,
        trigger: input.trigger,
        steps: serde_json::to_string(&input.steps).map_err(|e| ApiError::internal("steps", e))?,
        status: "draft".into(),
        base_url: String::new(),
        created_at: now as i64,
        updated_at: now as i64,
        paused_reason: None,
        paused_at: None,
    };
    store::put_chain(env, &row, now).await?;
    chain_json(env, id).await.map(|v| http::json(200, &v))
}

async fn chain_json(env: &Env, id: &str) -> ApiResult<Value> {
    let c = store::get_chain(env, id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such chain"))?;
    let steps: Value = serde_json::from_slice(c.steps.as_bytes()).unwrap_or_default();
    let stats_ids: Vec<String> = (0..steps.as_array().map_or(0, Vec::len))
        .map(|i| step_stats_id(&c.id, i))
        .collect();
    let runs: serde_json::Map<String, Value> = store::chain_run_counts(env, id)
        .await?
        .into_iter()
        .map(|(status, n)| (status, json!(n)))
        .collect();
    Ok(json!({
        "chain": { "id": c.id, "name": c.name, "site": c.site_id, "purpose": c.purpose, "trigger": c.trigger,
                   "steps": steps, "status": c.status, "step_stats_ids": stats_ids,
                   "created_at": c.created_at, "updated_at": c.updated_at,
                   "paused": c.paused_reason.as_ref().map(|reason| json!({"reason": reason, "since": c.paused_at})) },
        "runs": runs,
    }))
}

pub async fn get(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    chain_json(env, id).await.map(|v| http::json(200, &v))
}

/// `GET /v1/chains`: one page, newest first, with the number of steps.
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let page = listing::requested(req)?;
    let rows = store::list_chains(env, &page).await?;
    Ok(listing::answer("chains", rows, page.limit))
}

/// `DELETE /v1/chains/{id}`: only a chain that was never activated.
pub async fn delete(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    listing::deletion(store::delete_chain_draft(env, id).await?, "chain", id)
}

/// `POST /v1/chains/{id}/activate` (scope `campaigns:approve`): starts enrolling on its trigger.
pub async fn activate(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsApprove).await?;
    let base_url = http::public_base_url(req, env)?;
    if !store::set_chain_status(env, id, "active", &base_url, now).await? {
        return Err(ApiError::new(404, "not_found", "no such chain"));
    }
    chain_json(env, id).await.map(|v| http::json(200, &v))
}

/// `POST /v1/chains/{id}/pause`: stops enrolling and sending; runs resume where they were.
pub async fn pause(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let c = store::get_chain(env, id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such chain"))?;
    store::set_chain_status(env, id, "paused", &c.base_url, now).await?;
    chain_json(env, id).await.map(|v| http::json(200, &v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventInput {
    /// Idempotency key: the same id is stored (and enrols) once.
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    /// Contact id or address.
    contact: String,
    /// Unix seconds; now if absent.
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    data: Option<Value>,
    /// The order of a `purchase` event that names one (`data.order_id`), checked by
    /// `check_event`: attributed and counted as a conversion.
    #[serde(skip)]
    order: Option<Order>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EventsBody {
    Many { events: Vec<Value> },
    One(Value),
}

/// `POST /v1/events` (scope `events:write`): one event, or `{"events": [...]}` (up to 1000).
/// Valid events are stored and enrol their contacts in active chains; the rest are reported by row.
pub async fn post_events(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::EventsWrite).await?;
    let body: EventsBody = read_json(&mut req, MAX_EVENTS_BYTES).await?;
    let raw = match body {
        EventsBody::Many { events } => events,
        EventsBody::One(v) => vec![v],
    };
    if raw.len() > MAX_EVENTS {
        return Err(ApiError::field(
            "events",
            format!("at most {MAX_EVENTS} events per request"),
        ));
    }
    let mut errors = Vec::new();
    let mut valid = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        match check_event(v, now) {
            Ok(e) => valid.push((i, e)),
            Err(fields) => errors.push(json!({ "row": i + 1, "fields": fields })),
        }
    }
    let keys: Vec<String> = valid.iter().map(|(_, e)| e.contact.clone()).collect();
    let known = store::resolve_contacts(env, &keys).await?;
    let mut events = Vec::new();
    let mut purchases = Vec::new();
    for (i, e) in valid {
        let Some(contact_id) = known.get(&e.contact) else {
            errors.push(json!({ "row": i + 1, "fields": { "contact": "no such contact" } }));
            continue;
        };
        let id = match e.id {
            Some(id) => id,
            None => {
                random::id("ev_").ok_or_else(|| ApiError::internal("event id", "no randomness"))?
            }
        };
        let at = e.at.unwrap_or(now);
        if let Some(order) = e.order {
            purchases.push(Purchase {
                contact_id: contact_id.clone(),
                at,
                order,
            });
        }
        events.push(NewEvent {
            id,
            contact_id: contact_id.clone(),
            kind: e.kind,
            at,
            data: e.data.map_or_else(|| "{}".to_owned(), |d| d.to_string()),
        });
    }
    let enrolled = store::record_events_and_enrol(env, &events, now).await?;
    let window = u64::from(attribution_days(env)) * 86_400;
    let attributed = store::attribute_purchases(env, &purchases, window, now).await?;
    Ok(http::json(
        202,
        &json!({ "received": raw.len(), "accepted": events.len(), "enrolled": enrolled, "attributed": attributed, "rejected": errors.len(), "errors": errors }),
    ))
}

fn check_event(v: &Value, now: u64) -> Result<EventInput, FieldErrors> {
    let mut e: EventInput = serde_json::from_value(v.clone()).map_err(|err| {
        let message = err.to_string();
        let field = message.split('`').nth(1).unwrap_or("event").to_owned();
        FieldErrors::from([(field, message)])
    })?;
    let mut errors = FieldErrors::new();
    if let Err(p) = validate_event_type(&e.kind) {
        errors.insert("type".into(), p.into());
    }
    if let Some(id) = &e.id {
        if validate_id(id, false).is_err() {
            errors.insert("id".into(), "must be 1-64 of A-Z a-z 0-9 - _ . :".into());
        }
    }
    if e.contact.contains('@') {
        match normalize_email(&e.contact) {
            Ok(addr) => e.contact = addr,
            Err(p) => {
                errors.insert("contact".into(), p.into());
            }
        }
    } else if validate_id(&e.contact, false).is_err() {
        errors.insert(
            "contact".into(),
            "must be a contact id or an e-mail address".into(),
        );
    }
    if e.at
        .is_some_and(|at| at > now + 300 || at + 30 * 86_400 < now)
    {
        errors.insert(
            "at".into(),
            "must be unix seconds within the last 30 days".into(),
        );
    }
    if e.kind == "purchase" {
        match e.data.as_ref().and_then(order_from_event_data) {
            Some(Ok(order)) => e.order = Some(order),
            Some(Err(order_errors)) => errors.extend(order_errors),
            None => {}
        }
    }
    match &e.data {
        Some(d) if !d.is_object() => {
            errors.insert("data".into(), "must be an object".into());
        }
        Some(d) if d.to_string().len() > MAX_EVENT_DATA_BYTES => {
            errors.insert(
                "data".into(),
                format!("must be at most {MAX_EVENT_DATA_BYTES} bytes"),
            );
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(e)
    } else {
        Err(errors)
    }
}
