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
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 32 + 2);
    // One pass over the ~100 KB of a letter, eight bytes at a time (wasm has 64-bit integers, no
    // SIMD here): most words hold no NUL, CR, LF or non-ASCII byte and are skipped whole.
    let mut line_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !needs_a_look(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        match bytes[i] {
            b'\n' => {
                let line = &body[line_start..i];
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.len() > MAX_LINE_OCTETS {
                    return None;
                }
                out.push_str(line);
                out.push_str("\r\n");
                line_start = i + 1;
            }
            // Only a CR that ends a line (CRLF, or the body) can go as it is.
            b'\r' if matches!(bytes.get(i + 1), Some(b'\n') | None) => {}
            0 | b'\r' | 0x80.. => return None,
            _ => {}
        }
        i += 1;
    }
    let last = &body[line_start..];
    let last = last.strip_suffix('\r').unwrap_or(last);
    if last.len() > MAX_LINE_OCTETS {
        return None;
    }
    if !last.is_empty() {
        out.push_str(last);
        out.push_str("\r\n");
    }
    Some(out)
}

/// Whether any byte of `w` is NUL, CR, LF or non-ASCII (the exact zero-byte test of
/// `(x - 0x01…) & !x & 0x80…`, applied to `w` and to `w` xor each byte looked for).
fn needs_a_look(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    w & HIGH != 0
        || has_zero(w)
        || has_zero(w ^ (ONES * u64::from(b'\r')))
        || has_zero(w ^ (ONES * u64::from(b'\n')))
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

    /// The obvious line-by-line version `seven_bit` must agree with.
    fn seven_bit_reference(body: &str) -> Option<String> {
        if !body.is_ascii() || body.contains('\0') {
            return None;
        }
        let mut out = String::new();
        let lines: Vec<&str> = body.split('\n').collect();
        for (n, line) in lines.iter().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.len() > MAX_LINE_OCTETS || line.contains('\r') {
                return None;
            }
            if n + 1 == lines.len() && line.is_empty() {
                break; // the body ended with a line break (or a CR)
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        Some(out)
    }

    #[test]
    fn the_word_at_a_time_scan_agrees_with_the_obvious_one() {
        // Bodies of every length near the word size and line limit, from an alphabet rich in the
        // bytes that matter (deterministic, so a failure reproduces).
        let alphabet = ["a", " ", "<p>", "\n", "\r\n", "\r", "\0", "\u{e9}", "x"];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut outcomes = [0u32; 2]; // [encoded, as it is]
        for case in 0..4000 {
            let pieces = (next() % 40) as usize;
            let mut body = String::new();
            for _ in 0..pieces {
                let r = next() % 100;
                // Mostly plain text, so most cases pass the checks and exercise the copy.
                let piece = if r < 80 {
                    "abcdefgh"
                } else {
                    alphabet[(r % 9) as usize]
                };
                body.push_str(piece);
            }
            if case % 50 == 0 {
                body.push_str(&"y".repeat(990 + (case / 50) % 20));
            }
            let scanned = seven_bit(&body);
            assert_eq!(scanned, seven_bit_reference(&body), "{body:?}");
            outcomes[usize::from(scanned.is_some())] += 1;
        }
        assert!(
            outcomes.iter().all(|&n| n > 500),
            "both outcomes are exercised: {outcomes:?}"
        );
    }

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
        assert_eq!(seven_bit("a\r\nb\rc"), None, "a bare CR after a CRLF too");
        assert_eq!(seven_bit("a\0b"), None, "NUL is encoded");
        assert_eq!(seven_bit("a\r\n\0"), None, "NUL after a CR too");
        assert_eq!(
            seven_bit(&format!("{}\r\n", "x".repeat(998))).as_deref(),
            Some(format!("{}\r\n", "x".repeat(998)).as_str()),
            "998 octets and CRLF is the longest line that goes as it is"
        );
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
