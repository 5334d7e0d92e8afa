//! An SMTP client (RFC 5321) over any async byte stream: the Workers TCP socket in production, a
//! TCP stream or an in-memory pipe in tests. EHLO, optional STARTTLS, optional AUTH PLAIN, MAIL,
//! RCPT, DATA with dot-stuffing, QUIT. Replies are classified by code and by the stage they
//! answer ([`SmtpError::failure`]): only a recipient-level permanent answer is a bounce.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Longest reply line accepted (RFC 5321 says 512; servers exceed it in practice).
const MAX_LINE: usize = 4096;

/// When to use TLS on a plain connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Never (a local sink).
    Off,
    /// Upgrade when the server offers STARTTLS; refuse to send if it does not (production).
    Required,
}

/// How to reach and greet the server.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Our name in EHLO.
    pub helo_name: String,
    pub starttls: StartTls,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("helo_name", &self.helo_name)
            .field("starttls", &self.starttls)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

/// Where in the conversation an answer came. Who is at fault depends on it: a refusal at `RCPT TO`
/// is about the recipient; one at the greeting, `EHLO`, `STARTTLS`, `AUTH` or `MAIL FROM` is about
/// us (relay, account, configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    /// After the message was sent (`RSET`, `QUIT`): never a verdict on a message.
    Other,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The connection failed or dropped.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered 4xx.
    #[error("temporary failure {code} at {stage:?}: {message}")]
    Transient {
        code: u16,
        stage: Stage,
        message: String,
    },
    /// The server answered 5xx.
    #[error("permanent failure {code} at {stage:?}: {message}")]
    Permanent {
        code: u16,
        stage: Stage,
        message: String,
    },
    /// The server broke the protocol (garbled or oversized reply).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// TLS was required but the server does not offer STARTTLS, or the upgrade failed.
    #[error("STARTTLS required but unavailable: {0}")]
    Tls(String),
    /// Our own setup is incomplete (no relay host, no provider key).
    #[error("not configured: {0}")]
    Config(String),
}

/// What a failed delivery means for the recipient and for the sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The recipient's address does not exist (a recipient-level permanent answer): record a
    /// bounce and suppress the address.
    Bounce,
    /// This message, later: the receiving server asked to try again (greylisting, a busy or full
    /// mailbox). Not a reason to stop the rest.
    TryLater,
    /// The relay, the account or our configuration failed: not the recipient's fault. Retry with
    /// backoff and pause the sending until an attempt works; never suppress.
    Transport,
}

/// The enhanced status code (RFC 3463) at the start of a reply's text, e.g. `(5, 1, 1)`.
pub fn enhanced_code(message: &str) -> Option<(u8, u16, u16)> {
    let word = message.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    (parts.next().is_none() && matches!(class, 2 | 4 | 5)).then_some((class, subject, detail))
}

impl SmtpError {
    /// A summary fit for logs and for the reason shown to marketers: the class, stage and reply
    /// code, never the server's text (which often quotes the recipient's address).
    pub fn summary(&self) -> String {
        match self {
            SmtpError::Io(e) => format!("connection {:?}", e.kind()),
            SmtpError::Transient { code, stage, .. } => {
                format!("temporary failure {code} at {}", stage_name(*stage))
            }
            SmtpError::Permanent { code, stage, .. } => {
                format!("permanent failure {code} at {}", stage_name(*stage))
            }
            SmtpError::Protocol(_) => "protocol error".into(),
            SmtpError::Tls(_) => "STARTTLS unavailable".into(),
            SmtpError::Config(what) => format!("not configured: {what}"),
        }
    }

    /// Who is at fault, and so what to do (see [`Failure`]). Only a permanent answer to `RCPT TO`
    /// whose enhanced code says the mailbox does not exist or is disabled (5.1.x, 5.2.1) is the
    /// recipient's; a 5xx without an enhanced code, or with a policy code (5.7.x: relaying denied,
    /// sender blocked), is not proof of a bad address and is handled as a transport failure.
    pub fn failure(&self) -> Failure {
        match self {
            SmtpError::Permanent {
                stage: Stage::RcptTo,
                message,
                ..
            } => match enhanced_code(message) {
                Some((5, 1, _)) | Some((5, 2, 1)) => Failure::Bounce,
                _ => Failure::Transport,
            },
            SmtpError::Transient {
                stage: Stage::RcptTo | Stage::Data,
                ..
            } => Failure::TryLater,
            _ => Failure::Transport,
        }
    }

    /// Should the caller try again later? (Everything but a bounce.)
    pub fn is_transient(&self) -> bool {
        self.failure() != Failure::Bounce
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Greeting => "greeting",
        Stage::Ehlo => "EHLO",
        Stage::StartTls => "STARTTLS",
        Stage::Auth => "AUTH",
        Stage::MailFrom => "MAIL FROM",
        Stage::RcptTo => "RCPT TO",
        Stage::Data => "DATA",
        Stage::Other => "end of session",
    }
}

