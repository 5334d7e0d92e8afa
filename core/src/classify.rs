//! Who fetched a pixel or followed a link: a person, Apple's Mail Privacy Protection proxy, or a
//! security scanner. Events are labelled, never dropped, so stats can show each share honestly.
//!
//! The rules are data (the tables below) and are applied in a fixed order; the first match wins and
//! its [`Reason`] is stored with the event so every label can be explained later.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// The kind of tracked interaction being classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    Open,
    Click,
}

/// Who is behind an open or click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Human,
    PrivacyProxy,
    Scanner,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Human, Label::PrivacyProxy, Label::Scanner];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Human => "human",
            Label::PrivacyProxy => "privacy_proxy",
            Label::Scanner => "scanner",
        }
    }

    pub fn parse(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// Which rule decided the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `HEAD` is what link checkers send; a person's browser sends `GET`.
    HeadRequest,
    /// No `User-Agent` at all: every browser and mail client sends one.
    MissingUserAgent,
    /// The user agent names a scanner, crawler or HTTP library (Epistola's own email-specific list).
    ScannerUserAgent,
    /// The user agent matches the maintained crawler patterns (the `isbot` list) the adapter checks.
    CrawlerUserAgent,
    /// The request came from a mail-security or cloud network.
    ScannerNetwork,
    /// Apple Mail Privacy Protection prefetches every image through Apple's proxy.
    AppleMailProxy,
    /// Faster after sending than any person reads mail.
    TooSoonAfterSend,
    /// A browser that always sends `Sec-Fetch-*` on navigation sent none: an emulated browser.
    MissingFetchMetadata,
    /// A request on the letter's hidden honeypot link, which no person can see or reach; the
    /// message's other clicks around it are relabelled with this reason too.
    Honeypot,
    /// One of several different links of one message followed within seconds (or all of them):
    /// a scanner walking the letter, relabelled after the fact when its clicks are stored.
    Burst,
    /// No rule matched.
    NoSignal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HeadRequest => "head_request",
            Reason::MissingUserAgent => "missing_user_agent",
            Reason::ScannerUserAgent => "scanner_user_agent",
            Reason::CrawlerUserAgent => "crawler_user_agent",
            Reason::ScannerNetwork => "scanner_network",
            Reason::AppleMailProxy => "apple_mail_proxy",
            Reason::TooSoonAfterSend => "too_soon_after_send",
            Reason::MissingFetchMetadata => "missing_fetch_metadata",
            Reason::Honeypot => "honeypot",
            Reason::Burst => "burst",
            Reason::NoSignal => "no_signal",
        }
    }
}

/// What the edge knows about a request, gathered by the adapter.
#[derive(Debug, Clone, Default)]
pub struct Signals<'a> {
    pub is_head: bool,
    pub user_agent: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// Autonomous system number of the client, where the platform provides it.
    pub asn: Option<u32>,
    /// Whether any `Sec-Fetch-*` request header was present.
    pub has_fetch_metadata: bool,
    /// Seconds between the token's issue (send) time and this request.
    pub seconds_since_send: i64,
    /// Whether the user agent matches the maintained crawler patterns (in the edge worker: the
    /// `isbot` list, run by V8; see scripts/known-bots.mjs). Mail image proxies match that list too;
    /// [`classify`] knows them.
    pub known_bot: bool,
    /// Whether the request is on the letter's hidden honeypot link (`track::HONEYPOT_LINK`).
    pub honeypot: bool,
}

/// Result of classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub label: Label,
    pub reason: Reason,
}

/// Case-insensitive substrings of scanner, crawler and HTTP-library user agents.
const SCANNER_UA_PATTERNS: &[&str] = &[
    "bot/",
    "bot;",
    "bot)",
    "bot ",
    "crawler",
    "spider",
    "scanner",
    "preview",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww-perl",
    "node-fetch",
    "axios/",
    "headlesschrome",
    "phantomjs",
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "symantec",
    "trendmicro",
    "fortiguard",
    "forcepoint",
    "sophos",
    "cisco",
    "ironport",
    "msnbot",
    "bingpreview",
    "facebookexternalhit",
    "slackbot",
    "linkedinbot",
    "whatsapp",
    "telegrambot",
    "discordbot",
];

