//! Signing the tracking URLs of one message: `POST /v1/track/links`, so mail sent by any tool can
//! use Epistola's pixel, click redirects and one-click unsubscribe.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ids::validate_id;
use crate::token::{Claims, Keyring, Link, Purpose, TokenError};
use crate::url::validate_destination;

/// Most links one message may carry.
pub const MAX_LINKS: usize = 500;
/// Link index of the hidden honeypot link every tracked letter carries: people never see or reach
/// it, so any request on it is a machine, and the message's clicks around it are relabelled
/// (`classify::relabel_clicks`). Far above [`MAX_LINKS`], so no real link can have it.
pub const HONEYPOT_LINK: u16 = u16::MAX;
/// The honeypot's signed destination. The edge never redirects there (it answers a page of its
/// own), but a click token always names one.
pub const HONEYPOT_DESTINATION: &str = "https://honeypot.invalid/";

/// The honeypot link's markup, for the start of a letter's body: no content (nothing to render),
/// not displayed, hidden from screen readers, out of the tab order and off the layout, also for
/// clients that drop `display:none` (Outlook's `mso-hide`).
pub fn honeypot_html(url: &str) -> String {
    format!(
        r#"<a href="{url}" aria-hidden="true" tabindex="-1" style="display:none!important;mso-hide:all;position:absolute;left:-9999px;width:0;height:0;max-height:0;overflow:hidden;font-size:0;line-height:0;opacity:0"></a>"#
    )
}
/// How far `sent_at` may lie in the past (messages signed after sending) or future (signed ahead).
pub const SENT_AT_PAST_SECONDS: u64 = 30 * 86_400;
pub const SENT_AT_FUTURE_SECONDS: u64 = 7 * 86_400;
/// Unsubscribe links keep working this long (well past the 30 days the law asks for), seconds.
pub const UNSUBSCRIBE_TTL_SECONDS: u32 = 400 * 86_400;

/// Field name → what is wrong with it. Serialised as the `fields` of a JSON error.
pub type FieldErrors = BTreeMap<String, String>;

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignLinksRequest {
    pub campaign: String,
    pub contact: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub links: Vec<String>,
    /// When the message is (or was) sent, unix seconds; defaults to now. Scanner detection measures
    /// "too soon after sending" from it.
    #[serde(default)]
    pub sent_at: Option<u64>,
}

/// The signed tokens for one message; the adapter turns them into URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    pub open: String,
    /// (index, destination, token), in request order.
    pub clicks: Vec<(u16, String, String)>,
    pub unsubscribe: String,
    /// The hidden honeypot link's click token (see [`HONEYPOT_LINK`]); only for a message with an
    /// id, because its clicks are told apart by message.
    pub honeypot: Option<String>,
}

