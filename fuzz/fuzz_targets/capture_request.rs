//! The capture endpoint's parsing and validation on arbitrary bodies: never panics, and whatever
//! passes is within the documented bounds.
#![no_main]

use epistola_core::capture::{validate_capture, CaptureRequest};
use epistola_core::site::SiteConfig;
use libfuzzer_sys::fuzz_target;

const SITE: &str = include_str!("../../tests/vectors/site.json");

fuzz_target!(|data: &[u8]| {
    let Ok(site) = serde_json::from_slice::<SiteConfig>(SITE.as_bytes()) else {
        return;
    };
    let Ok(request) = serde_json::from_slice::<CaptureRequest>(data) else {
        return;
    };
    let _ = request.is_bot();
    if let Ok(valid) = validate_capture(&site, &request) {
        assert!(
            valid.email.contains('@') && valid.email.len() <= 254,
            "{:?}",
            valid.email
        );
        assert!(!valid.consents.is_empty());
        assert!(valid.fields.values().all(|v| v.chars().count() <= 200));
    }
});
