//! What a campaign's letters are waiting for, in words a marketer reads: a campaign whose fan-out
//! finished with every letter deferred has sent nothing *yet*, and says why and when it tries next.

use serde::Serialize;

/// The letters of one campaign in one waiting state for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingGroup {
    /// `deferred` (quiet hours, caps, send window, throttles), `retrying` (a transport failure),
    /// `waiting` (an SMS fallback waiting for its check) or `sending` (being delivered now).
    pub state: String,
    /// The stored reason code (`quiet_hours`, `transport`, …); empty when none was stored.
    pub reason: String,
    pub letters: u64,
    /// The earliest time one of them is tried again (unix seconds), if known.
    pub next_at: Option<u64>,
}

/// Where a campaign's delivery stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub groups: Vec<WaitingGroup>,
}

/// `delivery.state` in the campaign API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not started: draft, tested, approved or scheduled.
    NotStarted,
    /// The fan-out is still going through the audience.
    FanningOut,
    /// The fan-out is over, and some letters wait for their time (or their retry).
    Waiting,
    /// Nothing is left to send.
    Complete,
    /// Cancelled: nothing more goes out.
    Cancelled,
}

impl Waiting {
    /// Letters not yet delivered nor given up.
    pub fn total(&self) -> u64 {
        self.groups.iter().map(|g| g.letters).sum()
    }

    /// The earliest next attempt over all groups.
    pub fn next_attempt_at(&self) -> Option<u64> {
        self.groups.iter().filter_map(|g| g.next_at).min()
    }

    /// The state a campaign with this `status` (`core::campaign::Status` as text) is in.
    pub fn state(&self, status: &str) -> DeliveryState {
        match status {
            "sending" => DeliveryState::FanningOut,
            "done" if self.total() > 0 => DeliveryState::Waiting,
            "done" => DeliveryState::Complete,
            "cancelled" => DeliveryState::Cancelled,
            _ => DeliveryState::NotStarted,
        }
    }

    /// One sentence for the top of the campaign page, or `None` when nothing waits.
    /// `sent` is the number of letters delivered so far.
    pub fn summary(&self, sent: u64, now: u64) -> Option<String> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        // Largest group first: the reason that holds most letters back leads.
        let mut groups: Vec<&WaitingGroup> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.letters.cmp(&a.letters).then(a.reason.cmp(&b.reason)));
        let why = groups
            .iter()
            .map(|g| format!("{} {}", g.letters, reason_in_words(&g.state, &g.reason)))
            .collect::<Vec<_>>()
            .join("; ");
        let next = match self.next_attempt_at() {
            Some(at) if at > now => format!(" Next attempt {}.", in_words(at - now)),
            Some(_) => " Next attempt at the next tick (within a minute).".to_owned(),
            None => String::new(),
        };
        Some(format!(
            "{sent} sent so far; {total} {} waiting: {why}.{next}",
            if total == 1 {
                "letter is"
            } else {
                "letters are"
            }
        ))
    }
}

/// A stored reason code in words (skip, defer, retry and failure reasons alike). `state` tells a
/// retry's reason from a deferral's.
pub fn reason_in_words(state: &str, reason: &str) -> &'static str {
    match (state, reason) {
        (_, "quiet_hours") => "in the recipient's quiet hours (night where they live)",
        (_, "send_window") => "outside the campaign's send window",
        (_, "frequency_cap") => "over the frequency cap (letters per person per period)",
        (_, "domain_throttle") => "over the hourly share of their mailbox provider",
        ("waiting", _) => "wait for the e-mail's engagement check before an SMS fallback",
        ("sending", _) => "being delivered now",
        (_, "transport") => "retried after the mail server or provider did not take them",
        (_, "not_on_test_list") => "not on the test list",
        (_, "suppressed") => "on the suppression list",
        (_, "no_consent") => "without consent for this purpose",
        (_, "audience_mismatch") => "outside the template's audience",
        (_, "engaged") => "already engaged with the e-mail (no SMS needed)",
        (_, "no_phone") => "without a phone number",
        (_, "unconfirmed") => "never confirmed their sign-up",
        (_, "already_confirmed") => "confirmed already",
        (_, "daily_limit") => "got a confirmation letter within a day",
        (_, "duplicate_content") => "got the same content recently",
        (_, "render_error") => "could not be rendered",
        (_, "bounced") => "bounced",
        (_, "sms_refused") => "refused by the SMS provider",
        (_, "outcome_unknown") => "left with an unknown outcome (never sent twice)",
        ("retrying", _) => "retried after a transient failure",
        _ => "for another reason",
    }
}

