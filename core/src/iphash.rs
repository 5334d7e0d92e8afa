//! Client IPs are never stored: only a keyed hash that changes every UTC day, so events of one day
//! can be grouped (e.g. to spot a scanner) but no IP can be recovered or followed across days.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// 16 hex characters (64 bits) of HMAC-SHA256(key, day ‖ ip).
pub fn hash_ip(key: &[u8], ip: &str, unix_seconds: u64) -> String {
    let day = unix_seconds / 86_400;
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    let digest = mac
        .chain_update(day.to_be_bytes())
        .chain_update(ip.as_bytes())
        .finalize()
        .into_bytes();
    crate::hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_daily_and_depends_on_key() {
        let a = hash_ip(b"k1", "203.0.113.9", 86_400 * 10 + 5);
        assert_eq!(a.len(), 16);
        assert_eq!(a, hash_ip(b"k1", "203.0.113.9", 86_400 * 10 + 86_000));
        assert_ne!(a, hash_ip(b"k1", "203.0.113.9", 86_400 * 11));
        assert_ne!(a, hash_ip(b"k2", "203.0.113.9", 86_400 * 10));
        assert_ne!(a, hash_ip(b"k1", "203.0.113.8", 86_400 * 10));
    }
}
