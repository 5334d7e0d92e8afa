//! A website that embeds the capture widget: which origins may use it, when the form appears, what
//! it asks, what it promises, and the exact consent texts (versioned) the visitor is shown.

use serde::{Deserialize, Serialize};

use crate::ids::validate_id;
use crate::track::FieldErrors;
use crate::url::origin_of;

/// Channels a consent can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// When the form appears. Any one configured condition shows it; none is "on entry".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// After this many `epistola('event', 'product_view')` calls (counted across pages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_views: Option<u32>,
    /// After this many seconds on the site (counted across pages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_on_site: Option<u32>,
    /// When the pointer leaves the window towards the browser chrome.
    #[serde(default)]
    pub exit_intent: bool,
    /// When the page is scrolled this far (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scroll_percent: Option<u8>,
    /// On `epistola('event', NAME)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_event: Option<String>,
}

/// A contact field the form asks for besides the e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormField {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    #[default]
    Text,
    Phone,
    Date,
}

/// One step of a quiz; answers are saved as contact fields under `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuizStep {
    pub id: String,
    pub question: String,
    #[serde(default)]
    pub kind: FieldKind,
    /// Choices; empty = free answer of `kind`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// What the visitor gets for their address, delivered only after double opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promise {
    pub title: String,
    pub description: String,
    /// The e-mail that delivers it. Never sent to the browser.
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub subject: String,
    pub text: String,
    /// The link to the promised item (a coupon page, a download…).
    pub url: String,
}

/// A consent text exactly as shown; `version` changes whenever the wording does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentText {
    pub purpose: String,
    pub channel: Channel,
    pub version: String,
    pub text: String,
    /// Asked in the capture form (the purpose the promise needs). Others are offered after
    /// confirmation, in the preference centre.
    #[serde(default)]
    pub in_form: bool,
}

/// A site as a marketer configures it (`PUT /v1/sites/{site}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    /// Exact origins (`https://shop.example`) allowed to load the config and post captures.
    pub allowed_origins: Vec<String>,
    /// Sender shown in the confirmation and delivery e-mails.
    pub from_email: String,
    #[serde(default = "default_locale")]
    pub locale: String,
    pub trigger: Trigger,
    /// Days a dismissed form stays hidden for that visitor.
    #[serde(default = "default_display_cap_days")]
    pub display_cap_days: u32,
    #[serde(default)]
    pub fields: Vec<FormField>,
    #[serde(default)]
    pub quiz: Vec<QuizStep>,
    pub promise: Promise,
    pub consents: Vec<ConsentText>,
}

fn default_locale() -> String {
    "en".into()
}

fn default_display_cap_days() -> u32 {
    30
}

/// Locales the widget ships texts for.
pub const LOCALES: [&str; 3] = ["en", "ru", "uk"];

/// The part of a site's config the browser sees (`GET /v1/sites/{site}/widget`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicWidgetConfig<'a> {
    pub site: &'a str,
    pub locale: &'a str,
    pub trigger: &'a Trigger,
    pub display_cap_days: u32,
    pub fields: &'a [FormField],
    pub quiz: &'a [QuizStep],
    pub promise: PublicPromise<'a>,
    /// Only the texts asked in the form.
    pub consents: Vec<&'a ConsentText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicPromise<'a> {
    pub title: &'a str,
    pub description: &'a str,
}

impl SiteConfig {
    /// What the widget needs, without the delivery e-mail (the promise is kept until opt-in).
    pub fn public<'a>(&'a self, site: &'a str) -> PublicWidgetConfig<'a> {
        PublicWidgetConfig {
            site,
            locale: &self.locale,
            trigger: &self.trigger,
            display_cap_days: self.display_cap_days,
            fields: &self.fields,
            quiz: &self.quiz,
            promise: PublicPromise {
                title: &self.promise.title,
                description: &self.promise.description,
            },
            consents: self.consents.iter().filter(|c| c.in_form).collect(),
        }
    }

    /// Is `origin` (the request's `Origin` header) allowed?
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The current text for a purpose and channel.
    pub fn consent_text(&self, purpose: &str, channel: Channel) -> Option<&ConsentText> {
        self.consents
            .iter()
            .find(|c| c.purpose == purpose && c.channel == channel)
    }

