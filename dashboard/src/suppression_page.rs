//! The suppression list: how many addresses get no marketing letter and why (our own unsubscribes,
//! bounces and complaints, and each imported list by its source), one address looked up with its
//! lift form and ledger, the import of another sender's list (pasted or a CSV file) with its
//! refused lines, the newest own suppressions a page at a time, and the ledger of lifts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epistola_core::html::escape;

use crate::{layout, path_id, table, Fields};

/// One suppression as the page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionLine {
    /// `own` or `imported`.
    pub origin: String,
    pub contact_id: Option<String>,
    /// The contact's address, while the contact exists.
    pub email: Option<String>,
    pub reason: String,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub since: String,
}

/// How many addresses are suppressed by origin, source and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountLine {
    pub origin: String,
    pub source: Option<String>,
    pub reason: String,
    pub n: i64,
}

/// One lifted suppression, as the ledger keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiftLine {
    pub address_hash: String,
    pub contact_id: Option<String>,
    pub email: Option<String>,
    pub reason: String,
    pub previous_reason: Option<String>,
    pub actor: String,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub at: String,
}

/// One address looked up: its suppressions now, and its ledger rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    pub address: String,
    pub found: Vec<SuppressionLine>,
    pub ledger: Vec<LiftLine>,
}

/// What the page reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionsView {
    pub counts: Vec<CountLine>,
    pub lookup: Option<Lookup>,
    /// The address typed into the search (kept when it was refused).
    pub query: String,
    pub recent: Vec<SuppressionLine>,
    /// The cursor of the next page of `recent`.
    pub next: Option<String>,
    pub ledger: Vec<LiftLine>,
}

/// The import form as typed, kept when it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTyped {
    pub addresses: String,
    pub format: String,
    pub reason: String,
    pub source: String,
}

