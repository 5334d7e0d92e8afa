//! `/v1/contacts` and `/v1/suppressions`: upsert, bulk import (JSON or CSV) with a per-row error
//! report, get with consent ledger and messages, GDPR erase, and imported suppression lists.

use std::collections::BTreeMap;

use epistola_core::auth::Scope;
use epistola_core::capture::normalize_email;
use epistola_core::contact::{
    address_hash, validate_contact, ContactInput, ValidContact, MAX_IMPORT_ROWS,
};
use epistola_core::listing::parse_contact_search;
use epistola_core::suppression::{
    hash_rows, import_source, is_import_reason, HashedList, ImportFormat, MAX_LIST_ROWS,
};
use epistola_core::track::FieldErrors;
use epistola_core::url::percent_decode;
use epistola_worker_kit::auth::require_scope;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Env, Request, Response};

use super::listing;
use crate::http::{self, read_json, ApiError, ApiResult};
use crate::{random, store};

const MAX_CONTACT_BYTES: usize = 16 * 1024;
/// A bulk import (JSON or CSV) of up to MAX_IMPORT_ROWS contacts.
const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;

/// The JSON row stored by `store::upsert_contacts`.
fn stored_row(id: &str, c: &ValidContact) -> Value {
    json!({
        "id": id, "email": c.email, "phone": c.phone, "name": c.name, "gender": c.gender,
        "birthday": c.birthday, "locale": c.locale, "time_zone": c.time_zone,
        "fields": serde_json::to_string(&c.fields).unwrap_or_else(|_| "{}".into()),
        "tags": c.tags, "test_list": c.test_list.map(i64::from),
        "consents": c.consents.iter().map(|(site, purpose, channel, source)| json!([site, purpose, channel.as_str(), source])).collect::<Vec<_>>(),
    })
}

fn new_contact_id() -> ApiResult<String> {
    random::id("c_").ok_or_else(|| ApiError::internal("contact id", "no randomness"))
}

/// `POST /v1/contacts`: creates or updates one contact (by address).
pub async fn upsert(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::ContactsWrite).await?;
    let input: ContactInput = read_json(&mut req, MAX_CONTACT_BYTES).await?;
    let contact = validate_contact(&input).map_err(ApiError::invalid)?;
    store::upsert_contacts(env, &[stored_row(&new_contact_id()?, &contact)], now).await?;
    let id = store::contact_id_by_email(env, &contact.email)
        .await?
        .ok_or_else(|| ApiError::internal("upsert", "contact missing after upsert"))?;
    let record = store::contact_record(env, &id).await?;
    Ok(http::json(200, &json!({ "contact": record })))
}

/// `GET /v1/contacts?query=&limit=&cursor=`: one page, newest first, of the contacts matching
/// every term of the search (`core::listing::parse_contact_search`).
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    require_scope(req, env, Scope::ContactsRead).await?;
    let page = listing::requested(req)?;
    let [query] = listing::params(req, ["query"])?;
    let search = parse_contact_search(query.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::field("query", e))?;
    let rows = store::list_contacts(env, &search, &page).await?;
    Ok(listing::answer("contacts", rows, page.limit))
}

#[derive(Debug, Serialize)]
struct RowError {
    /// 1-based data row (CSV: the header is not a row).
    row: usize,
    fields: FieldErrors,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonImport {
    contacts: Vec<Value>,
}

/// `POST /v1/contacts/import`: JSON `{"contacts": [...]}` or `text/csv` with a header row.
/// Valid rows are stored (in one transaction); invalid ones are reported by row and field.
pub async fn import(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::ContactsWrite).await?;
    let content_type = http::content_type(&req);
    let rows: Vec<Result<ContactInput, FieldErrors>> =
        if content_type.starts_with("application/json") {
            let body: JsonImport = read_json(&mut req, MAX_IMPORT_BYTES).await?;
            body.contacts
                .into_iter()
                .map(|v| {
                    serde_json::from_value::<ContactInput>(v).map_err(|e| {
                        let message = e.to_string();
                        let field = message.split('`').nth(1).unwrap_or("row").to_owned();
                        FieldErrors::from([(field, message)])
                    })
                })
                .collect()
        } else if content_type.starts_with("text/csv") {
            let bytes = http::read_limited(&mut req, MAX_IMPORT_BYTES).await?;
            csv_rows(&bytes)?
        } else {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                "send application/json ({\"contacts\": [...]}) or text/csv with a header row",
            ));
        };
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::field(
            "contacts",
            format!("at most {MAX_IMPORT_ROWS} contacts per request"),
        ));
    }
    let received = rows.len();
    let mut errors = Vec::new();
    // Later rows for the same address win, as if imported one after another.
    let mut valid: BTreeMap<String, Value> = BTreeMap::new();
    for (i, row) in rows.into_iter().enumerate() {
        match row.and_then(|input| validate_contact(&input)) {
            Ok(c) => {
                valid.insert(c.email.clone(), stored_row(&new_contact_id()?, &c));
            }
            Err(fields) => errors.push(RowError { row: i + 1, fields }),
        }
    }
    let stored: Vec<Value> = valid.into_values().collect();
    store::upsert_contacts(env, &stored, now).await?;
    Ok(http::json(
        200,
        &json!({ "received": received, "upserted": stored.len(), "rejected": errors.len(), "errors": errors }),
    ))
}

