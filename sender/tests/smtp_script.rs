//! The SMTP client against scripted servers on a real loopback TCP socket: each case is the
//! server's side of a conversation and the outcome the client must report.

#![allow(clippy::expect_used)] // test scaffolding: failing loudly is right here

use epistola_sender::smtp::{
    send, Envelope, Failure, Session, SmtpConfig, SmtpError, SmtpStream, Stage, StartTls,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

struct Plain(TcpStream);

impl tokio::io::AsyncRead for Plain {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Plain {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl SmtpStream for Plain {
    fn upgrade_tls(self) -> Result<Self, SmtpError> {
        Err(SmtpError::Tls("no TLS in this test".into()))
    }
}

/// Runs a server that answers each command with the next scripted reply; returns what it received.
async fn run(
    replies: &'static [&'static str],
    config: SmtpConfig,
) -> (Result<(), SmtpError>, String) {
    let (stream, server) = serve(replies).await;
    let envelope = Envelope {
        from: "hello@shop.example",
        to: "ann@example.com",
    };
    let result = send(
        stream,
        &config,
        &envelope,
        b"Subject: hi\r\n\r\n.hidden dot\r\nbye\r\n",
    )
    .await;
    (result, server.await.expect("server task"))
}

/// A scripted server and a client stream connected to it.
async fn serve(replies: &'static [&'static str]) -> (Plain, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        let mut seen = String::new();
        let mut replies = replies.iter();
        if let Some(greeting) = replies.next() {
            w.write_all(greeting.as_bytes()).await.expect("write");
        }
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            // What the client wrote behind a message's final dot, before any reply to it, was
            // pipelined with it.
            if in_data && line == ".\r\n" && !r.buffer().is_empty() {
                seen.push_str("[pipelined]");
            }
            if in_data && line != ".\r\n" {
                continue; // the message, up to its final dot
            }
            match replies.next() {
                Some(&"") => break, // drop the connection
                Some(reply) => {
                    // The message follows only a DATA the server accepted.
                    in_data = line.starts_with("DATA") && reply.starts_with("354");
                    w.write_all(reply.as_bytes()).await.expect("write");
                }
                None => break,
            }
        }
        seen
    });
    let stream = Plain(TcpStream::connect(addr).await.expect("connect"));
    (stream, server)
}

#[tokio::test]
async fn one_connection_carries_several_messages_and_survives_a_refusal() {
    let (stream, server) = serve(&[
        "220 sink\r\n",
        "250 sink\r\n",
        // first message: accepted
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        // second: the recipient is refused, then RSET
        "250 ok\r\n",
        "550 no such user\r\n",
        "250 reset\r\n",
        // third: accepted on the same connection
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        "221 bye\r\n",
    ])
    .await;
    let mut session = Session::open(stream, &plain()).await.expect("opens");
    session
        .send(&to("ann@example.com"), b"Subject: 1\r\n\r\none\r\n")
        .await
        .expect("first");
    let refused = session
        .send(&to("nobody@example.com"), b"Subject: 2\r\n\r\ntwo\r\n")
        .await;
    assert!(
        matches!(refused, Err(SmtpError::Permanent { code: 550, .. })),
        "{refused:?}"
    );
    assert!(
        session.is_usable(),
        "a refused message does not break the session"
    );
    session
        .send(&to("bo@example.com"), b"Subject: 3\r\n\r\nthree\r\n")
        .await
        .expect("third");
    session.quit().await;
    let seen = server.await.expect("server task");
    assert_eq!(
        seen.matches("EHLO").count(),
        1,
        "one greeting for three messages: {seen}"
    );
    assert!(
        seen.contains("RCPT TO:<nobody@example.com>\r\nRSET\r\nMAIL FROM"),
        "{seen}"
    );
    assert!(seen.ends_with("QUIT\r\n"), "{seen}");
}

