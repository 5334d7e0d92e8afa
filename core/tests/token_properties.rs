//! Property tests for tokens: the parser never panics; sign→verify round-trips; any single-bit
//! change fails; a token of one purpose never verifies as another.

#![allow(clippy::expect_used)] // fixed, known-good inputs: failing loudly is right here

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use epistola_core::token::{Claims, Keyring, Link, Purpose, TokenError};
use proptest::prelude::*;

const PURPOSES: [Purpose; 9] = Purpose::ALL;

fn ring(seed: u8) -> Keyring {
    Keyring::new(&[(3, &[seed; 32]), (2, &[seed.wrapping_add(1); 32])]).expect("valid keys")
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,64}"
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        0usize..6,
        any::<u32>(),
        proptest::option::of(1u32..),
        id(),
        id(),
        "[a-z0-9-]{0,20}",
        any::<u16>(),
        "[a-z0-9/._-]{0,200}",
    )
        .prop_map(
            |(p, issued_at, expires_at, campaign, contact, message, index, path)| {
                let purpose = PURPOSES[p];
                Claims {
                    purpose,
                    issued_at,
                    expires_at,
                    campaign,
                    contact,
                    message,
                    link: purpose.carries_link().then(|| Link {
                        index,
                        url: if purpose == Purpose::Click {
                            format!("https://shop.example/{path}")
                        } else {
                            String::new()
                        },
                    }),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verify_never_panics_on_text(s in ".{0,300}") {
        let _ = ring(1).verify(&s, Purpose::Open, 0);
    }

    #[test]
    fn verify_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), p in 0usize..6) {
        let _ = ring(1).verify(&URL_SAFE_NO_PAD.encode(&bytes), PURPOSES[p], 0);
    }

    #[test]
    fn round_trip_and_purpose_binding(c in claims(), seed in any::<u8>()) {
        let keys = ring(seed);
        let token = keys.sign(&c).expect("valid claims sign");
        let now = 0;
        prop_assert_eq!(keys.verify(&token, c.purpose, now), Ok(c.clone()));
        for other in PURPOSES.into_iter().filter(|p| *p != c.purpose) {
            let wrong_purpose = matches!(keys.verify(&token, other, now), Err(TokenError::WrongPurpose { .. }));
            prop_assert!(wrong_purpose);
        }
    }

    #[test]
    fn any_bit_flip_fails(c in claims(), bit in any::<prop::sample::Index>()) {
        let keys = ring(5);
        let token = keys.sign(&c).expect("valid claims sign");
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("decodes");
        let i = bit.index(raw.len() * 8);
        raw[i / 8] ^= 1 << (i % 8);
        prop_assert!(keys.verify(&URL_SAFE_NO_PAD.encode(&raw), c.purpose, 0).is_err());
    }
}
