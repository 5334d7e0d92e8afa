//! The marketer dashboard as pure functions: campaign statistics in, HTML out. No script: charts
//! are inline SVG ([`chart`]), every table has a CSV twin, pages are small enough for a phone on a
//! slow connection. The worker adds authentication, data and security headers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epistola_core::contact::utc_date;
use epistola_core::html::escape;
use epistola_core::stats::{csv_field, CampaignStats, Revenue};

pub mod admin;
pub mod campaign_form;
pub mod chart;
pub mod contact_page;
pub mod lifecycle;
pub mod settings_page;
pub mod suppression_page;
pub mod template_form;

pub use admin::{audit, audit_csv, tokens, users, AuditLine, TokenForm, TokenLine, UserLine};
pub use campaign_form::{campaign_form, Audience, CampaignForm, Choices};
pub use contact_page::{contact, contact_view, ContactForms, ContactView};
pub use lifecycle::{approval, Approval, LastTest, NextStep};
pub use settings_page::{settings, EndpointLine, PausedLine, TestLetterForm};
pub use suppression_page::{
    suppressions, CountLine, ImportReport, ImportTyped, LiftLine, Lookup, SuppressionForms,
    SuppressionLine, SuppressionsView,
};
pub use template_form::{template_form, templates, Preview, TemplateForm, TemplateLine};

/// The session cookie: the API token itself, `HttpOnly` (no script reads it), `Secure`,
/// `SameSite=Strict` (never sent on a cross-site request, so no CSRF on GET or POST) and scoped to
/// `/dashboard`. Every request re-checks the token, so revoking it ends the session.
pub const SESSION_COOKIE: &str = "epistola_session";
/// Session lifetime: one working day.
pub const SESSION_SECONDS: u64 = 12 * 3600;

/// The session from a `Cookie` header: a signed session token (purpose `dashboard_session`,
/// naming the API token's id and expiring with the session), never an API token.
pub fn session_token(cookie_header: Option<&str>) -> Option<&str> {
    cookie_header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
        .filter(|v| is_cookie_safe(v))
}

/// Tokens are URL-safe text; anything else never goes into a cookie.
pub fn is_cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 200
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

/// `Set-Cookie` value that starts a session (`session`: the signed session token).
pub fn session_cookie(session: &str) -> String {
    format!(
        "{SESSION_COOKIE}={session}; Path=/dashboard; Max-Age={SESSION_SECONDS}; HttpOnly; Secure; SameSite=Strict"
    )
}

/// `Set-Cookie` value that ends it.
pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/dashboard; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// What the dashboard knows about a campaign besides its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignInfo {
    pub id: String,
    pub name: String,
    /// Campaign status, `active`/`paused` for chain steps, or `tracked` for campaigns only known from
    /// tracking (links signed through `POST /v1/track/links`).
    pub status: String,
    /// What the campaign's letters still wait for, in words (`core::delivery::Waiting::summary`);
    /// `None` when nothing waits.
    pub waiting: Option<String>,
}

impl CampaignInfo {
    /// The status as shown: a finished fan-out whose letters still wait is "waiting", not "done".
    pub fn shown_status(&self) -> &str {
        if self.waiting.is_some() && self.status == "done" {
            "waiting"
        } else {
            &self.status
        }
    }
}

/// The headline numbers of a campaign, as the list and the funnel show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages handed to a transport (accepted + failed), all channels.
    pub sent: u64,
    /// Accepted by the receiving server or SMS provider.
    pub delivered: u64,
    /// Distinct contacts who opened as a person (privacy-proxy and scanner fetches excluded).
    pub human_opens: u64,
    /// Distinct contacts who clicked as a person.
    pub human_clicks: u64,
    pub unsubscribes: u64,
    pub conversions: u64,
    /// Of `conversions`, reported only by the site's widget (not confirmed by the shop's server).
    pub unverified: u64,
    pub revenue: String,
}

impl Summary {
    pub fn of(s: &CampaignStats) -> Summary {
        let delivered: u64 = s.delivery.values().map(|d| d.sent).sum();
        let failed: u64 = s.delivery.values().map(|d| d.failed).sum();
        Summary {
            sent: delivered + failed,
            delivered,
            human_opens: s.opens.human.unique,
            human_clicks: s.clicks.all.human.unique,
            unsubscribes: s.unsubscribes,
            conversions: s.conversions.all.count,
            unverified: s.conversions.all.unverified,
            revenue: revenue_text(&s.conversions.all.revenue),
        }
    }
}

