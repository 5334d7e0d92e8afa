//! `GET /w.js`: the capture widget, built by `capture-widget/build.mjs` and embedded at compile
//! time. Cached by browsers and revalidated by ETag.

use worker::{Request, Response};

use crate::http;

const WIDGET_JS: &str = include_str!("../../../capture-widget/dist/w.js");
const WIDGET_ETAG: &str = include_str!("../../../capture-widget/dist/w.js.etag");

pub fn script(req: &Request) -> Response {
    let etag = format!("\"{}\"", WIDGET_ETAG.trim());
    let headers = [
        ("Content-Type", "application/javascript; charset=utf-8"),
        (
            "Cache-Control",
            "public, max-age=300, stale-while-revalidate=86400",
        ),
        ("ETag", etag.as_str()),
        ("Access-Control-Allow-Origin", "*"),
        ("X-Content-Type-Options", "nosniff"),
    ];
    let not_modified = http::header(req, "If-None-Match").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
    });
    if not_modified {
        return http::with_body(304, Vec::new(), &headers);
    }
    http::with_body(200, WIDGET_JS.as_bytes().to_vec(), &headers)
}
