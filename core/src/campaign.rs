//! Campaigns: the status machine and what a marketer sends to create one. A campaign goes
//! draft → tested → approved → scheduled → sending → done, or cancelled from any unfinished state.
//! A test send is what turns a draft into `tested`; only a tested campaign can be approved; editing
//! content sends it back to draft, so what was approved is what goes out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::validate_id;
use crate::policy::SendWindow;
use crate::segment::{self, Rule};
use crate::track::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Tested,
    Approved,
    Scheduled,
    Sending,
    Done,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Draft,
        Status::Tested,
        Status::Approved,
        Status::Scheduled,
        Status::Sending,
        Status::Done,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Tested => "tested",
            Status::Approved => "approved",
            Status::Scheduled => "scheduled",
            Status::Sending => "sending",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What a marketer (or the scheduler) does to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Edit,
    Test,
    Approve,
    Schedule,
    Start,
    Finish,
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Edit => "edit",
            Action::Test => "test",
            Action::Approve => "approve",
            Action::Schedule => "schedule",
            Action::Start => "start",
            Action::Finish => "finish",
            Action::Cancel => "cancel",
        }
    }
}

/// The status after `action`, or `None` when the action is not allowed now.
pub fn transition(from: Status, action: Action) -> Option<Status> {
    use Status::*;
    match (action, from) {
        (Action::Edit, Draft | Tested) => Some(Draft),
        (Action::Test, Draft | Tested) => Some(Tested),
        (Action::Approve, Tested) => Some(Approved),
        (Action::Schedule, Approved) => Some(Scheduled),
        (Action::Start, Scheduled) => Some(Sending),
        (Action::Finish, Sending) => Some(Done),
        (Action::Cancel, Draft | Tested | Approved | Scheduled | Sending) => Some(Cancelled),
        _ => None,
    }
}

/// `PUT /v1/campaigns/{id}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: String,
    pub site: String,
    pub template: String,
    /// Consent purpose the recipients must have given, e.g. `newsletter`.
    pub purpose: String,
    pub segment: serde_json::Value,
    #[serde(default)]
    pub send_window: Option<WindowInput>,
    /// Aggregate-only tracking (no contact ids in open and click tokens).
    #[serde(default)]
    pub anonymous: bool,
    /// Send the template's SMS version to recipients with SMS consent who did not open or click
    /// (as a person: privacy-proxy and scanner events do not count) within this many seconds.
    #[serde(default)]
    pub sms_fallback_after_seconds: Option<u64>,
    /// Send even to contacts who got the same content (by another campaign) within the
    /// duplicate-content window; off by default.
    #[serde(default)]
    pub allow_resend: bool,
}

/// The fingerprint of a letter's content before personalisation: the template's subject and
/// bodies. Two campaigns with the same template content send "the same letter".
pub fn content_fingerprint(
    subject: &str,
    html: &str,
    text: Option<&str>,
    sms: Option<&str>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [Some(subject), Some(html), text, sms] {
        // Length-prefixed, so moving text from one part to another changes the fingerprint.
        let part = part.unwrap_or("");
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    crate::hex::encode(&h.finalize()[..16])
}

/// The id a test run's outcomes, opens and clicks count under: `test:{run}`, never the campaign's
/// (a colleague opening a test letter is no reader of the campaign). `GET
/// /v1/stats/campaigns/test:{run}` reports the run; run ids are 24 hex digits, so this is a valid id.
pub fn test_stats_id(run: &str) -> String {
    format!("test:{run}")
}

/// Longest wait before an SMS fallback (a week).
pub const MAX_SMS_FALLBACK_SECONDS: u64 = 7 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    /// 0 = Monday … 6 = Sunday.
    pub weekdays: Vec<u8>,
    /// Local hours [from, to), e.g. [10, 17].
    pub hours: (u8, u8),
}

impl WindowInput {
    pub fn to_window(&self) -> SendWindow {
        SendWindow {
            weekdays: self.weekdays.clone(),
            hours: self.hours,
        }
    }
}

/// A checked campaign definition.
#[derive(Debug, Clone)]
pub struct ValidCampaign {
    pub segment: Rule,
}

