//! Composing what the plan decided to send, before any key is claimed (composition is pure; a
//! letter that cannot be composed is recorded as failed without ever being claimed): campaign and
//! chain letters from their template (`sender::compose`), their SMS version, and the two double
//! opt-in letters (`sender::letter`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use epistola_core::consent::{pending_requests, texts_to_confirm};
use epistola_core::ids::message_id_for;
use epistola_core::token::{Keyring, Purpose};
use epistola_core::track::UNSUBSCRIBE_TTL_SECONDS;
use epistola_sender::compose::{
    compose, Campaign, CampaignContext, ContactContext, LetterContext, Recipient, SiteContext,
};
use epistola_sender::letter;
use epistola_sender::mime::{build_message, Outgoing};
use epistola_sender::sms::sms_text;
use epistola_sender::template::{Compiled, TemplateSource};

use super::gather::Gathered;
use super::Mailing;
use crate::jobs::JobError;
use crate::store::TemplateRow;

/// Confirm links work for a week; preference links as long as unsubscribe links.
pub const CONFIRM_TTL_SECONDS: u32 = 7 * 86_400;

/// What a mailing sends.
#[derive(Debug)]
pub enum Content {
    /// A campaign or chain template, compiled once per isolate.
    Template {
        compiled: Rc<Compiled>,
        /// Aggregate-only tracking (no contact in open and click tokens).
        anonymous: bool,
    },
    /// "Please confirm", listing exactly what confirming grants (the capture's consents as the
    /// site words them).
    Confirmation { requested_consents: String },
    /// The promised item, with the preference centre.
    Delivery,
}

/// A composed message.
#[derive(Debug)]
pub enum Message {
    Email {
        mime: Vec<u8>,
        /// Signed links (index, destination), for per-link stats.
        links: Vec<(u16, String)>,
    },
    Sms(String),
}

thread_local! {
    // Compiled templates per isolate, keyed by (id, updated_at): a chunk compiles nothing new.
    static TEMPLATES: RefCell<HashMap<(String, i64), Rc<Compiled>>> = RefCell::new(HashMap::new());
}

/// The compiled template (cached per isolate). A stored template that no longer compiles is
/// corrupt: it was checked when it was saved.
pub fn compiled(t: &TemplateRow) -> Result<Rc<Compiled>, JobError> {
    let key = (t.id.clone(), t.updated_at);
    if let Some(c) = TEMPLATES.with(|m| m.borrow().get(&key).cloned()) {
        return Ok(c);
    }
    let source = TemplateSource {
        subject: t.subject.clone(),
        html: t.html.clone(),
        text: t.text.clone(),
        sms: t.sms.clone(),
    };
    let c = Rc::new(
        Compiled::new(&source).map_err(|e| JobError::corrupt(format!("template {}", t.id), e))?,
    );
    TEMPLATES.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() > 50 {
            m.clear();
        }
        m.insert(key, c.clone());
    });
    Ok(c)
}

/// The host letters name themselves by (Message-ID, EHLO): the public origin's.
pub fn host_of(base_url: &str) -> &str {
    let host = base_url.split("://").nth(1).unwrap_or("epistola.invalid");
    host.split([':', '/']).next().unwrap_or(host)
}

/// Composes one recipient's message; `Err` is the reason it cannot be sent (recorded as
/// `render_error`).
pub fn message_for(
    m: &Mailing<'_>,
    keys: &Keyring,
    to: &Gathered,
    now: u64,
) -> Result<Message, String> {
    match &m.content {
        Content::Template {
            compiled,
            anonymous,
        } => {
            let context = LetterContext {
                contact: ContactContext {
                    email: &to.email,
                    attributes: &to.attributes,
                },
                campaign: CampaignContext {
                    id: m.stats_id,
                    name: m.name,
                },
                site: SiteContext { name: &m.site.name },
            };
            if m.policy.channel == epistola_core::site::Channel::Sms {
                let text = compiled
                    .render_sms(&context)
                    .map_err(|e| e.to_string())?
                    .map(|t| sms_text(&t))
                    .unwrap_or_default();
                return match (&to.phone, text.is_empty()) {
                    (Some(_), false) => Ok(Message::Sms(text)),
                    _ => Err("no SMS text or phone".into()),
                };
            }
            let campaign = Campaign {
                id: m.stats_id,
                site: m.site_id,
                template: compiled,
                base_url: m.base_url,
                from_name: &m.site.name,
                from: &m.site.from_email,
                anonymous: *anonymous,
                keys,
                now,
            };
            let composed = compose(
                &campaign,
                &Recipient {
                    contact: &to.contact,
                    email: &to.email,
                    message: &message_id_for(&to.key),
                    context: &context,
                },
            )
            .map_err(|e| e.to_string())?;
            Ok(Message::Email {
                mime: composed.mime,
                links: composed.links,
            })
        }
        Content::Confirmation { requested_consents } => {
            let url = optin_link(m, keys, to, Purpose::Confirm, CONFIRM_TTL_SECONDS, now)?;
            let requested = pending_requests(requested_consents).map_err(|e| e.to_string())?;
            let grants: Vec<&str> = texts_to_confirm(m.site, &requested)
                .iter()
                .map(|t| t.text.as_str())
                .collect();
            let letter =
                letter::confirmation(m.site, &format!("{}/confirm/{url}", base(m)), &grants);
            Ok(optin_message(m, to, &letter, &[], now))
        }
        Content::Delivery => {
            let p = optin_link(
                m,
                keys,
                to,
                Purpose::Preferences,
                UNSUBSCRIBE_TTL_SECONDS,
                now,
            )?;
            let u = optin_link(
                m,
                keys,
                to,
                Purpose::Unsubscribe,
                UNSUBSCRIBE_TTL_SECONDS,
                now,
            )?;
            let headers = [
                ("List-Unsubscribe", format!("<{}/u/{u}>", base(m))),
                (
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".to_owned(),
                ),
            ];
            let letter = letter::delivery(m.site, &format!("{}/p/{p}", base(m)));
            Ok(optin_message(m, to, &letter, &headers, now))
        }
    }
}

fn base<'a>(m: &Mailing<'a>) -> &'a str {
    m.base_url.trim_end_matches('/')
}

/// A token for an opt-in letter: the site stands for the campaign, the capture for the message.
fn optin_link(
    m: &Mailing<'_>,
    keys: &Keyring,
    to: &Gathered,
    purpose: Purpose,
    ttl: u32,
    now: u64,
) -> Result<String, String> {
    let now = u32::try_from(now).map_err(|_| "send time does not fit a token".to_owned())?;
    let claims = epistola_core::token::Claims {
        purpose,
        issued_at: now,
        expires_at: Some(now.saturating_add(ttl)),
        campaign: m.site_id.to_owned(),
        contact: to.contact.clone(),
        message: to.capture.clone().unwrap_or_default(),
        link: None,
    };
    keys.sign(&claims).map_err(|e| e.to_string())
}

fn optin_message(
    m: &Mailing<'_>,
    to: &Gathered,
    letter: &letter::Letter,
    headers: &[(&str, String)],
    now: u64,
) -> Message {
    let message_id = format!("{}@{}", to.key, host_of(m.base_url));
    Message::Email {
        mime: build_message(&Outgoing {
            from_name: &m.site.name,
            from: &m.site.from_email,
            to: &to.email,
            letter,
            message_id: &message_id,
            date: now as i64,
            headers,
        }),
        links: Vec::new(),
    }
}
