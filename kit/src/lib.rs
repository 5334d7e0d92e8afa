//! What Epistola's two workers share. The edge worker (`worker/`: pixel, click, capture, opt-in,
//! stats) and the sending worker (`send-worker/`: mail jobs, contacts, templates, campaigns) are
//! deployed separately so the edge bundle stays small; both are thin adapters around
//! `epistola-core`, and this crate holds the adapter code they have in common.

pub mod auth;
pub mod bindings;
pub mod config;
pub mod db;
pub mod http;
pub mod queue;
pub mod random;
