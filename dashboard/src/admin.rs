//! The admin's pages: API tokens (create with scopes, shown once; revoke) and the audit log (who
//! changed what, before → after; filter by actor or subject; CSV export).

use std::fmt::Write as _;

use epistola_core::html::escape;
use serde_json::Value;

use crate::{csv, layout, path_id, table};

/// One API token as the tokens page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLine {
    pub id: String,
    pub name: String,
    pub scopes: String,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub created: String,
    pub created_by: String,
    /// When it was revoked (`YYYY-MM-DD HH:MM` UTC), if it was.
    pub revoked: Option<String>,
}

/// What the token form just did: a new token to show once, or the field it refused and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenForm<'a> {
    Blank,
    Minted { name: &'a str, secret: &'a str },
    Refused { field: &'a str, problem: &'a str },
}

/// The tokens page: a new token (shown this once), the form (only scopes the viewer holds can be
/// given), and every token with a revoke button for the live ones.
pub fn tokens(rows: &[TokenLine], grantable: &[&str], form: &TokenForm) -> String {
    let mut body = String::new();
    if let TokenForm::Minted { name, secret } = form {
        let _ = write!(
            body,
            "<section class=\"notice\" role=\"status\"><p>Token <strong>{}</strong> is ready. Copy it now: it is stored \
only as a hash and is never shown again.</p><p><code id=\"new-token\">{}</code></p></section>",
            escape(name),
            escape(secret)
        );
    }
    let problem = |field: &str| match form {
        TokenForm::Refused { field: f, problem } if *f == field => Some(*problem),
        _ => None,
    };
    let described = |field: &str| {
        if problem(field).is_some() {
            format!(" aria-describedby=\"{field}-error\" aria-invalid=\"true\"")
        } else {
            String::new()
        }
    };
    let error = |field: &str| {
        problem(field)
            .map(|p| {
                format!(
                    "<p id=\"{field}-error\" class=\"err\" role=\"alert\">{}</p>",
                    escape(p)
                )
            })
            .unwrap_or_default()
    };
    let _ = write!(
        body,
        "<h2>New token</h2><form method=\"post\" action=\"/dashboard/tokens\">\
<p><label for=\"name\">What it is for</label><br><input id=\"name\" name=\"name\" required maxlength=\"64\" size=\"32\" \
placeholder=\"Shop backend: sign links\"{}>{}</p><fieldset{}><legend>Scopes</legend>",
        described("name"),
        error("name"),
        described("scopes"),
    );
    for scope in grantable {
        let id = format!("scope-{}", scope.replace(':', "-"));
        let _ = write!(
            body,
            "<label for=\"{id}\"><input type=\"checkbox\" id=\"{id}\" name=\"scope\" value=\"{s}\"> <code>{s}</code></label> ",
            s = escape(scope)
        );
    }
    let _ = write!(
        body,
        "{}</fieldset><p class=\"muted\">A token can be given only scopes you hold yourself.</p><button>Create token</button></form>",
        error("scopes")
    );
    body.push_str("<h2>Tokens</h2>");
    if rows.is_empty() {
        body.push_str("<p class=\"notice\">No API tokens yet.</p>");
    } else {
        let lines: Vec<Vec<String>> = rows
            .iter()
            .map(|t| {
                let state = match &t.revoked {
                    Some(at) => format!("revoked {}", escape(at)),
                    None => format!(
                        "live <form method=\"post\" action=\"/dashboard/tokens/{}/revoke\" class=\"inline\">\
<button aria-label=\"Revoke {}\">Revoke</button></form>",
                        path_id(&t.id),
                        escape(&t.name)
                    ),
                };
                vec![
                    escape(&t.name),
                    format!("<code>{}</code>", escape(&t.id)),
                    escape(&t.scopes),
                    escape(&t.created),
                    escape(&t.created_by),
                    state,
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "Name",
                "Id",
                "Scopes",
                "Created (UTC)",
                "Created by",
                "Status",
            ],
            &lines,
            None,
        ));
    }
    layout("API tokens", &body)
}

/// One audit row as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub seq: i64,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// The stored detail: `{"status": …, "changes": {field: [before, after]}}`.
    pub detail: Value,
}

/// Long values (a template's HTML) are cut on the page; the CSV has them whole.
const SHOWN_CHARS: usize = 80;

