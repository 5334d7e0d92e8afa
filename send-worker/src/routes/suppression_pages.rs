//! `/dashboard/suppressions`: the suppression list (`epistola_dashboard::suppression_page`), and its
//! forms: import another sender's list (pasted or a CSV file, read by the same rules as
//! `POST /v1/suppressions/import`) and lift one address's suppression with the reason the ledger
//! keeps. Each form needs `contacts:write` and is audited as the signed-in viewer, as the API call
//! it stands for.

use std::collections::BTreeMap;

use epistola_core::auth::{has_scope, Scope};
use epistola_core::capture::normalize_email;
use epistola_core::contact::address_hash;
use epistola_core::suppression::{
    hash_rows, import_source, is_import_reason, list_rows, HashedList, ImportFormat, MAX_LIST_ROWS,
};
use epistola_core::url::{query_text, query_value};
use epistola_dashboard::{self as page, minute};
use worker::{Env, FormEntry, Request, Response};

use super::contacts::{lift_reason, REASONS_WORDS};
use super::dashboard::{form_viewer, not_yours, see_other, Session};
use crate::http::{self, ApiError, ApiResult};
use crate::store::{self, LedgerRow, SuppressionRow};

/// Own suppressions per page, and ledger rows shown.
const PAGE_ROWS: usize = 50;

/// The largest import form (a pasted list or a file): about 100,000 addresses.
const MAX_IMPORT_FORM_BYTES: usize = 4 * 1024 * 1024;

fn line(s: SuppressionRow) -> page::SuppressionLine {
    page::SuppressionLine {
        origin: s.origin,
        contact_id: s.contact_id,
        email: s.email,
        reason: s.reason,
        source: s.source,
        campaign_id: s.campaign_id,
        since: minute(s.created_at),
    }
}

fn lift_line(l: LedgerRow) -> page::LiftLine {
    page::LiftLine {
        address_hash: l.address_hash,
        contact_id: l.contact_id,
        email: l.email,
        reason: l.reason,
        previous_reason: l.previous_reason,
        actor: l.actor,
        at: minute(l.at),
    }
}

/// A page cursor: `{created_at}.{contact_id}` of the last row shown.
fn parse_cursor(cursor: &str) -> ApiResult<(i64, &str)> {
    cursor
        .split_once('.')
        .and_then(|(at, id)| {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            Some((at.parse::<i64>().ok()?, id)).filter(|_| ok)
        })
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor this page gave"))
}

/// The page for `address` looked up (if any) at `cursor`, with `forms`' errors and report.
async fn render(
    env: &Env,
    session: &Session,
    address: &str,
    cursor: Option<&str>,
    mut forms: page::SuppressionForms,
    status: u16,
) -> ApiResult<Response> {
    forms.can_write = has_scope(&session.scopes, Scope::ContactsWrite);
    let before = match cursor {
        Some(c) => parse_cursor(c)?,
        // After every real row: the first page.
        None => (i64::MAX, ""),
    };
    let mut recent = store::own_suppressions(env, before, PAGE_ROWS + 1).await?;
    let next = (recent.len() > PAGE_ROWS).then(|| {
        recent.truncate(PAGE_ROWS);
        recent
            .last()
            .map(|s| {
                format!(
                    "{}.{}",
                    s.created_at,
                    s.contact_id.as_deref().unwrap_or_default()
                )
            })
            .unwrap_or_default()
    });
    let lookup = if address.trim().is_empty() {
        None
    } else {
        match normalize_email(address) {
            Ok(email) => {
                let hash = address_hash(&email);
                let found = store::address_suppressions(env, &email, &hash).await?;
                let ledger = store::suppression_ledger(env, Some(&hash), PAGE_ROWS).await?;
                Some(page::Lookup {
                    address: email,
                    found: found.into_iter().map(line).collect(),
                    ledger: ledger.into_iter().map(lift_line).collect(),
                })
            }
            Err(why) => {
                forms.errors.insert("address".into(), why.into());
                None
            }
        }
    };
    let view = page::SuppressionsView {
        counts: store::suppression_counts(env)
            .await?
            .into_iter()
            .map(|c| page::CountLine {
                origin: c.origin,
                source: c.source,
                reason: c.reason,
                n: c.n,
            })
            .collect(),
        lookup,
        query: address.to_owned(),
        recent: recent.into_iter().map(line).collect(),
        next,
        ledger: store::suppression_ledger(env, None, PAGE_ROWS)
            .await?
            .into_iter()
            .map(lift_line)
            .collect(),
    };
    Ok(http::html_document(
        status,
        page::with_viewer(&page::suppressions(&view, &forms), &session.viewer),
    ))
}

/// `GET /dashboard/suppressions[?address=…][&cursor=…][&lifted=1]`.
pub async fn page(req: &Request, env: &Env, session: &Session) -> ApiResult<Response> {
    if !has_scope(&session.scopes, Scope::ContactsRead) {
        return Ok(not_yours("Suppressions"));
    }
    let url = req.inner().url();
    let mut errors = BTreeMap::new();
    let address = query_text(&url, "address").unwrap_or_else(|why| {
        errors.insert("address".to_owned(), why.to_owned());
        None
    });
    let forms = page::SuppressionForms {
        errors,
        notice: (query_value(&url, "lifted") == Some("1")).then(|| {
            "The suppression was lifted; the ledger below keeps who, when and why.".to_owned()
        }),
        ..Default::default()
    };
    render(
        env,
        session,
        address.as_deref().unwrap_or_default(),
        query_value(&url, "cursor"),
        forms,
        200,
    )
    .await
}