/// `49.90 EUR, 12.00 USD`; `0` when there is none.
pub fn revenue_text(r: &Revenue) -> String {
    if r.is_empty() {
        return "0".into();
    }
    r.iter()
        .map(|(c, a)| format!("{} {c}", a.amount))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Share `part / whole` as `12.5%`.
fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    let permille = part * 1000 / whole;
    format!("{}.{}%", permille / 10, permille % 10)
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}\
header{background:#1d2b3a;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}\
header a{color:#fff}header form{margin-left:auto}main{padding:1rem;max-width:70rem;margin:auto}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem;background:#fff}\
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}\
.wrap{overflow-x:auto}.chart,.funnel{width:100%;max-width:640px;height:auto;background:#fff}\
.two{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}\
button{font:inherit;padding:.4rem .9rem;border-radius:.3rem;border:1px solid #333;background:#222;color:#fff}\
input,select,textarea{font:inherit;padding:.35rem;max-width:100%;box-sizing:border-box}.err{color:#b00020}.legend span{margin-right:1rem}.muted{color:#595959}\
.notice{background:#fff4d6;border-left:4px solid #b7791f;padding:.6rem .8rem}.who{opacity:.9}form.inline{display:inline;margin-left:.5rem}\
button.danger{background:#b00020;border-color:#b00020}";

/// Where `with_viewer` puts what depends on who is signed in (pages are rendered without it).
const VIEWER_SLOT: &str = "<!--viewer-->";

/// Who is signed in, as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user's address, or the API token's name.
    pub name: String,
    /// The user's role, or `API token`.
    pub role: String,
    /// Holds `contacts:read`: the Contacts page is in the navigation.
    pub reads_contacts: bool,
    /// Holds `tokens:write`: the Tokens page is.
    pub manages_tokens: bool,
    /// Holds `audit:read`: the Audit page is.
    pub reads_audit: bool,
    /// Holds `campaigns:write`: the Templates page is.
    pub writes_campaigns: bool,
}

/// A rendered page with the viewer's part of the header: the pages they may open, and who they are.
pub fn with_viewer(document: &str, viewer: &Viewer) -> String {
    let pages = [
        (
            viewer.writes_campaigns,
            "<a href=\"/dashboard/templates\">Templates</a>",
        ),
        (
            viewer.reads_contacts,
            "<a href=\"/dashboard/contacts\">Contacts</a>",
        ),
        (
            viewer.reads_contacts,
            "<a href=\"/dashboard/suppressions\">Suppressions</a>",
        ),
        (
            viewer.manages_tokens,
            "<a href=\"/dashboard/tokens\">Tokens</a>",
        ),
        (
            viewer.manages_tokens,
            "<a href=\"/dashboard/users\">Users</a>",
        ),
        (viewer.reads_audit, "<a href=\"/dashboard/audit\">Audit</a>"),
        (
            viewer.manages_tokens,
            "<a href=\"/dashboard/settings\">Settings</a>",
        ),
    ];
    let links: String = pages
        .iter()
        .filter(|(may, _)| *may)
        .map(|(_, a)| *a)
        .collect();
    let strip = format!(
        "{links}<span class=\"who\">{} · {}</span>",
        escape(&viewer.name),
        escape(&viewer.role)
    );
    document.replacen(VIEWER_SLOT, &strip, 1)
}

/// One contact in the contacts list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactLine {
    pub id: String,
    pub email: String,
    pub name: String,
    pub status: String,
    pub tags: Vec<String>,
    /// When the contact was added, `YYYY-MM-DD HH:MM` UTC.
    pub added: String,
}

/// The contacts page: a search (`query`, as `GET /v1/contacts` takes it) with its error next to
/// the field, one page of contacts, and the link to the next page.
pub fn contacts(
    query: &str,
    error: Option<&str>,
    rows: &[ContactLine],
    next: Option<&str>,
    notice: Option<&str>,
) -> String {
    let has_error = error.is_some();
    let described = if has_error {
        " aria-describedby=\"query-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let error = error
        .map(|e| {
            format!(
                "<p id=\"query-error\" class=\"err\" role=\"alert\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let mut body = notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/dashboard/contacts\" role=\"search\"><label for=\"query\">Search</label> \
<input id=\"query\" name=\"query\" value=\"{}\" size=\"40\"{described} placeholder=\"olena tag:vip locale:uk\"> <button>Search</button>\
{error}<p class=\"muted\">Words are found in the address and the name; <code>tag:vip</code> has the tag; \
<code>locale:uk</code> or <code>city:\"New York\"</code> matches a field exactly. Every term must hold.</p></form>",
        escape(query)
    );
    if has_error {
        // The search did not run: saying "nothing matches" would be wrong.
    } else if rows.is_empty() {
        body.push_str(if query.trim().is_empty() {
            "<p class=\"notice\">No contacts yet. The widget adds them as people sign up; <code>POST /v1/contacts/import</code> takes a CSV.</p>"
        } else {
            "<p class=\"notice\">No contact matches every term of this search.</p>"
        });
    } else {
        let lines: Vec<Vec<String>> = rows
            .iter()
            .map(|c| {
                vec![
                    link(&format!("/dashboard/contacts/{}", path_id(&c.id)), &c.email),
                    escape(&c.name),
                    escape(&c.status),
                    escape(&c.tags.join(", ")),
                    escape(&c.added),
                ]
            })
            .collect();
        body.push_str(&table(
            &["Address", "Name", "Status", "Tags", "Added (UTC)"],
            &lines,
            None,
        ));
    }
    if let Some(cursor) = next {
        let _ = write!(
            body,
            "<p><a href=\"/dashboard/contacts?query={}&amp;cursor={}\">Next page</a></p>",
            path_id(query),
            path_id(cursor)
        );
    }
    layout("Contacts", &body)
}

/// `YYYY-MM-DD HH:MM` (UTC) of unix seconds.
pub fn minute(at: i64) -> String {
    let at = at.max(0) as u64;
    let day = utc_date(at).map(|d| d.0).unwrap_or_default();
    format!("{day} {:02}:{:02}", at % 86_400 / 3600, at % 3600 / 60)
}

/// A dashboard page: header with navigation and sign-out, then `body` (already escaped).
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\">\
<title>{t} · Epistola</title><style>{STYLE}</style></head><body><header><strong>Epistola</strong>\
<a href=\"/dashboard\">Campaigns</a><a href=\"/dashboard/chains\">Chains</a><a href=\"/dashboard/audience\">Audience</a>\
{VIEWER_SLOT}<form method=\"post\" action=\"/dashboard/logout\"><button>Sign out</button></form></header>\
<main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    )
}

fn bare_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\">\
<title>{t} · Epistola</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    )
}

/// The sign-in page: an API token with `stats:read` (first, as the dashboard always had it: its
/// form is the page's first), and for workspace users a one-time link mailed to their address.
pub fn sign_in(error: Option<&str>) -> String {
    sign_in_page(error, None)
}

/// The sign-in page after a refused API token, its error beside the token field.
pub fn token_refused(error: &str) -> String {
    sign_in_page(None, Some(error))
}

fn sign_in_page(error: Option<&str>, token_error: Option<&str>) -> String {
    let alert = |e: &str| format!("<p class=\"err\" role=\"alert\">{}</p>", escape(e));
    bare_page(
        "Sign in to Epistola",
        &format!(
            "{}<form method=\"post\" action=\"/dashboard/session\">\
<label for=\"token\">API token (scope <code>stats:read</code>)</label><br>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required size=\"40\"> <button>Sign in</button>{}</form>\
<h2>Workspace users</h2><form method=\"post\" action=\"/dashboard/sign-in-link\"><label for=\"email\">Your work address</label><br>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required size=\"32\"> <button>Email me a sign-in link</button></form>",
            error.map(alert).unwrap_or_default(),
            token_error.map(alert).unwrap_or_default(),
        ),
    )
}

/// After asking for a link: the same words whether or not the address has an account.
pub fn link_sent(email: &str, minutes: u64) -> String {
    bare_page(
        "Check your mail",
        &format!(
            "<p role=\"status\">If <strong>{}</strong> belongs to a workspace user, a sign-in link is on its way. \
It works once, for {minutes} minutes.</p><p><a href=\"/dashboard\">Back to sign-in</a></p>",
            escape(email)
        ),
    )
}

/// What a mailed link opens: one button, so a mail scanner that follows the link signs no one in.
pub fn confirm_sign_in(email: &str, action: &str) -> String {
    bare_page(
        "Sign in to Epistola",
        &format!(
            "<p>Sign in as <strong>{}</strong>?</p><form method=\"post\" action=\"{}\"><button>Sign in</button></form>",
            escape(email),
            escape(action)
        ),
    )
}

/// A link that was used, expired, or whose user was disabled.
pub fn link_refused() -> String {
    bare_page(
        "This sign-in link does not work",
        "<p>Each link works once, for a short while. <a href=\"/dashboard\">Ask for a new one</a>.</p>",
    )
}

pub(crate) fn table(head: &[&str], rows: &[Vec<String>], csv: Option<&str>) -> String {
    let mut t = String::from("<div class=\"wrap\"><table><thead><tr>");
    for h in head {
        let _ = write!(t, "<th>{}</th>", escape(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for cell in r {
            // Cells are built by this module: either escaped text or our own links.
            let _ = write!(t, "<td>{cell}</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table></div>");
    if let Some(href) = csv {
        let _ = write!(t, "<p><a href=\"{}\" download>CSV</a></p>", escape(href));
    }
    t
}

/// Table cells from plain text: every cell escaped.
fn escaped<const N: usize>(rows: &[[String; N]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect()
}

/// CSV lines, one per row.
fn csv_lines<const N: usize>(rows: &[[String; N]]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// A CSV document: the page's column names (lower case, `_` for spaces), then the rows.
pub(crate) fn csv<const N: usize>(head: &[&str], rows: &[[String; N]]) -> String {
    let mut out = head
        .iter()
        .map(|h| h.to_lowercase().replace(' ', "_"))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    out + &csv_lines(rows)
}

fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(href), escape(text))
}

/// A form's errors by field, as the page shows them: the message beside the field (`{field}-error`,
/// announced), and the field's attributes pointing at it.
pub(crate) struct Fields<'a>(pub &'a std::collections::BTreeMap<String, String>);

impl Fields<'_> {
    pub fn error(&self, field: &str) -> String {
        self.0
            .get(field)
            .map(|p| {
                format!(
                    "<p id=\"{field}-error\" class=\"err\" role=\"alert\">{}</p>",
                    escape(p)
                )
            })
            .unwrap_or_default()
    }

    /// The name field, and for a new thing (`id` given) its id, made from the name if left empty.
    pub fn name_and_id(&self, name: &str, id: Option<&str>) -> String {
        let mut out = format!(
            "<p><label for=\"name\">Name</label><br><input id=\"name\" name=\"name\" required maxlength=\"200\" size=\"40\" value=\"{}\"{}>{}</p>",
            escape(name),
            self.invalid("name"),
            self.error("name")
        );
        if let Some(id) = id {
            out.push_str(&format!(
                "<p><label for=\"id\">Id (letters, digits, dashes; made from the name if empty)</label><br>\
<input id=\"id\" name=\"id\" maxlength=\"64\" size=\"30\" value=\"{}\"{}>{}</p>",
                escape(id),
                self.invalid("id"),
                self.error("id")
            ));
        }
        out
    }

    pub fn invalid(&self, field: &str) -> String {
        if self.0.contains_key(field) {
            format!(" aria-describedby=\"{field}-error\" aria-invalid=\"true\"")
        } else {
            String::new()
        }
    }
}

/// Percent-encodes an id for a path segment (ids are URL-safe already; this keeps it so).
pub(crate) fn path_id(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const LIST_HEAD: [&str; 10] = [
    "Campaign",
    "Status",
    "Sent",
    "Delivered",
    "Human opens",
    "Human clicks",
    "Unsubscribes",
    "Conversions",
    "Revenue",
    "Click rate",
];

fn list_cells(info: &CampaignInfo, s: &Summary) -> [String; 10] {
    [
        info.name.clone(),
        info.shown_status().to_owned(),
        s.sent.to_string(),
        s.delivered.to_string(),
        s.human_opens.to_string(),
        s.human_clicks.to_string(),
        s.unsubscribes.to_string(),
        s.conversions.to_string(),
        s.revenue.clone(),
        pct(s.human_clicks, s.delivered),
    ]
}

/// The campaign list with a form to compare two of them.
/// The campaign list; `can_create`: the viewer may create campaigns (a link to the form).
pub fn campaigns(rows: &[(CampaignInfo, CampaignStats)], can_create: bool) -> String {
    let create = if can_create {
        "<p><a href=\"/dashboard/campaigns/new\">New campaign</a></p>"
    } else {
        ""
    };
    let body_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(info, stats)| {
            let mut cells = list_cells(info, &Summary::of(stats)).map(|c| escape(&c));
            cells[0] = link(
                &format!("/dashboard/campaigns/{}", path_id(&info.id)),
                &info.name,
            );
            cells.to_vec()
        })
        .collect();
    let options: String = rows
        .iter()
        .map(|(i, _)| {
            format!(
                "<option value=\"{}\">{}</option>",
                escape(&i.id),
                escape(&i.name)
            )
        })
        .collect();
    if rows.is_empty() {
        return layout(
            "Campaigns",
            &format!("{create}<p class=\"notice\">No campaigns yet. A campaign appears here once it is created \
(here, or <code>PUT /v1/campaigns/{{id}}</code>) or once links are signed for one (<code>POST /v1/track/links</code>).</p>"),
        );
    }
    let mut body = create.to_owned();
    body.push_str(&table(
        &LIST_HEAD,
        &body_rows,
        Some("/dashboard/campaigns.csv"),
    ));
    if rows.len() >= 2 {
        let _ = write!(
            body,
            "<h2>Compare</h2><form method=\"get\" action=\"/dashboard/compare\">\
<select name=\"a\" aria-label=\"First campaign\">{options}</select> \
<select name=\"b\" aria-label=\"Second campaign\">{options}</select> <button>Compare</button></form>"
        );
    }
    layout("Campaigns", &body)
}

/// The campaign list as CSV (the page's columns, after the campaign id).
pub fn campaigns_csv(rows: &[(CampaignInfo, CampaignStats)]) -> String {
    let mut head = vec!["id"];
    head.extend(LIST_HEAD);
    let lines: Vec<[String; 11]> = rows
        .iter()
        .map(|(info, stats)| {
            let [a, b, c, d, e, f, g, h, i, j] = list_cells(info, &Summary::of(stats));
            [info.id.clone(), a, b, c, d, e, f, g, h, i, j]
        })
        .collect();
    csv(&head, &lines)
}

/// One campaign: funnel, chart, links, channels, who fetched, skipped and deferred by reason.
pub fn campaign(info: &CampaignInfo, s: &CampaignStats, next: Option<&NextStep>) -> String {
    let sum = Summary::of(s);
    let id = path_id(&info.id);
    let mut body = format!(
        "<p class=\"muted\">{} · status {}</p>",
        escape(&info.id),
        escape(info.shown_status())
    );
    // What holds letters back comes first: "done, 0 sent" must never be all a marketer sees.
    if let Some(w) = &info.waiting {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\" data-metric=\"waiting\">{}</p>",
            escape(w)
        );
    }
    if let Some(n) = next {
        body.push_str(&lifecycle::next_step(&info.id, n));
    }
    body.push_str("<div class=\"two\"><section><h2>Funnel</h2>");
    body.push_str(&chart::funnel(&[
        ("Sent", sum.sent),
        ("Delivered", sum.delivered),
        ("Opened", sum.human_opens),
        ("Clicked", sum.human_clicks),
        ("Orders", sum.conversions),
    ]));
    let _ = write!(
        body,
        "<p>Revenue: <strong data-metric=\"revenue\">{}</strong></p>\
<p class=\"muted\">Unverified orders (reported by the site only, not by the shop's server): \
<strong data-metric=\"unverified\">{}</strong> of {}</p></section>",
        escape(&sum.revenue),
        sum.unverified,
        sum.conversions
    );
    let b = chart::buckets(&s.series);
    let _ = write!(
        body,
        "<section><h2>Over time ({})</h2>{}<p class=\"legend\"><span style=\"color:#3b6ea5\">■ human opens</span>\
<span style=\"color:#d9822b\">■ human clicks</span><span style=\"color:#2e8540\">■ conversions</span></p>\
<p><a href=\"/dashboard/campaigns/{id}/series.csv\" download>Hourly CSV</a></p></section></div>",
        if b.unit == "hour" { "hourly" } else { "daily" },
        chart::line_chart(
            "Human opens, human clicks and conversions over time",
            &b.starts,
            &[
                chart::Line { name: "opens", colour: "#3b6ea5", values: b.opens.clone() },
                chart::Line { name: "clicks", colour: "#d9822b", values: b.clicks.clone() },
                chart::Line { name: "conversions", colour: "#2e8540", values: b.conversions.clone() },
            ],
        )
    );
    let summary_csv = format!("/dashboard/campaigns/{id}/summary.csv");
    body.push_str("<h2>Headline</h2>");
    body.push_str(&table(
        &LIST_HEAD[1..],
        &[list_cells(info, &sum)[1..]
            .iter()
            .map(|c| escape(c))
            .collect()],
        Some(&summary_csv),
    ));

    body.push_str("<h2>Who fetched</h2>");
    let who = |name: &str, b: &epistola_core::stats::Breakdown| {
        vec![
            escape(name),
            b.total.to_string(),
            b.human.total.to_string(),
            b.privacy_proxy.total.to_string(),
            b.scanner.total.to_string(),
            pct(b.privacy_proxy.total, b.total),
            pct(b.scanner.total, b.total),
        ]
    };
    body.push_str(&table(
        &[
            "Event",
            "Total",
            "Human",
            "Privacy proxy",
            "Scanner",
            "Proxy share",
            "Scanner share",
        ],
        &[who("Opens", &s.opens), who("Clicks", &s.clicks.all)],
        Some(&summary_csv),
    ));

    body.push_str("<h2>Who opened</h2>");
    let e = &s.open_estimate;
    body.push_str(&table(
        &[
            "Sent",
            "Opened as a person",
            "Opened, confirmed by a click",
            "Privacy proxy",
            "Scanner",
            "Estimated open rate",
        ],
        &[vec![
            e.sent.to_string(),
            e.confirmed_human.to_string(),
            e.inferred_from_clicks.to_string(),
            e.privacy_proxy.to_string(),
            e.scanner.to_string(),
            e.estimated_rate
                .map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0)),
        ]],
        Some(&summary_csv),
    ));
    let _ = write!(
        body,
        "<p class=\"legend\">Distinct people. Estimated open rate: {}.</p>",
        escape(e.method)
    );

    body.push_str("<h2>Links</h2>");
    let links: Vec<Vec<String>> = s
        .clicks
        .links
        .iter()
        .map(|l| {
            vec![
                escape(l.url.as_deref().unwrap_or("(not registered)")),
                l.clicks.human.total.to_string(),
                l.clicks.human.unique.to_string(),
                l.clicks.scanner.total.to_string(),
                l.conversions.count.to_string(),
                escape(&revenue_text(&l.conversions.revenue)),
            ]
        })
        .collect();
    body.push_str(&table(
        &[
            "Link",
            "Human clicks",
            "Unique",
            "Scanner",
            "Conversions",
            "Revenue",
        ],
        &links,
        Some(&summary_csv),
    ));

    body.push_str("<h2>Channels</h2>");
    let mut channels: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, d) in &s.delivery {
        let conv = s.conversions.channels.get(name);
        channels.insert(
            name,
            vec![
                escape(name),
                d.sent.to_string(),
                d.failed.to_string(),
                d.skipped.values().sum::<u64>().to_string(),
                d.deferred.values().sum::<u64>().to_string(),
                conv.map_or(0, |c| c.count).to_string(),
                escape(&conv.map_or_else(|| "0".into(), |c| revenue_text(&c.revenue))),
            ],
        );
    }
    for (name, c) in &s.conversions.channels {
        channels.entry(name).or_insert_with(|| {
            vec![
                escape(name),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                c.count.to_string(),
                escape(&revenue_text(&c.revenue)),
            ]
        });
    }
    body.push_str(&table(
        &[
            "Channel",
            "Delivered",
            "Failed",
            "Skipped",
            "Deferred",
            "Conversions",
            "Revenue",
        ],
        &channels.into_values().collect::<Vec<_>>(),
        Some(&summary_csv),
    ));

    body.push_str("<h2>Not sent yet or not at all</h2>");
    let mut reasons = Vec::new();
    for (channel, d) in &s.delivery {
        for (outcome, map) in [("skipped", &d.skipped), ("deferred", &d.deferred)] {
            for (reason, n) in map {
                let words = epistola_core::delivery::reason_in_words(outcome, reason);
                let reason = if reason.is_empty() { "(none)" } else { reason };
                reasons.push(vec![
                    escape(channel),
                    outcome.into(),
                    escape(words),
                    escape(reason),
                    n.to_string(),
                ]);
            }
        }
    }
    body.push_str(&table(
        &["Channel", "Outcome", "Why", "Reason code", "Messages"],
        &reasons,
        Some(&summary_csv),
    ));
    layout(&info.name, &body)
}

/// Two campaigns side by side, with rates relative to what each delivered.
pub fn compare(a: (&CampaignInfo, &CampaignStats), b: (&CampaignInfo, &CampaignStats)) -> String {
    let rows = compare_rows(a, b);
    let body = table(
        &["Metric", &a.0.name, &b.0.name],
        &escaped(&rows),
        Some(&format!(
            "/dashboard/compare.csv?a={}&b={}",
            path_id(&a.0.id),
            path_id(&b.0.id)
        )),
    );
    layout("Compare campaigns", &body)
}

fn compare_rows(
    a: (&CampaignInfo, &CampaignStats),
    b: (&CampaignInfo, &CampaignStats),
) -> Vec<[String; 3]> {
    let (x, y) = (Summary::of(a.1), Summary::of(b.1));
    let row = |name: &str, f: &dyn Fn(&Summary) -> String| [name.to_owned(), f(&x), f(&y)];
    vec![
        row("Sent", &|s| s.sent.to_string()),
        row("Delivered", &|s| s.delivered.to_string()),
        row("Human opens", &|s| s.human_opens.to_string()),
        row("Open rate", &|s| pct(s.human_opens, s.delivered)),
        row("Human clicks", &|s| s.human_clicks.to_string()),
        row("Click rate", &|s| pct(s.human_clicks, s.delivered)),
        row("Unsubscribes", &|s| s.unsubscribes.to_string()),
        row("Conversions", &|s| s.conversions.to_string()),
        row("Conversion rate", &|s| pct(s.conversions, s.delivered)),
        row("Revenue", &|s| s.revenue.clone()),
    ]
}

/// The comparison as CSV.
pub fn compare_csv(
    a: (&CampaignInfo, &CampaignStats),
    b: (&CampaignInfo, &CampaignStats),
) -> String {
    // Headed by the campaign ids as they are (not lower-cased like column names).
    let mut rows = vec![["metric".to_owned(), a.0.id.clone(), b.0.id.clone()]];
    rows.extend(compare_rows(a, b));
    csv_lines(&rows)
}

/// A trigger chain with its runs and the numbers of each step.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    pub trigger: String,
    /// Runs by status (`active`, `done`, `exited`).
    pub runs: BTreeMap<String, u64>,
    /// Each step's stats (stats id `{chain}.{n}`).
    pub steps: Vec<CampaignStats>,
}

const CHAIN_HEAD: [&str; 10] = [
    "Chain",
    "Step",
    "Trigger",
    "Status",
    "Runs active",
    "Runs done",
    "Runs exited",
    "Delivered",
    "Human clicks",
    "Conversions",
];

fn chain_rows(chains: &[ChainInfo]) -> Vec<[String; 10]> {
    let mut rows = Vec::new();
    for c in chains {
        let run = |k: &str| c.runs.get(k).copied().unwrap_or(0).to_string();
        for (i, step) in c.steps.iter().enumerate() {
            let s = Summary::of(step);
            rows.push([
                c.name.clone(),
                (i + 1).to_string(),
                c.trigger.clone(),
                c.status.clone(),
                run("active"),
                run("done"),
                run("exited"),
                s.delivered.to_string(),
                s.human_clicks.to_string(),
                s.conversions.to_string(),
            ]);
        }
    }
    rows
}

/// Chains, one row per step.
pub fn chains(chains: &[ChainInfo]) -> String {
    layout(
        "Chains",
        &table(
            &CHAIN_HEAD,
            &escaped(&chain_rows(chains)),
            Some("/dashboard/chains.csv"),
        ),
    )
}

pub fn chains_csv(chains: &[ChainInfo]) -> String {
    csv(&CHAIN_HEAD, &chain_rows(chains))
}

/// How a site's visitors answered one capture question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerShare {
    pub site: String,
    pub question: String,
    pub answer: String,
    pub count: u64,
}

fn portrait_rows(answers: &[AnswerShare]) -> Vec<[String; 5]> {
    let mut totals: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in answers {
        *totals.entry((&a.site, &a.question)).or_default() += a.count;
    }
    answers
        .iter()
        .map(|a| {
            let total = totals
                .get(&(a.site.as_str(), a.question.as_str()))
                .copied()
                .unwrap_or(0);
            [
                a.site.clone(),
                a.question.clone(),
                a.answer.clone(),
                a.count.to_string(),
                pct(a.count, total),
            ]
        })
        .collect()
}

const PORTRAIT_HEAD: [&str; 5] = ["Site", "Question", "Answer", "Captures", "Share"];

/// Buyers in one RFM segment (`core::rfm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCount {
    pub segment: String,
    pub buyers: u64,
    /// Of them, repeat buyers whose rhythm has stopped.
    pub churn_risk: u64,
}

