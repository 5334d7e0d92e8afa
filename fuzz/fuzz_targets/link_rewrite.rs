//! Link rewriting on arbitrary HTML: never panics; every link it reports as signed is a valid
//! destination, indexes are dense and in order, and the pixel and the honeypot go in exactly once.
#![no_main]

use epistola_core::url::validate_destination;
use epistola_sender::rewrite::{prepare, rewrite, Tracking};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(html) = std::str::from_utf8(data) else {
        return;
    };
    let tracking = Tracking {
        own_origin: "https://t.example",
        pixel_url: Some("https://t.example/o/PIXEL.gif"),
        footer_html: Some("<p><a href=\"https://t.example/u/U\">Unsubscribe</a></p>"),
        unsubscribe_url: "https://t.example/u/U",
        honeypot_html: Some(r#"<a href="https://t.example/c/HONEYPOT" aria-hidden="true"></a>"#),
    };
    let mut sign = |i: u16, _: &str| Some(format!("https://t.example/c/{i}"));
    if let Ok(out) = rewrite(html, &tracking, &mut sign) {
        for (n, (index, url)) in out.links.iter().enumerate() {
            assert_eq!(usize::from(*index), n);
            assert!(validate_destination(url).is_ok(), "{url}");
        }
        if !html.contains("PIXEL") {
            assert_eq!(out.html.matches("https://t.example/o/PIXEL.gif").count(), 1);
        }
        if !html.contains("HONEYPOT") {
            assert_eq!(out.html.matches("https://t.example/c/HONEYPOT").count(), 1);
        }
    }
    let _ = prepare(html);
});