impl Default for ImportTyped {
    fn default() -> Self {
        Self {
            addresses: String::new(),
            format: "plain".into(),
            reason: "imported".into(),
            source: String::new(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    pub stored: u64,
    /// `(line, why)`.
    pub rejected: Vec<(usize, String)>,
}

/// At most this many refused lines are listed; the count says how many there were.
pub const REFUSED_SHOWN: usize = 100;

/// The page's forms: may the viewer change anything, the last form's errors by field (`address`
/// and `reason` of the look-up and lift; `addresses`, `file`, `format`, `import-reason` and
/// `source` of the import), the import
/// as typed, and what the last change did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionForms {
    pub can_write: bool,
    pub errors: BTreeMap<String, String>,
    pub typed: ImportTyped,
    pub report: Option<ImportReport>,
    pub notice: Option<String>,
}

fn reason_words(reason: &str) -> &str {
    match reason {
        "unsubscribed" => "unsubscribed",
        "bounced" => "bounced (the address does not take mail)",
        "complained" => "marked a letter as spam",
        "imported" => "on an imported list",
        "erased" => "erased at their request (kept as a hash)",
        other => other,
    }
}

fn origin_words(line: &SuppressionLine) -> String {
    match (line.origin.as_str(), &line.source) {
        ("own", _) => "ours".into(),
        (_, Some(source)) => format!("imported from {source}"),
        _ => "imported".into(),
    }
}

fn contact_cell(contact_id: Option<&str>, email: Option<&str>, hash: Option<&str>) -> String {
    match (contact_id, email) {
        (Some(id), Some(email)) => format!(
            "<a href=\"/dashboard/contacts/{}\">{}</a>",
            path_id(id),
            escape(email)
        ),
        _ => match hash {
            Some(h) => format!(
                "<span class=\"muted\">no contact · hash {}…</span>",
                escape(h.get(..12).unwrap_or(h))
            ),
            None => "<span class=\"muted\">an erased contact</span>".into(),
        },
    }
}

fn campaign_cell(campaign_id: Option<&str>) -> String {
    campaign_id
        .map(|c| {
            format!(
                "<a href=\"/dashboard/campaigns/{}\">{}</a>",
                path_id(c),
                escape(c)
            )
        })
        .unwrap_or_default()
}

fn ledger_table(rows: &[LiftLine]) -> String {
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|l| {
            vec![
                escape(&l.at),
                contact_cell(
                    l.contact_id.as_deref(),
                    l.email.as_deref(),
                    Some(&l.address_hash),
                ),
                escape(reason_words(l.previous_reason.as_deref().unwrap_or("?"))),
                escape(&l.reason),
                escape(&l.actor),
            ]
        })
        .collect();
    table(
        &["Lifted (UTC)", "Address", "It was", "Why lifted", "By"],
        &lines,
        None,
    )
}

fn options(chosen: &str, choices: &[(&str, &str)]) -> String {
    choices
        .iter()
        .map(|(value, words)| {
            let selected = if *value == chosen { " selected" } else { "" };
            format!("<option value=\"{value}\"{selected}>{words}</option>")
        })
        .collect()
}

fn lookup_section(lookup: &Lookup, forms: &SuppressionForms, fields: &Fields) -> String {
    let mut out = String::new();
    if lookup.found.is_empty() {
        let _ = write!(
            out,
            "<p class=\"notice\" role=\"status\">{} is not suppressed: letters it has consent for reach it.</p>",
            escape(&lookup.address)
        );
    } else {
        let lines: Vec<Vec<String>> = lookup
            .found
            .iter()
            .map(|s| {
                vec![
                    escape(&origin_words(s)),
                    escape(reason_words(&s.reason)),
                    campaign_cell(s.campaign_id.as_deref()),
                    escape(&s.since),
                ]
            })
            .collect();
        let _ = write!(
            out,
            "<p class=\"notice\" role=\"status\">No marketing letter goes to {}.</p>",
            escape(&lookup.address)
        );
        out.push_str(&table(
            &["Whose", "Why", "Campaign", "Since (UTC)"],
            &lines,
            None,
        ));
        if forms.can_write {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/dashboard/suppressions/lift\"><input type=\"hidden\" name=\"address\" value=\"{}\">\
<p><label for=\"reason\">Why lift it (kept in the ledger, with your name)</label><br>\
<input id=\"reason\" name=\"reason\" required maxlength=\"500\" size=\"50\"{}>{}</p><button>Lift the suppression</button></form>",
                escape(&lookup.address),
                fields.invalid("reason"),
                fields.error("reason"),
            );
        }
    }
    if !lookup.ledger.is_empty() {
        out.push_str("<h3>Lifted before</h3>");
        out.push_str(&ledger_table(&lookup.ledger));
    }
    out
}

