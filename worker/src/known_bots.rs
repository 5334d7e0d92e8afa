//! The maintained crawler patterns: the `isbot` list, generated into `js/known_bots.js` by
//! `scripts/known-bots.mjs` and run by V8's regular expressions, so the wasm carries no regex engine.
//! What the list says is one signal to `core::classify`, which knows the mail image proxies it names.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(module = "/js/known_bots.js")]
extern "C" {
    /// Whether `user_agent` is a known crawler, link checker or HTTP library.
    pub fn is_known_bot(user_agent: &str) -> bool;
}