#[tokio::test]
async fn a_pipelining_server_gets_each_envelope_in_one_write_and_refusals_keep_their_stage() {
    let (stream, server) = serve(&[
        "220 sink\r\n",
        "250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
        // first message: accepted
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        // second: the recipient does not exist, DATA refused for want of recipients, then RSET
        "250 ok\r\n",
        "550 5.1.1 no such user\r\n",
        "554 5.5.1 no valid recipients\r\n",
        "250 reset\r\n",
        // third: the sender is refused, and DATA (wrongly) accepted: the client ends it empty
        "550 5.7.1 sender rejected\r\n",
        "503 5.5.1 sender first\r\n",
        "354 go\r\n",
        "554 no transaction\r\n",
        "250 reset\r\n",
        // fourth: accepted on the same connection
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        "221 bye\r\n",
    ])
    .await;
    let mut session = Session::open(stream, &plain()).await.expect("opens");
    session
        .send(&to("ann@example.com"), b"Subject: 1\r\n\r\none\r\n")
        .await
        .expect("first");
    let bounced = session
        .send(&to("nobody@example.com"), b"Subject: 2\r\n\r\ntwo\r\n")
        .await
        .expect_err("no such user");
    assert_eq!(bounced.failure(), Failure::Bounce, "{bounced:?}");
    let sender = session
        .send(&to("cy@example.com"), b"Subject: 3\r\n\r\nthree\r\n")
        .await
        .expect_err("sender rejected");
    assert!(
        matches!(
            sender,
            SmtpError::Permanent {
                code: 550,
                stage: Stage::MailFrom,
                ..
            }
        ),
        "{sender:?}"
    );
    assert_eq!(
        sender.failure(),
        Failure::Transport,
        "not the recipient's fault"
    );
    assert!(session.is_usable());
    session
        .send(&to("bo@example.com"), b"Subject: 4\r\n\r\nfour\r\n")
        .await
        .expect("fourth");
    session.quit().await;
    let seen = server.await.expect("server task");
    assert!(
        seen.contains(
            "MAIL FROM:<hello@shop.example>\r\nRCPT TO:<ann@example.com>\r\nDATA\r\nSubject: 1\r\n"
        ),
        "{seen}"
    );
    assert!(
        seen.contains("RCPT TO:<cy@example.com>\r\nDATA\r\n.\r\nRSET\r\n"),
        "an accepted DATA of a failed transaction is ended empty: {seen}"
    );
    assert_eq!(seen.matches("Subject: ").count(), 2, "{seen}");
}

