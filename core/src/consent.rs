//! The consent ledger's meaning: each (purpose, channel) is granted or not according to its latest
//! entry, and the preference centre turns ticked boxes into new entries, never edits.

use std::collections::BTreeMap;

use crate::site::{Channel, ConsentText, SiteConfig};

/// What a ledger row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given in a form; for a capture, waiting for double opt-in.
    Given,
    /// Double opt-in completed.
    Confirmed,
    Withdrawn,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Given => "given",
            Action::Confirmed => "confirmed",
            Action::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "given" => Some(Action::Given),
            "confirmed" => Some(Action::Confirmed),
            "withdrawn" => Some(Action::Withdrawn),
            _ => None,
        }
    }
}

/// One ledger row, as far as the state is concerned (in `seq` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub purpose: String,
    pub channel: Channel,
    pub action: Action,
}

/// Whether each (purpose, channel) is currently granted: the latest entry decides.
pub fn current(entries: &[Entry]) -> BTreeMap<(String, Channel), bool> {
    let mut state = BTreeMap::new();
    for e in entries {
        state.insert(
            (e.purpose.clone(), e.channel),
            e.action != Action::Withdrawn,
        );
    }
    state
}

/// The consents a capture asks for, as stored on it: `[[purpose, channel, text_version], …]`.
/// Entries with an unknown channel are left out (the capture was validated when stored).
pub fn pending_requests(json: &str) -> Result<Vec<(String, Channel, String)>, serde_json::Error> {
    let rows: Vec<(String, String, String)> = serde_json::from_slice(json.as_bytes())?;
    Ok(rows
        .into_iter()
        .filter_map(|(purpose, channel, version)| {
            Some((purpose, Channel::parse(&channel)?, version))
        })
        .collect())
}

/// The texts a person is asked to confirm, as the site words them: what the confirmation letter
/// and page list, exactly the consents the capture will grant.
pub fn texts_to_confirm<'a>(
    site: &'a SiteConfig,
    requested: &[(String, Channel, String)],
) -> Vec<&'a ConsentText> {
    requested
        .iter()
        .filter_map(|(purpose, channel, _)| site.consent_text(purpose, *channel))
        .collect()
}

/// A new ledger row the preference centre must append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub purpose: String,
    pub channel: Channel,
    pub action: Action,
    pub text_version: String,
}

/// Compares the boxes ticked (`wanted`) with the current state for every consent the site offers.
/// Unticking withdraws; ticking gives, with the text version on show. SMS needs a phone number.
pub fn preference_changes(
    site: &SiteConfig,
    state: &BTreeMap<(String, Channel), bool>,
    wanted: &[(String, Channel)],
    has_phone: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for text in &site.consents {
        let key = (text.purpose.clone(), text.channel);
        let now_granted = state.get(&key).copied().unwrap_or(false);
        let want = wanted.contains(&key) && (text.channel != Channel::Sms || has_phone);
        let action = match (now_granted, want) {
            (false, true) => Action::Given,
            (true, false) => Action::Withdrawn,
            _ => continue,
        };
        changes.push(Change {
            purpose: key.0,
            channel: key.1,
            action,
            text_version: text.version.clone(),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::tests::demo_site;

    fn e(purpose: &str, channel: Channel, action: Action) -> Entry {
        Entry {
            purpose: purpose.into(),
            channel,
            action,
        }
    }

    #[test]
    fn latest_entry_wins() {
        let s = current(&[
            e("newsletter", Channel::Email, Action::Given),
            e("newsletter", Channel::Email, Action::Withdrawn),
            e("birthday_coupon", Channel::Email, Action::Given),
            e("birthday_coupon", Channel::Email, Action::Confirmed),
        ]);
        assert_eq!(s.get(&("newsletter".into(), Channel::Email)), Some(&false));
        assert_eq!(
            s.get(&("birthday_coupon".into(), Channel::Email)),
            Some(&true)
        );
    }

    #[test]
    fn what_a_capture_will_grant() {
        let site = demo_site();
        let requested =
            pending_requests(r#"[["birthday_coupon","email","bc-2026-11"],["x","fax","1"]]"#)
                .expect("parses");
        assert_eq!(
            requested,
            [(
                "birthday_coupon".to_owned(),
                Channel::Email,
                "bc-2026-11".to_owned()
            )]
        );
        let texts = texts_to_confirm(&site, &requested);
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].text, "Send me the birthday coupon by e-mail.");
        assert!(pending_requests("[]").expect("parses").is_empty());
        assert!(pending_requests("{").is_err());
    }

    #[test]
    fn boxes_become_changes() {
        let site = demo_site();
        let state = current(&[e("birthday_coupon", Channel::Email, Action::Confirmed)]);
        let wanted = vec![
            ("newsletter".to_owned(), Channel::Email),
            ("sms_offers".to_owned(), Channel::Sms),
        ];
        let changes = preference_changes(&site, &state, &wanted, false);
        let summary: Vec<(&str, Action)> = changes
            .iter()
            .map(|c| (c.purpose.as_str(), c.action))
            .collect();
        // Coupon unticked -> withdrawn; newsletter ticked -> given; SMS ticked without a phone -> nothing.
        assert_eq!(
            summary,
            [
                ("birthday_coupon", Action::Withdrawn),
                ("newsletter", Action::Given)
            ]
        );
        assert_eq!(changes[1].text_version, "nl-2026-11");
        let with_phone = preference_changes(&site, &state, &wanted, true);
        assert!(with_phone
            .iter()
            .any(|c| c.purpose == "sms_offers" && c.action == Action::Given));
        // Nothing ticked differently: nothing appended.
        let same = vec![("birthday_coupon".to_owned(), Channel::Email)];
        assert!(preference_changes(&site, &state, &same, true).is_empty());
    }
}
