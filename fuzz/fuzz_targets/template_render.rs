//! Marketer-written templates: checking and rendering arbitrary sources never panics and never runs
//! forever (minijinja's fuel limit), and a template that passes the check renders or reports an
//! error naming its part.
#![no_main]

use epistola_sender::template::{check, Compiled, TemplateSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\u{0}');
    let source = TemplateSource {
        subject: parts.next().unwrap_or("").to_owned(),
        html: parts.next().unwrap_or("").to_owned(),
        text: parts.next().map(str::to_owned),
        sms: None,
    };
    if !check(&source).is_empty() {
        return;
    }
    let Ok(compiled) = Compiled::new(&source) else {
        return;
    };
    let context = serde_json::json!({
        "contact": {"name": "Ann", "email": "ann@example.com", "attributes": {"locale": "en"}},
        "campaign": {"id": "c", "name": "C"},
        "site": {"name": "S"},
        "unsubscribe_url": "https://t.example/u/x",
    });
    if let Ok(parts) = compiled.render(&context) {
        assert!(!parts.subject.contains('\n'), "subjects are one line");
    }
});