/// A duration ahead, roughly: "in 5 minutes", "in 3 hours", "in 2 days".
fn in_words(seconds: u64) -> String {
    let (n, unit) = match seconds {
        0..=7_199 => (seconds.div_ceil(60).max(1), "minute"),
        7_200..=172_799 => (seconds / 3600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("in {n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(state: &str, reason: &str, letters: u64, next_at: Option<u64>) -> WaitingGroup {
        WaitingGroup {
            state: state.into(),
            reason: reason.into(),
            letters,
            next_at,
        }
    }

    #[test]
    fn states_follow_status_and_what_waits() {
        let none = Waiting::default();
        let some = Waiting {
            groups: vec![group("deferred", "quiet_hours", 2, Some(100))],
        };
        let cases = [
            (&none, "draft", DeliveryState::NotStarted),
            (&none, "scheduled", DeliveryState::NotStarted),
            (&some, "sending", DeliveryState::FanningOut),
            (&some, "done", DeliveryState::Waiting),
            (&none, "done", DeliveryState::Complete),
            (&some, "cancelled", DeliveryState::Cancelled),
        ];
        for (w, status, want) in cases {
            assert_eq!(w.state(status), want, "{status} with {}", w.total());
        }
    }

    #[test]
    fn the_summary_names_counts_reasons_and_the_next_attempt() {
        let now = 1_000_000;
        let w = Waiting {
            groups: vec![
                group("deferred", "frequency_cap", 1, Some(now + 7 * 3600)),
                group("deferred", "quiet_hours", 3, Some(now + 5 * 3600 + 59)),
            ],
        };
        assert_eq!(w.total(), 4);
        assert_eq!(w.next_attempt_at(), Some(now + 5 * 3600 + 59));
        assert_eq!(
            w.summary(0, now).as_deref(),
            Some(
                "0 sent so far; 4 letters are waiting: 3 in the recipient's quiet hours (night \
where they live); 1 over the frequency cap (letters per person per period). Next attempt in 5 hours."
            )
        );
        let due = Waiting {
            groups: vec![group("retrying", "transport", 1, Some(now - 5))],
        };
        assert_eq!(
            due.summary(7, now).as_deref(),
            Some(
                "7 sent so far; 1 letter is waiting: 1 retried after the mail server or provider \
did not take them. Next attempt at the next tick (within a minute)."
            )
        );
        assert_eq!(Waiting::default().summary(5, now), None);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        for (s, want) in [
            (1, "in 1 minute"),
            (60, "in 1 minute"),
            (61, "in 2 minutes"),
            (3_599, "in 60 minutes"),
            (7_200, "in 2 hours"),
            (86_399, "in 23 hours"),
            (172_800, "in 2 days"),
        ] {
            assert_eq!(in_words(s), want, "{s}");
        }
    }

    #[test]
    fn every_stored_reason_has_words() {
        // The codes `as_str` of core::policy stores, and the sending pipeline's own.
        use crate::policy::{DeferReason, SkipReason};
        let skips = [
            SkipReason::NotOnTestList,
            SkipReason::Suppressed,
            SkipReason::NoConsent,
            SkipReason::AudienceMismatch {
                attribute: "gender".into(),
            },
            SkipReason::Engaged,
            SkipReason::NoPhone,
            SkipReason::Unconfirmed,
            SkipReason::AlreadyConfirmed,
            SkipReason::DailyLimit,
            SkipReason::DuplicateContent,
        ];
        let defers = [
            DeferReason::SendWindow,
            DeferReason::QuietHours,
            DeferReason::FrequencyCap,
            DeferReason::DomainThrottle,
        ];
        let codes = skips
            .iter()
            .map(|s| s.as_str())
            .chain(defers.iter().map(|d| d.as_str()))
            .chain([
                "transport",
                "render_error",
                "bounced",
                "sms_refused",
                "outcome_unknown",
            ]);
        for code in codes {
            assert_ne!(
                reason_in_words("skipped", code),
                "for another reason",
                "{code}"
            );
        }
    }
}
