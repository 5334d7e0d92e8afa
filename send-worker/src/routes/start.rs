//! `GET /`: the start page. Where to go from the root URL, instead of a JSON 404: the dashboard,
//! and (set by `scripts/dev.sh` in `START_LINKS`) the local demo shop, mail sink and SMS sink.

use serde::Deserialize;
use worker::{Env, Response};

use crate::config;
use crate::http::{self, escape_html};

/// One extra link on the start page (`START_LINKS`, a JSON array of these).
#[derive(Debug, Deserialize)]
struct StartLink {
    label: String,
    url: String,
    #[serde(default)]
    note: String,
}

fn link(url: &str, label: &str, note: &str) -> String {
    format!(
        "<li><a href=\"{}\">{}</a>{}{}</li>",
        escape_html(url),
        escape_html(label),
        if note.is_empty() { "" } else { " — " },
        escape_html(note)
    )
}

pub fn page(env: &Env) -> Response {
    let mut items = link(
        "/dashboard",
        "Dashboard",
        "campaigns, chains, audience, contacts and stats (sign in with a mailed link, or an API token)",
    );
    // A malformed list is a configuration mistake, not a reason to hide the dashboard link.
    let extra: Vec<StartLink> = config::text(env, "START_LINKS")
        .and_then(|t| serde_json::from_slice(t.as_bytes()).ok())
        .unwrap_or_default();
    for l in extra
        .iter()
        .filter(|l| l.url.starts_with("http://") || l.url.starts_with("https://"))
    {
        items.push_str(&link(&l.url, &l.label, &l.note));
    }
    http::page(
        200,
        "Epistola",
        &format!(
            "<p>Letters that know the moment, counted honestly.</p><ul>{items}</ul>\
<p>The HTTP API is under <code>/v1/</code>; its reference is the README.</p>"
        ),
    )
}
