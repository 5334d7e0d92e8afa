//! `POST /v1/capture`: what a visitor submitted through the widget, validated against the site's
//! configuration before anything is stored.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::site::{Channel, FieldKind, SiteConfig};
use crate::track::FieldErrors;

/// Largest accepted capture body (the widget's are well under 2 KiB).
pub const MAX_CAPTURE_BYTES: usize = 16 * 1024;
/// Longest value of one field or answer.
pub const MAX_VALUE_LEN: usize = 200;

/// One consent the visitor gave, naming the exact text version they were shown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentGrant {
    pub purpose: String,
    pub channel: String,
    pub text_version: String,
}

/// The request body (JSON, or JSON sent as `text/plain` to avoid a CORS preflight).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    pub site: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub answers: BTreeMap<String, String>,
    #[serde(default)]
    pub consents: Vec<ConsentGrant>,
    /// Honeypot: a field people never see. Bots fill it.
    #[serde(default)]
    pub hp: Option<String>,
    /// Which form it came from (e.g. `quiz`, `popup`), for the ledger.
    #[serde(default)]
    pub form: Option<String>,
}

impl CaptureRequest {
    /// Filled honeypot: answer as if accepted, store nothing.
    pub fn is_bot(&self) -> bool {
        self.hp.as_deref().is_some_and(|v| !v.is_empty())
    }
}

/// A validated capture, normalised and ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCapture {
    pub email: String,
    pub phone: Option<String>,
    /// Form fields and quiz answers together: both become contact fields.
    pub fields: BTreeMap<String, String>,
    pub consents: Vec<(String, Channel, String)>,
    pub form: String,
    /// Answers to quiz steps with options (question id, option): counted for the audience
    /// portrait. Free answers are not, they may be personal.
    pub choices: Vec<(String, String)>,
}

/// Validates `req` against `site`, reporting every problem at once.
pub fn validate_capture(
    site: &SiteConfig,
    req: &CaptureRequest,
) -> Result<ValidCapture, FieldErrors> {
    let mut errors = FieldErrors::new();
    let email = normalize_email(&req.email)
        .map_err(|e| errors.insert("email".into(), e.into()))
        .ok();
    let phone = match req
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => normalize_phone(p)
            .map_err(|e| errors.insert("phone".into(), e.into()))
            .ok(),
    };
    let mut fields = BTreeMap::new();
    for (name, value) in &req.fields {
        match site.fields.iter().find(|f| &f.name == name) {
            None => {
                errors.insert(
                    format!("fields.{name}"),
                    "this form has no such field".into(),
                );
            }
            Some(f) => match check_value(f.kind, value) {
                Ok(v) => {
                    fields.insert(name.clone(), v);
                }
                Err(e) => {
                    errors.insert(format!("fields.{name}"), e.into());
                }
            },
        }
    }
    for f in site.fields.iter().filter(|f| f.required) {
        if req.fields.get(&f.name).is_none_or(|v| v.trim().is_empty()) {
            errors.insert(format!("fields.{}", f.name), "is required".into());
        }
    }
    let mut choices = Vec::new();
    for (id, value) in &req.answers {
        match site.quiz.iter().find(|q| &q.id == id) {
            None => {
                errors.insert(format!("answers.{id}"), "this quiz has no such step".into());
            }
            Some(q) if !q.options.is_empty() && !q.options.contains(value) => {
                errors.insert(
                    format!("answers.{id}"),
                    "must be one of the offered options".into(),
                );
            }
            Some(q) => match check_value(q.kind, value) {
                Ok(v) => {
                    if !q.options.is_empty() {
                        choices.push((id.clone(), v.clone()));
                    }
                    fields.insert(id.clone(), v);
                }
                Err(e) => {
                    errors.insert(format!("answers.{id}"), e.into());
                }
            },
        }
    }
    let mut consents = Vec::new();
    if req.consents.is_empty() {
        errors.insert(
            "consents".into(),
            "give at least the consent the form asks for".into(),
        );
    }
    for (i, c) in req.consents.iter().enumerate() {
        let Some(channel) = Channel::parse(&c.channel) else {
            errors.insert(
                format!("consents[{i}].channel"),
                "must be `email` or `sms`".into(),
            );
            continue;
        };
        match site.consent_text(&c.purpose, channel) {
            // A consent the form does not show is refused like an unknown one: a public endpoint
            // must not let anyone ask for (or learn about) more than the form asks.
            None => {
                errors.insert(
                    format!("consents[{i}].purpose"),
                    "this site asks no such consent".into(),
                );
            }
            Some(text) if !text.in_form => {
                errors.insert(
                    format!("consents[{i}].purpose"),
                    "this form does not ask for this consent; it is offered after confirmation"
                        .into(),
                );
            }
            // The current version is not echoed: the widget reads it from the site's config.
            Some(text) if text.version != c.text_version => {
                errors.insert(
                    format!("consents[{i}].text_version"),
                    "is not the text version the form shows now; reload the form".into(),
                );
            }
            Some(_) if channel == Channel::Sms && phone.is_none() => {
                errors.insert(
                    format!("consents[{i}]"),
                    "an SMS consent needs a phone number".into(),
                );
            }
            Some(_) => consents.push((c.purpose.clone(), channel, c.text_version.clone())),
        }
    }
    let form = req.form.clone().unwrap_or_else(|| "widget".into());
    if crate::ids::validate_id(&form, false).is_err() {
        errors.insert("form".into(), "must be 1-64 of A-Z a-z 0-9 - _ . :".into());
    }
    match (email, errors.is_empty()) {
        (Some(email), true) => Ok(ValidCapture {
            email,
            phone,
            fields,
            consents,
            form,
            choices,
        }),
        _ => Err(errors),
    }
}