fn shown(v: &Value) -> String {
    let s = match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > SHOWN_CHARS {
        let cut: String = s.chars().take(SHOWN_CHARS).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// `field: before → after` for each change, one per line (escaped HTML).
fn changes_cell(detail: &Value) -> String {
    let Some(changes) = detail["changes"].as_object().filter(|c| !c.is_empty()) else {
        return "<span class=\"muted\">no field changed</span>".to_owned();
    };
    changes
        .iter()
        .map(|(field, pair)| {
            format!(
                "<code>{}</code>: {} → {}",
                escape(field),
                escape(&shown(&pair[0])),
                escape(&shown(&pair[1]))
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The audit page: filters by actor and subject (their error beside them), newest first, the next
/// page, and the CSV of what the filters select.
pub fn audit(
    rows: &[AuditLine],
    actor: &str,
    subject: &str,
    error: Option<&str>,
    next: Option<&str>,
) -> String {
    let query = format!("actor={}&amp;subject={}", path_id(actor), path_id(subject));
    let mut body = format!(
        "<form method=\"get\" action=\"/dashboard/audit\" role=\"search\"><label for=\"actor\">Actor</label> \
<input id=\"actor\" name=\"actor\" value=\"{}\" size=\"24\" placeholder=\"user:u_… or token:tok_…\"> \
<label for=\"subject\">Subject</label> <input id=\"subject\" name=\"subject\" value=\"{}\" size=\"24\" \
placeholder=\"spring-sale\"> <button>Filter</button>{}</form>",
        escape(actor),
        escape(subject),
        error
            .map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", escape(e)))
            .unwrap_or_default()
    );
    if error.is_some() {
        // The filter did not run.
    } else if rows.is_empty() {
        body.push_str("<p class=\"notice\">Nothing recorded for this filter yet.</p>");
    } else {
        let lines: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    escape(&r.at),
                    escape(&r.actor),
                    escape(&r.action),
                    escape(&r.subject),
                    changes_cell(&r.detail),
                ]
            })
            .collect();
        body.push_str(&table(
            &["When (UTC)", "Who", "What", "Subject", "Before → after"],
            &lines,
            None,
        ));
        let _ = write!(
            body,
            "<p><a href=\"/dashboard/audit.csv?{query}\" download>audit.csv</a> \
<span class=\"muted\">(the newest 5,000 rows of this filter, values whole)</span></p>"
        );
    }
    if let Some(cursor) = next {
        let _ = write!(
            body,
            "<p><a href=\"/dashboard/audit?{query}&amp;cursor={}\">Older entries</a></p>",
            path_id(cursor)
        );
    }
    layout("Audit log", &body)
}

/// The audit rows as CSV, each change's values whole (`detail` as stored JSON).
pub fn audit_csv(rows: &[AuditLine]) -> String {
    let lines: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                r.at.clone(),
                r.actor.clone(),
                r.action.clone(),
                r.subject.clone(),
                r.detail.to_string(),
            ]
        })
        .collect();
    csv(
        &["seq", "at_utc", "actor", "action", "subject", "detail"],
        &lines,
    )
}

/// One workspace user as the users page lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLine {
    pub id: String,
    pub email: String,
    pub role: String,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub created: String,
    /// When they were disabled, if they are.
    pub disabled: Option<String>,
    /// The viewer themself (no button to lock oneself out).
    pub is_viewer: bool,
}

