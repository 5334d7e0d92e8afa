//! Retry schedule for queue consumption, as data.
//!
//! The Workers queue API does not expose a message's attempt count to Rust, but it does expose when
//! the message was first sent, so the schedule is keyed on the message's age: a message that has
//! waited through the first n delays gets delay n+1. After `max_retries` (wrangler.toml) the queue
//! hands the message to the dead-letter queue.

/// Delays in seconds before the 2nd, 3rd, … attempt. Keep `max_retries` in `wrangler.toml` equal to
/// `RETRY_DELAYS_SECONDS.len()`.
pub const RETRY_DELAYS_SECONDS: [u32; 5] = [5, 30, 120, 600, 1800];

/// Delay before the next attempt of a message first sent `age_seconds` ago.
pub fn retry_delay_for_age(age_seconds: u64) -> u32 {
    let mut waited = 0u64;
    for delay in RETRY_DELAYS_SECONDS {
        if age_seconds < waited + u64::from(delay) {
            return delay;
        }
        waited += u64::from(delay);
    }
    RETRY_DELAYS_SECONDS[RETRY_DELAYS_SECONDS.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_grows_with_age() {
        for (age, want) in [
            (0, 5),
            (4, 5),
            (5, 30),
            (34, 30),
            (35, 120),
            (155, 600),
            (755, 1800),
            (u64::MAX, 1800),
        ] {
            assert_eq!(retry_delay_for_age(age), want, "age {age}");
        }
    }
}
