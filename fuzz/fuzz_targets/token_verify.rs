//! Token parsing and verification: never panics; whatever verifies re-signs to itself (the format
//! has one encoding per claim set) and verifies for no other purpose.
//!
//! Half the inputs are taken as token text; the other half as a token *body* that this target signs
//! with the test key, so the decoder behind the MAC check is fuzzed too (random text almost never
//! carries a valid 128-bit tag).
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use epistola_core::token::{Keyring, Purpose};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const KEY: [u8; 32] = [7u8; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = Keyring::new(&[(2, &KEY), (1, &[9u8; 32])]) else {
        return;
    };
    let signed;
    let text = match data.split_first() {
        Some((0, body)) => {
            // Version 1, key id 2, then the fuzzer's bytes, then a genuine tag.
            let mut bytes = vec![1u8, 2];
            bytes.extend_from_slice(body);
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&KEY) else {
                return;
            };
            mac.update(&bytes);
            bytes.extend_from_slice(&mac.finalize().into_bytes()[..16]);
            signed = URL_SAFE_NO_PAD.encode(&bytes);
            signed.as_str()
        }
        _ => match std::str::from_utf8(data) {
            Ok(t) => t,
            Err(_) => return,
        },
    };
    for purpose in Purpose::ALL {
        if let Ok(claims) = keys.verify(text, purpose, 1_800_000_000) {
            for other in Purpose::ALL.into_iter().filter(|p| *p != purpose) {
                assert!(keys.verify(text, other, 1_800_000_000).is_err());
            }
            // Signed with the newest key, the claims verify again to the same claims.
            let again = keys.sign(&claims).expect("verified claims are signable");
            assert_eq!(keys.verify(&again, purpose, 1_800_000_000), Ok(claims));
        }
    }
});
