//! Epistola's sending module: templates, the tracking rewrite, letters, MIME, and SMTP over any
//! async stream. No clock, no randomness, no sockets of its own: the worker passes time and ids in
//! and owns the connection.

pub mod compose;
pub mod letter;
pub mod mailgun;
pub mod mime;
pub mod plain;
pub mod rewrite;
pub mod sms;
pub mod smtp;
pub mod template;

/// Lower-case or upper-case hex to bytes; `None` if it is not hex.
pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
