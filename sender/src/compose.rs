//! One campaign letter for one recipient: render the template, rewrite its HTML for tracking
//! (signed click links, open pixel, visible unsubscribe), and build the MIME message with
//! `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058 one-click). Pure: keys, time and ids
//! come in, so the whole pipeline is tested and benchmarked natively.

use epistola_core::token::{Claims, Keyring, Link, Purpose, TokenError};
use epistola_core::track::{
    honeypot_html, HONEYPOT_DESTINATION, HONEYPOT_LINK, UNSUBSCRIBE_TTL_SECONDS,
};
use serde::Serialize;

use crate::letter::Letter;
use crate::mime::{build_message, Outgoing};
use crate::rewrite::{rewrite, tail_html, RewriteError, Tracking};
use crate::template::{Compiled, TemplateError};

/// What is the same for every recipient of a campaign.
#[derive(Debug)]
pub struct Campaign<'a> {
    pub id: &'a str,
    /// The site whose consents the preference link manages (a campaign id is not a site id).
    pub site: &'a str,
    pub template: &'a Compiled,
    /// Public origin for tracking links, e.g. `https://t.example.com`.
    pub base_url: &'a str,
    pub from_name: &'a str,
    pub from: &'a str,
    /// Aggregate-only tracking: open and click tokens carry no contact id, and there is no pixel
    /// per person… only per campaign. Unsubscribe links still name the contact (they must work).
    pub anonymous: bool,
    pub keys: &'a Keyring,
    /// Send time, unix seconds.
    pub now: u64,
}

/// One recipient.
#[derive(Debug)]
pub struct Recipient<'a, C: Serialize> {
    pub contact: &'a str,
    pub email: &'a str,
    /// The message id (the send key), unique per campaign and contact.
    pub message: &'a str,
    /// Template context (contact attributes, campaign, …); `unsubscribe_url` and
    /// `preferences_url` are added here.
    pub context: &'a C,
}

/// A message ready for the transport.
#[derive(Debug, Clone)]
pub struct Composed {
    pub mime: Vec<u8>,
    pub subject: String,
    /// The HTML part as sent (before transfer encoding).
    pub html: String,
    /// The plain-text part as sent (with its unsubscribe lines).
    pub text: String,
    pub sms: Option<String>,
    /// Signed links (index, destination), for per-link stats.
    pub links: Vec<(u16, String)>,
}

/// What a campaign or chain template sees: `contact` (each attribute that is set, `email`, and
/// all attributes again under `fields` and `attributes`), `campaign.id`, `campaign.name` and `site.name`.
/// Attributes that are not set are left out (undefined), so `default(...)` applies; a JSON null
/// would render as "none".
#[derive(Debug, Serialize)]
pub struct LetterContext<'a> {
    pub contact: ContactContext<'a>,
    pub campaign: CampaignContext<'a>,
    pub site: SiteContext<'a>,
}

#[derive(Debug)]
pub struct ContactContext<'a> {
    pub email: &'a str,
    pub attributes: &'a std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct CampaignContext<'a> {
    /// The id its stats count under (campaign id, or chain step id).
    pub id: &'a str,
    pub name: &'a str,
}

#[derive(Debug, Serialize)]
pub struct SiteContext<'a> {
    pub name: &'a str,
}

impl Serialize for ContactContext<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // `email`, `fields` and `attributes` are ours: a custom field of the same name does not
        // shadow them. `fields` is what the contacts API calls them, `attributes` the older name.
        let own = |k: &String| k != "email" && k != "fields" && k != "attributes";
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.attributes.iter().filter(|(k, _)| own(k)) {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("email", self.email)?;
        map.serialize_entry("fields", self.attributes)?;
        map.serialize_entry("attributes", self.attributes)?;
        map.end()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    #[error("signing failed: {0}")]
    Token(#[from] TokenError),
    #[error("send time does not fit a token")]
    Time,
}

#[derive(Serialize)]
struct Context<'a, C: Serialize> {
    #[serde(flatten)]
    inner: &'a C,
    unsubscribe_url: &'a str,
    preferences_url: &'a str,
    /// Tracked URLs of a prepared template's links (see `rewrite::prepare`).
    #[serde(rename = "__epistola_links", skip_serializing_if = "Option::is_none")]
    links: Option<&'a [String]>,
    #[serde(rename = "__epistola_tail", skip_serializing_if = "Option::is_none")]
    tail: Option<&'a str>,
    #[serde(rename = "__epistola_head", skip_serializing_if = "Option::is_none")]
    head: Option<&'a str>,
}

