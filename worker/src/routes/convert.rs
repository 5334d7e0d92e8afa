//! `POST /v1/convert`: the widget's conversion beacon. The order is attributed by the signed token
//! the click redirect brought to the site (see `core::conversion`); it is queued, not stored here,
//! and the consumer stores each order id once.

use epistola_core::auth::hash_api_token;
use epistola_core::conversion::{
    convert_limit_subject, validate_order, within_site_cap, ConvertRequest, Source,
    DEFAULT_SITE_VALUE_CAP, MAX_CONVERT_BYTES,
};
use epistola_core::event::{ConversionEvent, QueueMessage};
use epistola_core::token::{Purpose, TokenError};
use worker::{Env, Request, Response};

use super::sites::{beacon_site, read_beacon};
use crate::http::{self, ApiError, ApiResult};
use crate::{bindings, config, store};

/// Site-reported orders per person and campaign per hour: a real visitor places a few; a script
/// clicking again and again for fresh tokens to inflate revenue is stopped.
const PER_PERSON_LIMIT: (u32, u64) = (10, 3600);
/// Var: the largest site-reported order, in major units (default `DEFAULT_SITE_VALUE_CAP`).
const CONVERSION_VALUE_CAP: &str = "CONVERSION_VALUE_CAP";

pub async fn convert(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    let request: ConvertRequest = read_beacon(&mut req, MAX_CONVERT_BYTES).await?;
    let (_, origin) = beacon_site(&req, env, &request.site).await?;
    let fail = |e: ApiError| e.with_cors(&origin);
    let claims = config::verify_token(env, &request.attribution, Purpose::Conversion, now)
        .map_err(|e| {
            fail(ApiError::field(
                "attribution",
                match e {
                    TokenError::Expired => "is older than the attribution window",
                    _ => "is not a valid attribution token",
                },
            ))
        })?;
    let order = validate_order(&request.order_id, &request.value, &request.currency)
        .map_err(|e| fail(ApiError::invalid(e)))?;
    let cap = config::number(env, CONVERSION_VALUE_CAP, DEFAULT_SITE_VALUE_CAP);
    if !within_site_cap(&order.money, cap) {
        return Err(fail(ApiError::field(
            "value",
            format!("is above the largest order this site may report ({cap})"),
        )));
    }
    let subject = convert_limit_subject(&claims.campaign, &claims.contact, &claims.message);
    let key = format!("conv:{}", hash_api_token(&subject));
    let within = store::count_and_check(env, &[(&key, PER_PERSON_LIMIT)], now)
        .await
        .map_err(|e| fail(ApiError::from(e)))?;
    if within.is_err() {
        return Err(fail(ApiError::new(
            429,
            "rate_limited",
            "too many orders from this visitor",
        )));
    }
    let event = ConversionEvent {
        order_id: order.order_id,
        at: now,
        campaign: claims.campaign,
        contact: claims.contact,
        message: claims.message,
        link: claims.link.map_or(-1, |l| i64::from(l.index)),
        channel: "email".into(),
        value_minor: order.money.minor,
        currency: order.money.currency,
        source: Source::Site,
    };
    if let Err(e) = store::enqueue(env, bindings::EVENTS, &QueueMessage::ConvertV1(event)).await {
        worker::console_error!("conversion not queued: {e}");
        return Err(fail(ApiError::new(
            503,
            "unavailable",
            "please try again in a moment",
        )));
    }
    Ok(http::with_cors(
        http::json(202, &serde_json::json!({ "status": "accepted" })),
        Some(&origin),
    ))
}