/// Validates the request and signs every token, or reports every bad field at once.
pub fn sign_message(
    keys: &Keyring,
    req: &SignLinksRequest,
    now: u64,
) -> Result<SignedMessage, FieldErrors> {
    let mut errors = FieldErrors::new();
    let sent_at = req.sent_at.unwrap_or(now);
    let in_window =
        sent_at + SENT_AT_PAST_SECONDS >= now && sent_at <= now + SENT_AT_FUTURE_SECONDS;
    let sent_at = match u32::try_from(sent_at) {
        Ok(t) if in_window => t,
        _ => {
            errors.insert(
                "sent_at".into(),
                "must be unix seconds within 30 days before and 7 days after now".into(),
            );
            0
        }
    };
    if let Err(e) = validate_id(&req.campaign, false) {
        errors.insert("campaign".into(), e.to_string());
    }
    if let Err(e) = validate_id(&req.contact, false) {
        errors.insert("contact".into(), e.to_string());
    }
    if let Err(e) = validate_id(&req.message, true) {
        errors.insert("message".into(), e.to_string());
    }
    if req.links.len() > MAX_LINKS {
        errors.insert(
            "links".into(),
            format!("at most {MAX_LINKS} links per message"),
        );
    } else {
        for (i, url) in req.links.iter().enumerate() {
            if let Err(e) = validate_destination(url) {
                errors.insert(format!("links[{i}]"), e.to_string());
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let claims = |purpose, expires_at, link| Claims {
        purpose,
        issued_at: sent_at,
        expires_at,
        campaign: req.campaign.clone(),
        contact: req.contact.clone(),
        message: req.message.clone(),
        link,
    };
    let sign = |c: &Claims| keys.sign(c).map_err(token_field_error);
    let open = sign(&claims(Purpose::Open, None, None))?;
    let unsubscribe = sign(&claims(
        Purpose::Unsubscribe,
        Some(sent_at.saturating_add(UNSUBSCRIBE_TTL_SECONDS)),
        None,
    ))?;
    let mut clicks = Vec::with_capacity(req.links.len());
    for (i, url) in req.links.iter().enumerate() {
        // MAX_LINKS < u16::MAX, checked above.
        let index = i as u16;
        let token = sign(&claims(
            Purpose::Click,
            None,
            Some(Link {
                index,
                url: url.clone(),
            }),
        ))?;
        clicks.push((index, url.clone(), token));
    }
    let honeypot = if req.message.is_empty() {
        None
    } else {
        Some(sign(&claims(
            Purpose::Click,
            None,
            Some(Link {
                index: HONEYPOT_LINK,
                url: HONEYPOT_DESTINATION.to_owned(),
            }),
        ))?)
    };
    Ok(SignedMessage {
        open,
        clicks,
        unsubscribe,
        honeypot,
    })
}

fn token_field_error(e: TokenError) -> FieldErrors {
    let field = match e {
        TokenError::InvalidField(f) => f,
        _ => "request",
    };
    FieldErrors::from([(field.to_owned(), e.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keyring {
        Keyring::new(&[(1, &[3u8; 32])]).expect("valid")
    }

    #[test]
    fn signs_every_purpose() {
        let req = SignLinksRequest {
            campaign: "c1".into(),
            contact: "k1".into(),
            message: String::new(),
            links: vec!["https://a.example/".into(), "https://b.example/x".into()],
            sent_at: None,
        };
        let signed = sign_message(&keys(), &req, 1_000).expect("valid request");
        let k = keys();
        assert_eq!(
            k.verify(&signed.open, Purpose::Open, 2_000)
                .map(|c| c.campaign),
            Ok("c1".into())
        );
        let unsub = k
            .verify(&signed.unsubscribe, Purpose::Unsubscribe, 2_000)
            .expect("verifies");
        assert_eq!(unsub.expires_at, Some(1_000 + UNSUBSCRIBE_TTL_SECONDS));
        let (index, url, token) = &signed.clicks[1];
        assert_eq!((*index, url.as_str()), (1, "https://b.example/x"));
        let link = k
            .verify(token, Purpose::Click, 2_000)
            .expect("verifies")
            .link
            .expect("has link");
        assert_eq!(
            link,
            Link {
                index: 1,
                url: "https://b.example/x".into()
            }
        );
        assert_eq!(signed.honeypot, None, "no message id, no honeypot");
        let with_message = SignLinksRequest {
            message: "m-1".into(),
            ..req
        };
        let signed = sign_message(&k, &with_message, 1_000).expect("valid request");
        let honeypot = k
            .verify(
                signed.honeypot.as_deref().expect("honeypot"),
                Purpose::Click,
                2_000,
            )
            .expect("verifies");
        assert_eq!(
            honeypot.link,
            Some(Link {
                index: HONEYPOT_LINK,
                url: HONEYPOT_DESTINATION.into()
            })
        );
        assert_eq!(honeypot.message, "m-1");
        assert!(usize::from(HONEYPOT_LINK) > MAX_LINKS);
    }

    #[test]
    fn reports_every_bad_field() {
        let req = SignLinksRequest {
            campaign: String::new(),
            contact: "a@b.example".into(),
            message: "m".into(),
            links: vec![
                "https://ok.example/".into(),
                "javascript:alert(1)".into(),
                "//evil.example".into(),
            ],
            sent_at: Some(1_000_000_000),
        };
        let errors = sign_message(&keys(), &req, 1).expect_err("invalid");
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            ["campaign", "contact", "links[1]", "links[2]", "sent_at"]
        );
    }

    #[test]
    fn too_many_links() {
        let req = SignLinksRequest {
            campaign: "c".into(),
            contact: "k".into(),
            message: String::new(),
            links: vec!["https://a.example/".into(); MAX_LINKS + 1],
            sent_at: None,
        };
        assert!(sign_message(&keys(), &req, 1)
            .expect_err("too many")
            .contains_key("links"));
    }
}
