//! Queue-consumer helpers both consumers use: retry with the schedule from `core::retry`, and the
//! test-only switch that replays every batch once to prove that replays change nothing.

use std::cell::RefCell;
use std::collections::HashSet;

use epistola_core::retry::retry_delay_for_age;
use worker::{Env, MessageExt, QueueRetryOptionsBuilder, RawMessage};

use crate::{bindings, config};

thread_local! {
    // Fault injection only: queue message ids already replayed once by this isolate.
    static REPLAYED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    // Fault injection only: queue message ids whose D1 write was already made to fail once.
    static FAILED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    // Fault injection only: named sending-worker writes already made to fail once.
    static SEND_FAILED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// With the `FAULT_D1_FAIL_ONCE` test switch on: whether this batch's D1 write should fail (the
/// first time any of its messages is seen), to prove that a failed transaction loses and doubles
/// nothing.
pub fn inject_d1_failure(env: &Env, messages: &[&RawMessage]) -> bool {
    if !config::fault(env, bindings::FAULT_D1_FAIL_ONCE) {
        return false;
    }
    // Every id is recorded (no short-circuit), so a redelivered batch passes.
    messages
        .iter()
        .fold(false, |fresh, m| first_sight(&FAILED, &m.id()) | fresh)
}

/// With the `FAULT_SEND_D1_FAIL_ONCE` test switch on: whether the sending worker's write named
/// `what` should fail this time (the first time per isolate), to prove that a D1 failure between
/// deciding and delivering neither loses a letter nor leaves it `outcome_unknown`.
pub fn inject_send_failure(env: &Env, what: &str) -> bool {
    config::fault(env, bindings::FAULT_SEND_D1_FAIL_ONCE) && first_sight(&SEND_FAILED, what)
}

/// Seconds since the message was first sent (workers-rs 0.8.7 exposes no attempt count, so the
/// retry schedule is keyed on age).
pub fn age_seconds(message: &RawMessage, now: u64) -> u64 {
    let sent = message.timestamp().as_millis() / 1000;
    now.saturating_sub(sent)
}

/// Asks for redelivery after the delay the schedule gives for this age.
pub fn retry(message: &RawMessage, now: u64) {
    retry_after_age(message, age_seconds(message, now));
}

/// Undecodable messages: retrying cannot help, but dropping would lose them silently. Retry with
/// the longest delay so they land in the dead-letter queue for a person to look at.
pub fn to_dead_letter(message: &RawMessage) {
    worker::console_error!("queue message {}: to the dead-letter queue", message.id());
    retry_after_age(message, u64::MAX);
}

fn retry_after_age(message: &RawMessage, age: u64) {
    message.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(retry_delay_for_age(age))
            .build(),
    );
}

/// Acknowledges finished messages, or, with the `FAULT_REPLAY_BATCHES` test switch on, asks for
/// each to be delivered once more first.
#[derive(Debug)]
pub struct Finisher {
    replay: bool,
    replayed: usize,
}

impl Finisher {
    pub fn new(env: &Env) -> Finisher {
        Finisher {
            replay: config::fault(env, bindings::FAULT_REPLAY_BATCHES),
            replayed: 0,
        }
    }

    pub fn finish(&mut self, message: &RawMessage) {
        if self.replay && first_sight(&REPLAYED, &message.id()) {
            message.retry();
            self.replayed += 1;
        } else {
            message.ack();
        }
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if self.replayed > 0 {
            worker::console_warn!(
                "fault injection: replaying {} finished messages",
                self.replayed
            );
        }
    }
}

/// Records `id` in a fault-injection set; true the first time. The set is bounded.
fn first_sight(set: &'static std::thread::LocalKey<RefCell<HashSet<String>>>, id: &str) -> bool {
    set.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() > 100_000 {
            seen.clear();
        }
        seen.insert(id.to_owned())
    })
}
