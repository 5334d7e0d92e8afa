//! RFC 5322 / MIME messages, built with `mail-builder`: a text and an HTML part, Message-ID and Date
//! passed in (never read from a clock here), extra headers such as `List-Unsubscribe`.

use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
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

/// Serialises the message with CRLF line endings.
pub fn build_message(o: &Outgoing<'_>) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from((o.from_name, o.from))
        .to(o.to)
        .subject(o.letter.subject.as_str())
        .message_id(MessageId::new(o.message_id))
        .date(Date::new(o.date))
        .text_body(o.letter.text.as_str())
        .html_body(o.letter.html.as_str());
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
    }
}
