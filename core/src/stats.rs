//! Campaign statistics assembled from hourly rollup rows.
//!
//! The consumer never rewrites history: the database keeps one counter per
//! (campaign, metric, label, link, hour), incremented once per new event id. Unique counts are
//! counters too, incremented when a (campaign, metric, label, link, contact) pair is first seen.
//! This module only adds them up, so a stats read costs the same at 1k or 10M events.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::classify::Label;
use crate::track::HONEYPOT_LINK;

/// Rollup metric names as stored in `rollup_total.metric`.
pub mod metric {
    pub const OPEN: &str = "open";
    pub const CLICK: &str = "click";
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    pub const OPEN_UNIQUE: &str = "open_unique";
    pub const CLICK_UNIQUE: &str = "click_unique";
    pub const UNSUBSCRIBE_UNIQUE: &str = "unsubscribe_unique";
    /// Contacts who clicked as a person without a human pixel fetch (label `human`): each one
    /// opened the letter with images off. Kept exact by the `first_seen_count` trigger: +1 when a
    /// contact's first human click finds no human open, −1 when their first human open follows.
    pub const OPEN_INFERRED_UNIQUE: &str = "open_inferred_unique";
    /// Attributed orders (label = channel, link = clicked link or -1).
    pub const CONVERSION: &str = "conversion";
    /// Orders reported only by the site's widget, not (yet) by the shop's server.
    pub const CONVERSION_UNVERIFIED: &str = "conversion_unverified";
    /// `revenue:{CURRENCY}`: order value in minor units (label = channel).
    pub const REVENUE_PREFIX: &str = "revenue:";
    /// Send outcomes (label = reason), `sms_`-prefixed for the SMS channel.
    pub const SENT: &str = "sent";
    pub const FAILED: &str = "failed";
    pub const SKIPPED: &str = "skipped";
    pub const DEFERRED: &str = "deferred";
    pub const SMS_PREFIX: &str = "sms_";
}

/// Label value of unique rows that count a contact once across all labels.
pub const LABEL_ALL: &str = "all";
/// Link index of rows that are not about one link (opens, unsubscribes, campaign-wide uniques).
pub const NO_LINK: i64 = -1;

/// One row of `rollup_total` for a campaign (`hour` unused, 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub metric: String,
    pub label: String,
    pub link: i64,
    pub hour: u64,
    pub n: u64,
}

/// Total and unique count for one label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub unique: u64,
}

/// Counts overall and split by who did it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub total: u64,
    /// Distinct contacts, whoever fetched (not the sum of the per-label uniques).
    pub unique: u64,
    pub human: Counts,
    pub privacy_proxy: Counts,
    pub scanner: Counts,
}

impl Breakdown {
    fn label_mut(&mut self, label: Label) -> &mut Counts {
        match label {
            Label::Human => &mut self.human,
            Label::PrivacyProxy => &mut self.privacy_proxy,
            Label::Scanner => &mut self.scanner,
        }
    }

    fn add_total(&mut self, label: &str, n: u64) {
        if let Some(l) = Label::parse(label) {
            self.label_mut(l).total += n;
            self.total += n;
        }
    }

    fn add_unique(&mut self, label: &str, n: u64) {
        match Label::parse(label) {
            Some(l) => self.label_mut(l).unique += n,
            None if label == LABEL_ALL => self.unique += n,
            None => {}
        }
    }
}

/// Clicks on one link of the campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    pub index: u16,
    /// The destination first registered for this index, if known.
    pub url: Option<String>,
    #[serde(flatten)]
    pub clicks: Breakdown,
    pub conversions: ConversionCounts,
}

/// Clicks overall and per link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClickStats {
    #[serde(flatten)]
    pub all: Breakdown,
    pub links: Vec<LinkStats>,
    /// Requests on the letters' hidden honeypot link (machines only; counted as scanner clicks
    /// in `all`, and in no link).
    pub honeypot_hits: u64,
}