/// A stream SMTP can run over; `upgrade_tls` performs the STARTTLS handshake.
pub trait SmtpStream: AsyncRead + AsyncWrite + Unpin + Sized {
    fn upgrade_tls(self) -> Result<Self, SmtpError>;
}

/// One reply: code and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" ")
    }
}

struct Conn<S: SmtpStream> {
    io: BufReader<S>,
}

impl<S: SmtpStream> Conn<S> {
    async fn read_reply(&mut self) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = (&mut self.io)
                .take(MAX_LINE as u64)
                .read_line(&mut line)
                .await?;
            if n == 0 {
                return Err(SmtpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            if !line.ends_with('\n') {
                return Err(SmtpError::Protocol("reply line too long".into()));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| SmtpError::Protocol(format!("not a reply: {line:?}")))?;
            lines.push(line.get(4..).unwrap_or("").to_owned());
            match line.as_bytes().get(3) {
                Some(b'-') => continue,
                None | Some(b' ') => return Ok(Reply { code, lines }),
                Some(_) => return Err(SmtpError::Protocol(format!("not a reply: {line:?}"))),
            }
        }
    }

    /// Sends a command and expects a reply in `expect` (e.g. 2xx).
    async fn command(&mut self, line: &str, expect: u16, stage: Stage) -> Result<Reply, SmtpError> {
        // One write per command: on the Workers socket every write is a round trip through JS.
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.expect(expect, stage).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        self.io.get_mut().write_all(bytes).await?;
        self.io.get_mut().flush().await?;
        Ok(())
    }

    async fn expect(&mut self, expect: u16, stage: Stage) -> Result<Reply, SmtpError> {
        let reply = self.read_reply().await?;
        if reply.code / 100 == expect / 100 {
            return Ok(reply);
        }
        Err(match reply.code {
            400..=499 => SmtpError::Transient {
                code: reply.code,
                stage,
                message: reply.text(),
            },
            500..=599 => SmtpError::Permanent {
                code: reply.code,
                stage,
                message: reply.text(),
            },
            _ => SmtpError::Protocol(format!("unexpected {}: {}", reply.code, reply.text())),
        })
    }
}

/// The envelope of one message.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
}

/// An open, greeted (and, as configured, encrypted and authenticated) SMTP session that carries
/// any number of messages: connection reuse. A refused message leaves it usable (`RSET`); a broken
/// connection or protocol does not ([`Session::is_usable`]).
pub struct Session<S: SmtpStream> {
    conn: Conn<S>,
    usable: bool,
    /// The server offers PIPELINING (RFC 2920): a message's envelope goes in one write.
    pipelining: bool,
    /// The envelope (from, to) written behind the last message's end of data, whose three replies
    /// the next `send` reads: the server is then waiting for that message's content.
    primed: Option<(String, String)>,
}

impl<S: SmtpStream> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("usable", &self.usable)
            .finish()
    }
}

impl<S: SmtpStream> Session<S> {
    pub async fn open(stream: S, config: &SmtpConfig) -> Result<Session<S>, SmtpError> {
        let mut conn = Conn {
            io: BufReader::new(stream),
        };
        conn.expect(220, Stage::Greeting).await?;
        let ehlo = format!("EHLO {}", config.helo_name);
        let mut caps = conn.command(&ehlo, 250, Stage::Ehlo).await?;
        if config.starttls == StartTls::Required {
            if !has_capability(&caps, "STARTTLS") {
                return Err(SmtpError::Tls("server does not offer STARTTLS".into()));
            }
            conn.command("STARTTLS", 220, Stage::StartTls).await?;
            let plain = conn.io.into_inner();
            conn = Conn {
                io: BufReader::new(plain.upgrade_tls()?),
            };
            caps = conn.command(&ehlo, 250, Stage::Ehlo).await?;
        }
        if let Some((user, password)) = &config.credentials {
            let token = STANDARD.encode(format!("\0{user}\0{password}"));
            conn.command(&format!("AUTH PLAIN {token}"), 235, Stage::Auth)
                .await?;
        }
        Ok(Session {
            conn,
            usable: true,
            pipelining: has_capability(&caps, "PIPELINING"),
            primed: None,
        })
    }

    /// Whether the server is waiting for the content of a message to this envelope (written
    /// ahead by `send_then`); any other message must then go over another session.
    pub fn is_primed(&self) -> bool {
        self.primed.is_some()
    }

    /// Whether the envelope written ahead is this one.
    pub fn is_primed_for(&self, envelope: &Envelope<'_>) -> bool {
        self.primed
            .as_ref()
            .is_some_and(|(from, to)| from == envelope.from && to == envelope.to)
    }

