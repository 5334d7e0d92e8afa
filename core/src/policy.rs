//! Send-time guardrails: the checks every message of every campaign and chain passes just before
//! it is sent. Pure: the adapter gathers the facts (suppression, consent, recent sends, the
//! recipient's local time) and acts on the decision. Every skip and deferral carries its reason,
//! so it can be recorded and shown in stats.

use std::collections::BTreeMap;

use crate::site::Channel;

/// What kind of send this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// A campaign to its real audience (needs approval upstream).
    Campaign,
    /// A test send: only ever to the test list.
    Test,
    /// A step of a trigger chain.
    ChainStep,
    /// A double opt-in letter (decided by [`decide_optin`], not by [`decide`]).
    Optin(OptinLetter),
}

impl SendKind {
    /// The `sends.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::Campaign => "campaign",
            SendKind::Test => "test",
            SendKind::ChainStep => "chain",
            SendKind::Optin(OptinLetter::Confirmation) => "confirmation",
            SendKind::Optin(OptinLetter::Delivery) => "delivery",
        }
    }
}

/// The message about to be sent, the same for every recipient.
#[derive(Debug, Clone)]
pub struct Mailing<'a> {
    pub kind: SendKind,
    pub purpose: &'a str,
    pub channel: Channel,
    /// Attribute constraints the content was written for, e.g. `("gender", "female")`.
    pub audience_tags: &'a [(String, String)],
    /// Allowed local send window, if the campaign has one.
    pub window: Option<&'a SendWindow>,
    /// The campaign may go to contacts who got the same content recently (see
    /// [`Recipient::got_this_content`]).
    pub allow_resend: bool,
    /// The SMS version of a campaign e-mail, for those who did not engage with the e-mail.
    pub sms_fallback: bool,
}

/// The recipient, as the adapter found them just now.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    /// Unsubscribed, bounced, complained or imported as suppressed: never sent to again.
    pub suppressed: bool,
    /// Current consent per (purpose, channel) (see [`crate::consent::current`]).
    pub consents: &'a BTreeMap<(String, Channel), bool>,
    pub attributes: &'a BTreeMap<String, String>,
    pub on_test_list: bool,
    /// Got a letter with the same content (another campaign, a copy) within the duplicate-content
    /// window.
    pub got_this_content: bool,
    /// Unix seconds of this contact's recent sends on this channel, any campaign or chain.
    pub recent_sends: &'a [u64],
    /// The contact's UTC offset now, in seconds (from their time zone; the adapter resolves DST).
    pub utc_offset_seconds: i32,
    /// RFM segment (`core::rfm`), for per-segment caps; `None` for contacts who never bought.
    pub rfm_segment: Option<&'a str>,
}

/// Cross-campaign frequency caps and quiet hours (configurable as JSON, e.g.
/// `{"caps": [[57600, 1], [604800, 3]], "quiet_hours": [21, 9],
///   "segment_caps": {"at_risk": [[604800, 1]], "champions": [[28800, 1], [604800, 5]]}}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// (window seconds, most sends in that window), e.g. 1 per 16 h and 3 per 7 days.
    pub caps: Vec<(u64, usize)>,
    /// Local quiet hours [start, end) in hours, wrapping midnight, e.g. (21, 9).
    pub quiet_hours: (u8, u8),
    /// Caps for contacts in an RFM segment, instead of `caps` (e.g. fewer letters to customers at
    /// risk of leaving, more to champions).
    pub segment_caps: std::collections::BTreeMap<String, Vec<(u64, usize)>>,
}

impl Limits {
    /// The caps that apply to a contact in `segment`.
    pub fn caps_for(&self, segment: Option<&str>) -> &[(u64, usize)] {
        segment
            .and_then(|s| self.segment_caps.get(s))
            .unwrap_or(&self.caps)
    }