/// Events in one hour, by label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByLabel {
    pub human: u64,
    pub privacy_proxy: u64,
    pub scanner: u64,
}

/// One row of `rollup_series`: the plotted numbers of one hour (or, once folded, one day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesRow {
    /// Unix hours.
    pub hour: u64,
    /// Everything but `hour`, which is filled in from the row's.
    pub point: HourPoint,
}

/// One point of the hourly series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HourPoint {
    /// Start of the hour, RFC 3339 UTC.
    pub hour: String,
    pub opens: ByLabel,
    pub clicks: ByLabel,
    pub unsubscribes: u64,
    pub conversions: u64,
    /// Messages sent (all channels).
    pub sent: u64,
}

/// Money per currency: minor units and the amount in major units as text (`"49.90"`).
pub type Revenue = BTreeMap<String, Amount>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Amount {
    pub minor: i64,
    pub amount: String,
}

fn add_revenue(revenue: &mut Revenue, currency: &str, minor: i64) {
    let a = revenue.entry(currency.to_owned()).or_default();
    a.minor += minor;
    a.amount = crate::conversion::format_major(a.minor, currency);
}

/// Attributed orders and their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConversionCounts {
    pub count: u64,
    /// Of `count`, orders only the site's widget reported: a visitor could have exaggerated them.
    /// The shop's server reporting the same order id verifies (and replaces) it.
    pub unverified: u64,
    pub revenue: Revenue,
}

impl ConversionCounts {
    fn add(&mut self, metric: &str, n: u64) {
        match metric.strip_prefix(metric::REVENUE_PREFIX) {
            Some(currency) => add_revenue(&mut self.revenue, currency, n as i64),
            None if metric == metric::CONVERSION_UNVERIFIED => self.unverified += n,
            None => self.count += n,
        }
    }
}

/// Conversions overall, per channel (`email`, `sms`) and per link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConversionStats {
    #[serde(flatten)]
    pub all: ConversionCounts,
    pub channels: BTreeMap<String, ConversionCounts>,
}

/// What happened to the messages of one channel: sent (accepted by the receiving server or
/// provider), failed, and skipped / deferred by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelDelivery {
    pub sent: u64,
    pub failed: u64,
    pub skipped: BTreeMap<String, u64>,
    pub deferred: BTreeMap<String, u64>,
}

/// How the estimated open rate is worked out, stated with the number.
pub const OPEN_RATE_METHOD: &str = "people who fetched the pixel as a person, plus people who \
clicked as a person without fetching it (images off: opened, confirmed by a click), over e-mails \
sent; Apple's privacy-proxy prefetches and scanner hits are left out, so people who read only \
through Apple's proxy without clicking are not counted";

/// Who opened, side by side, and the open rate estimated from it (distinct contacts).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpenEstimate {
    /// E-mails sent (accepted by the receiving server).
    pub sent: u64,
    /// Contacts whose pixel fetch looked like a person.
    pub confirmed_human: u64,
    /// Contacts who clicked as a person without a human pixel fetch.
    pub inferred_from_clicks: u64,
    /// Contacts with an Apple privacy-proxy fetch (whether or not they also opened as a person).
    pub privacy_proxy: u64,
    /// Contacts with a scanner hit on the pixel.
    pub scanner: u64,
    /// `(confirmed_human + inferred_from_clicks) / sent`, 4 decimals; `None` before anything is sent.
    pub estimated_rate: Option<f64>,
    pub method: &'static str,
}

impl OpenEstimate {
    fn new(sent: u64, opens: &Breakdown, inferred_from_clicks: u64) -> OpenEstimate {
        let people = opens.human.unique + inferred_from_clicks;
        OpenEstimate {
            sent,
            confirmed_human: opens.human.unique,
            inferred_from_clicks,
            privacy_proxy: opens.privacy_proxy.unique,
            scanner: opens.scanner.unique,
            // Counts are far below 2^52: exact as f64. A rate over 1 (sends recorded elsewhere,
            // e.g. a test run) is capped rather than shown as more than everyone.
            estimated_rate: (sent > 0)
                .then(|| ((people as f64 / sent as f64).min(1.0) * 10_000.0).round() / 10_000.0),
            method: OPEN_RATE_METHOD,
        }
    }
}

