//! Contacts as marketers manage them through the API: validation of one contact (upsert, and each
//! row of a bulk import), the attribute map segments and audience tags read, and time zones.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::capture::{check_value, normalize_email, normalize_phone};
use crate::site::{Channel, FieldKind};
use crate::track::FieldErrors;

/// Most contacts in one import request.
pub const MAX_IMPORT_ROWS: usize = 5_000;
/// Most tags and custom fields on one contact.
pub const MAX_TAGS: usize = 50;
pub const MAX_FIELDS: usize = 50;

/// One contact as sent to the API (JSON object, or one CSV row mapped by its header).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Receives test sends. Absent: an update leaves it as it is (a new contact is not on it).
    #[serde(default)]
    pub test_list: Option<bool>,
    /// Consents collected elsewhere, recorded in the ledger as confirmed by the importer.
    #[serde(default)]
    pub consents: Vec<ImportedConsent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedConsent {
    pub site: String,
    pub purpose: String,
    pub channel: String,
    /// Where and how it was collected (kept as the ledger's text version), e.g. `shop-checkout-2025`.
    pub source: String,
}

/// A contact that passed validation, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidContact {
    pub email: String,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// `None`: keep what is stored.
    pub test_list: Option<bool>,
    pub consents: Vec<(String, String, Channel, String)>,
}

/// Validates one contact; every problem is reported, by field.
pub fn validate_contact(input: &ContactInput) -> Result<ValidContact, FieldErrors> {
    let mut errors = FieldErrors::new();
    let email = match input.email.as_deref().map(normalize_email) {
        None => {
            errors.insert("email".into(), "is required".into());
            None
        }
        Some(Err(e)) => {
            errors.insert("email".into(), e.into());
            None
        }
        Some(Ok(e)) => Some(e),
    };
    let mut optional = |name: &str, value: &Option<String>, kind: FieldKind| {
        let v = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
        match check_value(kind, v) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.insert(name.into(), e.into());
                None
            }
        }
    };
    let name = optional("name", &input.name, FieldKind::Text);
    let gender = optional("gender", &input.gender, FieldKind::Text).map(|g| g.to_lowercase());
    let birthday = optional("birthday", &input.birthday, FieldKind::Date);
    let locale = optional("locale", &input.locale, FieldKind::Text).map(|l| l.to_lowercase());
    let time_zone = optional("time_zone", &input.time_zone, FieldKind::Text);
    let phone = match input
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => match normalize_phone(p) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.insert("phone".into(), e.into());
                None
            }
        },
    };
    if let Some(tz) = &time_zone {
        if utc_offset_seconds(tz, 0).is_none() {
            errors.insert(
                "time_zone".into(),
                "must be an IANA time zone like Europe/Kyiv".into(),
            );
        }
    }
    if input.fields.len() > MAX_FIELDS {
        errors.insert("fields".into(), format!("at most {MAX_FIELDS} fields"));
    }
    let mut fields = BTreeMap::new();
    for (key, value) in &input.fields {
        let key_ok =
            crate::ids::validate_id(key, false).is_ok() && !STANDARD.contains(&key.as_str());
        match (key_ok, check_value(FieldKind::Text, value)) {
            (false, _) => {
                errors.insert(
                    format!("fields.{key}"),
                    "names are 1-64 of A-Z a-z 0-9 - _ . : and not a standard attribute".into(),
                );
            }
            (true, Err(e)) => {
                errors.insert(format!("fields.{key}"), e.into());
            }
            (true, Ok(v)) => {
                fields.insert(key.clone(), v);
            }
        }
    }
    if input.tags.len() > MAX_TAGS {
        errors.insert("tags".into(), format!("at most {MAX_TAGS} tags"));
    }
    let mut tags = Vec::new();
    for (i, tag) in input.tags.iter().enumerate() {
        let tag = tag.trim();
        if crate::ids::validate_id(tag, false).is_err() {
            errors.insert(
                format!("tags[{i}]"),
                "must be 1-64 of A-Z a-z 0-9 - _ . :".into(),
            );
        } else if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    let mut consents = Vec::new();
    for (i, c) in input.consents.iter().enumerate() {
        let channel = Channel::parse(&c.channel);
        if crate::ids::validate_id(&c.site, false).is_err() {
            errors.insert(format!("consents[{i}].site"), "must be a site id".into());
        } else if crate::ids::validate_id(&c.purpose, false).is_err() {
            errors.insert(
                format!("consents[{i}].purpose"),
                "must be 1-64 of A-Z a-z 0-9 - _ . :".into(),
            );
        } else if c.source.trim().is_empty() || c.source.len() > 200 {
            errors.insert(
                format!("consents[{i}].source"),
                "say where the consent was collected (1-200 characters)".into(),
            );
        } else {
            match channel {
                None => {
                    errors.insert(
                        format!("consents[{i}].channel"),
                        "must be email or sms".into(),
                    );
                }
                Some(Channel::Sms) if phone.is_none() => {
                    errors.insert(
                        format!("consents[{i}].channel"),
                        "an SMS consent needs a phone number".into(),
                    );
                }
                Some(ch) => consents.push((
                    c.site.clone(),
                    c.purpose.clone(),
                    ch,
                    c.source.trim().to_owned(),
                )),
            }
        }
    }
    match (email, errors.is_empty()) {
        (Some(email), true) => Ok(ValidContact {
            email,
            phone,
            name,
            gender,
            birthday,
            locale,
            time_zone,
            fields,
            tags,
            test_list: input.test_list,
            consents,
        }),
        _ => Err(errors),
    }
}

