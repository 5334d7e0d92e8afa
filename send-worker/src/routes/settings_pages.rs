//! `/dashboard/settings`: the mail transport as configured, what a transport failure has paused,
//! the outgoing webhook endpoints with their deliveries, and `POST /dashboard/settings/test-letter`, which mails a test letter through the transport
//! while the admin waits and shows what the relay or provider answered. For `tokens:write` (who
//! runs the workspace); each test is in the audit log.

use std::collections::BTreeMap;

use epistola_core::auth::{has_scope, Scope};
use epistola_core::capture::normalize_email;
use epistola_dashboard::{self as page, minute};
use epistola_sender::letter;
use serde_json::json;
use worker::{Env, Request, Response};

use super::dashboard::{form_viewer, not_yours, Session};
use crate::http::{self, ApiError, ApiResult};
use crate::people::{deliver_workspace_letter, workspace_from};
use crate::{mailer, random, store};

/// Paused campaigns and chains listed.
const PAUSED_SHOWN: usize = 20;

async fn render(
    req: &Request,
    env: &Env,
    session: &Session,
    form: &page::TestLetterForm,
    status: u16,
) -> ApiResult<Response> {
    let paused: Vec<page::PausedLine> = store::paused_sending(env, PAUSED_SHOWN)
        .await?
        .into_iter()
        .map(|p| page::PausedLine {
            kind: p.kind,
            id: p.id,
            name: p.name,
            reason: p.reason,
            since: minute(p.at),
        })
        .collect();
    let mut endpoints = Vec::new();
    for e in store::list_endpoints(env).await? {
        let counts = store::endpoint_delivery_counts(env, &e.id).await?;
        let deliveries = counts
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect::<Vec<_>>()
            .join(" · ");
        let events: Vec<String> = serde_json::from_slice(e.events.as_bytes()).unwrap_or_default();
        endpoints.push(page::EndpointLine {
            url: e.url,
            events: events.join(", "),
            status: e.status,
            deliveries: if deliveries.is_empty() {
                "none yet".to_owned()
            } else {
                deliveries
            },
        });
    }
    let from = workspace_from(env, &http::public_base_url(req, env)?);
    let document = page::settings(&mailer::describe(env), &from, &paused, &endpoints, form);
    Ok(http::html_document(
        status,
        page::with_viewer(&document, &session.viewer),
    ))
}

/// `GET /dashboard/settings`.
pub async fn page(req: &Request, env: &Env, session: &Session) -> ApiResult<Response> {
    if !has_scope(&session.scopes, Scope::TokensWrite) {
        return Ok(not_yours("Settings"));
    }
    // A signed-in person's own address is where a test usually goes.
    let to = if session.viewer.name.contains('@') {
        session.viewer.name.clone()
    } else {
        String::new()
    };
    let form = page::TestLetterForm {
        to,
        ..Default::default()
    };
    render(req, env, session, &form, 200).await
}

/// `POST /dashboard/settings/test-letter` with `to`.
pub async fn test_letter(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    let session = match form_viewer(&req, env, &[Scope::TokensWrite], "Settings", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let body = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
    let typed = body.get_field("to").unwrap_or_default();
    let refused = |why: String| page::TestLetterForm {
        to: typed.clone(),
        errors: BTreeMap::from([("to".to_owned(), why)]),
        notice: None,
    };
    let to = match normalize_email(&typed) {
        Ok(to) => to,
        Err(why) => return render(&req, env, &session, &refused(why.to_owned()), 400).await,
    };
    let base_url = http::public_base_url(&req, env)?;
    let id = random::id("tl_").ok_or_else(|| ApiError::internal("letter id", "no randomness"))?;
    let letter = letter::transport_test(&base_url, &session.viewer.name);
    let sent = deliver_workspace_letter(env, &base_url, &to, &letter, &id, now).await;
    let detail = json!({ "status": if sent.is_ok() { 200 } else { 502 }, "changes": {} });
    // The log keeps that a test was sent, and whether it went; not to whom.
    if let Err(e) = store::append_audit(
        env,
        &session.actor,
        "transport.test",
        "transport",
        &detail,
        now,
    )
    .await
    {
        worker::console_error!("audit: transport.test not recorded: {e}");
    }
    match sent {
        Ok(()) => {
            let form = page::TestLetterForm {
                to: to.clone(),
                errors: BTreeMap::new(),
                notice: Some(format!(
                    "The transport took the test letter for {to}. If it does not arrive, look in the spam folder, then at the relay's own log."
                )),
            };
            render(&req, env, &session, &form, 200).await
        }
        Err(e) => {
            let why = format!("the transport did not take it: {e}");
            render(&req, env, &session, &refused(why), 502).await
        }
    }
}
