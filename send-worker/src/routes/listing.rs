//! What the list routes share: the page asked for (`?limit=&cursor=`) and the page answered
//! (`{"<items>": [...], "next_cursor": "…" | null}`).

use epistola_core::listing::{page, split_page, Cursor, Page};
use epistola_core::track::FieldErrors;
use epistola_core::url::query_text;
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::http::{self, ApiError, ApiResult};

/// The decoded query parameters `names` of the request, in order; a broken escape is a `400`
/// naming the parameter.
pub fn params<const N: usize>(req: &Request, names: [&str; N]) -> ApiResult<[Option<String>; N]> {
    // The JS string, not `Request::url()`: that parses with the `url` crate, whose IDNA tables
    // cost the sending worker 70 KiB (measured).
    let url = req.inner().url();
    let mut errors = FieldErrors::new();
    let values = names.map(|name| {
        query_text(&url, name).unwrap_or_else(|problem| {
            errors.insert(name.into(), problem.into());
            None
        })
    });
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// The page the request asks for.
pub fn requested(req: &Request) -> ApiResult<Page> {
    let [limit, cursor] = params(req, ["limit", "cursor"])?;
    page_of(limit.as_deref(), cursor.as_deref())
}

/// A page from decoded `limit` and `cursor` values.
pub fn page_of(limit: Option<&str>, cursor: Option<&str>) -> ApiResult<Page> {
    page(limit, cursor).map_err(ApiError::invalid)
}

/// Where the page after `row` starts.
pub fn row_cursor(row: &Value) -> Cursor {
    Cursor {
        created_at: row["created_at"].as_i64().unwrap_or_default(),
        id: row["id"].as_str().unwrap_or_default().to_owned(),
    }
}

/// `rows` (up to `limit + 1`, newest first) as the answer under `key`.
pub fn answer(key: &str, rows: Vec<Value>, limit: usize) -> Response {
    let (rows, next) = split_page(rows, limit, row_cursor);
    http::json(200, &json!({ key: rows, "next_cursor": next }))
}

/// The answer to `DELETE` of a draft: `200`, `404`, or `409` saying why it stays.
pub fn deletion(result: crate::store::Deletion, what: &str, id: &str) -> ApiResult<Response> {
    use crate::store::Deletion;
    match result {
        Deletion::Deleted => Ok(http::json(200, &json!({ "deleted": what, "id": id }))),
        Deletion::Missing => Err(ApiError::new(404, "not_found", format!("no such {what}"))),
        Deletion::Kept(why) => Err(ApiError::new(
            409,
            "not_deletable",
            format!("only a draft {what} can be deleted: {why}"),
        )),
    }
}
