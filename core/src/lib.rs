//! Epistola's pure core: everything that decides, nothing that does I/O.
//!
//! Time, randomness and storage are passed in by the adapters (`worker/`), so every rule here is
//! tested natively and behaves the same in wasm.

pub mod audit;
pub mod auth;
pub mod campaign;
pub mod capture;
pub mod chain;
pub mod classify;
pub mod consent;
pub mod contact;
pub mod conversion;
pub mod delivery;
pub mod event;
pub mod hex;
pub mod html;
pub mod ids;
pub mod iphash;
pub mod listing;
pub mod plan;
pub mod policy;
pub mod retry;
pub mod rfm;
pub mod roles;
pub mod segment;
pub mod sendkey;
pub mod site;
pub mod stats;
pub mod suppression;
pub mod text;
pub mod token;
pub mod track;
pub mod url;
pub mod webhook;
