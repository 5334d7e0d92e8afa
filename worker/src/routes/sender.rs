//! The sending API (`/v1/contacts`, `/v1/templates`, `/v1/campaigns`, …) is served by the sending
//! worker; the edge passes those requests on unchanged through the `SENDER` service binding, so
//! the public contract stays on one origin while the edge bundle stays small.

use worker::{Env, Request, Response};

use epistola_core::token::Purpose;

use crate::http::ApiError;
use crate::{bindings, config};

/// First path segments under `/v1/` that belong to the sending worker.
pub const SENDER_FAMILIES: &[&str] = &[
    "contacts",
    "suppressions",
    "templates",
    "campaigns",
    "chains",
    "events",
    "webhooks",
    "webhook-endpoints",
    "tokens",
    "audit",
];

/// Header carrying the tick's proof: a token of purpose `InternalTick`, valid for a minute.
pub const TICK_PROOF_HEADER: &str = "X-Epistola-Tick";

/// Asks the sending worker to run its tick. The path is internal: `forward` never passes it on,
/// and the sending worker also checks the signed proof, so a route mistake cannot expose it.
pub async fn tick(env: &Env, now: u64) {
    let Some(proof) =
        config::sign_contact_token(env, Purpose::InternalTick, "tick", "", "", now, 60)
    else {
        worker::console_error!("cron: no signing key for the sender tick");
        return;
    };
    let answer = match env.service(bindings::SENDER) {
        Ok(sender) => match tick_request(&proof) {
            Ok(req) => sender.fetch_request(req).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match answer {
        Ok(mut resp) if resp.status_code() == 200 => {
            if let Ok(report) = resp.text().await {
                worker::console_log!("cron: sender tick {report}");
            }
        }
        Ok(resp) => worker::console_error!("cron: sender tick answered {}", resp.status_code()),
        Err(e) => worker::console_error!("cron: sender tick failed: {e}"),
    }
}

/// The tick's POST to the sending worker.
fn tick_request(proof: &str) -> worker::Result<Request> {
    let headers = worker::Headers::new();
    headers.set(TICK_PROOF_HEADER, proof)?;
    epistola_worker_kit::http::new_request(
        "https://sender.internal/internal/tick",
        "POST",
        &headers,
        None,
    )
}

pub async fn forward(req: Request, env: &Env) -> Response {
    let answer = match env.service(bindings::SENDER) {
        Ok(sender) => sender.fetch_request(req).await,
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|e| {
        worker::console_error!("sending worker unreachable: {e}");
        ApiError::new(503, "unavailable", "please try again in a moment").into_response()
    })
}
