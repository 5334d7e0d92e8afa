//! Response building: JSON errors, HTML pages with security headers, the tracking GIF.

use epistola_core::track::FieldErrors;
use serde::Serialize;
use worker::{Headers, Response};

/// The classic transparent 1×1 GIF (43 bytes).
pub const PIXEL_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// An API error: rendered as `{"error": {"code", "message", "fields"?}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub fields: FieldErrors,
    /// An allowed browser origin that may read this error (CORS).
    pub cors_origin: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: FieldErrors::new(),
            cors_origin: None,
        }
    }

    pub fn invalid(fields: FieldErrors) -> ApiError {
        ApiError {
            fields,
            ..ApiError::new(400, "invalid_request", "the request has invalid fields")
        }
    }

    pub fn field(name: &str, problem: impl Into<String>) -> ApiError {
        ApiError::invalid(FieldErrors::from([(name.to_owned(), problem.into())]))
    }

    /// Lets the widget on `origin` read this error.
    pub fn with_cors(mut self, origin: &str) -> ApiError {
        self.cors_origin = Some(origin.to_owned());
        self
    }

    /// A failure of ours: the details go to the log, never to the client.
    pub fn internal(context: &str, e: impl std::fmt::Display) -> ApiError {
        worker::console_error!("internal error ({context}): {e}");
        ApiError::new(500, "internal", "internal error")
    }

    pub fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "FieldErrors::is_empty")]
            fields: &'a FieldErrors,
        }
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        let mut resp = json(self.status, &body);
        if self.status == 401 {
            let _ = resp.headers_mut().set("WWW-Authenticate", "Bearer");
        }
        with_cors(resp, self.cors_origin.as_deref())
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> ApiError {
        ApiError::internal("runtime", e)
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// A request header's value, if present.
pub fn header(req: &worker::Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The request's `Content-Type`, lower-cased ("" when absent).
pub fn content_type(req: &worker::Request) -> String {
    header(req, "Content-Type")
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Reads at most `limit` bytes of body: `413` above it, whether declared or actual. The body is
/// read chunk by chunk and abandoned as soon as it passes the limit, so a chunked upload without
/// a `Content-Length` is never buffered whole.
pub async fn read_limited(req: &mut worker::Request, limit: usize) -> ApiResult<Vec<u8>> {
    use futures_core::Stream;
    let too_large = || {
        ApiError::new(
            413,
            "payload_too_large",
            format!("the body must be at most {limit} bytes"),
        )
    };
    let declared = header(req, "Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let Ok(stream) = req.stream() else {
        // No body at all.
        return Ok(Vec::new());
    };
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    let mut seen = 0usize;
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > limit {
            // Over the limit: nothing more is kept. The rest is read and dropped (up to a bound)
            // so the upload ends cleanly instead of leaving a half-read stream behind.
            bytes = Vec::new();
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        bytes.extend_from_slice(&chunk);
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Past a body's limit, at most this much in all is read (and dropped) before giving up on it.
const DRAIN_LIMIT: usize = 1 << 20;

/// Largest form body a page accepts (unsubscribe, preferences, confirm, dashboard sign-in): a
/// few checkboxes or a token.
pub const MAX_FORM_BYTES: usize = 8 * 1024;

/// Reads a form body (`application/x-www-form-urlencoded` or `multipart/form-data`) of at most
/// `limit` bytes and lets the runtime parse it: the size is checked before any parsing.
pub async fn read_form(req: &mut worker::Request, limit: usize) -> ApiResult<worker::FormData> {
    let content_type = header(req, "Content-Type").unwrap_or_default();
    let bytes = read_limited(req, limit).await?;
    let headers = Headers::new();
    headers.set("Content-Type", &content_type)?;
    let body = js_sys_bytes(&bytes);
    let mut parsed = new_request("https://form.invalid/", "POST", &headers, Some(&body))?;
    parsed
        .form_data()
        .await
        .map_err(|_| ApiError::new(400, "invalid_form", "the form could not be read"))
}

/// A request built from the platform's own types: `worker::RequestInit` brings its whole `cf`
/// properties conversion (about 11 KB of wasm) for requests that set none of them.
pub fn new_request(
    url: &str,
    method: &str,
    headers: &Headers,
    body: Option<&wasm_bindgen::JsValue>,
) -> worker::Result<worker::Request> {
    let init = worker::web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers.as_ref());
    if let Some(body) = body {
        init.set_body(body);
    }
    Ok(worker::web_sys::Request::new_with_str_and_init(url, &init)?.into())
}

fn js_sys_bytes(bytes: &[u8]) -> wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(bytes).into()
}

/// Parses a JSON body; a `400` names the field serde complained about (unknown, missing, wrong type).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        // serde names the offending field in backticks.
        let field = message
            .split('`')
            .nth(1)
            .filter(|f| !f.is_empty())
            .unwrap_or("body");
        ApiError::field(field, message.clone())
    })
}