pub fn validate_campaign(input: &CampaignInput) -> Result<ValidCampaign, FieldErrors> {
    let mut errors = FieldErrors::new();
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errors.insert("name".into(), "must be 1-200 characters".into());
    }
    for (field, value) in [
        ("site", &input.site),
        ("template", &input.template),
        ("purpose", &input.purpose),
    ] {
        if let Err(e) = validate_id(value, false) {
            errors.insert(field.into(), e.to_string());
        }
    }
    let segment = match segment::parse(&input.segment) {
        Ok(rule) => Some(rule),
        Err(e) => {
            errors.insert(e.path.clone(), e.problem.into());
            None
        }
    };
    if let Some(w) = &input.send_window {
        if w.weekdays.is_empty() || w.weekdays.iter().any(|d| *d > 6) {
            errors.insert(
                "send_window.weekdays".into(),
                "must list days 0 (Monday) to 6 (Sunday)".into(),
            );
        }
        if w.hours.0 >= w.hours.1 || w.hours.1 > 24 {
            errors.insert(
                "send_window.hours".into(),
                "must be [from, to) local hours with from < to <= 24".into(),
            );
        }
    }
    if input.anonymous && input.sms_fallback_after_seconds.is_some() {
        // The fallback goes to those who did not engage as a person, which anonymous tracking
        // cannot tell: everyone with SMS consent would get it.
        errors.insert(
            "sms_fallback_after_seconds".into(),
            "an anonymous campaign cannot tell who engaged, so it cannot have an SMS fallback"
                .into(),
        );
    } else if input
        .sms_fallback_after_seconds
        .is_some_and(|s| s == 0 || s > MAX_SMS_FALLBACK_SECONDS)
    {
        errors.insert(
            "sms_fallback_after_seconds".into(),
            "must be 1 second to 7 days".into(),
        );
    }
    match (segment, errors.is_empty()) {
        (Some(segment), true) => Ok(ValidCampaign { segment }),
        _ => Err(errors),
    }
}

/// Audience tags on content: attribute → the value a recipient must have. Checked when a template
/// is saved: names and values must be plain.
pub fn validate_audience(audience: &BTreeMap<String, String>) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for (name, value) in audience {
        if validate_id(name, false).is_err() || value.trim().is_empty() || value.len() > 200 {
            errors.insert(
                format!("audience.{name}"),
                "must map an attribute name to a non-empty value".into(),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_status_machine() {
        let cases = [
            (Draft, Action::Test, Some(Tested)),
            (Draft, Action::Approve, None),
            (Tested, Action::Approve, Some(Approved)),
            (Tested, Action::Edit, Some(Draft)),
            (Approved, Action::Edit, None),
            (Approved, Action::Test, None),
            (Approved, Action::Schedule, Some(Scheduled)),
            (Draft, Action::Schedule, None),
            (Scheduled, Action::Start, Some(Sending)),
            (Sending, Action::Finish, Some(Done)),
            (Sending, Action::Cancel, Some(Cancelled)),
            (Done, Action::Cancel, None),
            (Cancelled, Action::Test, None),
        ];
        for (from, action, to) in cases {
            assert_eq!(transition(from, action), to, "{from:?} {action:?}");
        }
        for s in [Draft, Tested, Approved, Scheduled, Sending, Done, Cancelled] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn campaign_fields_are_checked() {
        let input: CampaignInput = serde_json::from_value(serde_json::json!({
            "name": "", "site": "demo", "template": "bad id!", "purpose": "newsletter",
            "segment": {"all": []}, "send_window": {"weekdays": [7], "hours": [17, 10]}
        }))
        .expect("shape");
        let errors = validate_campaign(&input).expect_err("invalid");
        let names: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "name",
                "segment",
                "send_window.hours",
                "send_window.weekdays",
                "template"
            ]
        );
    }

    #[test]
    fn an_anonymous_campaign_has_no_sms_fallback() {
        let input = |anonymous: bool, after: Option<u64>| -> CampaignInput {
            serde_json::from_value(serde_json::json!({
                "name": "Spring", "site": "toy-shop", "template": "spring-letter", "purpose": "newsletter",
                "segment": {"tag": "vip"}, "anonymous": anonymous, "sms_fallback_after_seconds": after
            }))
            .expect("shape")
        };
        // (anonymous, fallback, the fields named)
        let table = [
            (false, Some(3600), vec![]),
            (true, None, vec![]),
            (true, Some(3600), vec!["sms_fallback_after_seconds"]),
            (false, Some(0), vec!["sms_fallback_after_seconds"]),
        ];
        for (anonymous, after, named) in table {
            let got: Vec<String> = match validate_campaign(&input(anonymous, after)) {
                Ok(_) => vec![],
                Err(e) => e.into_keys().collect(),
            };
            assert_eq!(got, named, "anonymous {anonymous}, fallback {after:?}");
        }
    }

    #[test]
    fn content_fingerprints() {
        let a = content_fingerprint("Spring", "<p>Hi {{ contact.name }}</p>", Some("Hi"), None);
        assert_eq!(a.len(), 32);
        assert_eq!(
            a,
            content_fingerprint("Spring", "<p>Hi {{ contact.name }}</p>", Some("Hi"), None),
            "a copy is the same letter"
        );
        assert_ne!(
            a,
            content_fingerprint("Spring!", "<p>Hi {{ contact.name }}</p>", Some("Hi"), None)
        );
        assert_ne!(
            a,
            content_fingerprint("Spring", "<p>Hi {{ contact.name }}</p>", None, Some("Hi"))
        );
        assert_ne!(
            content_fingerprint("ab", "c", None, None),
            content_fingerprint("a", "bc", None, None)
        );
    }
}
