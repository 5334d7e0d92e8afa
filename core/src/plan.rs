//! Planning a send: for a chunk of recipients of one [`Mailing`] and the facts the adapter read
//! about them, what happens to each — nothing (the key is settled), a skip with its reason, a
//! deferral until a time, or a send with what the claim must still re-check. Every rule that
//! decides lives here or in [`crate::policy`]; the adapter only gathers facts, claims, delivers
//! and records (plan → execute).
//!
//! Rules decided here on top of [`crate::policy::decide`]:
//! - a send key whose state is final, or that another consumer is delivering, is left alone;
//! - consent counts only once the address is confirmed (double opt-in or an importer's word);
//! - an SMS fallback skips who engaged with the e-mail as a person, and who has no phone;
//! - per-domain throttles apply to what the policy would send, counting this chunk's own sends;
//! - double opt-in letters go through [`crate::policy::decide_optin`];
//! - the caps a claim re-checks atomically (so concurrent consumers cannot both take the last
//!   slot): the contact's frequency caps, or one confirmation letter per address per day.

use std::collections::BTreeMap;

use crate::consent::{current, Entry};
use crate::policy::{
    cap_release, decide, decide_optin, domain_throttle, Decision, DeferReason, Limits, Mailing,
    OptinFacts, OptinLetter, Recipient, SendKind, SkipReason,
};
use crate::sendkey::KeyState;

/// Within this many seconds, one confirmation letter per address, whichever site asked.
pub const CONFIRMATIONS_PER_ADDRESS_WINDOW: u64 = 86_400;

/// What the adapter read about one recipient, just now.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The state of this mailing's send key for the recipient, if it exists.
    pub key: Option<KeyState>,
    /// The address is confirmed (double opt-in, or imported as confirmed).
    pub address_confirmed: bool,
    /// Opt-in letters: the capture the letter is about is confirmed.
    pub capture_confirmed: bool,
    /// The consent ledger for the mailing's site, in ledger order.
    pub ledger: &'a [Entry],
    /// On the suppression list, or the address on an imported one.
    pub suppressed: bool,
    pub attributes: BTreeMap<String, String>,
    pub on_test_list: bool,
    /// Got the same content from another campaign within the duplicate-content window.
    pub got_this_content: bool,
    /// Unix seconds of recent audience sends on this channel (sent or being sent).
    pub recent_sends: &'a [u64],
    pub utc_offset_seconds: i32,
    pub rfm_segment: Option<&'a str>,
    /// SMS fallback: opened or clicked the e-mail as a person.
    pub engaged: bool,
    pub has_phone: bool,
    /// The address's domain, lower-case (see [`crate::policy::mail_domain`]).
    pub mail_domain: &'a str,
}

/// Per-domain hourly throttles (`DOMAIN_THROTTLES`) and what each domain got this hour so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainBudget {
    pub limits: BTreeMap<String, u32>,
    pub sent_this_hour: BTreeMap<String, u32>,
}

/// What to do for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The key is final, or another consumer is delivering it: nothing to do, nothing to count.
    AlreadyDone,
    Skip(SkipReason),
    /// Wait until `until` (unix seconds); never dropped.
    Defer {
        until: u64,
        reason: DeferReason,
    },
    /// Claim the key and deliver. The claim re-checks `caps` (window seconds, most sends) in the
    /// same statement, and `domain`, when throttled, has a slot reserved first.
    Send {
        caps: Vec<(u64, usize)>,
        domain: Option<String>,
    },
}

impl Step {
    /// The outcome a skip or deferral is recorded with: (key state, reason, due time).
    pub fn record(&self) -> Option<(KeyState, &'static str, Option<u64>)> {
        match self {
            Step::Skip(reason) => Some((KeyState::Skipped, reason.as_str(), None)),
            Step::Defer { until, reason } => {
                Some((KeyState::Deferred, reason.as_str(), Some(*until)))
            }
            Step::AlreadyDone | Step::Send { .. } => None,
        }
    }
}