/// Attribute names with their own column; custom fields may not shadow them.
pub const STANDARD: [&str; 7] = [
    "email",
    "phone",
    "name",
    "gender",
    "birthday",
    "locale",
    "time_zone",
];

/// The attribute map segments, audience tags and templates read: custom fields (form fields, quiz
/// answers), then the standard attributes that are set, which win. A standard attribute that is
/// not set leaves a custom field of the same name in place: a quiz step named `birthday` is the
/// birthday when no importer said otherwise.
pub fn attributes(
    standard: &[(&str, Option<&str>)],
    custom: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = custom
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, value) in standard {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.insert((*name).to_owned(), v.to_owned());
        }
    }
    out
}

/// The UTC offset of an IANA time zone at `at` (unix seconds), daylight saving included; `None`
/// for an unknown zone.
pub fn utc_offset_seconds(time_zone: &str, at: u64) -> Option<i32> {
    let tz = jiff::tz::TimeZone::get(time_zone).ok()?;
    let ts = jiff::Timestamp::from_second(i64::try_from(at).ok()?).ok()?;
    Some(tz.to_offset(ts).seconds())
}

/// The UTC calendar day of a unix time as `("YYYY-MM-DD", "MM-DD")` (birthdays match on the second).
pub fn utc_date(at: u64) -> Option<(String, String)> {
    let ts = jiff::Timestamp::from_second(i64::try_from(at).ok()?).ok()?;
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    Some((
        format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
        format!("{:02}-{:02}", date.month(), date.day()),
    ))
}

