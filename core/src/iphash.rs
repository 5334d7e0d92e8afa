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

/// The part of a client address that names one subscriber line, for rate limits: an IPv4
/// address as it is, an IPv6 address cut to its /64 (one home or phone is given a whole /64, so
/// per-address limits on IPv6 would let one host rotate through 2^64 addresses). IPv4-mapped IPv6
/// counts as the IPv4 address. Text that is no address is returned unchanged.
pub fn rate_limit_subject(ip: &str) -> String {
    use std::net::IpAddr;
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_subjects() {
        let cases = [
            ("203.0.113.9", "203.0.113.9"),
            (
                "2001:db8:85a3:8d3:1319:8a2e:370:7348",
                "2001:db8:85a3:8d3::/64",
            ),
            ("2001:db8:85a3:8d3::1", "2001:db8:85a3:8d3::/64"),
            (
                "2001:0DB8:85A3:08D3:ffff:ffff:ffff:ffff",
                "2001:db8:85a3:8d3::/64",
            ),
            ("2001:db8:85a3:8d4::1", "2001:db8:85a3:8d4::/64"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
            (" 192.0.2.1 ", "192.0.2.1"),
            ("unknown", "unknown"),
        ];
        for (ip, subject) in cases {
            assert_eq!(rate_limit_subject(ip), subject, "{ip}");
        }
    }

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
