//! Requests arriving through the service binding from the edge worker.

use worker::{Env, Method, Request, Response};

use crate::http::ApiError;

pub async fn dispatch(req: Request, _env: Env, _now: u64) -> Response {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (segments.as_slice(), req.method()) {
        (["healthz"], Method::Get) => crate::http::json(200, &serde_json::json!({"status": "ok"})),
        _ => ApiError::new(404, "not_found", "no such route").into_response(),
    }
}