/// The audience's portrait: buyers by RFM segment, and the share of each capture answer per site
/// and question.
pub fn audience(answers: &[AnswerShare], segments: &[SegmentCount]) -> String {
    layout(
        "Audience",
        &format!(
            "<h2>Buyers by RFM segment</h2><p class=\"muted\">Scored daily from purchases: recency, \
frequency, monetary. Use them in segment rules (<code>{{\"rfm\": [\"at_risk\"]}}</code>) and caps.</p>{}\
<h2>Capture answers</h2>{}",
            table(
                &SEGMENT_HEAD,
                &escaped(&segment_rows(segments)),
                Some("/dashboard/segments.csv")
            ),
            table(
                &PORTRAIT_HEAD,
                &escaped(&portrait_rows(answers)),
                Some("/dashboard/audience.csv")
            )
        ),
    )
}

const SEGMENT_HEAD: [&str; 4] = ["Segment", "Buyers", "Share", "Churn risk"];

fn segment_rows(segments: &[SegmentCount]) -> Vec<[String; 4]> {
    let buyers: u64 = segments.iter().map(|s| s.buyers).sum();
    segments
        .iter()
        .map(|s| {
            [
                s.segment.clone(),
                s.buyers.to_string(),
                pct(s.buyers, buyers),
                s.churn_risk.to_string(),
            ]
        })
        .collect()
}

