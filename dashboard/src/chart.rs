//! Server-rendered SVG charts: no script, no library download, readable without CSS. Every point
//! carries a `<title>` (hover text), and the numbers are also in the tables beside each chart.

use std::fmt::Write as _;

use epistola_core::html::escape;
use epistola_core::stats::{rfc3339_hour, HourPoint};

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub name: &'static str,
    pub colour: &'static str,
    pub values: Vec<u64>,
}

/// Buckets of a time series: hourly when the activity spans at most [`HOURLY_SPAN`] hours,
/// else daily (UTC days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// `hour` or `day`.
    pub unit: &'static str,
    /// Start of each bucket, RFC 3339 UTC.
    pub starts: Vec<String>,
    pub opens: Vec<u64>,
    pub clicks: Vec<u64>,
    pub conversions: Vec<u64>,
}

/// Longest span drawn hour by hour: the stats keep hours for 48 h (`SERIES_HOURLY_HOURS`), then
/// fold them into days, so a longer span is drawn by day.
pub const HOURLY_SPAN: u64 = 48;
/// Longest span drawn at all (days); older activity is left off the chart, not the tables.
pub const MAX_DAYS: u64 = 400;

/// Human opens, human clicks and conversions per bucket, zero-filled between the first and last
/// active bucket. `series` comes from `CampaignStats` (sorted by hour).
pub fn buckets(series: &[HourPoint]) -> Buckets {
    let hours: Vec<(u64, &HourPoint)> = series
        .iter()
        .filter_map(|p| parse_hour(&p.hour).map(|h| (h, p)))
        .collect();
    let (Some(first), Some(last)) = (hours.first().map(|h| h.0), hours.last().map(|h| h.0)) else {
        return Buckets {
            unit: "hour",
            starts: vec![],
            opens: vec![],
            clicks: vec![],
            conversions: vec![],
        };
    };
    let (unit, width) = if last - first < HOURLY_SPAN {
        ("hour", 1)
    } else {
        ("day", 24)
    };
    let start = (first / width).max((last / width).saturating_sub(MAX_DAYS));
    let end = last / width;
    let n = (end - start + 1) as usize;
    let mut b = Buckets {
        unit,
        starts: (start..=end).map(|i| rfc3339_hour(i * width)).collect(),
        opens: vec![0; n],
        clicks: vec![0; n],
        conversions: vec![0; n],
    };
    for (hour, p) in hours {
        let Some(i) = (hour / width).checked_sub(start) else {
            continue;
        };
        let i = i as usize;
        b.opens[i] += p.opens.human;
        b.clicks[i] += p.clicks.human;
        b.conversions[i] += p.conversions;
    }
    b
}

/// Hour bucket from `YYYY-MM-DDTHH:00:00Z`.
fn parse_hour(s: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, h) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    // Days from civil (H. Hinnant), inverse of the formatting in core::stats.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 24 + h).ok()
}

const W: u64 = 640;
const H: u64 = 200;
const PAD: u64 = 32;

