//! The workspace's audit trail as rules: which API requests change the workspace, what each change
//! is called and what it names, and what changed between two snapshots of the named thing. The
//! adapter reads the snapshots and writes the row; nothing here does I/O.
//!
//! Actors are `user:{id}` (a person signed in to the dashboard) or `token:{id}` (an API token).
//! The log keeps no addresses: a contact named by its address, or a suppression, is logged as
//! "an address" (erasing a contact must not leave the address behind in the log).

use serde_json::{json, Map, Value};

/// What a snapshot of the changed thing is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Campaign,
    Chain,
    Template,
    WebhookEndpoint,
    /// Nothing to snapshot: contacts, imports, suppressions (their own ledgers keep the detail).
    Unread,
}

/// One change the log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited<'a> {
    /// e.g. `campaign.approve`.
    pub action: &'static str,
    pub kind: Kind,
    /// The changed thing's id, or a word for what a request names only in its body.
    pub subject: &'a str,
}

/// How the log names a thing it must not name by its address.
pub const AN_ADDRESS: &str = "an address";

/// Is a `/v1` request by `method` on `segments` a change the log records, and which? Reads are
/// not; nor are server-side events (`/v1/events`, a data stream, not a workspace change), the
/// provider's own webhooks, template previews, and the token routes (they log themselves, as the
/// dashboard's token forms do).
pub fn audited<'a>(method: &str, segments: &[&'a str]) -> Option<Audited<'a>> {
    use Kind::*;
    let a = |action, kind, subject| {
        Some(Audited {
            action,
            kind,
            subject,
        })
    };
    let contact = |id: &'a str| if is_address(id) { AN_ADDRESS } else { id };
    match (method, segments) {
        ("POST", ["v1", "contacts"]) => a("contact.upsert", Unread, "contacts"),
        ("POST", ["v1", "contacts", "import"]) => a("contacts.import", Unread, "contacts"),
        ("DELETE", ["v1", "contacts", id]) => a("contact.erase", Unread, contact(id)),
        ("POST", ["v1", "suppressions", "import"]) => {
            a("suppressions.import", Unread, "suppressions")
        }
        ("DELETE", ["v1", "suppressions", _]) => a("suppression.lift", Unread, AN_ADDRESS),
        ("PUT", ["v1", "templates", id]) => a("template.put", Template, id),
        ("DELETE", ["v1", "templates", id]) => a("template.delete", Template, id),
        ("PUT", ["v1", "campaigns", id]) => a("campaign.put", Campaign, id),
        ("DELETE", ["v1", "campaigns", id]) => a("campaign.delete", Campaign, id),
        ("POST", ["v1", "campaigns", id, step]) => {
            let action = match *step {
                "test" => "campaign.test",
                "approve" => "campaign.approve",
                "schedule" => "campaign.schedule",
                "cancel" => "campaign.cancel",
                _ => return None,
            };
            a(action, Campaign, id)
        }
        ("PUT", ["v1", "chains", id]) => a("chain.put", Chain, id),
        ("DELETE", ["v1", "chains", id]) => a("chain.delete", Chain, id),
        ("POST", ["v1", "chains", id, step]) => {
            let action = match *step {
                "activate" => "chain.activate",
                "pause" => "chain.pause",
                _ => return None,
            };
            a(action, Chain, id)
        }
        ("POST", ["v1", "webhook-endpoints"]) => {
            a("webhook_endpoint.create", Unread, "webhook-endpoints")
        }
        ("DELETE", ["v1", "webhook-endpoints", id]) => {
            a("webhook_endpoint.disable", WebhookEndpoint, id)
        }
        _ => None,
    }
}

/// Does a path segment name a contact by address (`ann@x.example`, percent-encoded or not)?
fn is_address(segment: &str) -> bool {
    segment.contains('@') || segment.to_ascii_lowercase().contains("%40")
}