pub(crate) fn check_value(kind: FieldKind, value: &str) -> Result<String, &'static str> {
    let v = value.trim();
    if v.chars().count() > MAX_VALUE_LEN {
        return Err("is too long (at most 200 characters)");
    }
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    match kind {
        FieldKind::Text => Ok(v.to_owned()),
        FieldKind::Phone => normalize_phone(v),
        FieldKind::Date => {
            let ok = v.len() == 10
                && v.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
                && (1..=12).contains(&v[5..7].parse::<u8>().unwrap_or(0))
                && (1..=31).contains(&v[8..10].parse::<u8>().unwrap_or(0));
            if ok {
                Ok(v.to_owned())
            } else {
                Err("must be a date YYYY-MM-DD")
            }
        }
    }
}

/// Trims and lower-cases an address and checks its shape (one `@`, a dotted domain of valid
/// labels, RFC 5321 lengths). Deliverability is proven by double opt-in, not guessed here.
pub fn normalize_email(input: &str) -> Result<String, &'static str> {
    const BAD: &str = "must be an e-mail address like name@example.com";
    // ASCII-only lower-casing: non-ASCII addresses are refused below anyway, and the Unicode case
    // tables would cost the worker several KB.
    let email = input.trim().to_ascii_lowercase();
    if email.len() > 254 {
        return Err("is too long");
    }
    let (local, domain) = email.split_once('@').ok_or(BAD)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(BAD);
    }
    let local_ok = local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit()));
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(BAD)
    }
}

