//! E-mail delivery: SMTP over the runtime's TCP socket (`connect()`) with the sender's protocol
//! client, or — with `EMAIL_TRANSPORT = "mailgun"` — Mailgun's HTTP API (`messages.mime`, the same
//! MIME message). Both report errors as `SmtpError`, so retries and bounces work the same way.

use std::pin::Pin;
use std::task::{Context, Poll};

use epistola_sender::mailgun::{send_request, Mailgun};
use epistola_sender::smtp::{
    Envelope, Session, SmtpConfig, SmtpError, SmtpStream, Stage, StartTls,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use worker::{
    ConnectionBuilder, Env, Fetch, Headers, Method, Request, RequestInit, SecureTransport, Socket,
};

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
    let unconfigured = |what: &str| SmtpError::Config(what.to_owned());
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

/// Vars and secrets of the HTTP transport.
pub const EMAIL_TRANSPORT: &str = "EMAIL_TRANSPORT";
pub const MAILGUN_API_URL: &str = "MAILGUN_API_URL";
pub const MAILGUN_DOMAIN: &str = "MAILGUN_DOMAIN";
pub const MAILGUN_API_KEY: &str = "MAILGUN_API_KEY";

fn mailgun(env: &Env) -> Option<Result<Mailgun, SmtpError>> {
    if config::text(env, EMAIL_TRANSPORT).as_deref() != Some("mailgun") {
        return None;
    }
    let get =
        |name: &str| config::text(env, name).ok_or_else(|| SmtpError::Config(name.to_owned()));
    Some((|| {
        Ok(Mailgun {
            base_url: config::text(env, MAILGUN_API_URL)
                .unwrap_or_else(|| "https://api.mailgun.net".into()),
            domain: get(MAILGUN_DOMAIN)?,
            api_key: get(MAILGUN_API_KEY)?,
        })
    })())
}

async fn deliver_mailgun(m: &Mailgun, to: &str, message: &[u8]) -> Result<(), SmtpError> {
    let hash = message.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let boundary = format!("epistola-form-{hash:016x}");
    let (r, body) = send_request(m, to, message, &boundary);
    let io = |e: worker::Error| SmtpError::Io(std::io::Error::other(e.to_string()));
    let headers = Headers::new();
    headers.set("Authorization", &r.authorization).map_err(io)?;
    headers
        .set(
            "Content-Type",
            &format!("{}; boundary={boundary}", r.content_type),
        )
        .map_err(io)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    let req = Request::new_with_init(&r.url, &init).map_err(io)?;
    let resp = Fetch::Request(req).send().await.map_err(io)?;
    let code = resp.status_code();
    // The API answers for the whole request: a 4xx here is about our key (401, 403), our domain
    // (404) or the message (400, 413), never proof that the recipient's address is bad — those
    // bounces arrive later through the signed webhooks. So nothing here is a bounce: every
    // refusal is a transport failure (retried, the sending paused), a 429 only this message later.
    let message = format!("provider answered {code}");
    match code {
        200..=299 => Ok(()),
        429 => Err(SmtpError::Transient {
            code,
            stage: Stage::RcptTo,
            message,
        }),
        400..=499 => Err(SmtpError::Permanent {
            code,
            stage: if matches!(code, 401 | 403 | 404) {
                Stage::Auth
            } else {
                Stage::Data
            },
            message,
        }),
        _ => Err(SmtpError::Transient {
            code,
            stage: Stage::Greeting,
            message,
        }),
    }
}

/// Messages sent over one SMTP connection before it is renewed.
const MAX_MESSAGES_PER_SESSION: usize = 100;

/// Delivers a run of messages (a chunk), reusing one SMTP connection for all of them: one
/// greeting, TLS handshake and login per chunk instead of per letter. A broken connection is
/// dropped and the next message opens a new one.
#[derive(Debug, Default)]
pub struct Mailer {
    session: Option<(Session<WorkerSocket>, usize)>,
}

impl std::fmt::Debug for WorkerSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerSocket")
    }
}

impl Mailer {
    /// Sends one message. Errors say whether a retry can help. `next`: the envelope of the
    /// message the caller sends next, already composed; over a pipelining server it goes in the
    /// same write as this message's end of data (see `Session::send_then`).
    pub async fn deliver(
        &mut self,
        env: &Env,
        helo_name: &str,
        envelope: &Envelope<'_>,
        message: &[u8],
        next: Option<&Envelope<'_>>,
    ) -> Result<(), SmtpError> {
        if let Some(m) = mailgun(env) {
            return deliver_mailgun(&m?, envelope.to, message).await;
        }
        let (mut session, sent) = match self.session.take() {
            Some((s, n))
                if s.is_usable()
                    && n < MAX_MESSAGES_PER_SESSION
                    && (!s.is_primed() || s.is_primed_for(envelope)) =>
            {
                (s, n)
            }
            old => {
                if let Some((s, _)) = old {
                    s.quit().await;
                }
                (open(env, helo_name).await?, 0)
            }
        };
        // The session's last message writes nothing ahead: the next one opens a new connection.
        let next = next.filter(|_| sent + 1 < MAX_MESSAGES_PER_SESSION);
        let result = session.send_then(envelope, message, next).await;
        if session.is_usable() {
            self.session = Some((session, sent + 1));
        }
        result
    }

    /// Closes the connection, if one is open.
    pub async fn finish(&mut self) {
        if let Some((s, _)) = self.session.take() {
            s.quit().await;
        }
    }
}

async fn open(env: &Env, helo_name: &str) -> Result<Session<WorkerSocket>, SmtpError> {
    let t = transport(env, helo_name)?;
    let secure = match t.config.starttls {
        StartTls::Required => SecureTransport::StartTls,
        StartTls::Off => SecureTransport::Off,
    };
    let socket = ConnectionBuilder::new()
        .secure_transport(secure)
        .connect(t.host.as_str(), t.port)
        .map_err(|e| SmtpError::Io(std::io::Error::other(e.to_string())))?;
    Session::open(WorkerSocket(socket), &t.config).await
}

/// The configured e-mail transport as the settings page shows it: `(what, value)`, never a
/// password or key (only whether one is set).
pub fn describe(env: &Env) -> Vec<(&'static str, String)> {
    let set = |name: &str| {
        if config::text(env, name).is_some() {
            "set".to_owned()
        } else {
            "not set".to_owned()
        }
    };
    let var = |name: &str| config::text(env, name).unwrap_or_else(|| "not set".to_owned());
    if config::text(env, EMAIL_TRANSPORT).as_deref() == Some("mailgun") {
        return vec![
            ("Transport", "Mailgun (HTTP API)".to_owned()),
            (
                "API",
                config::text(env, MAILGUN_API_URL)
                    .unwrap_or_else(|| "https://api.mailgun.net".into()),
            ),
            ("Domain", var(MAILGUN_DOMAIN)),
            ("API key", set(MAILGUN_API_KEY)),
        ];
    }
    let starttls = match config::text(env, bindings::SMTP_STARTTLS).as_deref() {
        Some("off") => "off (plain connection)",
        _ => "required",
    };
    vec![
        ("Transport", "SMTP relay".to_owned()),
        ("Host", var(bindings::SMTP_HOST)),
        ("Port", var(bindings::SMTP_PORT)),
        ("STARTTLS", starttls.to_owned()),
        ("Login", var(bindings::SMTP_USERNAME)),
        ("Password", set(bindings::SMTP_PASSWORD)),
    ]
}
