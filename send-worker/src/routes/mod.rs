//! Requests arriving through the service binding from the edge worker: the sending API, the
//! dashboard, the double opt-in and preference pages, and the cron tick (`POST /internal/tick`, which the edge never forwards from outside).

use epistola_core::token::Purpose;
use worker::{Env, Method, Request, Response};

use crate::config;
use crate::http::{self, ApiError, ApiResult};

mod campaigns;
mod chains;
mod contact_pages;
mod contacts;
mod dashboard;
mod listing;
mod mailgun_feedback;
mod optin;
mod settings_pages;
mod start;
mod suppression_pages;
mod templates;
mod tokens;
mod users;
mod webhook_endpoints;

pub async fn dispatch(req: Request, env: Env, now: u64) -> Response {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let env = &env;
    // A change by an API token is audited: the thing before, the answer, the thing after. Only a
    // request that carries a token can change anything, so only such a request is watched.
    let authorization = http::header(&req, "Authorization");
    let watch = match segments.first() {
        Some(&"v1") if epistola_core::auth::bearer_token(authorization.as_deref()).is_some() => {
            crate::audit::watch(env, req.method().as_ref(), &segments).await
        }
        _ => None,
    };
    let resp = route(req, env, &segments, now).await;
    if let Some(watch) = watch {
        crate::audit::record(
            env,
            watch,
            authorization.as_deref(),
            resp.status_code(),
            now,
        )
        .await;
    }
    resp
}