/// Plans a chunk: one step per recipient, in order.
pub fn plan(
    mailing: &Mailing<'_>,
    recipients: &[Facts<'_>],
    limits: &Limits,
    domains: &DomainBudget,
    now: u64,
) -> Vec<Step> {
    // This chunk's own planned sends count against each throttled domain's hour.
    let mut planned: BTreeMap<&str, u32> = BTreeMap::new();
    recipients
        .iter()
        .map(|to| {
            let step = plan_one(mailing, to, limits, now);
            let Step::Send { caps, .. } = step else {
                return step;
            };
            let Some(&limit) = domains.limits.get(to.mail_domain) else {
                return Step::Send { caps, domain: None };
            };
            let taken = domains
                .sent_this_hour
                .get(to.mail_domain)
                .copied()
                .unwrap_or(0)
                + planned.get(to.mail_domain).copied().unwrap_or(0);
            match domain_throttle(Some(limit), taken, now) {
                Some(until) => Step::Defer {
                    until,
                    reason: DeferReason::DomainThrottle,
                },
                None => {
                    *planned.entry(to.mail_domain).or_default() += 1;
                    Step::Send {
                        caps,
                        domain: Some(to.mail_domain.to_owned()),
                    }
                }
            }
        })
        .collect()
}

fn plan_one(mailing: &Mailing<'_>, to: &Facts<'_>, limits: &Limits, now: u64) -> Step {
    // Final, or being delivered elsewhere: never touched again, whatever else changed.
    if to.key.is_some_and(KeyState::is_settled) {
        return Step::AlreadyDone;
    }
    if let SendKind::Optin(letter) = mailing.kind {
        let facts = OptinFacts {
            capture_confirmed: to.capture_confirmed,
            suppressed: to.suppressed,
        };
        return match decide_optin(letter, facts) {
            Decision::Send => {
                let caps = claim_caps(mailing, to, limits);
                // One confirmation per address per day: another went (or is going) out.
                if cap_release(to.recent_sends, &caps, now).is_some() {
                    return Step::Skip(SkipReason::DailyLimit);
                }
                Step::Send { caps, domain: None }
            }
            other => from_decision(other),
        };
    }
    if mailing.sms_fallback {
        if to.engaged {
            return Step::Skip(SkipReason::Engaged);
        }
        if !to.has_phone {
            return Step::Skip(SkipReason::NoPhone);
        }
    }
    // Consent counts once the address is confirmed: a pending sign-up's ledger grants nothing.
    let consents = if to.address_confirmed {
        current(to.ledger)
    } else {
        BTreeMap::new()
    };
    let recipient = Recipient {
        suppressed: to.suppressed,
        consents: &consents,
        attributes: &to.attributes,
        on_test_list: to.on_test_list,
        got_this_content: to.got_this_content,
        recent_sends: to.recent_sends,
        utc_offset_seconds: to.utc_offset_seconds,
        rfm_segment: to.rfm_segment,
    };
    match decide(mailing, &recipient, limits, now) {
        Decision::Send => Step::Send {
            caps: claim_caps(mailing, to, limits),
            domain: None,
        },
        other => from_decision(other),
    }
}

fn from_decision(d: Decision) -> Step {
    match d {
        Decision::Skip(reason) => Step::Skip(reason),
        Decision::Defer { until, reason } => Step::Defer { until, reason },
        Decision::Send => Step::Send {
            caps: Vec::new(),
            domain: None,
        },
    }
}

/// The caps a claim re-checks in its own statement: tests have none (the marketer is waiting), a
/// confirmation letter one per address per day, delivery letters none, audience mail the
/// contact's frequency caps.
pub fn claim_caps(mailing: &Mailing<'_>, to: &Facts<'_>, limits: &Limits) -> Vec<(u64, usize)> {
    match mailing.kind {
        SendKind::Test | SendKind::Optin(OptinLetter::Delivery) => Vec::new(),
        SendKind::Optin(OptinLetter::Confirmation) => vec![(CONFIRMATIONS_PER_ADDRESS_WINDOW, 1)],
        SendKind::Campaign | SendKind::ChainStep => limits.caps_for(to.rfm_segment).to_vec(),
    }
}

/// Which earlier sends a claim's caps count (see the sending worker's claim statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapScope {
    /// Campaign and chain letters to the contact on this channel.
    AudienceMail,
    /// Letters of the same kind to the contact (confirmation letters, across sites).
    SameKind,
}