    /// The longest cap window of any segment: how far back recent sends must be read.
    pub fn longest_window(&self) -> u64 {
        self.caps
            .iter()
            .chain(self.segment_caps.values().flatten())
            .map(|(w, _)| *w)
            .max()
            .unwrap_or(0)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            caps: vec![(16 * 3600, 1), (7 * 86_400, 3)],
            quiet_hours: (21, 9),
            segment_caps: Default::default(),
        }
    }
}

/// Local days and hours a campaign may send in, e.g. B2B Tuesday-Thursday 10-17.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    /// Allowed weekdays, 0 = Monday.
    pub weekdays: Vec<u8>,
    /// Local hours [start, end).
    pub hours: (u8, u8),
}

/// Why a message is not sent at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    NotOnTestList,
    Suppressed,
    NoConsent,
    AudienceMismatch {
        attribute: String,
    },
    /// An SMS fallback to someone who opened or clicked the e-mail as a person.
    Engaged,
    /// An SMS to a contact without a phone number.
    NoPhone,
    /// A delivery letter for a capture that was never confirmed.
    Unconfirmed,
    /// A confirmation letter for a capture that is confirmed already.
    AlreadyConfirmed,
    /// Another confirmation letter went to this address within a day.
    DailyLimit,
    /// The same content (a copy of a campaign) reached this contact within the window.
    DuplicateContent,
}

/// Why a message waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    SendWindow,
    QuietHours,
    FrequencyCap,
    /// The recipient's mail domain has had its hourly share (see [`domain_throttle`]).
    DomainThrottle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Send,
    Skip(SkipReason),
    /// Try again at `until` (unix seconds); never dropped.
    Defer {
        until: u64,
        reason: DeferReason,
    },
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::NotOnTestList => "not_on_test_list",
            SkipReason::Suppressed => "suppressed",
            SkipReason::NoConsent => "no_consent",
            SkipReason::AudienceMismatch { .. } => "audience_mismatch",
            SkipReason::Engaged => "engaged",
            SkipReason::NoPhone => "no_phone",
            SkipReason::Unconfirmed => "unconfirmed",
            SkipReason::AlreadyConfirmed => "already_confirmed",
            SkipReason::DailyLimit => "daily_limit",
            SkipReason::DuplicateContent => "duplicate_content",
        }
    }
}

impl DeferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::SendWindow => "send_window",
            DeferReason::QuietHours => "quiet_hours",
            DeferReason::FrequencyCap => "frequency_cap",
            DeferReason::DomainThrottle => "domain_throttle",
        }
    }
}

/// Decides one message for one recipient at `now` (unix seconds).
pub fn decide(msg: &Mailing<'_>, to: &Recipient<'_>, limits: &Limits, now: u64) -> Decision {
    // A test goes to the test list and nowhere else, whatever else holds.
    if msg.kind == SendKind::Test && !to.on_test_list {
        return Decision::Skip(SkipReason::NotOnTestList);
    }
    if to.suppressed {
        return Decision::Skip(SkipReason::Suppressed);
    }
    if !to
        .consents
        .get(&(msg.purpose.to_owned(), msg.channel))
        .copied()
        .unwrap_or(false)
    {
        return Decision::Skip(SkipReason::NoConsent);
    }
    for (attribute, wanted) in msg.audience_tags {
        // Unknown counts as a mismatch: a greeting written for one group is not a guess.
        if to.attributes.get(attribute) != Some(wanted) {
            return Decision::Skip(SkipReason::AudienceMismatch {
                attribute: attribute.clone(),
            });
        }
    }
    // A copy of a campaign is the same letter: once is enough, unless the marketer says otherwise.
    if msg.kind == SendKind::Campaign && to.got_this_content && !msg.allow_resend {
        return Decision::Skip(SkipReason::DuplicateContent);
    }
    // Tests are exempt from timing rules: the marketer is waiting for them.
    if msg.kind == SendKind::Test {
        return Decision::Send;
    }
    let local = LocalClock::new(to.utc_offset_seconds);
    let mut earliest = now;
    let mut reason = None;
    // Timing rules can push each other (a window opening inside quiet hours): iterate to a fixed point.
    for _ in 0..16 {
        let at = local.at(earliest);
        let next = if let Some(w) = msg.window.filter(|w| !w.allows(at.weekday, at.hour)) {
            Some((
                local.next_allowed(earliest, |wd, h| w.allows(wd, h)),
                DeferReason::SendWindow,
            ))
        } else if in_quiet_hours(at.hour, limits.quiet_hours) {
            Some((
                local.next_allowed(earliest, |_, h| !in_quiet_hours(h, limits.quiet_hours)),
                DeferReason::QuietHours,
            ))
        } else {
            cap_release(to.recent_sends, limits.caps_for(to.rfm_segment), earliest)
                .map(|t| (t, DeferReason::FrequencyCap))
        };
        match next {
            Some((t, r)) if t > earliest => {
                earliest = t;
                reason.get_or_insert(r);
            }
            _ => break,
        }
    }
    match reason {
        Some(reason) => Decision::Defer {
            until: earliest,
            reason,
        },
        None => Decision::Send,
    }
}