fn import_form(forms: &SuppressionForms, fields: &Fields) -> String {
    let t = &forms.typed;
    let mut out = String::from("<h2 id=\"import\">Import a list</h2>");
    if let Some(r) = &forms.report {
        let _ = write!(
            out,
            "<p class=\"notice\" role=\"status\">{} lines read: {} addresses newly suppressed, {} repeated or suppressed already, {} refused.</p>",
            r.rows,
            r.stored,
            r.rows
                .saturating_sub(r.rejected.len())
                .saturating_sub(r.stored as usize),
            r.rejected.len()
        );
        if !r.rejected.is_empty() {
            let lines: Vec<Vec<String>> = r
                .rejected
                .iter()
                .take(REFUSED_SHOWN)
                .map(|(line, why)| vec![line.to_string(), escape(why)])
                .collect();
            out.push_str(&table(&["Line", "Why it was refused"], &lines, None));
            if r.rejected.len() > REFUSED_SHOWN {
                let _ = write!(
                    out,
                    "<p class=\"muted\">The first {REFUSED_SHOWN} of {} refused lines.</p>",
                    r.rejected.len()
                );
            }
        }
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/dashboard/suppressions/import\" enctype=\"multipart/form-data\">\
<p class=\"muted\">Only a hash of each address is kept. One address per line, or a CSV whose first column holds them (a header line is skipped).</p>\
<p><label for=\"addresses\">Addresses</label><br><textarea id=\"addresses\" name=\"addresses\" rows=\"6\" cols=\"50\"{}>{}</textarea>{}</p>\
<p><label for=\"file\">or a file (CSV or text)</label><br><input id=\"file\" name=\"file\" type=\"file\" accept=\".csv,.txt,text/csv,text/plain\"{}>{}</p>\
<p><label for=\"format\">The lines hold</label><br><select id=\"format\" name=\"format\"{}>{}</select>{}</p>\
<p><label for=\"import-reason\">Why they get no letters</label><br><select id=\"import-reason\" name=\"reason\"{}>{}</select>{}</p>\
<p><label for=\"source\">Where the list comes from (optional)</label><br><input id=\"source\" name=\"source\" maxlength=\"100\" size=\"30\" value=\"{}\" placeholder=\"the previous sender\"{}>{}</p>\
<button>Import</button></form>",
        fields.invalid("addresses"),
        escape(&t.addresses),
        fields.error("addresses"),
        fields.invalid("file"),
        fields.error("file"),
        fields.invalid("format"),
        options(
            &t.format,
            &[
                ("plain", "addresses"),
                ("sha256", "SHA-256 hashes of addresses")
            ]
        ),
        fields.error("format"),
        fields.invalid("import-reason"),
        options(
            &t.reason,
            &[
                ("imported", "on another sender's list"),
                ("unsubscribed", "unsubscribed"),
                ("bounced", "bounced"),
                ("complained", "complained")
            ]
        ),
        fields.error("import-reason"),
        escape(&t.source),
        fields.invalid("source"),
        fields.error("source"),
    );
    out
}