/// Buyers by RFM segment as CSV (same columns as the page).
pub fn segments_csv(segments: &[SegmentCount]) -> String {
    csv(&SEGMENT_HEAD, &segment_rows(segments))
}

pub fn audience_csv(answers: &[AnswerShare]) -> String {
    csv(&PORTRAIT_HEAD, &portrait_rows(answers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use epistola_core::stats::{RollupRow, NO_LINK};

    #[test]
    fn a_refused_token_has_its_error_beside_the_token_field() {
        let page = token_refused("This token lacks the stats:read scope.");
        let token_form = page.find("/dashboard/session").expect("token form");
        let link_form = page.find("/dashboard/sign-in-link").expect("link form");
        let error = page.find("class=\"err\"").expect("error");
        assert!(token_form < error && error < link_form, "{page}");
        assert!(!sign_in(None).contains("class=\"err\""));
        assert!(sign_in(Some("Too many <attempts>")).contains("Too many &lt;attempts&gt;"));
    }

    #[test]
    fn the_header_shows_who_and_only_the_pages_they_may_open() {
        let page = chains(&[]);
        let analyst = Viewer {
            name: "ivo@team.example".into(),
            role: "analyst".into(),
            reads_contacts: false,
            manages_tokens: false,
            reads_audit: false,
            writes_campaigns: false,
        };
        let author = Viewer {
            name: "<ann>".into(),
            role: "author".into(),
            reads_contacts: true,
            manages_tokens: false,
            reads_audit: false,
            writes_campaigns: true,
        };
        let admin = Viewer {
            name: "ann@team.example".into(),
            role: "admin".into(),
            reads_contacts: true,
            manages_tokens: true,
            reads_audit: true,
            writes_campaigns: true,
        };
        let c = with_viewer(&page, &admin);
        assert!(c.contains("/dashboard/tokens") && c.contains("/dashboard/audit"));
        let a = with_viewer(&page, &analyst);
        assert!(a.contains("ivo@team.example · analyst") && !a.contains("/dashboard/contacts"));
        let b = with_viewer(&page, &author);
        assert!(b.contains("href=\"/dashboard/contacts\"") && b.contains("&lt;ann&gt; · author"));
        assert!(!b.contains("/dashboard/tokens") && !a.contains("/dashboard/audit"));
        assert!(b.contains("/dashboard/templates") && !a.contains("/dashboard/templates"));
        assert!(!b.contains(VIEWER_SLOT));
    }

    #[test]
    fn contacts_page_states_search_errors_and_next_page() {
        let none = contacts("", None, &[], None, None);
        assert!(none.contains("No contacts yet"));
        let miss = contacts("tag:vip", None, &[], None, None);
        assert!(miss.contains("No contact matches") && miss.contains("value=\"tag:vip\""));
        let bad = contacts(
            "tag:",
            Some("tag:: a tag must not be empty"),
            &[],
            None,
            None,
        );
        assert!(
            bad.contains("aria-describedby=\"query-error\"") && bad.contains("id=\"query-error\"")
        );
        let row = ContactLine {
            id: "c_1".into(),
            email: "ann@example.com".into(),
            name: "Ann <b>".into(),
            status: "confirmed".into(),
            tags: vec!["vip".into(), "new".into()],
            added: "2026-12-04 05:00".into(),
        };
        let page = contacts(
            "city:\"New York\"",
            None,
            &[row],
            Some("1796371200:c_1"),
            None,
        );
        assert!(page.contains("Ann &lt;b&gt;") && page.contains("vip, new"));
        assert!(
            page.contains(
                "/dashboard/contacts?query=city%3A%22New%20York%22&amp;cursor=1796371200%3Ac_1"
            ),
            "{page}"
        );
    }

    fn stats(id: &str, rows: &[(&str, &str, i64, u64)]) -> CampaignStats {
        let rows: Vec<RollupRow> = rows
            .iter()
            .map(|(m, l, link, n)| RollupRow {
                metric: (*m).into(),
                label: (*l).into(),
                link: *link,
                hour: 480_000,
                n: *n,
            })
            .collect();
        CampaignStats::from_rollups(
            id,
            &rows,
            &[],
            &[(0, "https://shop.example/a?x=<1>".into())],
        )
    }

    fn info(id: &str, name: &str) -> CampaignInfo {
        CampaignInfo {
            id: id.into(),
            name: name.into(),
            status: "done".into(),
            waiting: None,
        }
    }

    fn sample() -> CampaignStats {
        stats(
            "spring",
            &[
                ("sent", "", NO_LINK, 200),
                ("failed", "", NO_LINK, 2),
                ("skipped", "suppressed", NO_LINK, 5),
                ("open_unique", "human", NO_LINK, 50),
                ("open", "human", NO_LINK, 70),
                ("open", "privacy_proxy", NO_LINK, 30),
                ("click_unique", "human", NO_LINK, 20),
                ("click", "human", 0, 25),
                ("conversion", "email", 0, 4),
                ("revenue:EUR", "email", 0, 19_960),
            ],
        )
    }

    #[test]
    fn summary_counts_people_not_fetches() {
        let s = Summary::of(&sample());
        assert_eq!(
            s,
            Summary {
                sent: 202,
                delivered: 200,
                human_opens: 50,
                human_clicks: 20,
                unsubscribes: 0,
                conversions: 4,
                unverified: 0,
                revenue: "199.60 EUR".into()
            }
        );
    }

    #[test]
    fn pages_show_the_numbers_and_escape_what_they_are_given() {
        let page = campaign(&info("spring", "Spring <sale>"), &sample(), None);
        assert!(page.contains("Spring &lt;sale&gt;"), "name escaped");
        assert!(!page.contains("<sale>"));
        assert!(page.contains("https://shop.example/a?x=&lt;1&gt;"));
        assert!(page.contains(">199.60 EUR<"), "revenue shown");
        assert!(page.contains("50 (24.7%)"), "funnel: opened share of sent");
        assert!(
            page.contains("<td>30.0%</td>"),
            "privacy-proxy share of opens"
        );
        assert!(page.contains("<td>suppressed</td><td>5</td>"));
        let list = campaigns(
            &[
                (info("spring", "Spring"), sample()),
                (info("b", "B"), stats("b", &[])),
            ],
            false,
        );
        assert!(list.contains("href=\"/dashboard/campaigns/spring\""));
        assert!(
            !list.contains("/dashboard/campaigns/new"),
            "only for those who create"
        );
        assert!(campaigns(&[], true).contains("href=\"/dashboard/campaigns/new\""));
        assert!(
            list.contains("<td>10.0%</td>"),
            "click rate = human clicks / delivered"
        );
        assert!(list.contains("action=\"/dashboard/compare\""));
    }

    #[test]
    fn what_waits_comes_first_and_a_done_campaign_that_waits_says_so() {
        let mut waiting = info("winter", "Winter");
        waiting.waiting = Some("0 sent so far; 2 letters are waiting: <x>".into());
        let page = campaign(&waiting, &sample(), None);
        let notice = page
            .find("<p class=\"notice\" role=\"status\" data-metric=\"waiting\">0 sent so far; 2 letters are waiting: &lt;x&gt;</p>")
            .expect("the notice, escaped");
        assert!(page.contains("status waiting</p>"), "{page}");
        assert!(
            page.contains("<tbody><tr><td>waiting</td>"),
            "the headline agrees: {page}"
        );
        assert!(
            notice < page.find("<h2>Funnel</h2>").expect("funnel"),
            "before the numbers"
        );
        let done = campaign(&info("winter", "Winter"), &sample(), None);
        assert!(done.contains("status done</p>") && !done.contains("class=\"notice\""));
        assert!(
            done.contains(
                "<td>skipped</td><td>on the suppression list</td><td>suppressed</td><td>5</td>"
            ),
            "reasons in words beside their codes: {done}"
        );
    }

    #[test]
    fn csv_twins_match_the_tables() {
        let rows = [(info("spring", "Spring, 2026"), sample())];
        let csv = campaigns_csv(&rows);
        assert_eq!(
            csv,
            "id,campaign,status,sent,delivered,human_opens,human_clicks,unsubscribes,conversions,revenue,click_rate\n\
spring,\"Spring, 2026\",done,202,200,50,20,0,4,199.60 EUR,10.0%\n"
        );
        let cmp = compare_csv(
            (&rows[0].0, &rows[0].1),
            (&info("b", "B"), &stats("b", &[])),
        );
        assert!(cmp.contains("Open rate,25.0%,–\n"), "{cmp}");
    }

    #[test]
    fn session_cookie_round_trip() {
        let set = session_cookie("ep_abc-1");
        assert!(
            set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict")
        );
        assert_eq!(
            session_token(Some("a=1; epistola_session=ep_abc-1; b=2")),
            Some("ep_abc-1")
        );
        assert_eq!(session_token(Some("epistola_session=a\"b")), None);
        assert_eq!(session_token(Some("other=1")), None);
        assert_eq!(session_token(None), None);
    }

    #[test]
    fn audience_shares_are_per_question() {
        let a = |answer: &str, count| AnswerShare {
            site: "shop".into(),
            question: "skin".into(),
            answer: answer.into(),
            count,
        };
        let segments = [
            SegmentCount {
                segment: "champions".into(),
                buyers: 1,
                churn_risk: 0,
            },
            SegmentCount {
                segment: "promising".into(),
                buyers: 3,
                churn_risk: 2,
            },
        ];
        assert_eq!(
            segments_csv(&segments),
            "segment,buyers,share,churn_risk\nchampions,1,25.0%,0\npromising,3,75.0%,2\n"
        );
        let page = audience(&[], &segments);
        assert!(
            page.contains("<td>promising</td><td>3</td><td>75.0%</td><td>2</td>"),
            "{page}"
        );
        let csv = audience_csv(&[a("dry", 3), a("oily", 1)]);
        assert!(csv.contains("shop,skin,dry,3,75.0%\n"), "{csv}");
        assert!(csv.contains("shop,skin,oily,1,25.0%\n"), "{csv}");
    }
}