async fn route(req: Request, env: &Env, segments: &[&str], now: u64) -> Response {
    match (segments, req.method()) {
        (["internal", "tick"], Method::Post) => {
            // Behind the service binding and never forwarded, and still: only with the edge's
            // signed, minute-long proof.
            let proof = http::header(&req, "X-Epistola-Tick").unwrap_or_default();
            if config::verify_token(env, &proof, Purpose::InternalTick, now).is_err() {
                return ApiError::new(401, "unauthorized", "no valid tick proof").into_response();
            }
            match crate::tick::run(env, now).await {
                Ok(report) => http::json(200, &report),
                Err(e) => ApiError::internal("tick", e).into_response(),
            }
        }
        ([""], Method::Get) => start::page(env),
        ([""], Method::Head) => http::head(start::page(env)),
        ([""], _) => http::method_not_allowed("GET, HEAD"),
        (["dashboard", rest @ ..], _) => dashboard::dispatch(req, env, rest, now).await,
        (["confirm", token], Method::Get) => optin::confirm_page(env, token, now).await,
        (["confirm", token], Method::Head) => {
            http::head(optin::confirm_page(env, token, now).await)
        }
        (["confirm", token], Method::Post) => optin::confirm(req, env, token, now).await,
        (["confirm", _], _) => http::method_not_allowed("GET, HEAD, POST"),
        (["p", token], Method::Get) => optin::preferences_page(env, token, now).await,
        (["p", token], Method::Head) => http::head(optin::preferences_page(env, token, now).await),
        (["p", token], Method::Post) => optin::save_preferences(req, env, token, now).await,
        (["p", _], _) => http::method_not_allowed("GET, HEAD, POST"),
        (["v1", "contacts"], Method::Post) => respond(contacts::upsert(req, env, now).await),
        (["v1", "contacts"], Method::Get) => respond(contacts::list(&req, env).await),
        (["v1", "contacts"], _) => http::method_not_allowed("GET, POST"),
        (["v1", "contacts", "import"], Method::Post) => {
            respond(contacts::import(req, env, now).await)
        }
        (["v1", "contacts", "import"], _) => http::method_not_allowed("POST"),
        (["v1", "contacts", id], Method::Get) => respond(contacts::get(&req, env, id).await),
        (["v1", "contacts", id], Method::Delete) => respond(contacts::erase(&req, env, id).await),
        (["v1", "contacts", _], _) => http::method_not_allowed("GET, DELETE"),
        (["v1", "contacts", id, "export"], Method::Get) => {
            respond(contacts::export(&req, env, id, now).await)
        }
        (["v1", "contacts", _, "export"], _) => http::method_not_allowed("GET"),
        (["v1", "suppressions", "import"], Method::Post) => {
            respond(contacts::import_suppressions(req, env, now).await)
        }
        (["v1", "suppressions", "import"], _) => http::method_not_allowed("POST"),
        (["v1", "suppressions", address], Method::Delete) => {
            respond(contacts::lift_suppression(req, env, address, now).await)
        }
        (["v1", "suppressions", _], _) => http::method_not_allowed("DELETE"),
        (["v1", "templates", id], Method::Put) => respond(templates::put(req, env, id, now).await),
        (["v1", "templates"], Method::Get) => respond(templates::list(&req, env).await),
        (["v1", "templates"], _) => http::method_not_allowed("GET"),
        (["v1", "templates", id], Method::Get) => respond(templates::get(&req, env, id).await),
        (["v1", "templates", id], Method::Delete) => {
            respond(templates::delete(&req, env, id).await)
        }
        (["v1", "templates", _], _) => http::method_not_allowed("GET, PUT, DELETE"),
        (["v1", "templates", id, "preview"], Method::Post) => {
            respond(templates::preview(req, env, id, now).await)
        }
        (["v1", "templates", _, "preview"], _) => http::method_not_allowed("POST"),
        (["v1", "campaigns", id], Method::Put) => respond(campaigns::put(req, env, id, now).await),
        (["v1", "campaigns"], Method::Get) => respond(campaigns::list(&req, env).await),
        (["v1", "campaigns"], _) => http::method_not_allowed("GET"),
        (["v1", "campaigns", id], Method::Get) => respond(campaigns::get(&req, env, id, now).await),
        (["v1", "campaigns", id], Method::Delete) => {
            respond(campaigns::delete(&req, env, id).await)
        }
        (["v1", "campaigns", _], _) => http::method_not_allowed("GET, PUT, DELETE"),
        (["v1", "campaigns", id, "test"], Method::Post) => {
            respond(campaigns::test_send(&req, env, id, now).await)
        }
        (["v1", "campaigns", id, "approve"], Method::Post) => {
            respond(campaigns::approve(req, env, id, now).await)
        }
        (["v1", "campaigns", id, "schedule"], Method::Post) => {
            respond(campaigns::schedule(req, env, id, now).await)
        }
        (["v1", "campaigns", id, "cancel"], Method::Post) => {
            respond(campaigns::cancel(&req, env, id, now).await)
        }
        (["v1", "campaigns", _, "test" | "approve" | "schedule" | "cancel"], _) => {
            http::method_not_allowed("POST")
        }
        (["v1", "chains", id], Method::Put) => respond(chains::put(req, env, id, now).await),
        (["v1", "chains"], Method::Get) => respond(chains::list(&req, env).await),
        (["v1", "chains"], _) => http::method_not_allowed("GET"),
        (["v1", "chains", id], Method::Get) => respond(chains::get(&req, env, id).await),
        (["v1", "chains", id], Method::Delete) => respond(chains::delete(&req, env, id).await),
        (["v1", "chains", _], _) => http::method_not_allowed("GET, PUT, DELETE"),
        (["v1", "chains", id, "activate"], Method::Post) => {
            respond(chains::activate(&req, env, id, now).await)
        }
        (["v1", "chains", id, "pause"], Method::Post) => {
            respond(chains::pause(&req, env, id, now).await)
        }
        (["v1", "chains", _, "activate" | "pause"], _) => http::method_not_allowed("POST"),
        (["v1", "events"], Method::Post) => respond(chains::post_events(req, env, now).await),
        (["v1", "events"], _) => http::method_not_allowed("POST"),
        (["v1", "webhooks", "mailgun"], Method::Post) => {
            respond(mailgun_feedback::mailgun(req, env, now).await)
        }
        (["v1", "webhooks", "mailgun"], _) => http::method_not_allowed("POST"),
        (["v1", "webhook-endpoints"], Method::Post) => {
            respond(webhook_endpoints::create(req, env, now).await)
        }
        (["v1", "webhook-endpoints"], Method::Get) => {
            respond(webhook_endpoints::list(&req, env).await)
        }
        (["v1", "webhook-endpoints"], _) => http::method_not_allowed("GET, POST"),
        (["v1", "webhook-endpoints", id], Method::Delete) => {
            respond(webhook_endpoints::disable(&req, env, id, now).await)
        }
        (["v1", "webhook-endpoints", _], _) => http::method_not_allowed("DELETE"),
        (["v1", "tokens"], Method::Get) => respond(tokens::list(&req, env).await),
        (["v1", "tokens"], Method::Post) => respond(tokens::create(req, env, now).await),
        (["v1", "tokens"], _) => http::method_not_allowed("GET, POST"),
        (["v1", "tokens", id], Method::Delete) => respond(tokens::delete(&req, env, id, now).await),
        (["v1", "tokens", _], _) => http::method_not_allowed("DELETE"),
        (["v1", "audit"], Method::Get) => respond(tokens::audit(&req, env).await),
        (["v1", "audit"], _) => http::method_not_allowed("GET"),
        _ => ApiError::new(404, "not_found", "no such route").into_response(),
    }
}

fn respond(result: ApiResult<Response>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}