#[tokio::test]
async fn the_next_envelope_rides_behind_the_end_of_data_and_a_refused_body_needs_no_rset() {
    let (stream, server) = serve(&[
        "220 sink\r\n",
        "250-sink\r\n250 PIPELINING\r\n",
        // first message
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        // second: its envelope came with the first's dot; its content is refused
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "554 5.7.1 content rejected\r\n",
        // third: its envelope came with the second's dot
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        "221 bye\r\n",
    ])
    .await;
    let mut session = Session::open(stream, &plain()).await.expect("opens");
    let (ann, bo, cy) = (
        to("ann@example.com"),
        to("bo@example.com"),
        to("cy@example.com"),
    );
    session
        .send_then(&ann, b"Subject: 1\r\n\r\none\r\n", Some(&bo))
        .await
        .expect("first");
    assert!(session.is_primed_for(&bo));
    let refused = session
        .send_then(&bo, b"Subject: 2\r\n\r\ntwo\r\n", Some(&cy))
        .await;
    assert!(
        matches!(
            refused,
            Err(SmtpError::Permanent {
                code: 554,
                stage: Stage::Data,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(session.is_usable() && session.is_primed_for(&cy));
    session
        .send_then(&cy, b"Subject: 3\r\n\r\nthree\r\n", None)
        .await
        .expect("third");
    assert!(!session.is_primed());
    session.quit().await;
    let seen = server.await.expect("server task");
    assert_eq!(
        seen.matches(".\r\n[pipelined]MAIL FROM:<hello@shop.example>\r\nRCPT TO:<")
            .count(),
        2,
        "two envelopes went behind a final dot: {seen}"
    );
    assert!(
        !seen.contains("RSET"),
        "a refused body ends its transaction: {seen}"
    );
    assert_eq!(seen.matches("MAIL FROM").count(), 3, "{seen}");
    assert!(seen.ends_with("three\r\n.\r\nQUIT\r\n"), "{seen}");
}

#[tokio::test]
async fn a_session_left_with_an_envelope_written_ahead_closes_without_delivering_it() {
    let (stream, server) = serve(&[
        "220 sink\r\n",
        "250-sink\r\n250 PIPELINING\r\n",
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
        "250 queued\r\n",
        "250 ok\r\n",
        "250 ok\r\n",
        "354 go\r\n",
    ])
    .await;
    let mut session = Session::open(stream, &plain()).await.expect("opens");
    let (ann, bo) = (to("ann@example.com"), to("bo@example.com"));
    session
        .send_then(&ann, b"Subject: 1\r\n\r\none\r\n", Some(&bo))
        .await
        .expect("first");
    let other = session
        .send(&to("cy@example.com"), b"Subject: 3\r\n\r\nthree\r\n")
        .await;
    assert!(
        matches!(other, Err(SmtpError::Io(_))) && !session.is_usable(),
        "only the envelope written ahead can follow: {other:?}"
    );
    session.quit().await;
    let seen = server.await.expect("server task");
    assert!(
        seen.ends_with("RCPT TO:<bo@example.com>\r\nDATA\r\n"),
        "no QUIT, which the server would read as content, and no dot: {seen}"
    );
}

/// An envelope from the shop to `to`.
fn to(to: &str) -> Envelope<'_> {
    Envelope {
        from: "hello@shop.example",
        to,
    }
}

fn plain() -> SmtpConfig {
    SmtpConfig {
        helo_name: "t.example".into(),
        starttls: StartTls::Off,
        credentials: None,
    }
}

#[tokio::test]
async fn delivers_with_multiline_ehlo_and_auth() {
    let config = SmtpConfig {
        credentials: Some(("user".into(), "pw".into())),
        ..plain()
    };
    let (result, seen) = run(
        &[
            "220 sink ESMTP\r\n",
            "250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n",
            "235 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
            "221 bye\r\n",
        ],
        config,
    )
    .await;
    result.expect("delivered");
    assert!(seen.contains("EHLO t.example\r\n"), "{seen}");
    assert!(seen.contains("AUTH PLAIN AHVzZXIAcHc=\r\n"), "{seen}");
    assert!(
        seen.contains("MAIL FROM:<hello@shop.example>\r\nRCPT TO:<ann@example.com>\r\nDATA\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\n..hidden dot\r\n"), "dot-stuffed: {seen}");
    assert!(seen.contains("bye\r\n.\r\n"), "{seen}");
}

#[tokio::test]
async fn classifies_failures() {
    let (r, _) = run(
        &[
            "220 sink\r\n",
            "250 sink\r\n",
            "250 ok\r\n",
            "451 greylisted, try later\r\n",
        ],
        plain(),
    )
    .await;
    assert!(
        matches!(r, Err(SmtpError::Transient { code: 451, .. })),
        "{r:?}"
    );
    assert!(r.as_ref().err().is_some_and(SmtpError::is_transient));

    let (r, _) = run(
        &[
            "220 sink\r\n",
            "250 sink\r\n",
            "250 ok\r\n",
            "550 5.1.1 no such user\r\n",
        ],
        plain(),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(SmtpError::Permanent {
                code: 550,
                stage: Stage::RcptTo,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        r.as_ref().err().map(SmtpError::failure),
        Some(Failure::Bounce)
    );

    // Each stage is told apart through a real conversation: only the recipient's answer bounces.
    let with_auth = SmtpConfig {
        credentials: Some(("user".into(), "wrong".into())),
        ..plain()
    };
    let cases: [(&[&str], SmtpConfig, Stage); 4] = [
        (
            &["554 5.3.2 no service for you\r\n"],
            plain(),
            Stage::Greeting,
        ),
        (
            &[
                "220 sink\r\n",
                "250 sink\r\n",
                "535 5.7.8 bad credentials\r\n",
            ],
            with_auth,
            Stage::Auth,
        ),
        (
            &[
                "220 sink\r\n",
                "250 sink\r\n",
                "550 5.7.1 sender rejected\r\n",
            ],
            plain(),
            Stage::MailFrom,
        ),
        (
            &[
                "220 sink\r\n",
                "250 sink\r\n",
                "250 ok\r\n",
                "550 no such user\r\n",
            ],
            plain(),
            Stage::RcptTo,
        ),
    ];
    for (script, config, stage) in cases {
        let (r, _) = run(script, config).await;
        let e = r.expect_err("refused");
        assert!(
            matches!(e, SmtpError::Permanent { stage: s, .. } if s == stage),
            "{e:?}"
        );
        assert_eq!(e.failure(), Failure::Transport, "{e}");
    }

    let (r, _) = run(&["220 sink\r\n", "250 sink\r\n", ""], plain()).await;
    assert!(
        matches!(r, Err(SmtpError::Io(_))),
        "dropped connection: {r:?}"
    );

    let (r, _) = run(&["220 sink\r\n", "hello there\r\n"], plain()).await;
    assert!(matches!(r, Err(SmtpError::Protocol(_))), "garbage: {r:?}");

    let tls = SmtpConfig {
        starttls: StartTls::Required,
        ..plain()
    };
    let (r, seen) = run(&["220 sink\r\n", "250 sink\r\n"], tls).await;
    assert!(matches!(r, Err(SmtpError::Tls(_))), "{r:?}");
    assert!(
        !seen.contains("MAIL FROM"),
        "nothing sent in clear text: {seen}"
    );
}