/// SHA-256 (hex) of a normalised address: how imported suppression lists are stored and matched.
pub fn address_hash(normalised_email: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::hex::encode(&Sha256::digest(normalised_email.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> ContactInput {
        serde_json::from_value(json).expect("shape")
    }

    #[test]
    fn a_full_contact_is_normalised() {
        let c = validate_contact(&input(serde_json::json!({
            "email": " Ann@Example.com ", "phone": "+44 20 7946 0958", "name": "Ann", "gender": "Female",
            "birthday": "1990-03-08", "locale": "EN", "time_zone": "Europe/Kyiv",
            "fields": {"shoe_size": "38"}, "tags": ["vip", "vip", "new"], "test_list": true,
            "consents": [{"site": "demo", "purpose": "newsletter", "channel": "email", "source": "checkout"}]
        })))
        .expect("valid");
        assert_eq!(c.email, "ann@example.com");
        assert_eq!(c.phone.as_deref(), Some("+442079460958"));
        assert_eq!(c.gender.as_deref(), Some("female"));
        assert_eq!(c.locale.as_deref(), Some("en"));
        assert_eq!(c.tags, ["vip", "new"]);
        assert_eq!(
            c.consents,
            [(
                "demo".into(),
                "newsletter".into(),
                Channel::Email,
                "checkout".into()
            )]
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = validate_contact(&input(serde_json::json!({
            "email": "nope", "phone": "0123", "birthday": "1990-13-01", "time_zone": "Mars/Base",
            "fields": {"email": "x", "ok": "fine"}, "tags": ["bad tag"],
            "consents": [{"site": "demo", "purpose": "news", "channel": "sms", "source": "x"},
                         {"site": "demo", "purpose": "news", "channel": "fax", "source": "x"}]
        })))
        .expect_err("invalid");
        let names: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "birthday",
                "consents[0].channel",
                "consents[1].channel",
                "email",
                "fields.email",
                "phone",
                "tags[0]",
                "time_zone"
            ]
        );
        assert_eq!(
            validate_contact(&ContactInput::default()).expect_err("invalid")["email"],
            "is required"
        );
    }

    #[test]
    fn time_zones_follow_daylight_saving() {
        // 2026-01-15 and 2026-07-15, noon UTC.
        assert_eq!(
            utc_offset_seconds("Europe/Kyiv", 1_768_478_400),
            Some(2 * 3600)
        );
        assert_eq!(
            utc_offset_seconds("Europe/Kyiv", 1_784_116_800),
            Some(3 * 3600)
        );
        assert_eq!(
            utc_offset_seconds("America/New_York", 1_768_478_400),
            Some(-5 * 3600)
        );
        assert_eq!(utc_offset_seconds("UTC", 0), Some(0));
        assert_eq!(utc_offset_seconds("Nowhere/Else", 0), None);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), Some(("1970-01-01".into(), "01-01".into())));
        assert_eq!(
            utc_date(951_782_400),
            Some(("2000-02-29".into(), "02-29".into()))
        );
        // 2026-11-23T00:00:00Z and the second before it.
        assert_eq!(
            utc_date(1_795_391_999),
            Some(("2026-11-22".into(), "11-22".into()))
        );
        assert_eq!(
            utc_date(1_795_392_000),
            Some(("2026-11-23".into(), "11-23".into()))
        );
    }

    #[test]
    fn standard_attributes_win_over_custom_fields() {
        let custom = BTreeMap::from([
            ("gender".to_owned(), "x".to_owned()),
            ("size".to_owned(), "m".to_owned()),
        ]);
        let map = attributes(&[("gender", Some("female")), ("locale", None)], &custom);
        assert_eq!(map["gender"], "female");
        assert_eq!(map["size"], "m");
        assert!(!map.contains_key("locale"));
    }

    #[test]
    fn a_custom_field_fills_an_empty_standard_attribute() {
        // (standard birthday, custom birthday, what segments and templates see)
        let table = [
            (None, Some("2019-12-02"), Some("2019-12-02")),
            (Some(""), Some("2019-12-02"), Some("2019-12-02")),
            (Some("1990-05-01"), Some("2019-12-02"), Some("1990-05-01")),
            (Some("1990-05-01"), None, Some("1990-05-01")),
            (None, Some(""), None),
            (None, None, None),
        ];
        for (standard, custom, want) in table {
            let custom: BTreeMap<String, String> = custom
                .map(|c| [("birthday".to_owned(), c.to_owned())].into())
                .unwrap_or_default();
            let map = attributes(&[("birthday", standard)], &custom);
            assert_eq!(
                map.get("birthday").map(String::as_str),
                want,
                "{standard:?} {custom:?}"
            );
        }
    }

    #[test]
    fn address_hashes_are_sha256_hex() {
        // printf 'ann@example.com' | sha256sum
        assert_eq!(
            address_hash("ann@example.com"),
            "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476"
        );
    }
}