/// Networks whose traffic to a tracking link is a machine, not a reader: mail-security vendors and
/// the big clouds their sandboxes run in. Applied to clicks; for opens only the security vendors,
/// because Gmail's and Outlook's image proxies fetch pixels on a real open.
const SCANNER_ASNS_ANY: &[u32] = &[
    26211, // Proofpoint
    22843, // Proofpoint
    30031, // Mimecast
    15324, // Barracuda
];
const SCANNER_ASNS_CLICK: &[u32] = &[
    8075,   // Microsoft (Defender for Office 365 Safe Links detonation)
    15169,  // Google
    396982, // Google Cloud
    16509,  // Amazon AWS
    14618,  // Amazon AWS
];
const APPLE_ASNS: &[u32] = &[714, 6185];

/// IPv4 ranges, as (network, prefix length), for the same purposes, used where no ASN is known.
const SCANNER_NETS_ANY: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(67, 231, 144, 0), 20),  // Proofpoint
    (Ipv4Addr::new(148, 163, 128, 0), 19), // Proofpoint
    (Ipv4Addr::new(205, 139, 110, 0), 24), // Mimecast
    (Ipv4Addr::new(207, 211, 30, 0), 24),  // Mimecast
    (Ipv4Addr::new(64, 235, 144, 0), 20),  // Barracuda
];
const SCANNER_NETS_CLICK: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(40, 92, 0, 0), 15), // Microsoft Exchange Online Protection
    (Ipv4Addr::new(40, 107, 0, 0), 16), // Microsoft Exchange Online Protection
    (Ipv4Addr::new(52, 100, 0, 0), 14), // Microsoft Exchange Online Protection
    (Ipv4Addr::new(66, 249, 64, 0), 19), // Google crawlers
];
const APPLE_NETS: &[(Ipv4Addr, u8)] = &[(Ipv4Addr::new(17, 0, 0, 0), 8)];

/// Image proxies of webmail that fetch the pixel when the person opens the letter (not ahead of
/// time, unlike Apple's): a real open, although crawler lists name them.
const MAIL_IMAGE_PROXY_UAS: &[&str] = &["googleimageproxy", "yahoomailproxy"];

/// Apple's privacy proxy announces itself with exactly this user agent.
const APPLE_PROXY_UA: &str = "Mozilla/5.0";

/// Requests sooner than this after sending are machines (seconds).
const MIN_HUMAN_DELAY_OPEN: i64 = 2;
const MIN_HUMAN_DELAY_CLICK: i64 = 10;

/// Browser families that send `Sec-Fetch-*` on every navigation (Chromium ≥ 76, Firefox ≥ 90).
/// Safari is left out on purpose: only recent versions send them.
const FETCH_METADATA_BROWSERS: &[&str] = &["chrome/", "firefox/", "edg/"];

