//! Secrets and vars. Bindings are fixed for the life of an isolate (changing a secret deploys new
//! isolates), so the parsed values are cached per isolate and the hot path reads no binding.

use std::cell::RefCell;
use std::rc::Rc;

use epistola_core::iphash::hash_ip;
use epistola_core::token::{Claims, Keyring, Purpose, TokenError};
use worker::Env;

use crate::bindings;

thread_local! {
    static KEYRING: RefCell<Option<Rc<Keyring>>> = const { RefCell::new(None) };
    static IP_KEY: RefCell<Option<Option<Rc<str>>>> = const { RefCell::new(None) };
}

/// A string binding, whether configured as a secret or a plain var.
pub fn text(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
}

/// The token key ring, or `None` (logged, and retried on the next request) when `SIGNING_KEYS` is
/// missing or invalid.
pub fn keyring(env: &Env) -> Option<Rc<Keyring>> {
    if let Some(ring) = KEYRING.with(|c| c.borrow().clone()) {
        return Some(ring);
    }
    let Some(config) = text(env, bindings::SIGNING_KEYS) else {
        worker::console_error!("{} is not configured", bindings::SIGNING_KEYS);
        return None;
    };
    match Keyring::parse(&config) {
        Ok(ring) => {
            let ring = Rc::new(ring);
            KEYRING.with(|c| *c.borrow_mut() = Some(ring.clone()));
            Some(ring)
        }
        Err(e) => {
            // The error names the entry, never the key material.
            worker::console_error!("{} is invalid: {e}", bindings::SIGNING_KEYS);
            None
        }
    }
}

/// The IP hashing key; `None` when not configured (then no IP hash is stored at all).
pub fn ip_hash_key(env: &Env) -> Option<Rc<str>> {
    IP_KEY.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| text(env, bindings::IP_HASH_KEY).map(Rc::from))
            .clone()
    })
}

/// Verifies a token with the configured key ring. A missing or broken ring is logged by
/// [`keyring`]; to the client it looks like a bad token.
pub fn verify_token(
    env: &Env,
    token: &str,
    purpose: Purpose,
    now: u64,
) -> Result<Claims, TokenError> {
    keyring(env)
        .ok_or(TokenError::BadSignature)?
        .verify(token, purpose, now)
}

/// The daily-rotated hash of a client IP, if both the IP and the key are there.
pub fn hash_client_ip(env: &Env, ip: Option<&str>, now: u64) -> Option<String> {
    Some(hash_ip(ip_hash_key(env)?.as_bytes(), ip?, now))
}

/// Signs a token about a contact, expiring after `ttl` seconds. For capture letters the site is the
/// campaign and the capture the message; for campaign letters they are what they say.
pub fn sign_contact_token(
    env: &Env,
    purpose: Purpose,
    campaign: &str,
    contact: &str,
    message: &str,
    now: u64,
    ttl: u32,
) -> Option<String> {
    let now = u32::try_from(now).ok()?;
    let claims = Claims {
        purpose,
        issued_at: now,
        expires_at: Some(now.saturating_add(ttl)),
        campaign: campaign.to_owned(),
        contact: contact.to_owned(),
        message: message.to_owned(),
        link: None,
    };
    keyring(env)?.sign(&claims).ok()
}

/// A numeric setting, or `default` when it is unset or not a number.
pub fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    text(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The attribution window in days (`ATTRIBUTION_DAYS`; 0 turns conversion attribution off).
pub fn attribution_days(env: &Env) -> u32 {
    number(
        env,
        "ATTRIBUTION_DAYS",
        epistola_core::conversion::DEFAULT_WINDOW_DAYS,
    )
}

/// Whether a test-only fault switch is on.
pub fn fault(env: &Env, name: &str) -> bool {
    env.var(name).map(|v| v.to_string() == "1").unwrap_or(false)
}