/// The users page: add someone with a role (only roles whose duties the viewer holds), change a
/// role, disable and enable. `refused`: the field of the last form and why.
pub fn users(rows: &[UserLine], grantable: &[&str], refused: Option<(&str, &str)>) -> String {
    let errors: std::collections::BTreeMap<String, String> = refused
        .map(|(f, why)| (f.to_owned(), why.to_owned()))
        .into_iter()
        .collect();
    let fields = crate::Fields(&errors);
    let options = |chosen: &str| -> String {
        grantable
            .iter()
            .map(|r| {
                format!(
                    "<option value=\"{r}\"{}>{r}</option>",
                    if *r == chosen { " selected" } else { "" }
                )
            })
            .collect()
    };
    let mut body = format!(
        "{}<h2>Add a user</h2><form method=\"post\" action=\"/dashboard/users\">\
<p><label for=\"email\">Work address</label><br><input id=\"email\" name=\"email\" type=\"email\" required size=\"32\"{}>{}</p>\
<p><label for=\"role\">Role</label><br><select id=\"role\" name=\"role\"{}>{}</select>{}</p>\
<p class=\"muted\">They sign in at <code>/dashboard</code> with a link mailed to this address. You can give only roles whose duties you hold.</p>\
<button>Add the user</button></form><h2>Users</h2>",
        fields.error("form"),
        fields.invalid("email"),
        fields.error("email"),
        fields.invalid("role"),
        options("author"),
        fields.error("role"),
    );
    if rows.is_empty() {
        body.push_str("<p class=\"notice\">No workspace users yet.</p>");
        return layout("Users", &body);
    }
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|u| {
            let id = path_id(&u.id);
            let who = escape(&u.email);
            let (role, state) = if u.is_viewer {
                (escape(&u.role), "you".to_owned())
            } else if let Some(at) = &u.disabled {
                (
                    escape(&u.role),
                    format!(
                        "disabled {} <form method=\"post\" action=\"/dashboard/users/{id}/enable\" class=\"inline\">\
<button aria-label=\"Enable {who}\">Enable</button></form>",
                        escape(at)
                    ),
                )
            } else {
                (
                    format!(
                        "<form method=\"post\" action=\"/dashboard/users/{id}/role\" class=\"inline\">\
<select name=\"role\" aria-label=\"Role of {who}\">{}</select> <button aria-label=\"Change the role of {who}\">Change</button></form>",
                        options(&u.role)
                    ),
                    format!(
                        "active <form method=\"post\" action=\"/dashboard/users/{id}/disable\" class=\"inline\">\
<button aria-label=\"Disable {who}\">Disable</button></form>"
                    ),
                )
            };
            vec![who, role, escape(&u.created), state]
        })
        .collect();
    body.push_str(&table(
        &["Address", "Role", "Added (UTC)", "State"],
        &lines,
        None,
    ));
    layout("Users", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(revoked: Option<&str>) -> TokenLine {
        TokenLine {
            id: "tok_1".into(),
            name: "Shop <backend>".into(),
            scopes: "track:sign".into(),
            created: "2026-12-04 10:00".into(),
            created_by: "user:u_1".into(),
            revoked: revoked.map(str::to_owned),
        }
    }

    #[test]
    fn a_new_token_is_shown_and_refusals_stand_beside_their_field() {
        let minted = tokens(
            &[token(None)],
            &["stats:read", "track:sign"],
            &TokenForm::Minted {
                name: "Shop",
                secret: "ep_abc",
            },
        );
        assert!(minted.contains("<code id=\"new-token\">ep_abc</code>"));
        assert!(minted.contains("never shown again"));
        assert!(minted.contains("value=\"track:sign\""));
        assert!(minted.contains("/dashboard/tokens/tok_1/revoke"));
        assert!(minted.contains("Shop &lt;backend&gt;"));
        let refused = tokens(
            &[],
            &["stats:read"],
            &TokenForm::Refused {
                field: "scopes",
                problem: "choose at least one scope",
            },
        );
        assert!(refused.contains("aria-describedby=\"scopes-error\""));
        assert!(refused.contains("id=\"scopes-error\""));
        assert!(!refused.contains("name-error"));
        assert!(refused.contains("No API tokens yet") && !refused.contains("new-token"));
        let revoked = tokens(&[token(Some("2026-12-04 11:00"))], &[], &TokenForm::Blank);
        assert!(revoked.contains("revoked 2026-12-04 11:00") && !revoked.contains("/revoke"));
    }

    #[test]
    fn audit_rows_show_before_and_after() {
        let row = AuditLine {
            seq: 7,
            at: "2026-12-04 10:00:00".into(),
            actor: "token:approver".into(),
            action: "campaign.approve".into(),
            subject: "spring-sale".into(),
            detail: json!({"status": 200, "changes": {"status": ["tested", "approved"], "html": [null, "x".repeat(200)]}}),
        };
        let page = audit(
            std::slice::from_ref(&row),
            "",
            "spring-sale",
            None,
            Some("7"),
        );
        assert!(
            page.contains("<code>status</code>: tested → approved"),
            "{page}"
        );
        assert!(page.contains("<code>html</code>: — → xxxx") && page.contains("…"));
        assert!(page.contains("/dashboard/audit.csv?actor=&amp;subject=spring-sale"));
        assert!(page.contains("cursor=7"));
        let csv = audit_csv(&[row]);
        assert!(csv.starts_with("seq,at_utc,actor,action,subject,detail\n7,"));
        assert!(csv.contains(&"x".repeat(200)), "the CSV keeps values whole");
        assert!(audit(&[], "", "", None, None).contains("Nothing recorded"));
        let bad = audit(&[], "", "", Some("cursor: must be a next_cursor"), None);
        assert!(bad.contains("role=\"alert\"") && !bad.contains("Nothing recorded"));
    }

    #[test]
    fn users_page_offers_only_grantable_roles_and_no_button_against_oneself() {
        let line = |id: &str, role: &str, disabled: Option<&str>, is_viewer: bool| UserLine {
            id: id.into(),
            email: format!("{id}@team.example"),
            role: role.into(),
            created: "2026-12-04 10:00".into(),
            disabled: disabled.map(str::to_owned),
            is_viewer,
        };
        let rows = [
            line("me", "admin", None, true),
            line("ann", "author", None, false),
            line("bo", "analyst", Some("2026-12-04 11:00"), false),
        ];
        let page = users(
            &rows,
            &["author", "analyst"],
            Some(("email", "not an address")),
        );
        assert!(
            !page.contains("/dashboard/users/me/"),
            "no buttons against oneself"
        );
        assert!(page.contains("action=\"/dashboard/users/ann/disable\""));
        assert!(page.contains("action=\"/dashboard/users/bo/enable\""));
        assert!(
            !page.contains("value=\"admin\""),
            "only roles the viewer may give"
        );
        assert!(page.contains("<option value=\"author\" selected>"));
        assert!(page.contains("id=\"email-error\""));
    }
}
