//! SMS delivery: the provider request from `epistola_sender::sms`, sent with the runtime's fetch.

use epistola_sender::sms::{classify, request, SmsOutcome, SmsProvider};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

use crate::config;

/// Vars and secrets of the SMS provider.
pub const SMS_API_URL: &str = "SMS_API_URL";
pub const SMS_ACCOUNT: &str = "SMS_ACCOUNT";
pub const SMS_TOKEN: &str = "SMS_TOKEN";
pub const SMS_FROM: &str = "SMS_FROM";

fn provider(env: &Env) -> Option<SmsProvider> {
    Some(SmsProvider {
        base_url: config::text(env, SMS_API_URL)?,
        account: config::text(env, SMS_ACCOUNT)?,
        token: config::text(env, SMS_TOKEN)?,
        from: config::text(env, SMS_FROM)?,
    })
}

/// Sends one text. The error text says what happened without quoting the provider's body.
pub async fn send(env: &Env, to: &str, body: &str) -> (SmsOutcome, Option<String>) {
    let Some(p) = provider(env) else {
        return (
            SmsOutcome::Transport,
            Some("SMS provider is not configured".into()),
        );
    };
    let r = request(&p, to, body);
    let headers = Headers::new();
    let mut init = RequestInit::new();
    if headers.set("Authorization", &r.authorization).is_err()
        || headers.set("Content-Type", r.content_type).is_err()
    {
        return (
            SmsOutcome::Transport,
            Some("could not build the request".into()),
        );
    }
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(r.body.into()));
    let answer = match Request::new_with_init(&r.url, &init) {
        Ok(req) => Fetch::Request(req).send().await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(resp) => {
            let status = resp.status_code();
            let outcome = classify(status);
            (
                outcome,
                (outcome != SmsOutcome::Accepted).then(|| format!("provider answered {status}")),
            )
        }
        Err(e) => (
            SmsOutcome::Transport,
            Some(format!("provider unreachable: {e}")),
        ),
    }
}
