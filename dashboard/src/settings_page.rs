//! The settings page: the mail transport as configured (never a password or key, only whether one
//! is set), what sending is paused by a transport failure now, and a form that sends a test
//! letter through the transport at once and says what the relay or provider answered.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epistola_core::html::escape;

use crate::{layout, path_id, table, Fields};

/// A campaign or chain paused by a transport failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedLine {
    /// `campaign` or `chain`.
    pub kind: String,
    pub id: String,
    pub name: String,
    pub reason: String,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub since: String,
}

/// An outgoing webhook endpoint (its secret is never shown after creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLine {
    pub url: String,
    /// The event types it gets, joined (`*` for all).
    pub events: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Deliveries by status, e.g. `delivered 3 · pending 1`.
    pub deliveries: String,
}

/// The test letter's form: the address typed, its error, and what the last test did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestLetterForm {
    pub to: String,
    pub errors: BTreeMap<String, String>,
    /// The transport took the letter: what to tell the admin.
    pub notice: Option<String>,
}

/// The settings page.
pub fn settings(
    transport: &[(&str, String)],
    workspace_from: &str,
    paused: &[PausedLine],
    endpoints: &[EndpointLine],
    form: &TestLetterForm,
) -> String {
    let fields = Fields(&form.errors);
    let mut body = String::from("<h2>Mail transport</h2>");
    let facts: Vec<Vec<String>> = transport
        .iter()
        .map(|(what, value)| vec![escape(what), escape(value)])
        .collect();
    body.push_str(&table(&["Setting", "Value"], &facts, None));
    let _ = write!(
        body,
        "<p class=\"muted\">Set as vars and secrets of the sending worker (<code>wrangler secret put</code>). \
Workspace letters (sign-in links, this test) come from {}.</p>",
        escape(workspace_from)
    );

    body.push_str("<h2>Paused by a transport failure</h2>");
    if paused.is_empty() {
        body.push_str("<p class=\"notice\" role=\"status\">Nothing is paused: the last deliveries worked.</p>");
    } else {
        let lines: Vec<Vec<String>> = paused
            .iter()
            .map(|p| {
                let page = if p.kind == "campaign" {
                    format!("/dashboard/campaigns/{}", path_id(&p.id))
                } else {
                    "/dashboard/chains".to_owned()
                };
                vec![
                    format!(
                        "<a href=\"{}\">{} {}</a>",
                        escape(&page),
                        escape(&p.kind),
                        escape(&p.name)
                    ),
                    escape(&p.reason),
                    escape(&p.since),
                ]
            })
            .collect();
        body.push_str(&table(
            &["What", "The transport said", "Since (UTC)"],
            &lines,
            None,
        ));
        body.push_str("<p class=\"muted\">Their letters wait, none lost; the first delivery that works resumes them.</p>");
    }

    body.push_str("<h2>Webhook endpoints</h2>");
    if endpoints.is_empty() {
        body.push_str("<p class=\"notice\">None: no other system hears of opens, clicks or sign-ups. <code>POST /v1/webhook-endpoints</code> adds one (its signing secret is shown once).</p>");
    } else {
        let lines: Vec<Vec<String>> = endpoints
            .iter()
            .map(|e| {
                vec![
                    escape(&e.url),
                    escape(&e.events),
                    escape(&e.status),
                    escape(&e.deliveries),
                ]
            })
            .collect();
        body.push_str(&table(
            &["URL", "Events", "Status", "Deliveries"],
            &lines,
            None,
        ));
    }

    body.push_str("<h2 id=\"test-letter\">Send a test letter</h2>");
    if let Some(n) = &form.notice {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(n)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/dashboard/settings/test-letter\"><p><label for=\"to\">To</label><br>\
<input id=\"to\" name=\"to\" type=\"email\" required size=\"36\" value=\"{}\"{}>{}</p>\
<button>Send a test letter now</button></form>",
        escape(&form.to),
        fields.invalid("to"),
        fields.error("to"),
    );
    layout("Settings", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_transport_what_is_paused_and_a_failed_test_beside_its_field() {
        let mut errors = BTreeMap::new();
        errors.insert(
            "to".to_owned(),
            "the relay did not take it: connection refused".to_owned(),
        );
        let page = settings(
            &[
                ("Transport", "SMTP relay".into()),
                ("Password", "set".into()),
            ],
            "workspace@shop.example",
            &[PausedLine {
                kind: "campaign".into(),
                id: "spring-sale".into(),
                name: "Spring <sale>".into(),
                reason: "permanent failure 535 at Auth".into(),
                since: "2026-12-01 10:00".into(),
            }],
            &[EndpointLine {
                url: "https://crm.example/hooks?a=1&b=2".into(),
                events: "email.opened, email.clicked".into(),
                status: "active".into(),
                deliveries: "delivered 3".into(),
            }],
            &TestLetterForm {
                to: "ops@shop.example".into(),
                errors,
                notice: None,
            },
        );
        assert!(page.contains("<td>Password</td><td>set</td>"));
        assert!(
            page.contains("href=\"/dashboard/campaigns/spring-sale\">campaign Spring &lt;sale&gt;")
        );
        assert!(page.contains("id=\"to-error\""));
        assert!(page.contains("value=\"ops@shop.example\""));
        assert!(page.contains("<td>https://crm.example/hooks?a=1&amp;b=2</td>"));
        let calm = settings(&[], "w@x.example", &[], &[], &TestLetterForm::default());
        assert!(calm.contains("Nothing is paused"));
        assert!(calm.contains("POST /v1/webhook-endpoints"));
    }
}
