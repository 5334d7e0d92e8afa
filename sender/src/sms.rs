//! SMS through an HTTP provider API, in Twilio's Messages format (the most widely copied one):
//! `POST {base}/2010-04-01/Accounts/{account}/Messages.json`, HTTP Basic auth, form fields `To`,
//! `From`, `Body`. Pure: this builds the request and classifies the answer; the worker does the
//! fetch.

use base64::Engine;

/// Where and as whom to send.
#[derive(Clone)]
pub struct SmsProvider {
    /// e.g. `https://api.twilio.com` (or a local sink).
    pub base_url: String,
    pub account: String,
    pub token: String,
    /// Sender number (E.164) or alphanumeric sender id.
    pub from: String,
}

impl std::fmt::Debug for SmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsProvider")
            .field("base_url", &self.base_url)
            .field("account", &self.account)
            .field("token", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// A request ready for `fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub authorization: String,
    pub content_type: &'static str,
    pub body: String,
}

/// Most characters sent in one message (three GSM-7 segments); longer texts are cut at a word.
pub const MAX_SMS_CHARS: usize = 459;

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Collapses whitespace and keeps the text within [`MAX_SMS_CHARS`].
pub fn sms_text(rendered: &str) -> String {
    let text = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= MAX_SMS_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_SMS_CHARS - 1).collect();
    let cut = cut
        .rsplit_once(' ')
        .map_or(cut.as_str(), |(head, _)| head)
        .to_owned();
    format!("{cut}…")
}

pub fn request(p: &SmsProvider, to: &str, body: &str) -> HttpRequest {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", p.account, p.token));
    HttpRequest {
        url: format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            p.base_url.trim_end_matches('/'),
            form_encode(&p.account)
        ),
        authorization: format!("Basic {credentials}"),
        content_type: "application/x-www-form-urlencoded",
        body: format!(
            "To={}&From={}&Body={}",
            form_encode(to),
            form_encode(&p.from),
            form_encode(body)
        ),
    }
}

/// What an answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsOutcome {
    Accepted,
    /// Rate limited: this message, later.
    Transient,
    /// The provider, the account or our configuration failed (down, bad credentials, unknown
    /// account, not configured): not the recipient's fault. Retry with backoff, pause the sending.
    Transport,
    /// This recipient's message was refused (invalid number, unsubscribed at the carrier): do not
    /// retry.
    Permanent,
}

pub fn classify(status: u16) -> SmsOutcome {
    match status {
        200..=299 => SmsOutcome::Accepted,
        408 | 429 => SmsOutcome::Transient,
        401 | 403 | 404 | 500..=599 => SmsOutcome::Transport,
        _ => SmsOutcome::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_twilio_messages_request() {
        let p = SmsProvider {
            base_url: "https://api.twilio.com/".into(),
            account: "AC123".into(),
            token: "secret".into(),
            from: "+15005550006".into(),
        };
        let r = request(&p, "+442079460958", "Hi Ann & co: 20% off");
        assert_eq!(
            r.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert_eq!(r.authorization, "Basic QUMxMjM6c2VjcmV0");
        assert_eq!(
            r.body,
            "To=%2B442079460958&From=%2B15005550006&Body=Hi+Ann+%26+co%3A+20%25+off"
        );
        assert!(
            !format!("{p:?}").contains("secret"),
            "Debug redacts the token"
        );
    }

    #[test]
    fn texts_are_one_line_and_bounded() {
        assert_eq!(sms_text("  Hi\n Ann  "), "Hi Ann");
        let long = sms_text(&"word ".repeat(200));
        assert!(
            long.chars().count() <= MAX_SMS_CHARS && long.ends_with('…'),
            "{long}"
        );
    }

    #[test]
    fn answers() {
        assert_eq!(classify(201), SmsOutcome::Accepted);
        assert_eq!(classify(429), SmsOutcome::Transient);
        assert_eq!(classify(503), SmsOutcome::Transport);
        assert_eq!(classify(400), SmsOutcome::Permanent);
        // Credentials and accounts are ours, not the recipient's.
        assert_eq!(classify(401), SmsOutcome::Transport);
        assert_eq!(classify(403), SmsOutcome::Transport);
        assert_eq!(classify(404), SmsOutcome::Transport);
    }
}