    /// Checks a config before it is stored; every problem is reported.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let mut err = |field: String, msg: &str| {
            errors.entry(field).or_insert_with(|| msg.to_owned());
        };
        if self.name.trim().is_empty() || self.name.len() > 200 {
            err("name".into(), "must be 1-200 characters");
        }
        if self.allowed_origins.is_empty() {
            err(
                "allowed_origins".into(),
                "list at least one origin, e.g. https://shop.example",
            );
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            let exact =
                crate::url::validate_destination(o).is_ok() && origin_of(o) == Some(o.as_str());
            if !exact {
                err(
                    format!("allowed_origins[{i}]"),
                    "must be an origin: scheme://host[:port], no path",
                );
            }
        }
        if crate::capture::normalize_email(&self.from_email).is_err() {
            err("from_email".into(), "must be an e-mail address");
        }
        if !LOCALES.contains(&self.locale.as_str()) {
            err("locale".into(), "must be one of en, ru, uk");
        }
        let t = &self.trigger;
        let any_trigger = t.product_views.is_some()
            || t.seconds_on_site.is_some()
            || t.exit_intent
            || t.scroll_percent.is_some()
            || t.custom_event.is_some();
        if !any_trigger {
            err(
                "trigger".into(),
                "set at least one trigger; the form is never shown on entry",
            );
        }
        if t.product_views == Some(0) || t.seconds_on_site == Some(0) {
            err(
                "trigger".into(),
                "counts and delays must be at least 1 (0 would show the form on entry)",
            );
        }
        if t.scroll_percent.is_some_and(|p| p == 0 || p > 100) {
            err("trigger.scroll_percent".into(), "must be 1-100");
        }
        if t.custom_event
            .as_deref()
            .is_some_and(|e| validate_id(e, false).is_err())
        {
            err(
                "trigger.custom_event".into(),
                "must be 1-64 of A-Z a-z 0-9 - _ . :",
            );
        }
        for (i, f) in self.fields.iter().enumerate() {
            if validate_id(&f.name, false).is_err() || f.name == "email" {
                err(
                    format!("fields[{i}].name"),
                    "must be an id other than `email`",
                );
            }
            if f.label.trim().is_empty() {
                err(format!("fields[{i}].label"), "must not be empty");
            }
        }
        for (i, q) in self.quiz.iter().enumerate() {
            if validate_id(&q.id, false).is_err() {
                err(
                    format!("quiz[{i}].id"),
                    "must be 1-64 of A-Z a-z 0-9 - _ . :",
                );
            }
            if q.question.trim().is_empty() {
                err(format!("quiz[{i}].question"), "must not be empty");
            }
        }
        if self.quiz.len() > 5 {
            err("quiz".into(), "keep a quiz short: at most 5 steps");
        }
        // These become mail headers (From display name, Subject): a line break would let a
        // site's text add headers of its own.
        for (field, value) in [
            ("name", &self.name),
            ("promise.title", &self.promise.title),
            ("promise.delivery.subject", &self.promise.delivery.subject),
        ] {
            if value.chars().any(|c| c.is_control()) {
                err(
                    field.into(),
                    "must be one line: no line breaks or other control characters",
                );
            }
        }
        if crate::url::validate_destination(&self.promise.delivery.url).is_err() {
            err(
                "promise.delivery.url".into(),
                "must be an absolute http(s) URL",
            );
        }
        if self.promise.delivery.subject.trim().is_empty() {
            err("promise.delivery.subject".into(), "must not be empty");
        }
        if !self
            .consents
            .iter()
            .any(|c| c.in_form && c.channel == Channel::Email)
        {
            err(
                "consents".into(),
                "ask at least one e-mail consent in the form (in_form: true)",
            );
        }
        for (i, c) in self.consents.iter().enumerate() {
            if validate_id(&c.purpose, false).is_err() {
                err(
                    format!("consents[{i}].purpose"),
                    "must be 1-64 of A-Z a-z 0-9 - _ . :",
                );
            }
            if validate_id(&c.version, false).is_err() {
                err(
                    format!("consents[{i}].version"),
                    "must be 1-64 of A-Z a-z 0-9 - _ . :",
                );
            }
            if c.text.trim().is_empty() {
                err(format!("consents[{i}].text"), "must not be empty");
            }
            let dup = self.consents[..i]
                .iter()
                .any(|o| o.purpose == c.purpose && o.channel == c.channel);
            if dup {
                err(format!("consents[{i}]"), "purpose and channel appear twice");
            }
        }
        errors
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn demo_site() -> SiteConfig {
        serde_json::from_slice(include_bytes!("../../tests/vectors/site.json"))
            .expect("the demo site parses")
    }

    #[test]
    fn demo_site_is_valid() {
        assert_eq!(demo_site().validate(), FieldErrors::new());
    }

    #[test]
    fn public_view_hides_the_delivery() {
        let site = demo_site();
        let json = serde_json::to_string(&site.public("demo")).expect("serialises");
        assert!(!json.contains(&site.promise.delivery.url), "{json}");
        assert!(!json.contains("delivery"), "{json}");
        assert!(site.public("demo").consents.iter().all(|c| c.in_form));
    }

    #[test]
    fn texts_that_become_mail_headers_are_one_line() {
        for (field, value) in [
            ("name", "Toy shop\r\nBcc: victim@example.com"),
            ("promise.title", "A gift\nX-Spam: no"),
            ("promise.delivery.subject", "Your coupon\r"),
        ] {
            let mut site = demo_site();
            match field {
                "name" => site.name = value.into(),
                "promise.title" => site.promise.title = value.into(),
                _ => site.promise.delivery.subject = value.into(),
            }
            let errors = site.validate();
            assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{value:?}");
        }
    }

    #[test]
    fn validation_names_every_problem() {
        let mut site = demo_site();
        site.allowed_origins = vec!["https://shop.example/path".into(), "*".into()];
        site.trigger = Trigger::default();
        site.locale = "de".into();
        site.from_email = "nobody".into();
        site.consents.iter_mut().for_each(|c| c.in_form = false);
        let errors = site.validate();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "allowed_origins[0]",
                "allowed_origins[1]",
                "consents",
                "from_email",
                "locale",
                "trigger"
            ]
        );
    }

    #[test]
    fn zero_counts_would_show_on_entry() {
        let mut site = demo_site();
        site.trigger = Trigger {
            product_views: Some(0),
            ..Trigger::default()
        };
        assert!(site.validate().contains_key("trigger"));
    }

    #[test]
    fn origins_compare_exactly() {
        let site = demo_site();
        assert!(site.allows_origin(&site.allowed_origins[0]));
        assert!(!site.allows_origin("https://evil.example"));
        assert!(!site.allows_origin("null"));
    }
}
