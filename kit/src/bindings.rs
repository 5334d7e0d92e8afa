//! Binding and variable names; each matches `wrangler.toml` (edge worker) or
//! `send-worker/wrangler.toml` (sending worker).

/// D1 database.
pub const DB: &str = "DB";
/// Queue of tracked events: produced and consumed by the edge worker.
pub const EVENTS: &str = "EVENTS";
/// Queue of mail jobs (double opt-in letters, campaign chunks): produced by both workers,
/// consumed by the sending worker.
pub const SENDS: &str = "SENDS";
/// Service binding from the edge worker to the sending worker (its API routes and cron tick).
pub const SENDER: &str = "SENDER";
/// Secret: `id:base64url-key[,id:base64url-key…]`, newest (signing) key first.
pub const SIGNING_KEYS: &str = "SIGNING_KEYS";
/// Secret: key for the daily-rotated IP hash.
pub const IP_HASH_KEY: &str = "IP_HASH_KEY";
/// Var: public origin used in signed URLs, e.g. `https://t.example.com`; defaults to the request's.
pub const PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";
/// Var, tests only: when `"1"`, the consumer asks the queue to deliver every batch a second time
/// after recording it, to prove that replays change nothing.
pub const FAULT_REPLAY_BATCHES: &str = "FAULT_REPLAY_BATCHES";
/// Test-only: the first D1 write of every events batch fails (a statement on a missing table in the
/// same transaction), so the batch is rolled back and retried.
pub const FAULT_D1_FAIL_ONCE: &str = "FAULT_D1_FAIL_ONCE";
/// Test-only: the sending worker's first write of a campaign's link registry fails (a statement
/// D1 refuses), in the middle of a chunk, after the guardrails decided to send.
pub const FAULT_SEND_D1_FAIL_ONCE: &str = "FAULT_SEND_D1_FAIL_ONCE";
/// KV namespace for configuration read at the edge (sites: `site:{id}`).
pub const CONFIG: &str = "CONFIG";
/// Vars: the SMTP server the sending module delivers through.
pub const SMTP_HOST: &str = "SMTP_HOST";
pub const SMTP_PORT: &str = "SMTP_PORT";
/// Var: `required` (production: STARTTLS or refuse) or `off` (a local sink).
pub const SMTP_STARTTLS: &str = "SMTP_STARTTLS";
/// Secrets: SMTP AUTH credentials (optional).
pub const SMTP_USERNAME: &str = "SMTP_USERNAME";
pub const SMTP_PASSWORD: &str = "SMTP_PASSWORD";