/// Parses CSV rows into contact inputs. Columns: email, phone, name, gender, birthday, locale,
/// time_zone, tags (separated by `;`), test_list (`true`/`1`), `consent:{site}:{purpose}:{channel}`
/// (the value says where it was collected); any other column is a custom field.
fn csv_rows(bytes: &[u8]) -> ApiResult<Vec<Result<ContactInput, FieldErrors>>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::field("body", format!("the CSV header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    if !header.iter().any(|h| h == "email") {
        return Err(ApiError::field(
            "body",
            "the CSV header row needs an `email` column",
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.push(Err(FieldErrors::from([(
                    "row".to_owned(),
                    format!("not valid CSV: {e}"),
                )])));
                continue;
            }
        };
        let mut input = ContactInput::default();
        let mut errors = FieldErrors::new();
        for (name, value) in header.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let v = Some(value.to_owned());
            match name.as_str() {
                "email" => input.email = v,
                "phone" => input.phone = v,
                "name" => input.name = v,
                "gender" => input.gender = v,
                "birthday" => input.birthday = v,
                "locale" => input.locale = v,
                "time_zone" => input.time_zone = v,
                "tags" => {
                    input.tags = value
                        .split(';')
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty())
                        .collect()
                }
                "test_list" => match value {
                    "1" | "true" | "yes" => input.test_list = Some(true),
                    "0" | "false" | "no" => input.test_list = Some(false),
                    _ => {
                        errors.insert(
                            "test_list".into(),
                            "must be true/false, yes/no or 1/0".into(),
                        );
                    }
                },
                other => match other
                    .strip_prefix("consent:")
                    .map(|rest| rest.split(':').collect::<Vec<_>>())
                {
                    Some(parts) if parts.len() == 3 => {
                        input
                            .consents
                            .push(epistola_core::contact::ImportedConsent {
                                site: parts[0].to_owned(),
                                purpose: parts[1].to_owned(),
                                channel: parts[2].to_owned(),
                                source: value.to_owned(),
                            })
                    }
                    Some(_) => {
                        errors.insert(
                            other.to_owned(),
                            "consent columns are consent:{site}:{purpose}:{channel}".into(),
                        );
                    }
                    None => {
                        input.fields.insert(other.to_owned(), value.to_owned());
                    }
                },
            }
        }
        rows.push(if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        });
    }
    Ok(rows)
}

/// Resolves `{id}`: a contact id, or an address.
async fn resolve(env: &Env, id_or_email: &str) -> ApiResult<String> {
    // The path may carry the address percent-encoded (`ann%40example.com`).
    let id_or_email = &percent_decode(id_or_email)
        .ok_or_else(|| ApiError::field("contact", "is not a valid path segment"))?;
    let id = if id_or_email.contains('@') {
        let email = normalize_email(id_or_email).map_err(|e| ApiError::field("contact", e))?;
        store::contact_id_by_email(env, &email).await?
    } else {
        Some(id_or_email.to_owned())
    };
    id.ok_or_else(|| ApiError::new(404, "not_found", "no such contact"))
}

/// `GET /v1/contacts/{id or address}`: the contact with tags, consent ledger and messages.
pub async fn get(req: &Request, env: &Env, id_or_email: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::ContactsRead).await?;
    let id = resolve(env, id_or_email).await?;
    let record = store::contact_record(env, &id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such contact"))?;
    Ok(http::json(200, &json!({ "contact": record })))
}

/// `GET /v1/contacts/{id or address}/export`: everything held about the contact (GDPR access and
/// portability), as a JSON download.
pub async fn export(req: &Request, env: &Env, id_or_email: &str, now: u64) -> ApiResult<Response> {
    require_scope(req, env, Scope::ContactsRead).await?;
    let id = resolve(env, id_or_email).await?;
    export_download(env, &id, now).await
}