fn in_nets(ip: Option<IpAddr>, nets: &[(Ipv4Addr, u8)]) -> bool {
    let Some(IpAddr::V4(ip)) = ip else {
        return false;
    };
    let ip = u32::from(ip);
    nets.iter().any(|&(net, len)| {
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        ip & mask == u32::from(net) & mask
    })
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    // Needles are lower-case ASCII; a byte window compare avoids allocating a lowered copy.
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Labels one open or click.
pub fn classify(interaction: Interaction, s: &Signals<'_>) -> Classification {
    let scanner = |reason| Classification {
        label: Label::Scanner,
        reason,
    };
    let is_click = interaction == Interaction::Click;
    if s.honeypot {
        return scanner(Reason::Honeypot);
    }
    if s.is_head {
        return scanner(Reason::HeadRequest);
    }
    let ua = match s.user_agent.map(str::trim) {
        None | Some("") => return scanner(Reason::MissingUserAgent),
        Some(ua) => ua,
    };
    if SCANNER_UA_PATTERNS
        .iter()
        .any(|p| contains_ignore_case(ua, p))
    {
        return scanner(Reason::ScannerUserAgent);
    }
    let asn_in = |list: &[u32]| s.asn.is_some_and(|a| list.contains(&a));
    if asn_in(SCANNER_ASNS_ANY)
        || in_nets(s.ip, SCANNER_NETS_ANY)
        || (is_click && (asn_in(SCANNER_ASNS_CLICK) || in_nets(s.ip, SCANNER_NETS_CLICK)))
    {
        return scanner(Reason::ScannerNetwork);
    }
    let from_apple = asn_in(APPLE_ASNS) || in_nets(s.ip, APPLE_NETS);
    if from_apple || ua == APPLE_PROXY_UA {
        // The proxy prefetches pixels; on a link, Apple's network means a link-preview fetch.
        return match interaction {
            Interaction::Open => Classification {
                label: Label::PrivacyProxy,
                reason: Reason::AppleMailProxy,
            },
            Interaction::Click => scanner(Reason::ScannerNetwork),
        };
    }
    let mail_image_proxy = MAIL_IMAGE_PROXY_UAS
        .iter()
        .any(|p| contains_ignore_case(ua, p));
    if mail_image_proxy && is_click {
        // An image proxy fetches images; one following a link is no person.
        return scanner(Reason::ScannerUserAgent);
    }
    if s.known_bot && !mail_image_proxy {
        return scanner(Reason::CrawlerUserAgent);
    }
    let min_delay = if is_click {
        MIN_HUMAN_DELAY_CLICK
    } else {
        MIN_HUMAN_DELAY_OPEN
    };
    if s.seconds_since_send < min_delay {
        return scanner(Reason::TooSoonAfterSend);
    }
    if is_click
        && !s.has_fetch_metadata
        && FETCH_METADATA_BROWSERS
            .iter()
            .any(|b| contains_ignore_case(ua, b))
    {
        return scanner(Reason::MissingFetchMetadata);
    }
    Classification {
        label: Label::Human,
        reason: Reason::NoSignal,
    }
}

/// After the fact: the rules applied to the stored clicks of one message (same campaign, contact
/// and message id) in the transaction that stores each click (`migrations/0018_relabel.sql`). A click within
/// [`HONEYPOT_WINDOW_SECONDS`] of a honeypot hit is a scanner (`honeypot`); otherwise a click within
/// [`BURST_WINDOW_SECONDS`] of clicks on [`burst_threshold`] different links is one (`burst`).
pub const HONEYPOT_WINDOW_SECONDS: u64 = 120;
/// See [`HONEYPOT_WINDOW_SECONDS`]. Scanners follow every link within a second or two; a person
/// reads a page before coming back for the next link.
pub const BURST_WINDOW_SECONDS: u64 = 5;
/// Different links within [`BURST_WINDOW_SECONDS`] that make a burst, unless the letter has fewer.
pub const BURST_MIN_LINKS: u32 = 3;

/// How many different links of a letter with `links_in_letter` tracked links, followed within the
/// window, make a burst: [`BURST_MIN_LINKS`], or every link of a letter with two.
pub fn burst_threshold(links_in_letter: u32) -> u32 {
    BURST_MIN_LINKS.min(links_in_letter.max(2))
}

/// A stored click of one message, for [`relabel_clicks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredClick {
    /// Link index; `track::HONEYPOT_LINK` for the honeypot.
    pub link: u16,
    /// Unix seconds.
    pub at: u64,
    pub label: Label,
}

/// Which clicks of one message the after-the-fact rules turn into scanner clicks, and why (`None`:
/// unchanged). The reference of the SQL trigger (`migrations/0018_relabel.sql`), checked against
/// the same vectors (`tests/vectors/relabel.json`) here and through the real worker.
pub fn relabel_clicks(clicks: &[StoredClick], links_in_letter: u32) -> Vec<Option<Reason>> {
    use crate::track::HONEYPOT_LINK;
    let near = |a: u64, b: u64, window: u64| a.abs_diff(b) <= window;
    clicks
        .iter()
        .map(|c| {
            if c.label == Label::Scanner {
                return None;
            }
            if clicks
                .iter()
                .any(|h| h.link == HONEYPOT_LINK && near(h.at, c.at, HONEYPOT_WINDOW_SECONDS))
            {
                return Some(Reason::Honeypot);
            }
            let mut links: Vec<u16> = clicks
                .iter()
                .filter(|o| o.link != HONEYPOT_LINK && near(o.at, c.at, BURST_WINDOW_SECONDS))
                .map(|o| o.link)
                .collect();
            links.sort_unstable();
            links.dedup();
            (links.len() as u32 >= burst_threshold(links_in_letter)).then_some(Reason::Burst)
        })
        .collect()
}
