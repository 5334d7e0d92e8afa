//! Request routing: one module per route family, named handler functions.

use worker::{Context, Env, Method, Request, Response};

use crate::http::{self, ApiError};

mod capture;
mod convert;
mod sender;
mod sites;
mod stats;
mod track_api;
mod tracking;
mod widget;

/// Where a request goes: decided from the path and method alone, before any I/O.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Widget,
    /// Passed on unchanged to the sending worker (the back office).
    Sender,
    Health,
    Open(&'a str),
    /// A pixel URL mangled by a mail client or a proxy still gets an image, never a broken one.
    Pixel,
    Click(&'a str),
    UnsubscribePage(&'a str),
    UnsubscribeHead(&'a str),
    Unsubscribe(&'a str),
    SignLinks,
    CampaignStats(&'a str),
    PutSite(&'a str),
    WidgetConfig(&'a str),
    WidgetPreflight(&'a str),
    /// The site is in the body, so the preflight cannot check the origin; the POST itself does,
    /// and only an allowed origin gets to read its answer.
    BeaconPreflight,
    Capture,
    Convert,
    MethodNotAllowed(&'static str),
    NotFound,
}

fn route<'a>(segments: &[&'a str], method: &Method) -> Route<'a> {
    use Method::{Get, Head, Options, Post, Put};
    let read = matches!(method, Get | Head);
    match (segments, method) {
        (["w.js"], _) if read => Route::Widget,
        // The dashboard is served by the sending worker, keeping the edge small; so are double
        // opt-in and the preference centre (they read and write contacts and the ledger).
        // The start page at the root URL is the sending worker's too.
        ([""] | ["dashboard", ..] | ["confirm" | "p", _], _) => Route::Sender,
        (["v1", family, ..], _) if sender::SENDER_FAMILIES.contains(family) => Route::Sender,
        (["healthz"], _) if read => Route::Health,
        (["o", token], _) if read => Route::Open(token),
        (["o", _, ..], _) if read => Route::Pixel,
        (["c", token], _) if read => Route::Click(token),
        (["o", _, ..] | ["c", _], _) => Route::MethodNotAllowed("GET, HEAD"),
        (["u", token], Get) => Route::UnsubscribePage(token),
        (["u", token], Head) => Route::UnsubscribeHead(token),
        (["u", token], Post) => Route::Unsubscribe(token),
        (["u", _], _) => Route::MethodNotAllowed("GET, HEAD, POST"),
        (["v1", "track", "links"], Post) => Route::SignLinks,
        (["v1", "track", "links"], _) => Route::MethodNotAllowed("POST"),
        (["v1", "stats", "campaigns", id], Get) => Route::CampaignStats(id),
        (["v1", "stats", "campaigns", _], _) => Route::MethodNotAllowed("GET"),
        (["v1", "sites", site], Put) => Route::PutSite(site),
        (["v1", "sites", _], _) => Route::MethodNotAllowed("PUT"),
        (["v1", "sites", site, "widget"], Get) => Route::WidgetConfig(site),
        (["v1", "sites", site, "widget"], Options) => Route::WidgetPreflight(site),
        (["v1", "sites", _, "widget"], _) => Route::MethodNotAllowed("GET, OPTIONS"),
        (["v1", "capture" | "convert"], Options) => Route::BeaconPreflight,
        (["v1", "capture"], Post) => Route::Capture,
        (["v1", "convert"], Post) => Route::Convert,
        (["v1", "capture" | "convert"], _) => Route::MethodNotAllowed("POST"),
        _ => Route::NotFound,
    }
}

/// Routes a request. Every outcome, including our own failures, is a response. Each handler is
/// called from one place only: an async handler awaited in several arms is compiled into the
/// dispatch future once per arm.
pub async fn dispatch(req: Request, env: Env, ctx: Context, now: u64) -> Response {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match route(&segments, &req.method()) {
        Route::Widget => widget::script(&req),
        Route::Sender => sender::forward(req, &env).await,
        Route::Health => http::json(200, &serde_json::json!({"status": "ok"})),
        Route::Open(token) => tracking::open(&req, &env, &ctx, token, now),
        Route::Pixel => http::pixel(),
        Route::Click(token) => tracking::click(&req, &env, &ctx, token, now).await,
        Route::UnsubscribePage(token) => tracking::unsubscribe_page(&env, token, now),
        Route::UnsubscribeHead(token) => http::head(tracking::unsubscribe_page(&env, token, now)),
        Route::Unsubscribe(token) => tracking::unsubscribe(req, &env, &ctx, token, now).await,
        Route::SignLinks => respond(track_api::sign_links(req, &env, now).await),
        Route::CampaignStats(id) => respond(stats::campaign(&req, &env, id).await),
        Route::PutSite(site) => respond(sites::put_site(req, &env, site).await),
        Route::WidgetConfig(site) => respond(sites::widget_config(&req, &env, site).await),
        Route::WidgetPreflight(site) => respond(sites::preflight(&req, &env, site).await),
        Route::BeaconPreflight => http::preflight(http::header(&req, "Origin").as_deref()),
        Route::Capture => respond(capture::capture(req, &env, now).await),
        Route::Convert => respond(convert::convert(req, &env, now).await),
        Route::MethodNotAllowed(allow) => http::method_not_allowed(allow),
        Route::NotFound => ApiError::new(404, "not_found", "no such route").into_response(),
    }
}

/// Runs the sending worker's tick (see `send-worker/src/campaign_jobs.rs`).
pub async fn tick_sender(env: &Env, now: u64) {
    sender::tick(env, now).await;
}

fn respond(result: http::ApiResult<Response>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

#[cfg(test)]
mod tests {
    use super::{route, Route as R};
    use worker::Method::{self, Delete, Get, Head, Options, Post, Put};

    #[test]
    fn routes_by_path_and_method() {
        let cases: &[(Method, &str, R)] = &[
            (Get, "o/tok", R::Open("tok")),
            (Head, "o/tok", R::Open("tok")),
            (Get, "o/tok/x.gif", R::Pixel),
            (Post, "o/tok", R::MethodNotAllowed("GET, HEAD")),
            (Get, "c/tok", R::Click("tok")),
            (Delete, "c/tok", R::MethodNotAllowed("GET, HEAD")),
            (Get, "c/tok/extra", R::NotFound),
            (Get, "u/tok", R::UnsubscribePage("tok")),
            (Head, "u/tok", R::UnsubscribeHead("tok")),
            (Post, "u/tok", R::Unsubscribe("tok")),
            (Put, "u/tok", R::MethodNotAllowed("GET, HEAD, POST")),
            (Get, "w.js", R::Widget),
            (Post, "w.js", R::NotFound),
            (Get, "healthz", R::Health),
            (Post, "healthz", R::NotFound),
            (Get, "dashboard", R::Sender),
            (Post, "dashboard/campaigns/c1", R::Sender),
            (Get, "confirm/tok", R::Sender),
            (Post, "p/tok", R::Sender),
            (Delete, "v1/contacts/x%40y", R::Sender),
            (Post, "v1/webhook-endpoints", R::Sender),
            (Delete, "v1/tokens/tok_1", R::Sender),
            (Get, "v1/audit", R::Sender),
            (Post, "v1/track/links", R::SignLinks),
            (Get, "v1/track/links", R::MethodNotAllowed("POST")),
            (Get, "v1/stats/campaigns/spring", R::CampaignStats("spring")),
            (Put, "v1/sites/shop", R::PutSite("shop")),
            (Get, "v1/sites/shop", R::MethodNotAllowed("PUT")),
            (Get, "v1/sites/shop/widget", R::WidgetConfig("shop")),
            (Options, "v1/sites/shop/widget", R::WidgetPreflight("shop")),
            (Options, "v1/capture", R::BeaconPreflight),
            (Options, "v1/convert", R::BeaconPreflight),
            (Post, "v1/capture", R::Capture),
            (Post, "v1/convert", R::Convert),
            (Get, "v1/convert", R::MethodNotAllowed("POST")),
            (Get, "v1/unknown", R::NotFound),
            (Get, "", R::Sender),
            (Get, "nope", R::NotFound),
        ];
        for (method, path, want) in cases {
            let segments: Vec<&str> = path.split('/').collect();
            assert_eq!(&route(&segments, method), want, "{method:?} /{path}");
        }
    }
}