/// Reads a JSON body of at most `limit` bytes: `415` unless `application/json`, then as above.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: &mut worker::Request,
    limit: usize,
) -> ApiResult<T> {
    if !content_type(req).starts_with("application/json") {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    let bytes = read_limited(req, limit).await?;
    parse_json(&bytes)
}

/// A response with a fixed body and headers.
pub fn with_body(status: u16, body: Vec<u8>, headers: &[(&str, &str)]) -> Response {
    let h = Headers::new();
    for (k, v) in headers {
        // Only fixed, valid header names and values reach here.
        let _ = h.set(k, v);
    }
    Response::builder()
        .with_status(status)
        .with_headers(h)
        .fixed(body)
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    with_body(
        status,
        body,
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
}

/// A CSV download.
pub fn csv(body: String, filename: &str) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    with_body(
        200,
        body.into_bytes(),
        &[
            ("Content-Type", "text/csv; charset=utf-8"),
            ("Content-Disposition", &disposition),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
}

/// Headers every HTML page carries: nothing loads from elsewhere, no framing, no Referer leak.
const PAGE_HEADERS: [(&str, &str); 5] = [
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
];

/// A small self-contained HTML page. `body_html` must already be escaped.
pub fn page(status: u16, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\">\
<title>{title}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}\
button{{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #333;background:#222;color:#fff;cursor:pointer}}</style>\
</head><body><h1>{title}</h1>{body_html}</body></html>",
        title = escape_html(title)
    );
    with_body(status, html.into_bytes(), &PAGE_HEADERS)
}

/// A complete HTML document (already escaped), with the same security headers as [`page`].
pub fn html_document(status: u16, html: String) -> Response {
    with_body(status, html.into_bytes(), &PAGE_HEADERS)
}

/// `HEAD` on a page: the `GET` answer's status and headers, without the body.
pub fn head(get: Response) -> Response {
    let headers = get.headers().clone();
    Response::builder()
        .with_status(get.status_code())
        .with_headers(headers)
        .fixed(Vec::new())
}

/// The tracking pixel: always this response, whatever the token.
pub fn pixel() -> Response {
    with_body(
        200,
        PIXEL_GIF.to_vec(),
        &[
            ("Content-Type", "image/gif"),
            (
                "Cache-Control",
                "no-store, no-cache, must-revalidate, max-age=0",
            ),
            ("Pragma", "no-cache"),
            ("Expires", "0"),
            ("Referrer-Policy", "no-referrer"),
        ],
    )
}

/// `302` to a signed destination.
pub fn redirect(location: &str) -> Response {
    with_body(
        302,
        Vec::new(),
        &[
            ("Location", location),
            ("Cache-Control", "no-store"),
            ("Referrer-Policy", "no-referrer"),
        ],
    )
}

/// Adds CORS headers for an allowed `origin` (already checked by the caller).
pub fn with_cors(mut resp: Response, origin: Option<&str>) -> Response {
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        let _ = h.set("Access-Control-Allow-Origin", origin);
        let _ = h.set("Vary", "Origin");
    }
    resp
}

/// `204` answer to a CORS preflight from an allowed origin.
pub fn preflight(origin: Option<&str>) -> Response {
    let resp = with_body(
        204,
        Vec::new(),
        &[
            ("Access-Control-Allow-Methods", "GET, POST"),
            ("Access-Control-Allow-Headers", "Content-Type"),
            ("Access-Control-Max-Age", "86400"),
        ],
    );
    with_cors(resp, origin)
}

/// `405` with the allowed methods.
pub fn method_not_allowed(allow: &str) -> Response {
    let mut resp = ApiError::new(405, "method_not_allowed", format!("use {allow}")).into_response();
    let _ = resp.headers_mut().set("Allow", allow);
    resp
}

pub use epistola_core::html::escape as escape_html;

/// The public origin for links: `PUBLIC_BASE_URL` if set, else the origin the request came to.
pub fn public_base_url(req: &worker::Request, env: &worker::Env) -> ApiResult<String> {
    if let Some(v) = crate::config::text(env, crate::bindings::PUBLIC_BASE_URL) {
        return Ok(v.trim_end_matches('/').to_owned());
    }
    let url = req.inner().url();
    epistola_core::url::origin_of(&url)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::internal("base url", "request URL has no origin"))
}
