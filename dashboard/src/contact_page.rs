//! One contact's page: who they are, whether they get test letters, their suppression, a timeline
//! of everything that happened with them (sign-ups, the consent ledger, letters with their
//! outcomes, opens and clicks with their labels, orders, events), and the export and erase buttons.
//! Built from the same JSON the export gives the person (`epistola.contact-export.v1`), so the page
//! never shows something the export leaves out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epistola_core::delivery::reason_in_words;
use epistola_core::html::escape;
use serde_json::Value;

use crate::{layout, minute, path_id, table, Fields};

/// At most this many moments are shown, newest first; the export holds them all.
pub const TIMELINE_LIMIT: usize = 200;

/// A contact as its page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactView {
    pub id: String,
    pub email: String,
    /// `(label, value)`: name, phone, language, time zone, … and custom fields; only those set.
    pub facts: Vec<(String, String)>,
    pub status: String,
    pub tags: Vec<String>,
    pub test_list: bool,
    /// Why and since when the contact gets no marketing letters.
    pub suppressed: Option<(String, i64)>,
    /// Newest first, at most [`TIMELINE_LIMIT`].
    pub timeline: Vec<Moment>,
    /// Moments left out of the timeline (in the export).
    pub older: usize,
}

/// One thing that happened, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub at: i64,
    pub what: String,
    /// A page about it (a campaign's), if there is one.
    pub href: Option<String>,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn rows<'a>(record: &'a Value, key: &str) -> &'a [Value] {
    record[key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn campaign_href(id: &str) -> Option<String> {
    (!id.is_empty()).then(|| format!("/dashboard/campaigns/{}", path_id(id)))
}

/// The page's view of an exported contact record (`None` if it has no id).
pub fn contact_view(record: &Value) -> Option<ContactView> {
    let id = text(record, "id");
    if id.is_empty() {
        return None;
    }
    let mut facts = Vec::new();
    for (key, label) in [
        ("name", "Name"),
        ("phone", "Phone"),
        ("locale", "Language"),
        ("time_zone", "Time zone"),
        ("birthday", "Birthday"),
        ("gender", "Gender"),
    ] {
        let value = text(record, key);
        if !value.is_empty() {
            facts.push((label.to_owned(), value.to_owned()));
        }
    }
    if let Some(fields) = record["fields"].as_object() {
        for (k, v) in fields {
            let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            facts.push((format!("Field {k}"), value));
        }
    }
    if let Some(at) = record["created_at"].as_i64() {
        facts.push(("Added (UTC)".into(), minute(at)));
    }
    let suppressed = record["suppression"].as_object().map(|s| {
        let reason = s.get("reason").and_then(Value::as_str).unwrap_or_default();
        let imported = match s.get("source").and_then(Value::as_str) {
            Some("erasure") => " (an earlier contact with this address, since erased)".to_owned(),
            Some(source) => format!(" (on a list imported from {source})"),
            None => String::new(),
        };
        (
            format!("{}{imported}", suppression_words(reason)),
            s.get("created_at")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
        )
    });
    let mut timeline = moments(record);
    // Newest first; equal times keep the order things happen in (sign-up before confirmation).
    timeline.reverse();
    timeline.sort_by_key(|m| std::cmp::Reverse(m.at));
    let older = timeline.len().saturating_sub(TIMELINE_LIMIT);
    timeline.truncate(TIMELINE_LIMIT);
    Some(ContactView {
        id: id.to_owned(),
        email: text(record, "email").to_owned(),
        facts,
        status: text(record, "status").to_owned(),
        tags: rows(record, "tags")
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        test_list: record["test_list"].as_bool().unwrap_or(false),
        suppressed,
        timeline,
        older,
    })
}

/// Why an address is suppressed, in words.
fn suppression_words(reason: &str) -> &str {
    match reason {
        "unsubscribed" | "unsubscribe" => "unsubscribed",
        "bounced" | "hard_bounce" => "their address bounced",
        "complained" | "complaint" => "they marked a letter as spam",
        "" => "suppressed",
        other => other,
    }
}

/// Every moment of the record, oldest source order (not yet sorted).
fn moments(record: &Value) -> Vec<Moment> {
    let mut out = Vec::new();
    let mut at = |at: i64, what: String, href: Option<String>| out.push(Moment { at, what, href });
    for c in rows(record, "captures") {
        let (site, form) = (text(c, "site_id"), text(c, "form"));
        let through = if form.is_empty() {
            String::new()
        } else {
            format!(" through the form “{form}”")
        };
        at(
            c["created_at"].as_i64().unwrap_or_default(),
            format!("Signed up on {site}{through}"),
            None,
        );
        if let Some(confirmed) = c["confirmed_at"].as_i64() {
            at(confirmed, format!("Confirmed the address for {site}"), None);
        }
    }
    for l in rows(record, "consent_ledger") {
        let verb = match text(l, "action") {
            "given" => "Gave consent",
            "confirmed" => "Consent confirmed",
            "withdrawn" => "Withdrew consent",
            other => other,
        };
        let mut what = format!(
            "{verb}: {} by {} on {}",
            text(l, "purpose"),
            text(l, "channel"),
            text(l, "site_id")
        );
        let version = l["text_version"]
            .as_i64()
            .map_or_else(|| text(l, "text_version").to_owned(), |v| v.to_string());
        match text(l, "method") {
            // An import keeps where the consent was given in place of a text version.
            "api_import" if version.is_empty() => what.push_str(" · imported"),
            "api_import" => {
                let _ = write!(what, " · imported (source: {version})");
            }
            method => {
                if !version.is_empty() {
                    let _ = write!(what, " (consent text version {version})");
                }
                if !method.is_empty() {
                    let _ = write!(what, " · {}", method.replace('_', " "));
                }
            }
        }
        at(l["at"].as_i64().unwrap_or_default(), what, None);
    }
    let contact = text(record, "id");
    for m in rows(record, "messages") {
        let mut campaign = text(m, "campaign_id");
        if campaign.is_empty() && text(m, "kind") == "test" {
            // A test letter counts for no campaign; its key names it: `test.{campaign}.{run}.{contact}`.
            campaign = text(m, "send_key")
                .strip_prefix("test.")
                .and_then(|k| k.strip_suffix(contact)?.strip_suffix('.'))
                .and_then(|k| k.rsplit_once('.'))
                .map_or("", |(campaign, _run)| campaign);
        }
        let letter = match text(m, "kind") {
            "confirmation" => "Confirmation letter".to_owned(),
            "delivery" => "The promised letter (after confirming)".to_owned(),
            "campaign" => format!("Letter of campaign {campaign}"),
            "chain" => format!("Chain letter {campaign}"),
            "test" => format!("Test letter of {campaign}"),
            other => format!("Message ({other})"),
        };
        let channel = match text(m, "channel") {
            "" | "email" => String::new(),
            other => format!(" by {other}"),
        };
        let (status, reason) = (text(m, "status"), text(m, "reason"));
        let outcome = match (status, reason) {
            ("sent", _) => "sent".to_owned(),
            ("skipped", r) => format!("not sent: {}", reason_in_words(status, r)),
            ("failed", r) => format!("failed: {}", reason_in_words(status, r)),
            (s, "") => s.to_owned(),
            (s, r) => format!("{s}: {}", reason_in_words(s, r)),
        };
        let attempts = match m["attempts"].as_i64() {
            Some(n) if n > 1 => format!(" after {n} attempts"),
            _ => String::new(),
        };
        at(
            m["updated_at"].as_i64().unwrap_or_default(),
            format!("{letter}{channel}: {outcome}{attempts}"),
            campaign_href(campaign),
        );
    }
    for e in rows(record, "tracked_events") {
        let by = match text(e, "label") {
            "human" => "as a person",
            "privacy_proxy" => "by a privacy proxy (not counted as a person)",
            "scanner" => "by a scanner or bot (not counted as a person)",
            other => other,
        };
        let campaign = text(e, "campaign_id");
        // Test letters are counted under their test run (`test:{run}`), apart from the campaign.
        let letter = if campaign.starts_with("test:") {
            "a test letter".to_owned()
        } else {
            campaign.to_owned()
        };
        let what = match text(e, "kind") {
            "click" => match text(e, "url") {
                "" => format!("Clicked a link of {letter} {by}"),
                url => format!("Clicked {url} in {letter} {by}"),
            },
            "open" => format!("Opened {letter} {by}"),
            other => format!("{other} on {letter} {by}"),
        };
        at(
            e["occurred_at"].as_i64().unwrap_or_default(),
            what,
            campaign_href(campaign),
        );
    }
    for c in rows(record, "conversions") {
        let value = c["value_minor"].as_i64().unwrap_or_default();
        let campaign = text(c, "campaign_id");
        let from = if campaign.is_empty() {
            String::new()
        } else {
            format!(", credited to {campaign}")
        };
        at(
            c["occurred_at"].as_i64().unwrap_or_default(),
            format!(
                "Ordered {}: {}.{:02} {}{from}",
                text(c, "order_id"),
                value / 100,
                (value % 100).abs(),
                text(c, "currency")
            ),
            campaign_href(campaign),
        );
    }
    for e in rows(record, "events") {
        at(
            e["at"].as_i64().unwrap_or_default(),
            format!("Event {}", text(e, "type")),
            None,
        );
    }
    if let Some(s) = record["suppression"].as_object() {
        let reason = s.get("reason").and_then(Value::as_str).unwrap_or_default();
        at(
            s.get("created_at")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            format!("Suppressed: {}", suppression_words(reason)),
            None,
        );
    }
    out
}

/// What the viewer may do on the page, and the last form's outcome.
#[derive(Debug, Clone, Default)]
pub struct ContactForms {
    /// Holds `contacts:write`: test list, lift and erase.
    pub can_write: bool,
    /// A refused form's reason by field (`reason`, `confirm`).
    pub errors: BTreeMap<String, String>,
}

/// The contact's page.
pub fn contact(view: &ContactView, forms: &ContactForms) -> String {
    let fields = Fields(&forms.errors);
    let base = format!("/dashboard/contacts/{}", path_id(&view.id));
    let mut body = format!(
        "<p><a href=\"/dashboard/contacts\">All contacts</a></p><p class=\"muted\">Status {} · id <code>{}</code></p>",
        escape(&view.status),
        escape(&view.id)
    );
    let mut facts: Vec<Vec<String>> = view
        .facts
        .iter()
        .map(|(k, v)| vec![escape(k), escape(v)])
        .collect();
    if !view.tags.is_empty() {
        facts.push(vec!["Tags".into(), escape(&view.tags.join(", "))]);
    }
    body.push_str(&table(&["About", "Value"], &facts, None));

    body.push_str("<h2>Test letters</h2>");
    let on = if view.test_list {
        "<p>On the test list: test sends of every campaign go to this address.</p>"
    } else {
        "<p>Not on the test list.</p>"
    };
    body.push_str(on);
    if forms.can_write {
        let (value, label) = if view.test_list {
            ("0", "Take off the test list")
        } else {
            ("1", "Put on the test list")
        };
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{base}/test-list\"><input type=\"hidden\" name=\"on\" value=\"{value}\"><button>{label}</button></form>"
        );
    }

    if let Some((why, since)) = &view.suppressed {
        let _ = write!(
            body,
            "<h2>Suppressed</h2><p class=\"notice\">No marketing letter goes to this address: {} (since {} UTC).</p>",
            escape(why),
            escape(&minute(*since))
        );
        if forms.can_write {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"{base}/lift\"><p><label for=\"reason\">Why lift it (kept in the ledger)</label><br>\
<input id=\"reason\" name=\"reason\" required maxlength=\"500\" size=\"50\"{}>{}</p><button>Lift the suppression</button></form>",
                fields.invalid("reason"),
                fields.error("reason")
            );
        }
    }

    body.push_str("<h2>Timeline</h2>");
    if view.timeline.is_empty() {
        body.push_str("<p class=\"notice\">Nothing has happened with this contact yet.</p>");
    } else {
        let lines: Vec<Vec<String>> = view
            .timeline
            .iter()
            .map(|m| {
                let what = match &m.href {
                    Some(href) => format!("<a href=\"{}\">{}</a>", escape(href), escape(&m.what)),
                    None => escape(&m.what),
                };
                vec![escape(&minute(m.at)), what]
            })
            .collect();
        body.push_str(&table(&["When (UTC)", "What"], &lines, None));
        if view.older > 0 {
            let _ = write!(
                body,
                "<p class=\"muted\">{} older moments are in the export.</p>",
                view.older
            );
        }
    }

    let _ = write!(
        body,
        "<h2>The person's data</h2><p><a href=\"{base}/export\" download>Download everything held about them (JSON)</a></p>"
    );
    if forms.can_write {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{base}/erase\"><p>Erasing removes the person and everything that names them; \
counts stay, and an opt-out stays as the address's hash so a re-import never mails them again. It cannot be undone.</p>\
<p><label for=\"confirm\">Type the address to erase it</label><br><input id=\"confirm\" name=\"confirm\" required size=\"40\" autocomplete=\"off\"{}>{}</p>\
<button class=\"danger\">Erase this person</button></form>",
            fields.invalid("confirm"),
            fields.error("confirm")
        );
    }
    layout(&view.email, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({
            "id": "c_7f3", "email": "olena@shop.example", "status": "confirmed", "name": "Olena <O>",
            "phone": null, "locale": "uk", "time_zone": "Europe/Kyiv", "test_list": false,
            "fields": {"city": "Lviv", "kids": 2}, "created_at": 1_796_371_200,
            "tags": ["vip", "toys"],
            "captures": [{"id": "cap1", "site_id": "toy-shop", "form": "quiz", "status": "confirmed",
                          "created_at": 1_796_371_200, "confirmed_at": 1_796_371_500}],
            "consent_ledger": [
                {"seq": 1, "site_id": "toy-shop", "purpose": "newsletter", "channel": "email", "action": "given",
                 "text_version": 3, "method": "widget_form", "at": 1_796_371_200},
                {"seq": 2, "site_id": "toy-shop", "purpose": "newsletter", "channel": "email", "action": "confirmed",
                 "text_version": 3, "method": "double_opt_in", "at": 1_796_371_500}],
            "messages": [
                {"send_key": "k1", "kind": "confirmation", "campaign_id": null, "channel": "email", "status": "sent",
                 "reason": null, "attempts": 1, "created_at": 1_796_371_210, "updated_at": 1_796_371_211},
                {"send_key": "k2", "kind": "campaign", "campaign_id": "spring-sale", "channel": "email", "status": "skipped",
                 "reason": "quiet_hours", "attempts": 1, "created_at": 1_796_400_000, "updated_at": 1_796_400_000},
                {"send_key": "k3", "kind": "campaign", "campaign_id": "may-letter", "channel": "email", "status": "sent",
                 "reason": null, "attempts": 3, "created_at": 1_796_500_000, "updated_at": 1_796_500_100},
                {"send_key": "test.may-letter.0ea0f78b.c_7f3", "kind": "test", "campaign_id": null, "channel": "email",
                 "status": "sent", "reason": null, "attempts": 1, "created_at": 1_796_499_000, "updated_at": 1_796_499_001}],
            "tracked_events": [
                {"kind": "click", "campaign_id": "test:0ea0f78b", "url": "https://toys.example/lego", "label": "scanner",
                 "occurred_at": 1_796_499_002},
                {"kind": "open", "campaign_id": "may-letter", "label": "privacy_proxy", "occurred_at": 1_796_500_200},
                {"kind": "click", "campaign_id": "may-letter", "url": "https://toys.example/lego", "label": "human",
                 "occurred_at": 1_796_500_300}],
            "conversions": [{"order_id": "A-17", "campaign_id": "may-letter", "value_minor": 4905, "currency": "UAH",
                             "occurred_at": 1_796_500_900}],
            "events": [{"id": "e1", "type": "cart.abandoned", "at": 1_796_450_000, "data": {}}],
            "suppression": null
        })
    }

    #[test]
    fn timeline_in_words_newest_first() {
        let v = contact_view(&record()).expect("a contact");
        let whats: Vec<&str> = v.timeline.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "Ordered A-17: 49.05 UAH, credited to may-letter",
                "Clicked https://toys.example/lego in may-letter as a person",
                "Opened may-letter by a privacy proxy (not counted as a person)",
                "Letter of campaign may-letter: sent after 3 attempts",
                "Clicked https://toys.example/lego in a test letter by a scanner or bot (not counted as a person)",
                "Test letter of may-letter: sent",
                "Event cart.abandoned",
                "Letter of campaign spring-sale: not sent: in the recipient's quiet hours (night where they live)",
                "Consent confirmed: newsletter by email on toy-shop (consent text version 3) · double opt in",
                "Confirmed the address for toy-shop",
                "Confirmation letter: sent",
                "Gave consent: newsletter by email on toy-shop (consent text version 3) · widget form",
                "Signed up on toy-shop through the form “quiz”",
            ]
        );
        assert_eq!(
            v.timeline[0].href.as_deref(),
            Some("/dashboard/campaigns/may-letter")
        );
        assert!(v.facts.contains(&("Field kids".into(), "2".into())));
        assert!(v.facts.contains(&("Field city".into(), "Lviv".into())));
        assert!(!v.facts.iter().any(|(k, _)| k == "Phone"));
    }

    #[test]
    fn long_timelines_are_cut_and_say_so() {
        let mut r = record();
        r["events"] = (0..250)
            .map(|i| json!({"id": i, "type": "page.viewed", "at": 1_796_600_000 + i}))
            .collect::<Vec<_>>()
            .into();
        let v = contact_view(&r).expect("a contact");
        assert_eq!(v.timeline.len(), TIMELINE_LIMIT);
        assert_eq!(v.older, 250 + 12 - TIMELINE_LIMIT);
        assert_eq!(v.timeline[0].at, 1_796_600_249);
        let page = contact(&v, &ContactForms::default());
        assert!(page.contains("62 older moments are in the export"));
    }

    #[test]
    fn buttons_only_for_writers_and_errors_beside_fields() {
        let mut r = record();
        r["suppression"] =
            json!({"reason": "unsubscribed", "source": "old-esp", "created_at": 1_796_600_000});
        let v = contact_view(&r).expect("a contact");
        let reader = contact(&v, &ContactForms::default());
        assert!(reader.contains(
            "No marketing letter goes to this address: unsubscribed (on a list imported from old-esp)"
        ));
        assert!(reader.contains("/dashboard/contacts/c_7f3/export"));
        for form in ["/test-list", "/lift", "/erase"] {
            assert!(!reader.contains(&format!("c_7f3{form}\"")), "{form}");
        }
        assert!(reader.contains("Olena &lt;O&gt;"));

        let mut errors = BTreeMap::new();
        errors.insert(
            "confirm".into(),
            "type the contact's address exactly".into(),
        );
        let writer = contact(
            &v,
            &ContactForms {
                can_write: true,
                errors,
            },
        );
        for form in ["/test-list", "/lift", "/erase"] {
            assert!(writer.contains(&format!("c_7f3{form}\"")), "{form}");
        }
        assert!(writer.contains("Put on the test list"));
        assert!(writer.contains(
            "aria-describedby=\"confirm-error\" aria-invalid=\"true\"><p id=\"confirm-error\""
        ));
    }
}