impl Mailing<'_> {
    pub fn cap_scope(&self) -> CapScope {
        match self.kind {
            SendKind::Optin(_) => CapScope::SameKind,
            _ => CapScope::AudienceMail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Action;
    use crate::policy::SendWindow;
    use crate::site::Channel;

    // 2026-11-24 is a Tuesday. 12:00 UTC.
    const TUE_NOON: u64 = 1_795_521_600;
    const NEXT_HOUR: u64 = TUE_NOON + 3600;

    fn mailing(kind: SendKind) -> Mailing<'static> {
        Mailing {
            kind,
            purpose: "newsletter",
            channel: Channel::Email,
            audience_tags: &[],
            window: None,
            allow_resend: false,
            sms_fallback: false,
        }
    }

    fn sms_fallback() -> Mailing<'static> {
        Mailing {
            channel: Channel::Sms,
            sms_fallback: true,
            ..mailing(SendKind::Campaign)
        }
    }

    fn entry(channel: Channel, action: Action) -> Entry {
        Entry {
            purpose: "newsletter".into(),
            channel,
            action,
        }
    }

    const CAPS: [(u64, usize); 2] = [(16 * 3600, 1), (7 * 86_400, 3)];

    fn send(domain: Option<&str>) -> Step {
        Step::Send {
            caps: CAPS.to_vec(),
            domain: domain.map(str::to_owned),
        }
    }

    #[test]
    fn table() {
        let email_given = [entry(Channel::Email, Action::Given)];
        let both_given = [
            entry(Channel::Email, Action::Given),
            entry(Channel::Sms, Action::Given),
        ];
        let withdrawn = [
            entry(Channel::Email, Action::Given),
            entry(Channel::Email, Action::Withdrawn),
        ];
        let two_hours_ago = [TUE_NOON - 7200];
        let confirmed = |ledger| Facts {
            address_confirmed: true,
            ledger,
            has_phone: true,
            mail_domain: "example.org",
            ..Facts::default()
        };
        let campaign = mailing(SendKind::Campaign);
        let cases: Vec<(&str, Mailing<'_>, Facts<'_>, Step)> = vec![
            (
                "confirmed, consent given",
                campaign.clone(),
                confirmed(&email_given),
                send(None),
            ),
            (
                "consent counts only once the address is confirmed",
                campaign.clone(),
                Facts {
                    address_confirmed: false,
                    ..confirmed(&email_given)
                },
                Step::Skip(SkipReason::NoConsent),
            ),
            (
                "a withdrawal is the latest word",
                campaign.clone(),
                confirmed(&withdrawn),
                Step::Skip(SkipReason::NoConsent),
            ),
            (
                "sent already: nothing to do, even if suppressed since",
                campaign.clone(),
                Facts {
                    key: Some(KeyState::Sent),
                    suppressed: true,
                    ..confirmed(&email_given)
                },
                Step::AlreadyDone,
            ),
            (
                "another consumer is delivering it",
                campaign.clone(),
                Facts {
                    key: Some(KeyState::Sending),
                    ..confirmed(&email_given)
                },
                Step::AlreadyDone,
            ),
            (
                "skipped before: stays skipped",
                campaign.clone(),
                Facts {
                    key: Some(KeyState::Skipped),
                    ..confirmed(&email_given)
                },
                Step::AlreadyDone,
            ),
            (
                "a deferred key is planned again",
                campaign.clone(),
                Facts {
                    key: Some(KeyState::Deferred),
                    ..confirmed(&email_given)
                },
                send(None),
            ),
            (
                "a retrying key is planned again",
                campaign.clone(),
                Facts {
                    key: Some(KeyState::Retrying),
                    ..confirmed(&email_given)
                },
                send(None),
            ),
            (
                "frequency cap",
                campaign.clone(),
                Facts {
                    recent_sends: &two_hours_ago,
                    ..confirmed(&email_given)
                },
                Step::Defer {
                    until: TUE_NOON + 21 * 3600,
                    reason: DeferReason::FrequencyCap,
                },
            ),
            (
                "suppressed",
                campaign.clone(),
                Facts {
                    suppressed: true,
                    ..confirmed(&email_given)
                },
                Step::Skip(SkipReason::Suppressed),
            ),
            (
                "a test ignores caps and claims without any",
                mailing(SendKind::Test),
                Facts {
                    on_test_list: true,
                    recent_sends: &two_hours_ago,
                    ..confirmed(&email_given)
                },
                Step::Send {
                    caps: vec![],
                    domain: None,
                },
            ),
            (
                "SMS fallback, not engaged, phone, SMS consent",
                sms_fallback(),
                confirmed(&both_given),
                send(None),
            ),
            (
                "SMS fallback to someone who engaged",
                sms_fallback(),
                Facts {
                    engaged: true,
                    ..confirmed(&both_given)
                },
                Step::Skip(SkipReason::Engaged),
            ),
            (
                "SMS fallback without a phone",
                sms_fallback(),
                Facts {
                    has_phone: false,
                    ..confirmed(&both_given)
                },
                Step::Skip(SkipReason::NoPhone),
            ),
            (
                "SMS fallback without SMS consent",
                sms_fallback(),
                confirmed(&email_given),
                Step::Skip(SkipReason::NoConsent),
            ),
            (
                "SMS fallback already sent, engaged since",
                sms_fallback(),
                Facts {
                    key: Some(KeyState::Sent),
                    engaged: true,
                    ..confirmed(&both_given)
                },
                Step::AlreadyDone,
            ),
            (
                "confirmation letter to an unconfirmed sign-up: one per address per day",
                mailing(SendKind::Optin(OptinLetter::Confirmation)),
                Facts::default(),
                Step::Send {
                    caps: vec![(86_400, 1)],
                    domain: None,
                },
            ),
            (
                "a second confirmation letter to the address within a day",
                mailing(SendKind::Optin(OptinLetter::Confirmation)),
                Facts {
                    recent_sends: &two_hours_ago,
                    ..Facts::default()
                },
                Step::Skip(SkipReason::DailyLimit),
            ),
            (
                "confirmation letter to a suppressed address",
                mailing(SendKind::Optin(OptinLetter::Confirmation)),
                Facts {
                    suppressed: true,
                    ..Facts::default()
                },
                Step::Skip(SkipReason::Suppressed),
            ),
            (
                "confirmation letter, already confirmed",
                mailing(SendKind::Optin(OptinLetter::Confirmation)),
                Facts {
                    capture_confirmed: true,
                    ..Facts::default()
                },
                Step::Skip(SkipReason::AlreadyConfirmed),
            ),
            (
                "delivery before confirmation",
                mailing(SendKind::Optin(OptinLetter::Delivery)),
                Facts::default(),
                Step::Skip(SkipReason::Unconfirmed),
            ),
            (
                "delivery after confirmation, no caps",
                mailing(SendKind::Optin(OptinLetter::Delivery)),
                Facts {
                    capture_confirmed: true,
                    ..Facts::default()
                },
                Step::Send {
                    caps: vec![],
                    domain: None,
                },
            ),
            (
                "a delivery letter sent already",
                mailing(SendKind::Optin(OptinLetter::Delivery)),
                Facts {
                    capture_confirmed: true,
                    key: Some(KeyState::Sent),
                    ..Facts::default()
                },
                Step::AlreadyDone,
            ),
        ];
        for (name, m, facts, want) in cases {
            let got = plan(
                &m,
                std::slice::from_ref(&facts),
                &Limits::default(),
                &DomainBudget::default(),
                TUE_NOON,
            );
            assert_eq!(got, vec![want], "{name}");
        }
    }

    #[test]
    fn domain_throttles_count_the_chunk_itself() {
        let given = [entry(Channel::Email, Action::Given)];
        let at = |domain| Facts {
            address_confirmed: true,
            ledger: &given,
            mail_domain: domain,
            ..Facts::default()
        };
        let domains = DomainBudget {
            limits: BTreeMap::from([("gmail.com".into(), 3), ("yahoo.com".into(), 1)]),
            sent_this_hour: BTreeMap::from([("gmail.com".into(), 1)]),
        };
        let recipients = [
            at("gmail.com"),
            at("yahoo.com"),
            at("gmail.com"),
            at("example.org"),
            at("gmail.com"),
            at("yahoo.com"),
        ];
        let throttled = Step::Defer {
            until: NEXT_HOUR,
            reason: DeferReason::DomainThrottle,
        };
        assert_eq!(
            plan(
                &mailing(SendKind::Campaign),
                &recipients,
                &Limits::default(),
                &domains,
                TUE_NOON
            ),
            vec![
                send(Some("gmail.com")),
                send(Some("yahoo.com")),
                send(Some("gmail.com")),
                send(None),
                throttled.clone(), // 1 this hour + 2 in the chunk = 3
                throttled,
            ]
        );
    }

    #[test]
    fn a_throttled_domain_does_not_override_a_skip_or_window() {
        let given = [entry(Channel::Email, Action::Given)];
        let window = SendWindow {
            weekdays: vec![0],
            hours: (10, 17),
        };
        let m = Mailing {
            window: Some(&window),
            ..mailing(SendKind::Campaign)
        };
        let domains = DomainBudget {
            limits: BTreeMap::from([("gmail.com".into(), 0)]),
            ..DomainBudget::default()
        };
        let facts = Facts {
            address_confirmed: true,
            ledger: &given,
            mail_domain: "gmail.com",
            ..Facts::default()
        };
        let got = plan(&m, &[facts], &Limits::default(), &domains, TUE_NOON);
        assert!(
            matches!(
                got[0],
                Step::Defer {
                    reason: DeferReason::SendWindow,
                    ..
                }
            ),
            "{got:?}"
        );
    }

    #[test]
    fn records_and_scopes() {
        assert_eq!(
            Step::Skip(SkipReason::NoPhone).record(),
            Some((KeyState::Skipped, "no_phone", None))
        );
        assert_eq!(
            Step::Defer {
                until: 7,
                reason: DeferReason::QuietHours
            }
            .record(),
            Some((KeyState::Deferred, "quiet_hours", Some(7)))
        );
        assert_eq!(Step::AlreadyDone.record(), None);
        assert_eq!(
            mailing(SendKind::Optin(OptinLetter::Confirmation)).cap_scope(),
            CapScope::SameKind
        );
        assert_eq!(
            mailing(SendKind::ChainStep).cap_scope(),
            CapScope::AudienceMail
        );
        let kinds = [
            (SendKind::Campaign, "campaign"),
            (SendKind::Test, "test"),
            (SendKind::ChainStep, "chain"),
            (SendKind::Optin(OptinLetter::Confirmation), "confirmation"),
            (SendKind::Optin(OptinLetter::Delivery), "delivery"),
        ];
        for (kind, s) in kinds {
            assert_eq!(kind.as_str(), s);
        }
    }
}
