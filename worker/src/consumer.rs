//! Queue consumer: decodes a batch, stores and counts its events in one D1 transaction, then acks.
//!
//! Idempotent by construction: events are keyed by their edge-generated id, so a redelivered batch
//! is skipped by the database. On a D1 failure the whole batch is retried with backoff; after
//! `max_retries` (wrangler.toml) the queue moves it to the dead-letter queue.

use std::cell::RefCell;
use std::collections::HashSet;

use epistola_core::event::{is_event_id, CaptureJob, QueueMessage, TrackEvent};
use epistola_core::retry::retry_delay_for_age;
use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage};

use crate::doi::{self, JobOutcome, MailKind};
use crate::{bindings, config, store};

thread_local! {
    // Fault injection only: queue message ids already replayed once by this isolate.
    static REPLAYED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

pub async fn consume(batch: &MessageBatch<serde_json::Value>, env: &Env, now: u64) {
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    let mut events: Vec<TrackEvent> = Vec::with_capacity(messages.len());
    let mut decoded: Vec<&RawMessage> = Vec::with_capacity(messages.len());
    let mut jobs: Vec<(&RawMessage, MailKind, CaptureJob)> = Vec::new();
    for message in &messages {
        let decoded_message = message
            .body()
            .as_string()
            .and_then(|text| serde_json::from_str::<QueueMessage>(&text).ok());
        match decoded_message {
            Some(QueueMessage::TrackV1(event)) if is_event_id(&event.id) => {
                events.push(event);
                decoded.push(message);
            }
            Some(QueueMessage::CaptureV1(job)) => jobs.push((message, MailKind::Confirmation, job)),
            Some(QueueMessage::LeadConfirmedV1(job)) => {
                jobs.push((message, MailKind::Delivery, job))
            }
            // Undecodable: retrying cannot help, but dropping would lose it silently. Retry with the
            // longest delay so it lands in the dead-letter queue for a person to look at.
            _ => {
                worker::console_error!("undecodable queue message {}", message.id());
                retry(message, u64::MAX);
            }
        }
    }
    let replay = config::fault(env, bindings::FAULT_REPLAY_BATCHES);
    let mut replayed = 0;
    let mut finish = |message: &RawMessage| {
        if replay && first_sight(&message.id()) {
            message.retry();
            replayed += 1;
        } else {
            message.ack();
        }
    };
    // Mail jobs one at a time: each is its own unit of success or retry.
    for (message, kind, job) in jobs {
        match doi::run(env, kind, &job, now).await {
            JobOutcome::Done => finish(message),
            JobOutcome::Retry => retry(message, age_seconds(message, now)),
        }
    }
    if let Err(e) = store::record_events(env, &events, now).await {
        worker::console_error!(
            "storing {} events failed, retrying the batch: {e}",
            events.len()
        );
        for message in decoded {
            retry(message, age_seconds(message, now));
        }
    } else {
        decoded.into_iter().for_each(&mut finish);
    }
    if replayed > 0 {
        worker::console_warn!("fault injection: replaying {replayed} recorded messages");
    }
}

fn age_seconds(message: &RawMessage, now: u64) -> u64 {
    let sent = message.timestamp().as_millis() / 1000;
    now.saturating_sub(sent)
}

fn retry(message: &RawMessage, age: u64) {
    let delay = retry_delay_for_age(age);
    message.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(delay)
            .build(),
    );
}

fn first_sight(id: &str) -> bool {
    REPLAYED.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() > 100_000 {
            seen.clear();
        }
        seen.insert(id.to_owned())
    })
}