pub fn compose<C: Serialize>(
    c: &Campaign<'_>,
    to: &Recipient<'_, C>,
) -> Result<Composed, ComposeError> {
    let now = u32::try_from(c.now).map_err(|_| ComposeError::Time)?;
    let tracked_contact = if c.anonymous { "" } else { to.contact };
    let claims = |purpose, contact: &str, expires_at, link| Claims {
        purpose,
        issued_at: now,
        expires_at,
        campaign: c.id.to_owned(),
        contact: contact.to_owned(),
        message: to.message.to_owned(),
        link,
    };
    let expires = Some(now.saturating_add(UNSUBSCRIBE_TTL_SECONDS));
    let base = c.base_url.trim_end_matches('/');
    let unsubscribe_url = format!(
        "{base}/u/{}",
        c.keys
            .sign(&claims(Purpose::Unsubscribe, to.contact, expires, None))?
    );
    let preferences_url = format!(
        "{base}/p/{}",
        c.keys.sign(&Claims {
            campaign: c.site.to_owned(),
            ..claims(Purpose::Preferences, to.contact, expires, None)
        })?
    );
    let pixel_url = format!(
        "{base}/o/{}.gif",
        c.keys
            .sign(&claims(Purpose::Open, tracked_contact, None, None))?
    );
    let footer = format!(
        r#"<p style="font-size:12px;color:#666;margin-top:24px"><a href="{unsubscribe_url}" target="_blank" rel="noopener">Unsubscribe</a> &middot; <a href="{preferences_url}" target="_blank" rel="noopener">Preferences</a></p>"#
    );
    let sign_click = |index: u16, url: &str| -> Result<String, TokenError> {
        let link = Some(Link {
            index,
            url: url.to_owned(),
        });
        let token = c
            .keys
            .sign(&claims(Purpose::Click, tracked_contact, None, link))?;
        Ok(format!("{base}/c/{token}"))
    };
    // Any request on this link is a machine: no person can see or reach it.
    let honeypot = honeypot_html(&sign_click(HONEYPOT_LINK, HONEYPOT_DESTINATION)?);
    let tracking = Tracking {
        own_origin: base,
        pixel_url: Some(&pixel_url),
        footer_html: Some(&footer),
        unsubscribe_url: &unsubscribe_url,
        honeypot_html: Some(&honeypot),
    };
    let (rendered, links) = match c.template.prepared() {
        // The template was rewritten once at compile time: fill in this recipient's URLs.
        Some(prepared) => {
            let mut urls = Vec::with_capacity(prepared.links.len());
            let mut links = Vec::with_capacity(prepared.links.len());
            for (i, url) in prepared.links.iter().enumerate() {
                // MAX_LINKS < u16::MAX; links to our own origin stay as they are.
                if url.starts_with(base) {
                    urls.push(epistola_core::html::escape(url));
                } else {
                    urls.push(sign_click(i as u16, url)?);
                    links.push((i as u16, url.clone()));
                }
            }
            let tail = tail_html(&tracking, prepared.has_unsubscribe);
            let rendered = c.template.render(&Context {
                inner: to.context,
                unsubscribe_url: &unsubscribe_url,
                preferences_url: &preferences_url,
                links: Some(&urls),
                tail: Some(&tail),
                head: Some(&honeypot),
            })?;
            (rendered, links)
        }
        // Links computed by the template: render, then rewrite this letter.
        None => {
            let mut rendered = c.template.render(&Context {
                inner: to.context,
                unsubscribe_url: &unsubscribe_url,
                preferences_url: &preferences_url,
                links: None,
                tail: None,
                head: None,
            })?;
            let mut sign_error = None;
            let mut sign = |index: u16, url: &str| match sign_click(index, url) {
                Ok(u) => Some(u),
                Err(e) => {
                    sign_error = Some(e);
                    None
                }
            };
            let rewritten = rewrite(&rendered.html, &tracking, &mut sign)?;
            if let Some(e) = sign_error {
                return Err(e.into());
            }
            rendered.html = rewritten.html;
            (rendered, rewritten.links)
        }
    };
    let text = match rendered.text {
        Some(t) if t.contains(&unsubscribe_url) => t,
        Some(t) => {
            format!("{t}\n\n--\nUnsubscribe: {unsubscribe_url}\nPreferences: {preferences_url}\n")
        }
        None => format!("Unsubscribe: {unsubscribe_url}\nPreferences: {preferences_url}\n"),
    };
    let letter = Letter {
        subject: rendered.subject,
        text,
        html: rendered.html,
    };
    let headers = [
        ("List-Unsubscribe", format!("<{unsubscribe_url}>")),
        (
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_owned(),
        ),
    ];
    let host = base.split("://").nth(1).unwrap_or("epistola.invalid");
    let host = host.split(':').next().unwrap_or(host);
    let message_id = format!("{}@{host}", to.message);
    let mime = build_message(&Outgoing {
        from_name: c.from_name,
        from: c.from,
        to: to.email,
        letter: &letter,
        message_id: &message_id,
        date: i64::from(now),
        headers: &headers,
    });
    Ok(Composed {
        mime,
        subject: letter.subject,
        html: letter.html,
        text: letter.text,
        sms: rendered.sms,
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateSource;
    use serde_json::json;

    fn keys() -> Keyring {
        Keyring::parse("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").expect("keys")
    }

    fn compiled(html: &str) -> Compiled {
        Compiled::new(&TemplateSource {
            subject: "Spring for {{ contact.name | default('you') }}".into(),
            html: html.into(),
            text: Some("Hi {{ contact.name }}".into()),
            sms: None,
        })
        .expect("compiles")
    }

    fn campaign<'a>(
        id: &'a str,
        template: &'a Compiled,
        keys: &'a Keyring,
        anonymous: bool,
    ) -> Campaign<'a> {
        Campaign {
            id,
            site: "toy-shop",
            template,
            base_url: "https://t.example",
            from_name: "Toy shop",
            from: "hello@shop.example",
            anonymous,
            keys,
            now: 1_790_000_000,
        }
    }

    #[test]
    fn the_template_context_leaves_unset_attributes_out() {
        let attributes = std::collections::BTreeMap::from([
            ("name".to_owned(), "Ann".to_owned()),
            ("email".to_owned(), "planted@evil.example".to_owned()),
        ]);
        let ctx = LetterContext {
            contact: ContactContext {
                email: "ann@example.com",
                attributes: &attributes,
            },
            campaign: CampaignContext {
                id: "spring",
                name: "Spring sale",
            },
            site: SiteContext { name: "Toy shop" },
        };
        let t = Compiled::new(&TemplateSource {
            subject: "{{ contact.name }} {{ contact.gender | default('friend') }} {{ contact.email }} {{ contact.fields.name }}".into(),
            html: "<p>{{ contact.attributes.email }} {{ campaign.id }} {{ campaign.name }} {{ site.name }}</p>".into(),
            text: None,
            sms: None,
        })
        .expect("compiles");
        let parts = t.render(&ctx).expect("renders");
        assert_eq!(
            parts.subject, "Ann friend ann@example.com Ann",
            "contact.fields.x is contact.x"
        );
        assert!(
            parts
                .html
                .contains("planted@evil.example spring Spring sale Toy shop"),
            "{}",
            parts.html
        );
    }

    fn decode_tokens(html: &str, marker: &str) -> Vec<String> {
        html.split(marker)
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_template_without_a_text_part_sends_the_words_of_its_html() {
        let keys = keys();
        let template = Compiled::new(&TemplateSource {
            subject: "Spring".into(),
            html: r#"<body><p>Hi {{ contact.name }}</p><a href="https://shop.example/sale">Sale</a></body>"#
                .into(),
            text: None,
            sms: None,
        })
        .expect("compiles");
        let out = compose(
            &campaign("spring", &template, &keys, false),
            &Recipient {
                contact: "k1",
                email: "ann@example.com",
                message: "spring.k1",
                context: &json!({"contact": {"name": "Ann"}}),
            },
        )
        .expect("composes");
        assert!(
            out.text.starts_with(
                "Hi Ann\nSale (https://shop.example/sale)\n\n--\nUnsubscribe: https://t.example/u/"
            ),
            "{}",
            out.text
        );
    }

    #[test]
    fn a_letter_has_signed_links_pixel_and_one_click_unsubscribe() {
        let keys = keys();
        let template = compiled(
            r#"<body><p>Hi {{ contact.name }}</p><a href="https://shop.example/sale">Sale</a></body>"#,
        );
        let campaign = campaign("spring", &template, &keys, false);
        let out = compose(
            &campaign,
            &Recipient {
                contact: "k1",
                email: "ann@example.com",
                message: "spring.k1",
                context: &json!({"contact": {"name": "Ann"}}),
            },
        )
        .expect("composes");
        let mime = String::from_utf8(out.mime).expect("utf-8");
        let html = out.html;
        assert_eq!(out.subject, "Spring for Ann");
        assert_eq!(out.links, [(0, "https://shop.example/sale".to_owned())]);
        assert!(
            mime.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{mime}"
        );
        assert!(mime.contains("Message-ID: <spring.k1@t.example>"), "{mime}");
        // Every token in the letter verifies for its purpose and names this campaign and contact.
        let now = 1_790_000_100;
        let click = decode_tokens(&html, "https://t.example/c/");
        assert_eq!(click.len(), 2, "the honeypot and the sale: {html}");
        // First in the body: the hidden honeypot, a signed click of its own link index.
        let honeypot = keys
            .verify(&click[0], Purpose::Click, now)
            .expect("honeypot verifies")
            .link
            .expect("link");
        assert_eq!(
            (honeypot.index, honeypot.url.as_str()),
            (HONEYPOT_LINK, HONEYPOT_DESTINATION)
        );
        assert!(html.contains(r#"aria-hidden="true" tabindex="-1" style="display:none!important"#));
        let claims = keys
            .verify(&click[1], Purpose::Click, now)
            .expect("click verifies");
        assert_eq!(
            (claims.campaign.as_str(), claims.contact.as_str()),
            ("spring", "k1")
        );
        assert_eq!(claims.link.expect("link").url, "https://shop.example/sale");
        let open = decode_tokens(&html, "https://t.example/o/");
        assert_eq!(
            keys.verify(&open[0], Purpose::Open, now)
                .expect("open")
                .message,
            "spring.k1"
        );
        let unsub = decode_tokens(&html, "https://t.example/u/");
        assert!(keys.verify(&unsub[0], Purpose::Unsubscribe, now).is_ok());
        assert!(
            keys.verify(&unsub[0], Purpose::Click, now).is_err(),
            "purpose-bound"
        );
        // The preference link manages the site's consents: it names the site, not the campaign.
        let prefs = decode_tokens(&html, "https://t.example/p/");
        let claims = keys
            .verify(&prefs[0], Purpose::Preferences, now)
            .expect("preferences verify");
        assert_eq!(
            (claims.campaign.as_str(), claims.contact.as_str()),
            ("toy-shop", "k1")
        );
    }

    #[test]
    fn computed_links_are_rewritten_per_letter() {
        let keys = keys();
        let template = compiled(r#"<body><a href="{{ contact.shop }}/cart">Cart</a></body>"#);
        assert!(
            template.prepared().is_none(),
            "a computed link cannot be prepared"
        );
        let campaign = campaign("cart", &template, &keys, false);
        let out = compose(
            &campaign,
            &Recipient {
                contact: "k2",
                email: "bo@example.com",
                message: "m2",
                context: &json!({"contact": {"shop": "https://bo.shop.example"}}),
            },
        )
        .expect("composes");
        assert_eq!(out.links, [(0, "https://bo.shop.example/cart".to_owned())]);
        let click = decode_tokens(&out.html, "https://t.example/c/");
        assert_eq!(click.len(), 2, "the honeypot first, then the cart");
        let claims = keys
            .verify(&click[1], Purpose::Click, 1_790_000_100)
            .expect("verifies");
        assert_eq!(
            claims.link.expect("link").url,
            "https://bo.shop.example/cart"
        );
        assert!(
            out.html.contains(">Unsubscribe</a>") && out.html.contains("/o/"),
            "{}",
            out.html
        );
    }

    #[test]
    fn anonymous_tracking_carries_no_contact_but_unsubscribe_still_works() {
        let keys = keys();
        let template = compiled(r#"<a href="https://shop.example/">Shop</a>"#);
        let campaign = campaign("quiet", &template, &keys, true);
        let out = compose(
            &campaign,
            &Recipient {
                contact: "k1",
                email: "a@b.co",
                message: "m",
                context: &json!({}),
            },
        )
        .expect("composes");
        let mime = out.html;
        let now = 1_790_000_100;
        let click = decode_tokens(&mime, "https://t.example/c/");
        assert_eq!(
            keys.verify(&click[0], Purpose::Click, now)
                .expect("verifies")
                .contact,
            ""
        );
        let open = decode_tokens(&mime, "https://t.example/o/");
        assert_eq!(
            keys.verify(&open[0], Purpose::Open, now)
                .expect("verifies")
                .contact,
            ""
        );
        let unsub = decode_tokens(&mime, "https://t.example/u/");
        assert_eq!(
            keys.verify(&unsub[0], Purpose::Unsubscribe, now)
                .expect("verifies")
                .contact,
            "k1"
        );
    }
}
