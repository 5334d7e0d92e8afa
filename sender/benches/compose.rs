//! Render + rewrite + MIME of a realistic ~100 KB newsletter with 30 links, per recipient, native.
//! The floor, measured in the same run on the same document, is lol_html alone rewriting every
//! link's href to a constant (parse + serialise, no templates, no signing, no MIME): any tracking
//! rewrite costs at least that. Target: compose ≥ 50 % of the floor's rate.
//! Run: `cargo bench -p epistola-sender --bench compose`.

#![allow(clippy::expect_used)] // fixed, known-good inputs: failing loudly is right here

use std::hint::black_box;
use std::time::Instant;

use epistola_core::token::Keyring;
use epistola_sender::compose::{compose, Campaign, Recipient};
use epistola_sender::template::Compiled;
use lol_html::{element, rewrite_str, RewriteStrSettings};

#[path = "newsletter.rs"]
mod newsletter;

fn us_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / 1000.0 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let html = newsletter::newsletter_html();
    let links = html.matches("<a ").count();
    let keys = Keyring::new(&[(1, &[7u8; 32])]).expect("valid keys");
    let template = Compiled::new(&newsletter::newsletter_template()).expect("compiles");
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
    let iters = 200;
    let floor = us_per_op(iters, || {
        let out = rewrite_str(
            black_box(&html),
            RewriteStrSettings {
                element_content_handlers: vec![element!("a[href]", |el| {
                    el.set_attribute("href", "https://t.example/c/x")?;
                    Ok(())
                })],
                ..RewriteStrSettings::new()
            },
        )
        .expect("rewrites");
        black_box(out);
    });
    let full = us_per_op(iters, || {
        let out = compose(
            &campaign,
            &Recipient {
                contact: "c_0001",
                email: "ann@example.com",
                message: "campaign.spring-2026.c_0001",
                context: &context,
            },
        )
        .expect("composes");
        black_box(out);
    });
    let rendered = template.render(&context).expect("renders");
    let render_only = us_per_op(iters, || {
        black_box(template.render(black_box(&context)).expect("renders"));
    });
    let rewrite_only = us_per_op(iters, || {
        let out = epistola_sender::rewrite::rewrite(
            black_box(&rendered.html),
            &epistola_sender::rewrite::Tracking {
                own_origin: "https://t.example",
                pixel_url: Some("https://t.example/o/x.gif"),
                footer_html: None,
                unsubscribe_url: "",
                honeypot_html: None,
            },
            &mut |i, _| Some(format!("https://t.example/c/{i}")),
        )
        .expect("rewrites");
        black_box(out);
    });
    let letter = epistola_sender::letter::Letter {
        subject: rendered.subject.clone(),
        text: "t".into(),
        html: rendered.html.clone(),
    };
    let mime_only = us_per_op(iters, || {
        black_box(epistola_sender::mime::build_message(
            &epistola_sender::mime::Outgoing {
                from_name: "Toy shop",
                from: "hello@shop.example",
                to: "ann@example.com",
                letter: black_box(&letter),
                message_id: "m@t.example",
                date: 1_790_000_000,
                headers: &[],
            },
        ));
    });
    println!("stages alone: render {render_only:.0} µs, rewrite {rewrite_only:.0} µs, MIME {mime_only:.0} µs");
    let mime = compose(
        &campaign,
        &Recipient {
            contact: "c_0001",
            email: "ann@example.com",
            message: "m",
            context: &context,
        },
    )
    .expect("composes");
    println!(
        "document: {} bytes of HTML, {links} links; message: {} bytes of MIME",
        html.len(),
        mime.mime.len()
    );
    println!(
        "{:<40} {:>10} {:>12} {:>10}",
        "case", "µs/email", "emails/s", "× floor"
    );
    for (name, us) in [
        ("lol_html alone (floor)", floor),
        ("compose: render + rewrite + MIME", full),
    ] {
        println!(
            "{name:<40} {us:>10.0} {:>12.0} {:>10.2}",
            1e6 / us,
            floor / us
        );
    }
}