/// The export of the contact with this id as a download (the API's and the dashboard's).
pub async fn export_download(env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    let data = store::contact_export(env, id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such contact"))?;
    let mut resp = http::json(
        200,
        &json!({ "exported_at": now, "format": "epistola.contact-export.v1", "contact": data }),
    );
    let disposition = format!("attachment; filename=\"contact-{id}.json\"");
    let _ = resp.headers_mut().set("Content-Disposition", &disposition);
    Ok(resp)
}

/// `DELETE /v1/contacts/{id or address}`: GDPR erasure (aggregate counts are kept).
pub async fn erase(req: &Request, env: &Env, id_or_email: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::ContactsWrite).await?;
    let id = resolve(env, id_or_email).await?;
    if !store::erase_contact(env, &id).await? {
        return Err(ApiError::new(404, "not_found", "no such contact"));
    }
    Ok(http::json(200, &json!({ "erased": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionImport {
    /// `plain` addresses (hashed before storing) or `sha256` hex of normalised addresses.
    format: String,
    #[serde(default = "default_reason")]
    reason: String,
    #[serde(default)]
    source: Option<String>,
    addresses: Vec<String>,
}

fn default_reason() -> String {
    "imported".into()
}

/// `POST /v1/suppressions/import`: a suppression list exported from another sender. Only
/// SHA-256 hashes of normalised addresses are stored; every send checks them.
pub async fn import_suppressions(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::ContactsWrite).await?;
    let body: SuppressionImport = read_json(&mut req, MAX_IMPORT_BYTES).await?;
    let format = ImportFormat::parse(&body.format)
        .ok_or_else(|| ApiError::field("format", "must be plain or sha256"))?;
    if !is_import_reason(&body.reason) {
        return Err(ApiError::field("reason", REASONS_WORDS));
    }
    if body.addresses.len() > MAX_LIST_ROWS {
        return Err(ApiError::field("addresses", "at most 100000 per request"));
    }
    let source = import_source(body.source.as_deref().unwrap_or_default())
        .map_err(|why| ApiError::field("source", why))?;
    let rows = body.addresses.iter().enumerate();
    let HashedList { hashes, rejected } = hash_rows(rows.map(|(i, a)| (i + 1, a.as_str())), format);
    let errors: Vec<_> = rejected
        .iter()
        .map(|(row, why)| json!({ "row": row, "fields": { "address": why } }))
        .collect();
    let added = store::import_address_suppressions(env, &hashes, &body.reason, source, now).await?;
    Ok(http::json(
        200,
        &json!({ "received": body.addresses.len(), "stored": added, "rejected": errors.len(), "errors": errors }),
    ))
}

/// The refusal of a reason no import may give.
pub const REASONS_WORDS: &str = "must be imported, unsubscribed, bounced or complained";

/// Why a suppression is lifted, as the ledger keeps it: 1-500 characters, no control characters.
pub fn lift_reason(typed: &str) -> ApiResult<&str> {
    let reason = typed.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::field(
            "reason",
            "say why, in 1-500 characters without control characters",
        ));
    }
    Ok(reason)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftInput {
    reason: String,
}

/// `DELETE /v1/suppressions/{address}` with `{"reason": "…"}`: lifts a suppression (own or
/// imported) by mistake, e.g. a bounce that was the relay's fault. Audited: the ledger keeps who,
/// when, why and what the suppression said; the address only as its hash.
pub async fn lift_suppression(
    mut req: Request,
    env: &Env,
    address: &str,
    now: u64,
) -> ApiResult<Response> {
    let actor = require_scope(&req, env, Scope::ContactsWrite).await?;
    let address = percent_decode(address)
        .ok_or_else(|| ApiError::field("address", "is not a valid path segment"))?;
    let email = normalize_email(&address).map_err(|e| ApiError::field("address", e))?;
    let input: LiftInput = read_json(&mut req, MAX_CONTACT_BYTES).await?;
    let reason = lift_reason(&input.reason)?;
    match store::lift_suppression(env, &email, &address_hash(&email), reason, &actor, now).await? {
        Some(previous) => Ok(http::json(
            200,
            &json!({ "lifted": true, "previous_reason": previous }),
        )),
        None => Err(ApiError::new(
            404,
            "not_found",
            "this address is not suppressed",
        )),
    }
}