/// Everything `GET /v1/stats/campaigns/{id}` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignStats {
    pub campaign: String,
    /// Send outcomes per channel (`email`, `sms`).
    pub delivery: BTreeMap<String, ChannelDelivery>,
    pub opens: Breakdown,
    /// Confirmed, inferred, privacy-proxy and scanner opens side by side, and the estimated rate.
    pub open_estimate: OpenEstimate,
    pub clicks: ClickStats,
    /// Distinct contacts who unsubscribed through this campaign.
    pub unsubscribes: u64,
    pub conversions: ConversionStats,
    /// Hours with any activity, oldest first.
    pub series: Vec<HourPoint>,
}

impl CampaignStats {
    /// Adds up `totals` (`rollup_total` rows) and takes the time series from `series_rows`
    /// (`rollup_series`). `links` maps link index to the registered destination.
    pub fn from_rollups(
        campaign: &str,
        totals: &[RollupRow],
        series_rows: &[SeriesRow],
        links: &[(u16, String)],
    ) -> CampaignStats {
        let mut opens = Breakdown::default();
        let mut clicks = Breakdown::default();
        let mut per_link: BTreeMap<u16, Breakdown> = BTreeMap::new();
        let mut link_conversions: BTreeMap<u16, ConversionCounts> = BTreeMap::new();
        let mut conversions = ConversionStats::default();
        let mut delivery: BTreeMap<String, ChannelDelivery> = BTreeMap::new();
        let mut unsubscribes = 0;
        let mut inferred_opens = 0;
        let mut honeypot_hits = 0;
        for row in totals {
            let link = u16::try_from(row.link).ok();
            match row.metric.as_str() {
                metric::OPEN => opens.add_total(&row.label, row.n),
                metric::CLICK if link == Some(HONEYPOT_LINK) => {
                    clicks.add_total(&row.label, row.n);
                    honeypot_hits += row.n;
                }
                metric::CLICK_UNIQUE if link == Some(HONEYPOT_LINK) => {}
                metric::CLICK => {
                    clicks.add_total(&row.label, row.n);
                    if let Some(i) = link {
                        per_link.entry(i).or_default().add_total(&row.label, row.n);
                    }
                }
                metric::OPEN_UNIQUE => opens.add_unique(&row.label, row.n),
                metric::CLICK_UNIQUE => match link {
                    Some(i) => per_link.entry(i).or_default().add_unique(&row.label, row.n),
                    None => clicks.add_unique(&row.label, row.n),
                },
                metric::UNSUBSCRIBE_UNIQUE if row.label == LABEL_ALL => unsubscribes += row.n,
                metric::OPEN_INFERRED_UNIQUE => inferred_opens += row.n,
                m if m == metric::CONVERSION
                    || m == metric::CONVERSION_UNVERIFIED
                    || m.starts_with(metric::REVENUE_PREFIX) =>
                {
                    conversions.all.add(m, row.n);
                    conversions
                        .channels
                        .entry(row.label.clone())
                        .or_default()
                        .add(m, row.n);
                    if let Some(i) = link {
                        link_conversions.entry(i).or_default().add(m, row.n);
                    }
                }
                m => {
                    let (channel, outcome) = match m.strip_prefix(metric::SMS_PREFIX) {
                        Some(outcome) => ("sms", outcome),
                        None => ("email", m),
                    };
                    if ![
                        metric::SENT,
                        metric::FAILED,
                        metric::SKIPPED,
                        metric::DEFERRED,
                    ]
                    .contains(&outcome)
                    {
                        continue;
                    }
                    let d = delivery.entry(channel.to_owned()).or_default();
                    match outcome {
                        metric::SENT => d.sent += row.n,
                        metric::FAILED => d.failed += row.n,
                        metric::SKIPPED => {
                            *d.skipped.entry(row.label.clone()).or_default() += row.n
                        }
                        _ => *d.deferred.entry(row.label.clone()).or_default() += row.n,
                    }
                }
            }
        }
        for (index, _) in links {
            per_link.entry(*index).or_default();
        }
        for index in link_conversions.keys() {
            per_link.entry(*index).or_default();
        }
        let links = per_link
            .into_iter()
            .map(|(index, clicks)| LinkStats {
                index,
                url: links
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, u)| u.clone()),
                clicks,
                conversions: link_conversions.remove(&index).unwrap_or_default(),
            })
            .collect();
        let mut series: Vec<HourPoint> = series_rows
            .iter()
            .map(|r| HourPoint {
                hour: rfc3339_hour(r.hour),
                ..r.point.clone()
            })
            .collect();
        series.sort_by(|a, b| a.hour.cmp(&b.hour));
        let sent = delivery.get("email").map_or(0, |d| d.sent);
        CampaignStats {
            campaign: campaign.to_owned(),
            open_estimate: OpenEstimate::new(sent, &opens, inferred_opens),
            delivery,
            opens,
            clicks: ClickStats {
                all: clicks,
                links,
                honeypot_hits,
            },
            unsubscribes,
            conversions,
            series,
        }
    }

    /// The summary as CSV: one row per (scope, metric, label), links after the campaign rows.
    pub fn summary_csv(&self) -> String {
        let mut out = String::from("scope,link_index,url,metric,label,total,unique\n");
        let mut rows = |scope: &str, link: Option<&LinkStats>, metric: &str, b: &Breakdown| {
            let (index, url) = match link {
                Some(l) => (l.index.to_string(), l.url.clone().unwrap_or_default()),
                None => (String::new(), String::new()),
            };
            let mut line = |label: &str, c: Counts| {
                let _ = writeln!(
                    out,
                    "{scope},{index},{},{metric},{label},{},{}",
                    csv_field(&url),
                    c.total,
                    c.unique
                );
            };
            line(
                LABEL_ALL,
                Counts {
                    total: b.total,
                    unique: b.unique,
                },
            );
            for label in Label::ALL {
                let c = match label {
                    Label::Human => b.human,
                    Label::PrivacyProxy => b.privacy_proxy,
                    Label::Scanner => b.scanner,
                };
                line(label.as_str(), c);
            }
        };
        rows("campaign", None, "opens", &self.opens);
        rows("campaign", None, "clicks", &self.clicks.all);
        for link in &self.clicks.links {
            rows("link", Some(link), "clicks", &link.clicks);
        }
        let _ = writeln!(
            out,
            "campaign,,,opens_inferred_from_clicks,human,,{}",
            self.open_estimate.inferred_from_clicks
        );
        let _ = writeln!(
            out,
            "campaign,,,honeypot_hits,scanner,{},",
            self.clicks.honeypot_hits
        );
        let _ = writeln!(
            out,
            "campaign,,,unsubscribes,{LABEL_ALL},{0},{0}",
            self.unsubscribes
        );
        let mut money = |scope: &str, index: &str, url: &str, label: &str, c: &ConversionCounts| {
            let _ = writeln!(
                out,
                "{scope},{index},{},conversions,{label},{},",
                csv_field(url),
                c.count
            );
            for (currency, a) in &c.revenue {
                let _ = writeln!(
                    out,
                    "{scope},{index},{},revenue_{currency},{label},{},",
                    csv_field(url),
                    a.amount
                );
            }
        };
        money("campaign", "", "", LABEL_ALL, &self.conversions.all);
        for (channel, c) in &self.conversions.channels {
            money("channel", "", "", channel, c);
        }
        for l in &self.clicks.links {
            let url = l.url.clone().unwrap_or_default();
            money(
                "link",
                &l.index.to_string(),
                &url,
                LABEL_ALL,
                &l.conversions,
            );
        }
        for (channel, d) in &self.delivery {
            let _ = writeln!(out, "channel,,,sent,{channel},{},", d.sent);
            let _ = writeln!(out, "channel,,,failed,{channel},{},", d.failed);
            for (outcome, reasons) in [("skipped", &d.skipped), ("deferred", &d.deferred)] {
                for (reason, n) in reasons {
                    let _ = writeln!(
                        out,
                        "channel,,,{},{channel},{n},",
                        csv_field(&format!("{outcome}:{reason}"))
                    );
                }
            }
        }
        out
    }

    /// The hourly series as CSV.
    pub fn series_csv(&self) -> String {
        let mut out = String::from(
            "hour,opens_human,opens_privacy_proxy,opens_scanner,clicks_human,clicks_privacy_proxy,clicks_scanner,unsubscribes,conversions,sent\n",
        );
        for p in &self.series {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{}",
                p.hour,
                p.opens.human,
                p.opens.privacy_proxy,
                p.opens.scanner,
                p.clicks.human,
                p.clicks.privacy_proxy,
                p.clicks.scanner,
                p.unsubscribes,
                p.conversions,
                p.sent
            );
        }
        out
    }
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas (`=`, `+`, `-`, `@` first).
pub fn csv_field(s: &str) -> String {
    // A spreadsheet runs a cell that starts with one of these as a formula (TAB and CR too: some
    // strip them and read what follows): prefix a quote.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `YYYY-MM-DDTHH:00:00Z` for an hour bucket.
pub fn rfc3339_hour(hour: u64) -> String {
    let days = (hour / 24) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:00:00Z", hour % 24)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, label: &str, link: i64, hour: u64, n: u64) -> RollupRow {
        RollupRow {
            metric: metric.into(),
            label: label.into(),
            link,
            hour,
            n,
        }
    }

    #[test]
    fn adds_up_rollups() {
        let rows = vec![
            row(metric::OPEN, "human", NO_LINK, 10, 3),
            row(metric::OPEN, "human", NO_LINK, 11, 1),
            row(metric::OPEN, "privacy_proxy", NO_LINK, 10, 2),
            row(metric::OPEN_UNIQUE, "human", NO_LINK, 10, 2),
            row(metric::OPEN_UNIQUE, "privacy_proxy", NO_LINK, 10, 2),
            row(metric::OPEN_UNIQUE, LABEL_ALL, NO_LINK, 10, 3),
            row(metric::CLICK, "human", 0, 10, 4),
            row(metric::CLICK, "scanner", 1, 10, 1),
            row(metric::CLICK_UNIQUE, "human", 0, 10, 2),
            row(metric::CLICK_UNIQUE, LABEL_ALL, 0, 10, 2),
            row(metric::CLICK_UNIQUE, "scanner", 1, 10, 1),
            row(metric::CLICK_UNIQUE, LABEL_ALL, 1, 10, 1),
            row(metric::CLICK_UNIQUE, "human", NO_LINK, 10, 2),
            row(metric::CLICK_UNIQUE, "scanner", NO_LINK, 10, 1),
            row(metric::CLICK_UNIQUE, LABEL_ALL, NO_LINK, 10, 2),
            row(metric::UNSUBSCRIBE, "", NO_LINK, 11, 2),
            row(metric::UNSUBSCRIBE_UNIQUE, LABEL_ALL, NO_LINK, 11, 1),
            row(metric::UNSUBSCRIBE_UNIQUE, "", NO_LINK, 11, 1),
            row("future_metric", "human", NO_LINK, 10, 100),
            row(metric::CONVERSION, "email", 0, 11, 2),
            row(metric::CONVERSION_UNVERIFIED, "email", 0, 11, 1),
            row("revenue:EUR", "email", 0, 11, 5990),
            row(metric::CONVERSION, "sms", NO_LINK, 11, 1),
            row("revenue:EUR", "sms", NO_LINK, 11, 1000),
            row("revenue:USD", "sms", NO_LINK, 11, 250),
            row(metric::SENT, "", NO_LINK, 9, 7),
            row(metric::SKIPPED, "suppressed", NO_LINK, 9, 2),
            row(metric::DEFERRED, "quiet_hours", NO_LINK, 9, 1),
            row("sms_sent", "", NO_LINK, 10, 3),
            row("sms_skipped", "no_consent", NO_LINK, 10, 1),
        ];
        let links = vec![
            (0, "https://a.example/".to_owned()),
            (2, "https://c.example/".to_owned()),
        ];
        let point = |hour, opens_human, unsubscribes, conversions, sent| SeriesRow {
            hour,
            point: HourPoint {
                opens: ByLabel {
                    human: opens_human,
                    privacy_proxy: 2 * u64::from(hour == 10),
                    scanner: 0,
                },
                unsubscribes,
                conversions,
                sent,
                ..HourPoint::default()
            },
        };
        // Out of order on purpose: the series comes out sorted.
        let series = [
            point(11, 1, 2, 3, 0),
            point(9, 0, 0, 0, 7),
            point(10, 3, 0, 0, 3),
        ];
        let s = CampaignStats::from_rollups("c1", &rows, &series, &links);
        assert_eq!(s.opens.total, 6);
        assert_eq!(s.opens.unique, 3);
        assert_eq!(
            s.opens.human,
            Counts {
                total: 4,
                unique: 2
            }
        );
        assert_eq!(
            s.opens.privacy_proxy,
            Counts {
                total: 2,
                unique: 2
            }
        );
        assert_eq!(s.clicks.all.total, 5);
        assert_eq!(s.clicks.all.unique, 2);
        assert_eq!(
            s.clicks.all.scanner,
            Counts {
                total: 1,
                unique: 1
            }
        );
        assert_eq!(s.clicks.links.len(), 3);
        assert_eq!(s.clicks.links[0].url.as_deref(), Some("https://a.example/"));
        assert_eq!(
            s.clicks.links[0].clicks.human,
            Counts {
                total: 4,
                unique: 2
            }
        );
        assert_eq!(s.clicks.links[1].url, None);
        assert_eq!(s.clicks.links[2].clicks.total, 0);
        assert_eq!(s.unsubscribes, 1);
        assert_eq!(s.series.len(), 3);
        assert_eq!(s.series[0].hour, "1970-01-01T09:00:00Z");
        assert_eq!(s.series[0].sent, 7);
        assert_eq!(s.series[1].opens.human, 3);
        assert_eq!(s.series[1].sent, 3);
        assert_eq!(s.series[2].unsubscribes, 2);
        assert_eq!(s.series[2].conversions, 3);
        assert_eq!(s.conversions.all.count, 3);
        assert_eq!(
            s.conversions.all.unverified, 1,
            "site-reported, not confirmed by the shop"
        );
        assert_eq!(s.clicks.links[0].conversions.unverified, 1);
        assert_eq!(s.conversions.all.revenue["EUR"].amount, "69.90");
        assert_eq!(s.conversions.all.revenue["USD"].minor, 250);
        assert_eq!(s.conversions.channels["sms"].count, 1);
        assert_eq!(s.conversions.channels["email"].revenue["EUR"].minor, 5990);
        assert_eq!(s.clicks.links[0].conversions.count, 2);
        assert_eq!(s.delivery["email"].sent, 7);
        assert_eq!(s.delivery["email"].skipped["suppressed"], 2);
        assert_eq!(s.delivery["email"].deferred["quiet_hours"], 1);
        assert_eq!(s.delivery["sms"].sent, 3);
        assert_eq!(s.delivery["sms"].skipped["no_consent"], 1);
        let csv = s.summary_csv();
        assert!(csv.contains("campaign,,,opens,all,6,3\n"), "{csv}");
        assert!(
            csv.contains("link,0,https://a.example/,clicks,human,4,2\n"),
            "{csv}"
        );
        assert!(csv.contains("campaign,,,unsubscribes,all,1,1\n"), "{csv}");
        assert!(s
            .series_csv()
            .contains("1970-01-01T11:00:00Z,1,0,0,0,0,0,2,3,0\n"));
        assert!(csv.contains("campaign,,,revenue_EUR,all,69.90,\n"), "{csv}");
        assert!(
            csv.contains("link,0,https://a.example/,conversions,all,2,\n"),
            "{csv}"
        );
        assert!(
            csv.contains("channel,,,skipped:suppressed,email,2,\n"),
            "{csv}"
        );
    }

    #[test]
    fn the_open_estimate_counts_clicks_without_a_pixel_and_leaves_proxies_out() {
        // (sent, human uniques, privacy-proxy uniques, inferred) → estimated rate
        let cases: [(u64, u64, u64, u64, Option<f64>); 5] = [
            (0, 0, 0, 0, None),
            (0, 2, 0, 1, None),         // a test run: nothing sent under this id
            (10, 3, 5, 1, Some(0.4)),   // proxies are not people
            (3, 1, 0, 0, Some(0.3333)), // 4 decimals
            (2, 2, 0, 1, Some(1.0)),    // never more than everyone
        ];
        for (sent, human, proxy, inferred, rate) in cases {
            let totals = [
                row("sent", "", -1, 0, sent),
                row("open_unique", "human", -1, 0, human),
                row("open_unique", "privacy_proxy", -1, 0, proxy),
                row("open_inferred_unique", "human", -1, 0, inferred),
            ];
            let s = CampaignStats::from_rollups("spring", &totals, &[], &[]);
            let e = &s.open_estimate;
            assert_eq!(
                (
                    e.sent,
                    e.confirmed_human,
                    e.privacy_proxy,
                    e.inferred_from_clicks
                ),
                (sent, human, proxy, inferred)
            );
            assert_eq!(e.estimated_rate, rate, "{sent} {human} {inferred}");
            assert!(s.summary_csv().contains(&format!(
                "campaign,,,opens_inferred_from_clicks,human,,{inferred}\n"
            )));
        }
    }

    #[test]
    fn honeypot_hits_are_scanner_clicks_of_no_link() {
        let hp = i64::from(HONEYPOT_LINK);
        let rows = vec![
            row("click", "human", 0, 0, 2),
            row("click", "scanner", 0, 0, 1),
            row("click", "scanner", hp, 0, 3),
            row("click_unique", "scanner", hp, 0, 2),
            row("click_unique", "scanner", -1, 0, 2),
        ];
        let links = vec![(0, "https://a.example/".to_owned())];
        let s = CampaignStats::from_rollups("c1", &rows, &[], &links);
        assert_eq!(s.clicks.honeypot_hits, 3);
        assert_eq!((s.clicks.all.total, s.clicks.all.scanner.total), (6, 4));
        assert_eq!(s.clicks.all.scanner.unique, 2);
        assert_eq!(
            s.clicks.links.iter().map(|l| l.index).collect::<Vec<_>>(),
            [0]
        );
        assert!(s
            .summary_csv()
            .contains("campaign,,,honeypot_hits,scanner,3,\n"));
    }

    #[test]
    fn dates() {
        for (hour, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000 / 3600, "2023-11-14T22:00:00Z"),
            (951_782_400 / 3600, "2000-02-29T00:00:00Z"),
            (4_107_542_400 / 3600, "2100-03-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339_hour(hour), want);
        }
    }

    #[test]
    fn csv_fields() {
        assert_eq!(
            csv_field("https://a.example/?a=1,b"),
            "\"https://a.example/?a=1,b\""
        );
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
