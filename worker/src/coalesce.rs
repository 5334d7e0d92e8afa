//! Events of concurrent requests go to the queue together (`js/coalesce.js`: one `sendBatch` per
//! few milliseconds or 100 events). The request that sends a batch keeps its `wait_until` on it,
//! which covers every event in it; promises and timers are what the JS side is good at, and there
//! it costs the wasm nothing.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{js_sys, wasm_bindgen_futures::JsFuture, Context, Env};

#[wasm_bindgen(module = "/js/coalesce.js")]
extern "C" {
    /// Adds `body` to the isolate's open batch for `queue`; a promise (settling to `null`, or to
    /// what was not sent) if this request sends the batch, else `null`.
    #[wasm_bindgen(js_name = coalescedSend)]
    fn coalesced_send(queue: &JsValue, body: &str) -> JsValue;
}

/// Queues `message` (JSON) on `queue` in the isolate's next batch.
pub fn enqueue<T: serde::Serialize>(env: &Env, ctx: &Context, queue: &str, message: &T) {
    let sending = serde_json::to_string(message)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            let queue = env.queue(queue).map_err(|e| e.to_string())?;
            Ok(coalesced_send(queue.as_ref(), &json))
        });
    let promise = match sending {
        Ok(p) if p.is_null() => return, // rides in a batch another request sends and waits for
        Ok(p) => js_sys::Promise::from(p),
        Err(why) => {
            worker::console_error!("event not enqueued: {why}");
            return;
        }
    };
    ctx.wait_until(async move {
        let failure = match JsFuture::from(promise).await {
            Ok(v) => v.as_string(),
            Err(e) => Some(format!("{e:?}")),
        };
        if let Some(why) = failure {
            worker::console_error!("events not enqueued: {why}");
        }
    });
}
