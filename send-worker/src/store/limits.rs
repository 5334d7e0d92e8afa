//! Fixed-window counters and one-time keys (`rate_limits`): sign-in limits, replay protection.

use epistola_worker_kit::db::{int, rate_limit_hit, text};
use worker::{Env, Result};

use crate::bindings;

/// Records one use of `key` (kept until `expires_at`, then pruned with the rate-limit windows);
/// true only the first time. One row per key (window 0), whenever the uses come.
pub async fn first_use(env: &Env, key: &str, expires_at: u64) -> Result<bool> {
    let n = env
        .d1(bindings::DB)?
        .prepare(
            "INSERT INTO rate_limits (key, window, n, expires_at) VALUES (?1, 0, 1, ?2) \
             ON CONFLICT (key, window) DO UPDATE SET n = n + 1 RETURNING n",
        )
        .bind(&[text(key), int(expires_at as i64)])?
        .first::<i64>(Some("n"))
        .await?;
    Ok(n == Some(1))
}

/// Counts one hit on `key` in the current fixed window of `window` seconds; returns the count.
pub async fn count_hit(env: &Env, key: &str, window: u64, now: u64) -> Result<u32> {
    let db = env.d1(bindings::DB)?;
    let n = rate_limit_hit(&db, key, window, now)?
        .first::<u32>(Some("n"))
        .await?;
    Ok(n.unwrap_or(0))
}
