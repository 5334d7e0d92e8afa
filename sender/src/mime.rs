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

/// Serialises the message with CRLF line endings.
pub fn build_message(o: &Outgoing<'_>) -> Vec<u8> {
    let body = MimePart::new(
        ContentType::new("multipart/alternative").attribute("boundary", boundary(o.message_id)),
        vec![
            MimePart::new("text/plain", o.letter.text.as_str()),
            MimePart::new("text/html", o.letter.html.as_str()),
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