    /// Whether another message can go over this session.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// Delivers one message (`data`: the full RFC 5322 message, CRLF line endings).
    pub async fn send(&mut self, envelope: &Envelope<'_>, data: &[u8]) -> Result<(), SmtpError> {
        self.send_then(envelope, data, None).await
    }

    /// Delivers one message and, when the server pipelines and `next` is given, writes the next
    /// message's envelope behind this one's end of data (RFC 2920 allows message content first in
    /// a group): one write and one round trip per letter. The caller must then send that next
    /// message over this session (its content is what the server waits for), so it passes `next`
    /// only once that message is composed.
    pub async fn send_then(
        &mut self,
        envelope: &Envelope<'_>,
        data: &[u8],
        next: Option<&Envelope<'_>>,
    ) -> Result<(), SmtpError> {
        if self.primed.is_some() && !self.is_primed_for(envelope) {
            // Only a broken caller gets here; nothing can be sent to this envelope now.
            self.usable = false;
            return Err(SmtpError::Io(std::io::Error::other(
                "a message for another envelope is pending on this session",
            )));
        }
        for addr in [envelope.from, envelope.to]
            .into_iter()
            .chain(next.into_iter().flat_map(|n| [n.from, n.to]))
        {
            if addr
                .bytes()
                .any(|b| b.is_ascii_control() || b == b'<' || b == b'>' || b == b' ')
            {
                return Err(SmtpError::Permanent {
                    code: 501,
                    stage: Stage::MailFrom,
                    message: "address contains forbidden characters".into(),
                });
            }
        }
        let next = next.filter(|_| self.pipelining);
        let result = self.transaction(envelope, data, next).await;
        match &result {
            Ok(()) => {}
            // Refused at the end of data: that ended the transaction, and the next envelope may
            // already be on its way, so no RSET (it would be read as message content).
            Err(
                SmtpError::Transient {
                    stage: Stage::Data, ..
                }
                | SmtpError::Permanent {
                    stage: Stage::Data, ..
                },
            ) if self.primed.is_some() => {}
            // The server refused this message: reset the transaction and carry on.
            Err(SmtpError::Transient { .. } | SmtpError::Permanent { .. }) => {
                self.primed = None;
                self.usable = self.conn.command("RSET", 250, Stage::Other).await.is_ok();
            }
            Err(_) => self.usable = false,
        }
        result
    }

    async fn transaction(
        &mut self,
        envelope: &Envelope<'_>,
        data: &[u8],
        next: Option<&Envelope<'_>>,
    ) -> Result<(), SmtpError> {
        let conn = &mut self.conn;
        let envelope_of =
            |e: &Envelope<'_>| format!("MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n", e.from, e.to);
        let mail = format!("MAIL FROM:<{}>", envelope.from);
        let rcpt = format!("RCPT TO:<{}>", envelope.to);
        if self.pipelining {
            // RFC 2920: the envelope in one write (unless it went behind the last message), then
            // its three replies in order.
            if self.primed.take().is_none() {
                conn.write(envelope_of(envelope).as_bytes()).await?;
            }
            let mail = conn.expect(250, Stage::MailFrom).await;
            let rcpt = conn.expect(250, Stage::RcptTo).await;
            let data = conn.expect(354, Stage::Data).await;
            if let Some(refused) = [mail, rcpt].into_iter().find_map(Result::err) {
                if data.is_ok() {
                    // DATA was accepted for a transaction that failed: end it empty.
                    conn.write(b".\r\n").await?;
                    let _ = conn.read_reply().await?;
                }
                return Err(refused);
            }
            data?;
        } else {
            conn.command(&mail, 250, Stage::MailFrom).await?;
            conn.command(&rcpt, 250, Stage::RcptTo).await?;
            conn.command("DATA", 354, Stage::Data).await?;
        }
        let mut body = dot_stuff(data);
        body.extend_from_slice(b".\r\n");
        if let Some(n) = next {
            body.extend_from_slice(envelope_of(n).as_bytes());
        }
        conn.write(&body).await?;
        self.primed = next.map(|n| (n.from.to_owned(), n.to.to_owned()));
        self.conn.expect(250, Stage::Data).await?;
        Ok(())
    }

    /// Ends the session politely; the messages sent are accepted whatever QUIT answers. With a
    /// next envelope written ahead, the server is reading message content, so the connection is
    /// just closed: a message cut off before its final dot is never delivered.
    pub async fn quit(mut self) {
        if self.primed.is_none() {
            let _ = self.conn.command("QUIT", 221, Stage::Other).await;
        }
    }
}

/// Delivers one message over a session of its own.
pub async fn send<S: SmtpStream>(
    stream: S,
    config: &SmtpConfig,
    envelope: &Envelope<'_>,
    data: &[u8],
) -> Result<(), SmtpError> {
    let mut session = Session::open(stream, config).await?;
    session.send(envelope, data).await?;
    session.quit().await;
    Ok(())
}

