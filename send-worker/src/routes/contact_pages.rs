//! `/dashboard/contacts/{id}`: one contact's page (`epistola_dashboard::contact_page`, from the
//! same record the export gives the person), its export download, and its forms: on or off the
//! test list, lift a suppression (with the reason the ledger keeps), erase (the address typed to
//! confirm). Each form needs `contacts:write` and is audited as the signed-in viewer.

use std::collections::BTreeMap;

use epistola_core::auth::{has_scope, Scope};
use epistola_core::capture::normalize_email;
use epistola_core::contact::address_hash;
use epistola_dashboard as page;
use serde_json::json;
use worker::{Env, Request, Response};

use super::contacts::{export_download, lift_reason};
use super::dashboard::{form_viewer, not_yours, path_id_param, see_other, Session};
use crate::http::{self, ApiError, ApiResult};
use crate::store;

fn no_contact() -> ApiError {
    ApiError::new(404, "not_found", "no such contact")
}

/// The contact's page; `errors`: the last form's refusal beside its field.
pub async fn page(
    env: &Env,
    id: &str,
    session: &Session,
    errors: BTreeMap<String, String>,
    status: u16,
) -> ApiResult<Response> {
    if !has_scope(&session.scopes, Scope::ContactsRead) {
        return Ok(not_yours("Contact"));
    }
    let id = path_id_param(id, "contact")?;
    let record = store::contact_export(env, &id)
        .await?
        .ok_or_else(no_contact)?;
    let view = page::contact_view(&record).ok_or_else(no_contact)?;
    let forms = page::ContactForms {
        can_write: has_scope(&session.scopes, Scope::ContactsWrite),
        errors,
    };
    Ok(http::html_document(
        status,
        page::with_viewer(&page::contact(&view, &forms), &session.viewer),
    ))
}

/// `GET /dashboard/contacts/{id}/export`: the same download as `GET /v1/contacts/{id}/export`.
pub async fn export(env: &Env, id: &str, session: &Session, now: u64) -> ApiResult<Response> {
    if !has_scope(&session.scopes, Scope::ContactsRead) {
        return Ok(not_yours("Contact"));
    }
    export_download(env, &path_id_param(id, "contact")?, now).await
}

/// `POST /dashboard/contacts/{id}/{test-list|lift|erase}`.
pub async fn form(
    mut req: Request,
    env: &Env,
    id: &str,
    step: &str,
    now: u64,
) -> ApiResult<Response> {
    let session = match form_viewer(&req, env, &[Scope::ContactsWrite], "Contact", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let id = path_id_param(id, "contact")?;
    let body = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
    let field = |k: &str| body.get_field(k).unwrap_or_default();
    let record = store::contact_record(env, &id)
        .await?
        .ok_or_else(no_contact)?;
    let email = record["email"].as_str().unwrap_or_default().to_owned();
    // Contact ids are ours (`c_` and hex): safe in a path as they are.
    let back = format!("/dashboard/contacts/{id}");
    let refused = |field: &str, why: &str| {
        let mut errors = BTreeMap::new();
        errors.insert(field.to_owned(), why.to_owned());
        errors
    };
    match step {
        "test-list" => {
            let on = match field("on").as_str() {
                "1" => true,
                "0" => false,
                _ => return Err(ApiError::field("on", "1 (put on) or 0 (take off)")),
            };
            // Already so: nothing to write, and no audit row.
            store::set_test_list(env, &id, on, &session.actor, now).await?;
            Ok(see_other(&back, None))
        }
        "lift" => {
            let typed = field("reason");
            let reason = match lift_reason(&typed) {
                Ok(r) => r,
                Err(e) => {
                    let why = e.fields.get("reason").cloned().unwrap_or(e.message);
                    return page(env, &id, &session, refused("reason", &why), 400).await;
                }
            };
            let hash = address_hash(&email);
            let lifted =
                store::lift_suppression(env, &email, &hash, reason, &session.actor, now).await?;
            let Some(previous) = lifted else {
                let why = "this address is not suppressed (any more)";
                return page(env, &id, &session, refused("reason", why), 409).await;
            };
            let detail = json!({ "status": 200, "changes": { "suppression": [previous, null] } });
            // The suppression ledger holds the change itself; this row is the workspace's view.
            if let Err(e) =
                store::append_audit(env, &session.actor, "suppression.lift", &id, &detail, now)
                    .await
            {
                worker::console_error!("audit: suppression.lift not recorded: {e}");
            }
            Ok(see_other(&back, None))
        }
        _ => {
            let typed = normalize_email(&field("confirm")).unwrap_or_default();
            if typed.is_empty() || typed != email {
                let why = "type the contact's address exactly, to be sure whom you erase";
                return page(env, &id, &session, refused("confirm", why), 400).await;
            }
            let segments = ["v1", "contacts", id.as_str()];
            let erase = async {
                if store::erase_contact(env, &id).await? {
                    Ok(200)
                } else {
                    Err(no_contact())
                }
            };
            crate::audit::change_as(env, "DELETE", &segments, &session.actor, now, erase).await?;
            Ok(see_other("/dashboard/contacts?erased=1", None))
        }
    }
}