/// A line chart with a zero baseline, the maximum marked, first and last bucket labelled.
pub fn line_chart(title: &str, labels: &[String], lines: &[Line]) -> String {
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = labels.len().max(1) as u64;
    let x = |i: usize| {
        if n == 1 {
            PAD + (W - 2 * PAD) / 2
        } else {
            PAD + i as u64 * (W - 2 * PAD) / (n - 1)
        }
    };
    let y = |v: u64| H - PAD - v * (H - 2 * PAD) / max;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
<text x=\"4\" y=\"{t}\" font-size=\"11\">{max}</text><text x=\"4\" y=\"{b}\" font-size=\"11\">0</text>",
        escape(title),
        b = H - PAD,
        r = W - PAD,
        t = PAD + 4,
    );
    if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
        let _ = write!(
            svg,
            "<text x=\"{PAD}\" y=\"{H}\" font-size=\"11\">{}</text>\
<text x=\"{}\" y=\"{H}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            escape(first),
            W - PAD,
            escape(last)
        );
    }
    for line in lines {
        let points: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{},{}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\" data-series=\"{}\"/>",
            line.colour,
            points.join(" "),
            line.name
        );
        for (i, v) in line.values.iter().enumerate() {
            let label = labels.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(
                svg,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"><title>{}: {} {}</title></circle>",
                x(i),
                y(*v),
                line.colour,
                escape(label),
                v,
                line.name
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A horizontal funnel: one bar per stage, width relative to the first stage, with counts and the
/// share of the first stage.
pub fn funnel(stages: &[(&str, u64)]) -> String {
    let top = stages.first().map_or(0, |s| s.1).max(1);
    let bar_h = 28;
    let h = stages.len() as u64 * (bar_h + 8);
    let mut svg = format!(
        "<svg class=\"funnel\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"Funnel\">"
    );
    for (i, (name, n)) in stages.iter().enumerate() {
        let y = i as u64 * (bar_h + 8);
        let width = (n.min(&top) * (W - 260) / top).max(2);
        let share = n * 1000 / top;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text>\
<rect x=\"110\" y=\"{y}\" width=\"{width}\" height=\"{bar_h}\" fill=\"#3b6ea5\"/>\
<text x=\"{}\" y=\"{}\" font-size=\"13\">{n} ({}.{}%)</text>",
            y + 19,
            escape(name),
            110 + width + 6,
            y + 19,
            share / 10,
            share % 10
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use epistola_core::stats::ByLabel;

    fn point(hour: u64, opens: u64, clicks: u64, conversions: u64) -> HourPoint {
        HourPoint {
            hour: rfc3339_hour(hour),
            opens: ByLabel {
                human: opens,
                privacy_proxy: 5,
                scanner: 0,
            },
            clicks: ByLabel {
                human: clicks,
                ..ByLabel::default()
            },
            conversions,
            ..HourPoint::default()
        }
    }

    #[test]
    fn hours_parse_back() {
        for hour in [0, 1, 490_000, 500_123] {
            assert_eq!(parse_hour(&rfc3339_hour(hour)), Some(hour));
        }
        assert_eq!(parse_hour("garbage"), None);
    }

    #[test]
    fn recent_activity_is_hourly_and_zero_filled() {
        let b = buckets(&[point(480_000, 3, 1, 0), point(480_003, 1, 0, 1)]);
        assert_eq!(b.unit, "hour");
        assert_eq!(b.opens, vec![3, 0, 0, 1]);
        assert_eq!(b.clicks, vec![1, 0, 0, 0]);
        assert_eq!(b.conversions, vec![0, 0, 0, 1]);
        assert_eq!(b.starts[0], rfc3339_hour(480_000));
    }

    #[test]
    fn longer_spans_are_daily() {
        let day0 = 20_000 * 24;
        let b = buckets(&[
            point(day0 + 1, 2, 0, 0),
            point(day0 + 5, 3, 1, 0),
            point(day0 + 24 * 9 + 2, 4, 2, 1),
        ]);
        assert_eq!(b.unit, "day");
        assert_eq!(b.opens.len(), 10);
        assert_eq!(b.opens[0], 5);
        assert_eq!(b.opens[9], 4);
        assert_eq!(b.clicks.iter().sum::<u64>(), 3);
        assert!(b.starts[0].ends_with("T00:00:00Z"));
    }

    #[test]
    fn charts_carry_their_numbers() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let svg = line_chart(
            "Opens",
            &labels,
            &[Line {
                name: "opens",
                colour: "#000",
                values: vec![2, 7],
            }],
        );
        assert!(svg.contains("<title>b: 7 opens</title>"), "{svg}");
        assert!(svg.contains(">7</text>"), "{svg}");
        let f = funnel(&[("Sent", 200), ("Opened", 50)]);
        assert!(f.contains("50 (25.0%)"), "{f}");
        assert!(buckets(&[]).starts.is_empty());
    }
}