/// The two letters of double opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptinLetter {
    /// "Please confirm", after a capture.
    Confirmation,
    /// The promised item, after confirmation.
    Delivery,
}

/// What the adapter found before a double opt-in letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptinFacts {
    pub capture_confirmed: bool,
    /// The contact is on the suppression list, or the address on an imported one.
    pub suppressed: bool,
}

/// Decides a double opt-in letter: nothing to a suppressed address (a confirmation letter would
/// be one more unwanted message, and a list-bomber's tool), no confirmation for what is confirmed,
/// no delivery before confirmation. "At most one confirmation per address per day" is enforced
/// by the claim itself (it must hold under concurrent consumers); its reason is
/// [`SkipReason::DailyLimit`].
pub fn decide_optin(letter: OptinLetter, facts: OptinFacts) -> Decision {
    if facts.suppressed {
        return Decision::Skip(SkipReason::Suppressed);
    }
    match (letter, facts.capture_confirmed) {
        (OptinLetter::Confirmation, true) => Decision::Skip(SkipReason::AlreadyConfirmed),
        (OptinLetter::Delivery, false) => Decision::Skip(SkipReason::Unconfirmed),
        _ => Decision::Send,
    }
}

impl SendWindow {
    fn allows(&self, weekday: u8, hour: u8) -> bool {
        self.weekdays.contains(&weekday) && hour >= self.hours.0 && hour < self.hours.1
    }
}

fn in_quiet_hours(hour: u8, (start, end): (u8, u8)) -> bool {
    if start <= end {
        hour >= start && hour < end
    } else {
        hour >= start || hour < end
    }
}

/// When the tightest exceeded cap frees a slot, if any is exceeded at `t`.
pub(crate) fn cap_release(recent: &[u64], caps: &[(u64, usize)], t: u64) -> Option<u64> {
    let mut release = None;
    for &(window, max) in caps {
        let mut inside: Vec<u64> = recent
            .iter()
            .copied()
            .filter(|&s| s + window > t && s <= t)
            .collect();
        if max == 0 || inside.len() < max {
            continue;
        }
        inside.sort_unstable();
        // The slot frees when the oldest send that keeps the count at `max` leaves the window.
        let frees = inside[inside.len() - max] + window;
        release = Some(release.map_or(frees, |r: u64| r.max(frees)));
    }
    release
}

struct LocalTime {
    weekday: u8,
    hour: u8,
}

struct LocalClock {
    offset: i64,
}

impl LocalClock {
    fn new(offset_seconds: i32) -> LocalClock {
        LocalClock {
            offset: i64::from(offset_seconds),
        }
    }

