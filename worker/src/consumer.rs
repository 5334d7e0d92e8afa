//! Events-queue consumer: decodes a batch, stores and counts its events in one D1 transaction,
//! then acks.
//!
//! Idempotent by construction: events are keyed by their edge-generated id, so a redelivered batch
//! is skipped by the database. On a D1 failure the whole batch is retried with backoff; after
//! `max_retries` (wrangler.toml) the queue moves it to the dead-letter queue.

use epistola_core::event::{is_event_id, ConversionEvent, QueueMessage, TrackEvent};
use epistola_worker_kit::queue::{self, Finisher};
use worker::{Env, MessageBatch, RawMessage};

use crate::store;

pub async fn consume(batch: &MessageBatch<serde_json::Value>, env: &Env, now: u64) {
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    let mut events: Vec<TrackEvent> = Vec::with_capacity(messages.len());
    let mut conversions: Vec<ConversionEvent> = Vec::new();
    let mut decoded: Vec<&RawMessage> = Vec::with_capacity(messages.len());
    for message in &messages {
        let decoded_message = message
            .body()
            .as_string()
            .and_then(|text| serde_json::from_slice::<QueueMessage>(text.as_bytes()).ok());
        match decoded_message {
            Some(QueueMessage::TrackV1(event)) if is_event_id(&event.id) => {
                events.push(event);
                decoded.push(message);
            }
            Some(QueueMessage::ConvertV1(conversion)) => {
                conversions.push(conversion);
                decoded.push(message);
            }
            _ => queue::to_dead_letter(message),
        }
    }
    let fail = queue::inject_d1_failure(env, &decoded);
    if let Err(e) = store::record_events(env, &events, &conversions, fail, now).await {
        worker::console_error!(
            "storing {} events and {} conversions failed, retrying the batch: {e}",
            events.len(),
            conversions.len()
        );
        for message in decoded {
            queue::retry(message, now);
        }
    } else {
        let mut finisher = Finisher::new(env);
        for message in decoded {
            finisher.finish(message);
        }
    }
}