fn refused(field: &str, why: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(field.to_owned(), why.to_owned())])
}

/// `POST /dashboard/suppressions/{import|lift}`.
pub async fn form(mut req: Request, env: &Env, step: &str, now: u64) -> ApiResult<Response> {
    let session = match form_viewer(&req, env, &[Scope::ContactsWrite], "Suppressions", now).await?
    {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    if step == "lift" {
        let body = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
        let address = body.get_field("address").unwrap_or_default();
        let typed = body.get_field("reason").unwrap_or_default();
        let again = |errors| page::SuppressionForms {
            errors,
            ..Default::default()
        };
        let email = match normalize_email(&address) {
            Ok(e) => e,
            Err(why) => {
                let forms = again(refused("address", why));
                return render(env, &session, &address, None, forms, 400).await;
            }
        };
        let reason = match lift_reason(&typed) {
            Ok(r) => r,
            Err(e) => {
                let why = e.fields.get("reason").cloned().unwrap_or(e.message);
                let forms = again(refused("reason", &why));
                return render(env, &session, &email, None, forms, 400).await;
            }
        };
        let hash = address_hash(&email);
        let lift = async {
            match store::lift_suppression(env, &email, &hash, reason, &session.actor, now).await? {
                Some(_) => Ok(200),
                None => Err(ApiError::field(
                    "reason",
                    "this address is not suppressed (any more)",
                )),
            }
        };
        // The log names no address: the path stands for the API call, not for the log.
        let segments = ["v1", "suppressions", "an-address"];
        return match crate::audit::change_as(env, "DELETE", &segments, &session.actor, now, lift)
            .await
        {
            Ok(_) => Ok(see_other("/dashboard/suppressions?lifted=1", None)),
            Err(e) if e.status < 500 => {
                let why = e.fields.get("reason").cloned().unwrap_or(e.message);
                let forms = again(refused("reason", &why));
                render(env, &session, &email, None, forms, 409).await
            }
            Err(e) => Err(e),
        };
    }

    let body = http::read_form(&mut req, MAX_IMPORT_FORM_BYTES).await?;
    let field = |k: &str| body.get_field(k).unwrap_or_default();
    let typed = page::ImportTyped {
        addresses: field("addresses"),
        format: field("format"),
        reason: field("reason"),
        source: field("source"),
    };
    let mut errors = BTreeMap::new();
    let file = match body.get("file") {
        Some(FormEntry::File(f)) if f.size() > 0 => match String::from_utf8(f.bytes().await?) {
            Ok(text) => Some(text),
            Err(_) => {
                errors.insert(
                    "file".to_owned(),
                    "must be text in UTF-8 (a CSV, or one address per line)".to_owned(),
                );
                None
            }
        },
        _ => None,
    };
    let text = match (&file, typed.addresses.trim().is_empty()) {
        (Some(_), false) => {
            errors.insert(
                "file".to_owned(),
                "choose a file or paste addresses, not both".to_owned(),
            );
            ""
        }
        (Some(text), true) => text.as_str(),
        (None, _) => typed.addresses.as_str(),
    };
    let rows = list_rows(text);
    if rows.is_empty() && errors.is_empty() {
        errors.insert(
            "addresses".to_owned(),
            "paste at least one address, or choose a file".to_owned(),
        );
    } else if rows.len() > MAX_LIST_ROWS {
        errors.insert(
            "addresses".to_owned(),
            format!("at most {MAX_LIST_ROWS} lines per import; split the list"),
        );
    }
    let format = ImportFormat::parse(&typed.format);
    if format.is_none() {
        errors.insert(
            "format".to_owned(),
            "choose addresses or SHA-256 hashes".to_owned(),
        );
    }
    if !is_import_reason(&typed.reason) {
        errors.insert("import-reason".to_owned(), REASONS_WORDS.to_owned());
    }
    let source = import_source(&typed.source).unwrap_or_else(|why| {
        errors.insert("source".to_owned(), why.to_owned());
        None
    });
    let (Some(format), true) = (format, errors.is_empty()) else {
        let forms = page::SuppressionForms {
            errors,
            typed,
            ..Default::default()
        };
        return render(env, &session, "", None, forms, 400).await;
    };
    let row_count = rows.len();
    let HashedList { hashes, rejected } = hash_rows(rows, format);
    let mut stored = 0;
    let import = async {
        stored =
            store::import_address_suppressions(env, &hashes, &typed.reason, source, now).await?;
        Ok(200)
    };
    let segments = ["v1", "suppressions", "import"];
    crate::audit::change_as(env, "POST", &segments, &session.actor, now, import).await?;
    let forms = page::SuppressionForms {
        report: Some(page::ImportReport {
            rows: row_count,
            stored,
            rejected: rejected
                .into_iter()
                .map(|(line, why)| (line, why.to_owned()))
                .collect(),
        }),
        // A pasted list is not kept in the form once it is in: a second click imports nothing new.
        typed: page::ImportTyped {
            reason: typed.reason.clone(),
            source: typed.source.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    render(env, &session, "", None, forms, 200).await
}