/// The suppressions page.
pub fn suppressions(view: &SuppressionsView, forms: &SuppressionForms) -> String {
    let fields = Fields(&forms.errors);
    let mut body = forms
        .notice
        .as_deref()
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/dashboard/suppressions\" role=\"search\"><label for=\"address\">Look up an address</label> \
<input id=\"address\" name=\"address\" type=\"email\" size=\"36\" value=\"{}\"{}> <button>Look up</button>{}</form>",
        escape(&view.query),
        fields.invalid("address"),
        fields.error("address"),
    );
    if let Some(lookup) = &view.lookup {
        body.push_str(&lookup_section(lookup, forms, &fields));
    }

    body.push_str("<h2>Who gets no marketing letters</h2>");
    if view.counts.is_empty() {
        body.push_str("<p class=\"notice\">Nobody is suppressed yet: no unsubscribe, bounce, complaint or imported list.</p>");
    } else {
        let lines: Vec<Vec<String>> = view
            .counts
            .iter()
            .map(|c| {
                let whose = origin_words(&SuppressionLine {
                    origin: c.origin.clone(),
                    source: c.source.clone(),
                    ..Default::default()
                });
                vec![
                    escape(&whose),
                    escape(reason_words(&c.reason)),
                    c.n.to_string(),
                ]
            })
            .collect();
        body.push_str(&table(&["Whose", "Why", "Addresses"], &lines, None));
    }

    if forms.can_write {
        body.push_str(&import_form(forms, &fields));
    }

    body.push_str("<h2>Newest of ours</h2>");
    if view.recent.is_empty() {
        body.push_str("<p class=\"notice\">None of ours: nobody has unsubscribed, bounced or complained yet.</p>");
    } else {
        let lines: Vec<Vec<String>> = view
            .recent
            .iter()
            .map(|s| {
                vec![
                    contact_cell(s.contact_id.as_deref(), s.email.as_deref(), None),
                    escape(reason_words(&s.reason)),
                    campaign_cell(s.campaign_id.as_deref()),
                    escape(&s.since),
                ]
            })
            .collect();
        body.push_str(&table(
            &["Address", "Why", "Campaign", "Since (UTC)"],
            &lines,
            None,
        ));
    }
    if let Some(cursor) = &view.next {
        let _ = write!(
            body,
            "<p><a href=\"/dashboard/suppressions?cursor={}\">Older</a></p>",
            path_id(cursor)
        );
    }

    body.push_str("<h2>Lifted suppressions</h2>");
    if view.ledger.is_empty() {
        body.push_str("<p class=\"notice\">No suppression has been lifted.</p>");
    } else {
        body.push_str(&ledger_table(&view.ledger));
    }
    layout("Suppressions", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(email: &str) -> SuppressionLine {
        SuppressionLine {
            origin: "own".into(),
            contact_id: Some("c_1".into()),
            email: Some(email.into()),
            reason: "bounced".into(),
            campaign_id: Some("spring-sale".into()),
            since: "2026-12-01 10:00".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_looked_up_address_shows_why_and_the_lift_form_only_to_writers() {
        let view = SuppressionsView {
            lookup: Some(Lookup {
                address: "ann@x.example".into(),
                found: vec![
                    own("ann@x.example"),
                    SuppressionLine {
                        origin: "imported".into(),
                        reason: "complained".into(),
                        source: Some("Old <ESP>".into()),
                        since: "2026-11-01 09:00".into(),
                        ..Default::default()
                    },
                ],
                ledger: vec![],
            }),
            query: "ann@x.example".into(),
            ..Default::default()
        };
        let reader = suppressions(&view, &SuppressionForms::default());
        assert!(reader.contains("No marketing letter goes to ann@x.example"));
        assert!(reader.contains("imported from Old &lt;ESP&gt;"));
        assert!(reader.contains("/dashboard/campaigns/spring-sale"));
        assert!(!reader.contains("/dashboard/suppressions/lift"));
        assert!(!reader.contains("/dashboard/suppressions/import"));
        let writer = suppressions(
            &view,
            &SuppressionForms {
                can_write: true,
                ..Default::default()
            },
        );
        assert!(writer.contains("action=\"/dashboard/suppressions/lift\""));
        assert!(writer.contains("action=\"/dashboard/suppressions/import\""));
    }

    #[test]
    fn an_import_report_counts_and_names_refused_lines() {
        let mut errors = BTreeMap::new();
        errors.insert("import-reason".to_owned(), "pick one".to_owned());
        let forms = SuppressionForms {
            can_write: true,
            errors,
            report: Some(ImportReport {
                rows: 5,
                stored: 2,
                rejected: vec![(3, "is not an e-mail address".into())],
            }),
            ..Default::default()
        };
        let page = suppressions(&SuppressionsView::default(), &forms);
        assert!(page.contains(
            "5 lines read: 2 addresses newly suppressed, 2 repeated or suppressed already, 1 refused."
        ));
        assert!(page.contains("<td>3</td><td>is not an e-mail address</td>"));
        // The import's reason error is beside its own select, not a lift form's field.
        assert!(page.contains("id=\"import-reason-error\""));
        assert!(page.contains("aria-describedby=\"import-reason-error\""));
        assert!(page.contains("Nobody is suppressed yet"));
    }

    #[test]
    fn a_lift_without_a_contact_shows_the_hash_not_an_address() {
        let view = SuppressionsView {
            ledger: vec![LiftLine {
                address_hash: "ab".repeat(32),
                reason: "relay's fault".into(),
                previous_reason: Some("bounced".into()),
                actor: "user:u_1".into(),
                at: "2026-12-02 08:00".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let page = suppressions(&view, &SuppressionForms::default());
        assert!(page.contains("hash abababababab…"));
        assert!(page.contains("relay&#39;s fault") || page.contains("relay&#x27;s fault"));
    }
}