/// Normalises a phone number to E.164 (`+` and 8-15 digits). Spaces, dots, dashes and brackets
/// are dropped; a national number without a country code is refused rather than guessed.
pub fn normalize_phone(input: &str) -> Result<String, &'static str> {
    const BAD: &str = "must be an international number like +44 20 7946 0958";
    let trimmed = input.trim();
    let rest = trimmed
        .strip_prefix('+')
        .or_else(|| trimmed.strip_prefix("00"))
        .ok_or(BAD)?;
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(BAD),
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(BAD);
    }
    Ok(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::tests::demo_site;

    #[test]
    fn emails() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            (
                "  Ann.Lee+toys@Example.COM ",
                Ok("ann.lee+toys@example.com"),
            ),
            ("a@b.co", Ok("a@b.co")),
            ("o'brien@shop.example", Ok("o'brien@shop.example")),
            ("no-at.example.com", Err(())),
            ("two@@example.com", Err(())),
            ("a@b@example.com", Err(())),
            ("@example.com", Err(())),
            ("ann@", Err(())),
            ("ann@localhost", Err(())),
            ("ann@example.c", Err(())),
            ("ann@127.0.0.1", Err(())),
            ("ann@-shop.example", Err(())),
            ("ann@shop..example", Err(())),
            (".ann@example.com", Err(())),
            ("an..n@example.com", Err(())),
            ("ann lee@example.com", Err(())),
            ("ann@exa mple.com", Err(())),
            ("ann@пример.рф", Err(())),
            ("<script>@example.com", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_email(input).map_err(|_| ()),
                want.map(str::to_owned),
                "{input:?}"
            );
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(normalize_email(&long_local).is_err());
    }

    #[test]
    fn phones() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("+44 20 7946 0958", Ok("+442079460958")),
            ("+1 (415) 555-0100", Ok("+14155550100")),
            ("0049 30 901820", Ok("+4930901820")),
            ("+380.44.123.4567", Ok("+380441234567")),
            ("020 7946 0958", Err(())),
            ("+0 123 456 789", Err(())),
            ("+1234567", Err(())),
            ("+1234567890123456", Err(())),
            ("+44 20 7946 0958 ext 1", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_phone(input).map_err(|_| ()),
                want.map(str::to_owned),
                "{input:?}"
            );
        }
    }

    fn request(json: &str) -> CaptureRequest {
        serde_json::from_slice(json.as_bytes()).expect("request parses")
    }

    #[test]
    fn valid_quiz_capture() {
        let req = request(
            r#"{"site":"demo","email":"Ann@Example.com","fields":{"first_name":" Ann "},
                "answers":{"child_age":"3-5","birthday":"2026-12-24"},
                "consents":[{"purpose":"birthday_coupon","channel":"email","text_version":"bc-2026-11"}],
                "form":"quiz"}"#,
        );
        let v = validate_capture(&demo_site(), &req).expect("valid");
        assert_eq!(v.email, "ann@example.com");
        assert_eq!(v.fields.get("first_name").map(String::as_str), Some("Ann"));
        assert_eq!(
            v.fields.get("birthday").map(String::as_str),
            Some("2026-12-24")
        );
        assert_eq!(
            v.consents,
            vec![(
                "birthday_coupon".into(),
                Channel::Email,
                "bc-2026-11".into()
            )]
        );
        assert_eq!(v.form, "quiz");
    }

    #[test]
    fn every_problem_is_named() {
        let req = request(
            r#"{"site":"demo","email":"not-an-address","phone":"12345",
                "fields":{"shoe_size":"42"},
                "answers":{"child_age":"11","birthday":"2026-13-01","unknown":"x"},
                "consents":[{"purpose":"birthday_coupon","channel":"email","text_version":"old"},
                            {"purpose":"sms_offers","channel":"sms","text_version":"sms-2026-11"},
                            {"purpose":"telepathy","channel":"email","text_version":"v1"},
                            {"purpose":"newsletter","channel":"fax","text_version":"nl-2026-11"}]}"#,
        );
        let errors = validate_capture(&demo_site(), &req).expect_err("invalid");
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "answers.birthday",
                "answers.child_age",
                "answers.unknown",
                "consents[0].text_version",
                "consents[1].purpose",
                "consents[2].purpose",
                "consents[3].channel",
                "email",
                "fields.shoe_size",
                "phone",
            ]
        );
    }

    #[test]
    fn only_the_consents_the_form_shows_can_be_asked_for() {
        let consent = |purpose: &str, channel: &str, version: &str| {
            format!(r#"{{"purpose":"{purpose}","channel":"{channel}","text_version":"{version}"}}"#)
        };
        let in_form = consent("birthday_coupon", "email", "bc-2026-11");
        let newsletter = consent("newsletter", "email", "nl-2026-11");
        let sms = consent("sms_offers", "sms", "sms-2026-11");
        let demo = demo_site();
        let mut sms_in_form = demo_site();
        sms_in_form
            .consents
            .iter_mut()
            .filter(|c| c.purpose == "sms_offers")
            .for_each(|c| c.in_form = true);
        // (site, phone, consents, the fields named, or none when valid)
        let cases: Vec<(&SiteConfig, &str, Vec<&str>, Vec<&str>)> = vec![
            (&demo, "", vec![&in_form], vec![]),
            // The newsletter is offered after confirmation, never taken from a public capture.
            (
                &demo,
                "",
                vec![&in_form, &newsletter],
                vec!["consents[1].purpose"],
            ),
            (&demo, "", vec![&newsletter], vec!["consents[0].purpose"]),
            (
                &demo,
                "+442079460958",
                vec![&in_form, &sms],
                vec!["consents[1].purpose"],
            ),
            // In the form, SMS still needs a number.
            (&sms_in_form, "", vec![&in_form, &sms], vec!["consents[1]"]),
            (&sms_in_form, "+442079460958", vec![&in_form, &sms], vec![]),
        ];
        for (site, phone, consents, named) in cases {
            let req = request(&format!(
                r#"{{"site":"demo","email":"a@b.co","phone":"{phone}","consents":[{}]}}"#,
                consents.join(",")
            ));
            let got: Vec<String> = match validate_capture(site, &req) {
                Ok(_) => vec![],
                Err(e) => e.into_keys().collect(),
            };
            assert_eq!(got, named, "{consents:?} with phone {phone:?}");
        }
        // An outdated version is refused without telling the current one.
        let old = request(&format!(
            r#"{{"site":"demo","email":"a@b.co","consents":[{}]}}"#,
            consent("birthday_coupon", "email", "bc-2020")
        ));
        let errors = validate_capture(&demo_site(), &old).expect_err("outdated");
        let message = &errors["consents[0].text_version"];
        assert!(!message.contains("bc-2026-11"), "{message}");
    }

    #[test]
    fn consent_is_required_and_honeypot_detected() {
        let req = request(r#"{"site":"demo","email":"a@b.co","hp":"http://spam"}"#);
        assert!(req.is_bot());
        assert!(validate_capture(&demo_site(), &req)
            .expect_err("no consent")
            .contains_key("consents"));
        assert!(!request(r#"{"site":"demo","email":"a@b.co","hp":""}"#).is_bot());
    }
}
