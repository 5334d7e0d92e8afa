//! RFC 5322 / MIME messages, built with `mail-builder`: a text and an HTML part, Message-ID and Date
//! passed in (never read from a clock here), extra headers such as `List-Unsubscribe`.

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use crate::letter::Letter;

/// Everything that makes one letter a message to one recipient.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub from_name: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub letter: &'a Letter,
    /// Without angle brackets, e.g. `cap_1f…@t.example.com`.
    pub message_id: &'a str,
    /// Unix seconds.
    pub date: i64,
    /// Extra headers (name, value), e.g. `List-Unsubscribe`.
    pub headers: &'a [(&'a str, String)],
}

/// The multipart boundary, derived from the Message-ID. mail-builder would otherwise read the
/// clock for one (no clock reads in wasm: time is passed in), and this keeps a message a pure
/// function of its inputs. `=_` cannot occur in quoted-printable or base64 bodies.
fn boundary(message_id: &str) -> String {
    // FNV-1a, 64 bit: uniqueness within one message is all a boundary needs.
    let hash = message_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("=_epistola_{hash:016x}")
}

/// Longest line SMTP allows (RFC 5321: 1000 octets with CRLF).
const MAX_LINE_OCTETS: usize = 998;

/// A text part sent as it is when it can be: ASCII with every line within the SMTP limit goes as
/// `7bit` (CRLF line endings), with no encoding pass over the body. Anything else is left to
/// mail-builder, which picks quoted-printable or base64. (mail-builder alone would encode every
/// body with a line over 77 characters, which is nearly every HTML letter.)
fn text_part<'a>(content_type: &'static str, body: &'a str) -> MimePart<'a> {
    match seven_bit(body) {
        Some(crlf) => MimePart::new(content_type, crlf).transfer_encoding("7bit"),
        None => MimePart::new(content_type, body),
    }
}

fn seven_bit(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    // SIMD scans (memchr) and block copies: this runs once per letter over ~100 KB.
    if !body.is_ascii() || memchr::memchr(0, bytes).is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32 + 2);
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
        let line = &bytes[start..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE_OCTETS || memchr::memchr(b'\r', line).is_some() {
            return None;
        }
        if nl == bytes.len() && line.is_empty() {
            break; // the body ended with a line break
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        start = nl + 1;
    }
    // ASCII in, ASCII out.
    String::from_utf8(out).ok()
}

/// Serialises the message with CRLF line endings.
pub fn build_message(o: &Outgoing<'_>) -> Vec<u8> {
    let body = MimePart::new(
        ContentType::new("multipart/alternative").attribute("boundary", boundary(o.message_id)),
        vec![
            text_part("text/plain", o.letter.text.as_str()),
            text_part("text/html", o.letter.html.as_str()),
        ],
    );
    let mut builder = MessageBuilder::new()
        .from((o.from_name, o.from))
        .to(o.to)
        .subject(o.letter.subject.as_str())
        .message_id(MessageId::new(o.message_id))
        .date(Date::new(o.date))
        .body(body);
    for (name, value) in o.headers {
        builder = builder.header(*name, Raw::new(value.as_str()));
    }
    // Writing to a Vec cannot fail.
    builder.write_to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ascii_lines_go_as_they_are() {
        assert_eq!(
            seven_bit("<p>a</p>\n<p>b</p>\n").as_deref(),
            Some("<p>a</p>\r\n<p>b</p>\r\n")
        );
        assert_eq!(seven_bit("a\r\nb").as_deref(), Some("a\r\nb\r\n"));
        assert_eq!(seven_bit("caf\u{e9}"), None, "non-ASCII is encoded");
        assert_eq!(
            seven_bit(&"x".repeat(999)),
            None,
            "over-long lines are encoded"
        );
        assert_eq!(seven_bit("a\rb"), None, "a bare CR is encoded");
        let letter = Letter {
            subject: "s".into(),
            text: "t".into(),
            html: format!("<p>{}</p>\n", "y".repeat(500)),
        };
        let raw = build_message(&Outgoing {
            from_name: "n",
            from: "a@b.co",
            to: "c@d.co",
            letter: &letter,
            message_id: "m@b.co",
            date: 0,
            headers: &[],
        });
        let text = String::from_utf8(raw).expect("utf-8");
        assert!(
            text.contains("Content-Transfer-Encoding: 7bit\r\n\r\n<p>yyy"),
            "{text}"
        );
    }

    #[test]
    fn message_has_both_parts_and_the_given_headers() {
        let letter = Letter {
            subject: "Bitte bestätigen".into(),
            text: "Hallo\n.\nEnde".into(),
            html: "<p>Hallo</p>".into(),
        };
        let headers = [("List-Unsubscribe", "<https://t.example/u/x>".to_owned())];
        let raw = build_message(&Outgoing {
            from_name: "Toy shop",
            from: "hello@shop.example",
            to: "ann@example.com",
            letter: &letter,
            message_id: "abc@t.example",
            date: 1_790_000_000,
            headers: &headers,
        });
        let raw_copy = raw.clone();
        let text = String::from_utf8(raw).expect("utf-8");
        assert!(text.contains("Message-ID: <abc@t.example>\r\n"), "{text}");
        assert!(text.contains("Date: Mon, 21 Sep 2026"), "{text}");
        assert!(
            text.contains("List-Unsubscribe: <https://t.example/u/x>\r\n"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(
            text.contains("text/plain") && text.contains("text/html"),
            "{text}"
        );
        assert!(
            text.contains("Subject: =?utf-8?"),
            "non-ASCII subjects are encoded: {text}"
        );
        assert!(
            !text.contains("\n\n") || text.contains("\r\n\r\n"),
            "CRLF line endings"
        );
        assert!(text.contains("boundary=\"=_epistola_"), "{text}");
        let again = build_message(&Outgoing {
            from_name: "Toy shop",
            from: "hello@shop.example",
            to: "ann@example.com",
            letter: &letter,
            message_id: "abc@t.example",
            date: 1_790_000_000,
            headers: &headers,
        });
        assert_eq!(
            again, raw_copy,
            "a message is a pure function of its inputs (no clock)"
        );
    }
}
