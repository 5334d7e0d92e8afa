//! `POST /v1/capture`: a visitor's address and consents from the widget. Validated against the
//! site, rate limited, and stored in one transaction; a filled honeypot is answered `202` and dropped.

use epistola_core::capture::{validate_capture, CaptureRequest, MAX_CAPTURE_BYTES};
use epistola_core::event::{CaptureJob, SendJob};
use worker::{Env, Request, Response};

use super::sites::{beacon_site, read_beacon};
use crate::http::{self, ApiError, ApiResult};
use crate::{bindings, config, random, store};

/// Captures per IP (hashed) per 10 minutes, and per address per hour: enough for a family sharing a
/// connection, too few for list-bombing an address or flooding the list from one host.
const PER_IP_LIMIT: (u32, u64) = (20, 600);
const PER_ADDRESS_LIMIT: (u32, u64) = (3, 3600);

pub async fn capture(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    let request: CaptureRequest = read_beacon(&mut req, MAX_CAPTURE_BYTES).await?;
    let (site, origin) = beacon_site(&req, env, &request.site).await?;
    let cors = |resp: Response| http::with_cors(resp, Some(&origin));
    let accepted = || {
        cors(http::json(
            202,
            &serde_json::json!({ "status": "pending_confirmation" }),
        ))
    };
    if request.is_bot() {
        return Ok(accepted());
    }
    let valid = validate_capture(&site, &request)
        .map_err(ApiError::invalid)
        .map_err(|e| e.with_cors(&origin))?;

    // No raw address is ever stored, not even as a rate-limit key: without the hashing key the
    // capture is refused (a configuration error, logged) rather than recorded with the address.
    let Some(ip_key) = config::ip_hash_key(env) else {
        worker::console_error!(
            "capture refused: {} is not configured",
            bindings::IP_HASH_KEY
        );
        return Err(ApiError::new(503, "unavailable", "please try again later").with_cors(&origin));
    };
    let ip = http::header(&req, "CF-Connecting-IP").unwrap_or_else(|| "unknown".into());
    let ip_hash = config::hash_client_ip(env, Some(&ip), now);
    // Per subscriber line: an IPv6 client counts by its /64.
    let subject = epistola_core::iphash::rate_limit_subject(&ip);
    let ip_key = format!(
        "ip:{}",
        epistola_core::iphash::hash_ip(ip_key.as_bytes(), &subject, now)
    );
    let address_key = format!("addr:{}", epistola_core::auth::hash_api_token(&valid.email));
    let within = store::count_and_check(
        env,
        &[(&ip_key, PER_IP_LIMIT), (&address_key, PER_ADDRESS_LIMIT)],
        now,
    )
    .await
    .map_err(|e| ApiError::from(e).with_cors(&origin))?;
    if let Err(retry_after) = within {
        let mut resp = ApiError::new(429, "rate_limited", "too many submissions; try again later")
            .into_response();
        let _ = resp
            .headers_mut()
            .set("Retry-After", &retry_after.to_string());
        return Ok(cors(resp));
    }
    let (Some(capture_id), Some(contact_id)) = (random::id("cap_"), random::id("c_")) else {
        return Err(ApiError::internal("capture", "no randomness").with_cors(&origin));
    };
    let user_agent = http::header(&req, "User-Agent");
    let capture = store::NewCapture {
        id: &capture_id,
        new_contact_id: &contact_id,
        site: &request.site,
        valid: &valid,
        ip_hash: ip_hash.as_deref(),
        user_agent: user_agent.as_deref(),
        now,
    };
    store::store_capture(env, &capture)
        .await
        .map_err(|e| ApiError::from(e).with_cors(&origin))?;
    // The confirmation e-mail is sent by the queue consumer. If the job cannot be queued, say so:
    // the widget retries, and the contact upsert makes a second capture harmless.
    let job = CaptureJob {
        capture: capture_id,
        base_url: http::public_base_url(&req, env)?,
    };
    if let Err(e) = store::enqueue(env, bindings::SENDS, &SendJob::CaptureV1(job)).await {
        worker::console_error!("capture stored but its confirmation job was not queued: {e}");
        return Err(
            ApiError::new(503, "unavailable", "please try again in a moment").with_cors(&origin),
        );
    }
    Ok(accepted())
}
