//! SMTP delivery over the runtime's TCP socket (`connect()`), using the sender's protocol client.

use std::pin::Pin;
use std::task::{Context, Poll};

use epistola_sender::smtp::{self, Envelope, SmtpConfig, SmtpError, SmtpStream, StartTls};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use worker::{ConnectionBuilder, Env, SecureTransport, Socket};

use crate::{bindings, config};

/// The Workers socket as an SMTP stream; STARTTLS is the runtime's `startTls()`.
struct WorkerSocket(Socket);

impl AsyncRead for WorkerSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for WorkerSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl SmtpStream for WorkerSocket {
    fn upgrade_tls(self) -> Result<Self, SmtpError> {
        // The socket was opened with SecureTransport::StartTls whenever TLS is required.
        Ok(WorkerSocket(self.0.start_tls()))
    }
}

/// Where and how to deliver, from vars and secrets.
struct Transport {
    host: String,
    port: u16,
    config: SmtpConfig,
}

fn transport(env: &Env, helo_name: &str) -> Result<Transport, SmtpError> {
    let unconfigured = |what: &str| SmtpError::Protocol(format!("{what} is not configured"));
    let host =
        config::text(env, bindings::SMTP_HOST).ok_or_else(|| unconfigured(bindings::SMTP_HOST))?;
    let port = config::text(env, bindings::SMTP_PORT)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| unconfigured(bindings::SMTP_PORT))?;
    let starttls = match config::text(env, bindings::SMTP_STARTTLS).as_deref() {
        Some("off") => StartTls::Off,
        _ => StartTls::Required,
    };
    let credentials = match (
        config::text(env, bindings::SMTP_USERNAME),
        config::text(env, bindings::SMTP_PASSWORD),
    ) {
        (Some(user), Some(password)) => Some((user, password)),
        _ => None,
    };
    Ok(Transport {
        host,
        port,
        config: SmtpConfig {
            helo_name: helo_name.to_owned(),
            starttls,
            credentials,
        },
    })
}

/// Sends one message. Errors say whether a retry can help.
pub async fn deliver(
    env: &Env,
    helo_name: &str,
    envelope: &Envelope<'_>,
    message: &[u8],
) -> Result<(), SmtpError> {
    let t = transport(env, helo_name)?;
    let secure = match t.config.starttls {
        StartTls::Required => SecureTransport::StartTls,
        StartTls::Off => SecureTransport::Off,
    };
    let socket = ConnectionBuilder::new()
        .secure_transport(secure)
        .connect(t.host.as_str(), t.port)
        .map_err(|e| SmtpError::Io(std::io::Error::other(e.to_string())))?;
    smtp::send(WorkerSocket(socket), &t.config, envelope, message).await
}