    fn at(&self, t: u64) -> LocalTime {
        let local = t as i64 + self.offset;
        let days = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        LocalTime {
            weekday: ((days + 3).rem_euclid(7)) as u8,
            hour: (local.rem_euclid(86_400) / 3600) as u8,
        }
    }

    /// The start of the first local hour at or after `t` that `ok` allows (within two weeks).
    fn next_allowed(&self, t: u64, ok: impl Fn(u8, u8) -> bool) -> u64 {
        let mut hour_start = t - (t as i64 + self.offset).rem_euclid(3600) as u64;
        for _ in 0..(14 * 24) {
            hour_start += 3600;
            let at = self.at(hour_start);
            if ok(at.weekday, at.hour) {
                return hour_start;
            }
        }
        t
    }
}

/// The domain of an address (after the last `@`), lower-case.
pub fn mail_domain(email: &str) -> String {
    email
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase()
}

/// Per-domain throttles: at most `limit` letters per clock hour to one receiving domain (large
/// mailbox providers slow down or block senders that burst). `sent_this_hour` counts letters
/// already sent to it this hour; a throttled letter waits for the next hour.
pub fn domain_throttle(limit: Option<u32>, sent_this_hour: u32, now: u64) -> Option<u64> {
    let limit = limit?;
    (sent_this_hour >= limit).then(|| (now / 3600 + 1) * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_throttles() {
        assert_eq!(mail_domain("Ann@Gmail.COM"), "gmail.com");
        assert_eq!(domain_throttle(None, 1_000_000, 7_200), None);
        assert_eq!(domain_throttle(Some(2), 1, 7_200), None);
        assert_eq!(domain_throttle(Some(2), 2, 7_201), Some(10_800));
    }

    // 2026-11-24 is a Tuesday. 12:00 UTC.
    const TUE_NOON: u64 = 1_795_521_600;

    struct Case {
        name: &'static str,
        kind: SendKind,
        tags: Vec<(String, String)>,
        window: Option<SendWindow>,
        suppressed: bool,
        consent: bool,
        gender: Option<&'static str>,
        on_test_list: bool,
        got_this_content: bool,
        allow_resend: bool,
        recent: Vec<u64>,
        offset: i32,
        want: Decision,
    }

    fn case(name: &'static str, want: Decision) -> Case {
        Case {
            name,
            kind: SendKind::Campaign,
            tags: vec![],
            window: None,
            suppressed: false,
            consent: true,
            gender: None,
            on_test_list: false,
            got_this_content: false,
            allow_resend: false,
            recent: vec![],
            offset: 0,
            want,
        }
    }

    #[test]
    fn table() {
        let female = vec![("gender".to_owned(), "female".to_owned())];
        let b2b = SendWindow {
            weekdays: vec![1, 2, 3],
            hours: (10, 17),
        };
        let h = 3600;
        let cases = vec![
            case("plain send at noon", Decision::Send),
            Case {
                suppressed: true,
                ..case("suppressed contact", Decision::Skip(SkipReason::Suppressed))
            },
            Case {
                consent: false,
                ..case(
                    "no consent for the purpose",
                    Decision::Skip(SkipReason::NoConsent),
                )
            },
            Case {
                tags: female.clone(),
                gender: Some("male"),
                ..case(
                    "women's-day letter to a man",
                    Decision::Skip(SkipReason::AudienceMismatch {
                        attribute: "gender".into(),
                    }),
                )
            },
            Case {
                tags: female.clone(),
                ..case(
                    "tagged letter, gender unknown",
                    Decision::Skip(SkipReason::AudienceMismatch {
                        attribute: "gender".into(),
                    }),
                )
            },
            Case {
                tags: female,
                gender: Some("female"),
                ..case("tagged letter, matching", Decision::Send)
            },
            Case {
                got_this_content: true,
                ..case(
                    "a copy of a campaign it already got",
                    Decision::Skip(SkipReason::DuplicateContent),
                )
            },
            Case {
                got_this_content: true,
                allow_resend: true,
                ..case("a copy, resending allowed", Decision::Send)
            },
            Case {
                kind: SendKind::ChainStep,
                got_this_content: true,
                ..case("a chain step is not a copy of a campaign", Decision::Send)
            },
            Case {
                kind: SendKind::Test,
                ..case(
                    "test to the whole list",
                    Decision::Skip(SkipReason::NotOnTestList),
                )
            },
            Case {
                kind: SendKind::Test,
                on_test_list: true,
                offset: 11 * 3600,
                recent: vec![TUE_NOON - 60],
                ..case("test to the test list ignores timing", Decision::Send)
            },
            Case {
                kind: SendKind::Test,
                suppressed: true,
                on_test_list: true,
                ..case(
                    "a suppressed tester still gets nothing",
                    Decision::Skip(SkipReason::Suppressed),
                )
            },
            Case {
                offset: 11 * 3600, // 23:00 local
                ..case(
                    "quiet hours defer to 09:00 local",
                    Decision::Defer {
                        until: TUE_NOON + 10 * h,
                        reason: DeferReason::QuietHours,
                    },
                )
            },
            Case {
                offset: -4 * 3600, // 08:00 local
                ..case(
                    "early morning defers an hour",
                    Decision::Defer {
                        until: TUE_NOON + h,
                        reason: DeferReason::QuietHours,
                    },
                )
            },
            Case {
                recent: vec![TUE_NOON - 2 * h],
                // Frees at 02:00, inside quiet hours: 09:00.
                ..case(
                    "1 per 16 h cap",
                    Decision::Defer {
                        until: TUE_NOON + 21 * h,
                        reason: DeferReason::FrequencyCap,
                    },
                )
            },
            Case {
                recent: vec![
                    TUE_NOON - 3 * 86_400,
                    TUE_NOON - 2 * 86_400,
                    TUE_NOON - 86_400,
                ],
                ..case(
                    "3 per week cap",
                    Decision::Defer {
                        until: TUE_NOON + 4 * 86_400,
                        reason: DeferReason::FrequencyCap,
                    },
                )
            },
            Case {
                recent: vec![TUE_NOON - 20 * h],
                ..case("last send 20 h ago is fine", Decision::Send)
            },
            Case {
                window: Some(b2b.clone()),
                ..case("B2B window open on Tuesday noon", Decision::Send)
            },
            Case {
                window: Some(b2b.clone()),
                offset: 6 * 3600, // Tuesday 18:00 local
                ..case(
                    "B2B window closed in the evening",
                    Decision::Defer {
                        until: TUE_NOON + 16 * h,
                        reason: DeferReason::SendWindow,
                    },
                )
            },
            Case {
                window: Some(b2b),
                recent: vec![TUE_NOON - 2 * h],
                // Cap frees at 02:00 Wednesday, inside quiet hours and outside the window: 10:00.
                ..case(
                    "cap, then quiet hours, then the window",
                    Decision::Defer {
                        until: TUE_NOON + 22 * h,
                        reason: DeferReason::FrequencyCap,
                    },
                )
            },
        ];
        for c in cases {
            let consents = BTreeMap::from([(("newsletter".to_owned(), Channel::Email), c.consent)]);
            let attributes: BTreeMap<String, String> = c
                .gender
                .map(|g| [("gender".to_owned(), g.to_owned())].into())
                .unwrap_or_default();
            let msg = Mailing {
                kind: c.kind,
                purpose: "newsletter",
                channel: Channel::Email,
                audience_tags: &c.tags,
                window: c.window.as_ref(),
                allow_resend: c.allow_resend,
                sms_fallback: false,
            };
            let to = Recipient {
                suppressed: c.suppressed,
                consents: &consents,
                attributes: &attributes,
                on_test_list: c.on_test_list,
                got_this_content: c.got_this_content,
                recent_sends: &c.recent,
                utc_offset_seconds: c.offset,
                rfm_segment: None,
            };
            assert_eq!(
                decide(&msg, &to, &Limits::default(), TUE_NOON),
                c.want,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn optin_letters() {
        use OptinLetter::{Confirmation, Delivery};
        let facts = |capture_confirmed, suppressed| OptinFacts {
            capture_confirmed,
            suppressed,
        };
        let table = [
            (Confirmation, facts(false, false), Decision::Send),
            (
                Confirmation,
                facts(false, true),
                Decision::Skip(SkipReason::Suppressed),
            ),
            (
                Confirmation,
                facts(true, false),
                Decision::Skip(SkipReason::AlreadyConfirmed),
            ),
            (Delivery, facts(true, false), Decision::Send),
            (
                Delivery,
                facts(false, false),
                Decision::Skip(SkipReason::Unconfirmed),
            ),
            (
                Delivery,
                facts(true, true),
                Decision::Skip(SkipReason::Suppressed),
            ),
        ];
        for (letter, facts, want) in table {
            assert_eq!(decide_optin(letter, facts), want, "{letter:?} {facts:?}");
        }
    }

    #[test]
    fn eleven_letters_in_twelve_minutes_become_one() {
        // Two overlapping chains try to send 11 letters within 12 minutes; with each send recorded,
        // only the first goes out and every other one is deferred, none dropped.
        let consents = BTreeMap::from([(("newsletter".to_owned(), Channel::Email), true)]);
        let attributes = BTreeMap::new();
        let mut sent: Vec<u64> = vec![];
        let mut deferred = 0;
        for i in 0..11u64 {
            let now = TUE_NOON + i * 72;
            let msg = Mailing {
                kind: SendKind::ChainStep,
                purpose: "newsletter",
                channel: Channel::Email,
                audience_tags: &[],
                window: None,
                allow_resend: false,
                sms_fallback: false,
            };
            let to = Recipient {
                suppressed: false,
                consents: &consents,
                attributes: &attributes,
                on_test_list: false,
                got_this_content: false,
                recent_sends: &sent,
                utc_offset_seconds: 0,
                rfm_segment: None,
            };
            match decide(&msg, &to, &Limits::default(), now) {
                Decision::Send => sent.push(now),
                Decision::Defer {
                    reason: DeferReason::FrequencyCap,
                    until,
                } => {
                    assert!(until > now);
                    deferred += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((sent.len(), deferred), (1, 10));
    }

    #[test]
    fn rfm_segments_get_their_own_caps() {
        let limits: Limits = serde_json::from_value(serde_json::json!({
            "caps": [[57600, 1]],
            "segment_caps": {"champions": [[3600, 2]], "at_risk": [[604800, 1]]}
        }))
        .expect("valid limits");
        let consents = BTreeMap::from([(("newsletter".to_owned(), Channel::Email), true)]);
        let attributes = BTreeMap::new();
        let msg = Mailing {
            kind: SendKind::Campaign,
            purpose: "newsletter",
            channel: Channel::Email,
            audience_tags: &[],
            window: None,
            allow_resend: false,
            sms_fallback: false,
        };
        // One letter two hours ago; another now?
        let recent = [TUE_NOON - 7200];
        let cases = [
            (None, false),             // default: 1 per 16 h
            (Some("champions"), true), // 2 per hour
            (Some("at_risk"), false),  // 1 per week
            (Some("new"), false),      // no own caps: the default
        ];
        for (segment, sends) in cases {
            let to = Recipient {
                suppressed: false,
                consents: &consents,
                attributes: &attributes,
                on_test_list: false,
                got_this_content: false,
                recent_sends: &recent,
                utc_offset_seconds: 0,
                rfm_segment: segment,
            };
            let d = decide(&msg, &to, &limits, TUE_NOON);
            assert_eq!(d == Decision::Send, sends, "{segment:?}: {d:?}");
        }
        assert_eq!(limits.longest_window(), 604_800);
    }
}