fn has_capability(reply: &Reply, name: &str) -> bool {
    reply.lines.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(name))
    })
}

/// Normalises line endings to CRLF, escapes lines starting with `.`, and ends with CRLF.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 4);
    let mut at_line_start = true;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                at_line_start = true;
            }
            b'\n' | b'\r' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_endings() {
        assert_eq!(
            dot_stuff(b"a\n.b\r\n..c\rd"),
            b"a\r\n..b\r\n...c\r\nd\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n".to_vec());
        assert_eq!(dot_stuff(b""), b"\r\n".to_vec());
    }

    #[test]
    fn who_is_at_fault() {
        let permanent = |stage, code, message: &str| SmtpError::Permanent {
            code,
            stage,
            message: message.into(),
        };
        let transient = |stage, code, message: &str| SmtpError::Transient {
            code,
            stage,
            message: message.into(),
        };
        let table = [
            // Recipient-level permanent answers: bounces.
            (
                permanent(Stage::RcptTo, 550, "5.1.1 no such user"),
                Failure::Bounce,
            ),
            (
                permanent(Stage::RcptTo, 550, "5.1.10 recipient not found"),
                Failure::Bounce,
            ),
            (
                permanent(Stage::RcptTo, 553, "5.1.3 bad address syntax"),
                Failure::Bounce,
            ),
            (
                permanent(Stage::RcptTo, 550, "5.2.1 mailbox disabled"),
                Failure::Bounce,
            ),
            // A refusal at RCPT that is about us, or says nothing: not proof of a bad address.
            (
                permanent(Stage::RcptTo, 554, "5.7.1 relay access denied"),
                Failure::Transport,
            ),
            (
                permanent(Stage::RcptTo, 550, "no such user here"),
                Failure::Transport,
            ),
            (
                permanent(Stage::RcptTo, 552, "5.2.2 mailbox full"),
                Failure::Transport,
            ),
            // The recipient's server asks us to come back: this letter, later.
            (
                transient(Stage::RcptTo, 451, "4.7.1 greylisted"),
                Failure::TryLater,
            ),
            (
                transient(Stage::RcptTo, 452, "4.2.2 mailbox full"),
                Failure::TryLater,
            ),
            (
                transient(Stage::Data, 451, "4.3.0 try later"),
                Failure::TryLater,
            ),
            // Relay, account, configuration: transport failures, whatever the code.
            (
                permanent(Stage::Greeting, 554, "5.3.2 no service"),
                Failure::Transport,
            ),
            (permanent(Stage::Ehlo, 550, "go away"), Failure::Transport),
            (
                permanent(Stage::StartTls, 554, "5.7.0 no TLS"),
                Failure::Transport,
            ),
            (
                permanent(Stage::Auth, 535, "5.7.8 bad credentials"),
                Failure::Transport,
            ),
            (
                permanent(Stage::MailFrom, 550, "5.7.1 sender rejected"),
                Failure::Transport,
            ),
            (
                transient(Stage::MailFrom, 452, "4.3.1 quota exceeded"),
                Failure::Transport,
            ),
            (
                transient(Stage::Greeting, 421, "4.3.2 shutting down"),
                Failure::Transport,
            ),
            (
                permanent(Stage::Data, 554, "5.7.1 message refused"),
                Failure::Transport,
            ),
            (
                SmtpError::Tls("server does not offer STARTTLS".into()),
                Failure::Transport,
            ),
            (
                SmtpError::Io(std::io::ErrorKind::ConnectionRefused.into()),
                Failure::Transport,
            ),
            (SmtpError::Protocol("garbage".into()), Failure::Transport),
            (SmtpError::Config("SMTP_HOST".into()), Failure::Transport),
        ];
        for (error, want) in table {
            assert_eq!(error.failure(), want, "{error}");
            assert_eq!(error.is_transient(), want != Failure::Bounce, "{error}");
        }
        assert_eq!(enhanced_code("5.1.1 no such user"), Some((5, 1, 1)));
        assert_eq!(enhanced_code("no such user"), None);
        assert_eq!(enhanced_code("5.1 x"), None);
    }

    #[test]
    fn log_summary_never_quotes_the_server() {
        let e = SmtpError::Permanent {
            code: 550,
            stage: Stage::RcptTo,
            message: "<ann@example.com> no such user".into(),
        };
        assert_eq!(e.summary(), "permanent failure 550 at RCPT TO");
        assert!(
            e.to_string().contains("ann@example.com"),
            "the full text is still there for the sends table"
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        let c = SmtpConfig {
            helo_name: "t.example".into(),
            starttls: StartTls::Off,
            credentials: Some(("user".into(), "hunter2".into())),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("user") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