/// What changed from `before` to `after` (JSON objects; `None`: the thing did not exist): each
/// field whose value differs, as `[before, after]`. A field missing on one side is `null` there.
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let fields = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (before, after) = (fields(before), fields(after));
    let mut out = Map::new();
    for key in before.keys().chain(after.keys()) {
        let (b, a) = (
            before.get(key).unwrap_or(&Value::Null),
            after.get(key).unwrap_or(&Value::Null),
        );
        if b != a && !out.contains_key(key) {
            out.insert(key.clone(), json!([b, a]));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_are_changes() {
        use Kind::*;
        type Want = Option<(&'static str, Kind, &'static str)>;
        // (method, path, action, kind, subject)
        let table: &[(&str, &str, Want)] = &[
            (
                "PUT",
                "v1/campaigns/spring-sale",
                Some(("campaign.put", Campaign, "spring-sale")),
            ),
            (
                "POST",
                "v1/campaigns/c1/approve",
                Some(("campaign.approve", Campaign, "c1")),
            ),
            (
                "POST",
                "v1/campaigns/c1/schedule",
                Some(("campaign.schedule", Campaign, "c1")),
            ),
            (
                "POST",
                "v1/campaigns/c1/test",
                Some(("campaign.test", Campaign, "c1")),
            ),
            (
                "POST",
                "v1/campaigns/c1/cancel",
                Some(("campaign.cancel", Campaign, "c1")),
            ),
            (
                "DELETE",
                "v1/campaigns/c1",
                Some(("campaign.delete", Campaign, "c1")),
            ),
            ("POST", "v1/campaigns/c1/launch", None),
            ("GET", "v1/campaigns/c1", None),
            (
                "PUT",
                "v1/templates/t1",
                Some(("template.put", Template, "t1")),
            ),
            ("POST", "v1/templates/t1/preview", None),
            (
                "POST",
                "v1/chains/ch/activate",
                Some(("chain.activate", Chain, "ch")),
            ),
            (
                "POST",
                "v1/chains/ch/pause",
                Some(("chain.pause", Chain, "ch")),
            ),
            (
                "POST",
                "v1/contacts",
                Some(("contact.upsert", Unread, "contacts")),
            ),
            (
                "POST",
                "v1/contacts/import",
                Some(("contacts.import", Unread, "contacts")),
            ),
            (
                "DELETE",
                "v1/contacts/ct_9",
                Some(("contact.erase", Unread, "ct_9")),
            ),
            (
                "DELETE",
                "v1/contacts/ann%40x.example",
                Some(("contact.erase", Unread, AN_ADDRESS)),
            ),
            (
                "DELETE",
                "v1/contacts/ann%40X.example",
                Some(("contact.erase", Unread, AN_ADDRESS)),
            ),
            (
                "DELETE",
                "v1/suppressions/ann%40x.example",
                Some(("suppression.lift", Unread, AN_ADDRESS)),
            ),
            ("POST", "v1/events", None),
            ("POST", "v1/webhooks/mailgun", None),
            (
                "DELETE",
                "v1/webhook-endpoints/we_1",
                Some(("webhook_endpoint.disable", WebhookEndpoint, "we_1")),
            ),
            ("POST", "v1/tokens", None),
            ("DELETE", "v1/tokens/tok_1", None),
        ];
        for (method, path, want) in table {
            let segments: Vec<&str> = path.split('/').collect();
            let got = audited(method, &segments).map(|a| (a.action, a.kind, a.subject));
            assert_eq!(got, *want, "{method} /{path}");
        }
    }

    #[test]
    fn changes_name_each_differing_field_once() {
        let before = json!({"status": "tested", "name": "Spring", "audience_size": null});
        let after = json!({"status": "approved", "name": "Spring", "audience_size": 1200});
        assert_eq!(
            changes(Some(&before), Some(&after)),
            json!({"status": ["tested", "approved"], "audience_size": [null, 1200]})
        );
        // Created and deleted: every field against null.
        assert_eq!(
            changes(None, Some(&json!({"name": "A"}))),
            json!({"name": [null, "A"]})
        );
        assert_eq!(
            changes(Some(&json!({"name": "A"})), None),
            json!({"name": ["A", null]})
        );
        assert_eq!(changes(Some(&before), Some(&before)), json!({}));
        assert_eq!(changes(None, None), json!({}));
        // A field only one side has.
        assert_eq!(
            changes(Some(&json!({"a": 1})), Some(&json!({"b": 2}))),
            json!({"a": [1, null], "b": [null, 2]})
        );
    }
}
