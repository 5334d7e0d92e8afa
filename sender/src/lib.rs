//! Epistola's sending module: templates, the tracking rewrite, letters, MIME, and SMTP over any
//! async stream. No clock, no randomness, no sockets of its own: the worker passes time and ids in
//! and owns the connection.

pub mod compose;
pub mod letter;
pub mod mime;
pub mod rewrite;
pub mod smtp;
pub mod template;
