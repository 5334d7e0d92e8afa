//! Token sign/verify cost, native. Prints ns per operation and the ratio to a bare HMAC-SHA256 of
//! the same bytes with a pre-keyed MAC (the floor: any verifier must at least do this), measured in
//! the same run. Run: `cargo bench -p epistola-core --bench tokens`.

#![allow(clippy::expect_used)] // fixed, known-good inputs: failing loudly is right here

use std::hint::black_box;
use std::time::Instant;

use epistola_core::token::{Claims, Keyring, Link, Purpose};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn ns_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    // Best of 5 rounds: the least disturbed by the rest of the machine.
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let keys = Keyring::new(&[(2, &[7u8; 32]), (1, &[9u8; 32])]).expect("valid keys");
    let base = Claims {
        purpose: Purpose::Open,
        issued_at: 1_790_000_000,
        expires_at: None,
        campaign: "spring-sale-2026".into(),
        contact: "c-000042".into(),
        message: "m-7f3a".into(),
        link: None,
    };
    let click = Claims {
        purpose: Purpose::Click,
        link: Some(Link {
            index: 3,
            url: "https://shop.example/products/42?utm_source=mail".into(),
        }),
        ..base.clone()
    };
    let iters = 200_000;
    println!(
        "{:<28} {:>10} {:>12} {:>8}",
        "case", "token B", "ns/op", "× floor"
    );
    for (name, claims) in [("open", &base), ("click", &click)] {
        let token = keys.sign(claims).expect("signs");
        let raw_len = token.len() * 3 / 4;
        let mac = Hmac::<Sha256>::new_from_slice(&[7u8; 32]).expect("any key length");
        let body = vec![0x5au8; raw_len - 16];
        let floor = ns_per_op(iters, || {
            black_box(mac.clone().chain_update(black_box(&body)).finalize());
        });
        let verify = ns_per_op(iters, || {
            black_box(
                keys.verify(black_box(&token), claims.purpose, 1_790_000_100)
                    .is_ok(),
            );
        });
        let sign = ns_per_op(iters, || {
            black_box(keys.sign(black_box(claims)).is_ok());
        });
        println!(
            "{:<28} {:>10} {:>12.1} {:>8}",
            format!("hmac floor ({name})"),
            raw_len,
            floor,
            "1.00"
        );
        println!(
            "{:<28} {:>10} {:>12.1} {:>8.2}",
            format!("verify {name}"),
            token.len(),
            verify,
            verify / floor
        );
        println!(
            "{:<28} {:>10} {:>12.1} {:>8.2}",
            format!("sign {name}"),
            token.len(),
            sign,
            sign / floor
        );
    }
}
