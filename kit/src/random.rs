//! Randomness from the runtime's CSPRNG (`crypto.getRandomValues`), for ids.

use epistola_core::hex;

/// 128 random bits, or `None` if the runtime refused (logged).
pub fn bytes16() -> Option<[u8; 16]> {
    bytes()
}

/// `N` random bytes, or `None` if the runtime refused (logged).
pub fn bytes<const N: usize>() -> Option<[u8; N]> {
    let mut out = [0u8; N];
    match getrandom::getrandom(&mut out) {
        Ok(()) => Some(out),
        Err(e) => {
            worker::console_error!("no randomness: {e}");
            None
        }
    }
}

/// A random id with a prefix, e.g. `c_3f…` (24 hex characters, 96 bits).
pub fn id(prefix: &str) -> Option<String> {
    bytes16().map(|b| format!("{prefix}{}", &hex::encode(&b)[..24]))
}
