//! Loops over token verify/sign and a bare HMAC, exported without wasm-bindgen so that Node can
//! time them with nothing but the loop inside wasm. Each returns how many operations succeeded, so
//! the optimiser cannot drop the work and the caller can check it.

use std::hint::black_box;

use epistola_core::token::{Claims, Keyring, Link, Purpose};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NOW: u64 = 1_790_000_100;

fn keys() -> Option<Keyring> {
    Keyring::new(&[(2, &[7u8; 32]), (1, &[9u8; 32])]).ok()
}

fn claims(click: bool) -> Claims {
    Claims {
        purpose: if click { Purpose::Click } else { Purpose::Open },
        issued_at: 1_790_000_000,
        expires_at: None,
        campaign: "spring-sale-2026".into(),
        contact: "c-000042".into(),
        message: "m-7f3a".into(),
        link: click.then(|| Link {
            index: 3,
            url: "https://shop.example/products/42?utm_source=mail".into(),
        }),
    }
}

/// Verifies an open (click = 0) or click (click = 1) token `iters` times.
#[no_mangle]
pub extern "C" fn verify_loop(click: u32, iters: u32) -> u32 {
    let Some(keys) = keys() else { return 0 };
    let c = claims(click == 1);
    let Ok(token) = keys.sign(&c) else { return 0 };
    (0..iters)
        .filter(|_| keys.verify(black_box(&token), c.purpose, NOW).is_ok())
        .count() as u32
}

/// Signs an open or click token `iters` times.
#[no_mangle]
pub extern "C" fn sign_loop(click: u32, iters: u32) -> u32 {
    let Some(keys) = keys() else { return 0 };
    let c = claims(click == 1);
    (0..iters)
        .filter(|_| keys.sign(black_box(&c)).is_ok())
        .count() as u32
}

/// The floor: a pre-keyed HMAC-SHA256 over as many bytes as the token's signed body.
#[no_mangle]
pub extern "C" fn hmac_floor_loop(click: u32, iters: u32) -> u32 {
    let Some(keys) = keys() else { return 0 };
    let Ok(token) = keys.sign(&claims(click == 1)) else {
        return 0;
    };
    let body = vec![0x5a_u8; token.len() * 3 / 4 - 16];
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(&[7u8; 32]) else {
        return 0;
    };
    let mut done = 0;
    for _ in 0..iters {
        black_box(mac.clone().chain_update(black_box(&body)).finalize());
        done += 1;
    }
    done
}

/// Length of the token, so the caller can report it.
#[no_mangle]
pub extern "C" fn token_len(click: u32) -> u32 {
    keys()
        .and_then(|k| k.sign(&claims(click == 1)).ok())
        .map_or(0, |t| t.len() as u32)
}

// ---------------------------------------------------------------------------------------------
// Campaign letters: the same ~100 KB newsletter as `cargo bench -p epistola-sender --bench compose`.

#[path = "../../../sender/benches/newsletter.rs"]
mod newsletter;

/// Composes (render + rewrite + MIME) the newsletter for one recipient `iters` times.
#[no_mangle]
pub extern "C" fn compose_loop(iters: u32) -> u32 {
    use epistola_sender::compose::{compose, Campaign, Recipient};
    use epistola_sender::template::Compiled;
    let (Some(keys), Ok(template)) = (keys(), Compiled::new(&newsletter::newsletter_template()))
    else {
        return 0;
    };
    let campaign = Campaign {
        id: "spring-2026",
        site: "toy-shop",
        template: &template,
        base_url: "https://t.example",
        from_name: "Toy shop",
        from: "hello@shop.example",
        anonymous: false,
        keys: &keys,
        now: 1_790_000_000,
    };
    let context = newsletter::recipient_context();
    let recipient = Recipient {
        contact: "c_0001",
        email: "ann@example.com",
        message: "campaign.spring-2026.c_0001",
        context: &context,
    };
    (0..iters)
        .filter(|_| compose(black_box(&campaign), &recipient).is_ok_and(|m| !m.mime.is_empty()))
        .count() as u32
}

/// The floor: lol_html alone rewriting every link of the same document `iters` times.
#[no_mangle]
pub extern "C" fn lol_html_floor_loop(iters: u32) -> u32 {
    use lol_html::{element, rewrite_str, RewriteStrSettings};
    let html = newsletter::newsletter_html();
    (0..iters)
        .filter(|_| {
            rewrite_str(
                black_box(&html),
                RewriteStrSettings {
                    element_content_handlers: vec![element!("a[href]", |el| {
                        el.set_attribute("href", "https://t.example/c/x")?;
                        Ok(())
                    })],
                    ..RewriteStrSettings::new()
                },
            )
            .is_ok_and(|out| !out.is_empty())
        })
        .count() as u32
}
