//! Secrets and vars, parsed once per isolate and re-parsed only if their text changes.

use std::cell::RefCell;
use std::rc::Rc;

use epistola_core::token::Keyring;
use worker::Env;

use crate::bindings;

thread_local! {
    static KEYRING: RefCell<Option<(String, Rc<Keyring>)>> = const { RefCell::new(None) };
}

/// A string binding, whether configured as a secret or a plain var.
pub fn text(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
}

/// The token key ring, or `None` (logged) when `SIGNING_KEYS` is missing or invalid.
pub fn keyring(env: &Env) -> Option<Rc<Keyring>> {
    let Some(config) = text(env, bindings::SIGNING_KEYS) else {
        worker::console_error!("{} is not configured", bindings::SIGNING_KEYS);
        return None;
    };
    KEYRING.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some((text, ring)) = cached.as_ref() {
            if *text == config {
                return Some(ring.clone());
            }
        }
        match Keyring::parse(&config) {
            Ok(ring) => {
                let ring = Rc::new(ring);
                *cached = Some((config, ring.clone()));
                Some(ring)
            }
            Err(e) => {
                // The error names the entry, never the key material.
                worker::console_error!("{} is invalid: {e}", bindings::SIGNING_KEYS);
                None
            }
        }
    })
}

/// Whether a test-only fault switch is on.
pub fn fault(env: &Env, name: &str) -> bool {
    env.var(name).map(|v| v.to_string() == "1").unwrap_or(false)
}
