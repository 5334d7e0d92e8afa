//! Audience insight from purchases: RFM (recency, frequency, monetary) scores and segments, and
//! churn risk (a customer whose buying rhythm has stopped).
//!
//! Recency and frequency are scored on fixed thresholds (days since the last order, number of
//! orders), so a segment means the same in a shop of 50 customers as in one of 500,000; monetary is
//! scored by quintile among all buyers, because what counts as a big spender depends on the shop.
//! Segments are a table (first match wins) and feed segment rules (`{"rfm": ["champions"]}`) and
//! per-segment frequency caps (`core::policy::Limits::segment_caps`).

use serde::Serialize;

/// One buyer's orders, deduplicated by order id.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchases {
    pub contact: String,
    pub orders: u64,
    /// Sum of order values in major units (mixed currencies are added as numbers: monetary is a
    /// ranking, not accounting).
    pub total: f64,
    pub first_at: u64,
    pub last_at: u64,
}

/// A buyer's scores (1-5 each, 5 best) and segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Score {
    pub contact: String,
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub segment: &'static str,
    pub churn_risk: bool,
}

/// Recency thresholds: at most this many days since the last order scores 5, 4, 3, 2; older is 1.
const RECENCY_DAYS: [u64; 4] = [7, 30, 90, 180];
/// Frequency thresholds: at least this many orders scores 5, 4, 3, 2; one order is 1.
const FREQUENCY_ORDERS: [u64; 4] = [10, 5, 3, 2];

/// Segment names, in the order they are tried (see `SEGMENT_TABLE`).
pub const SEGMENTS: [&str; 7] = [
    "champions",
    "loyal",
    "new",
    "promising",
    "at_risk",
    "hibernating",
    "needs_attention",
];

/// The segment of a score: the first row of this table whose minimum recency, minimum frequency,
/// maximum recency and exact frequency (0 = any) all hold.
const SEGMENT_TABLE: [(&str, u8, u8, u8, u8); 7] = [
    // name, r at least, f at least, r at most, f exactly
    ("champions", 4, 4, 5, 0),
    ("loyal", 2, 4, 5, 0),
    ("new", 4, 1, 5, 1),
    ("promising", 4, 1, 5, 0),
    ("at_risk", 1, 3, 2, 0),
    ("hibernating", 1, 1, 2, 0),
    ("needs_attention", 1, 1, 5, 0),
];

/// The segment of a (recency, frequency) score pair.
pub fn segment(r: u8, f: u8) -> &'static str {
    SEGMENT_TABLE
        .iter()
        .find(|(_, r_min, f_min, r_max, f_exact)| {
            r >= *r_min && f >= *f_min && r <= *r_max && (*f_exact == 0 || f == *f_exact)
        })
        .map_or("needs_attention", |row| row.0)
}

fn recency_score(days: u64) -> u8 {
    RECENCY_DAYS
        .iter()
        .position(|&limit| days <= limit)
        .map_or(1, |i| 5 - i as u8)
}

fn frequency_score(orders: u64) -> u8 {
    FREQUENCY_ORDERS
        .iter()
        .position(|&min| orders >= min)
        .map_or(1, |i| 5 - i as u8)
}

/// Minimum quiet time before a stopped rhythm counts as churn risk, whatever the rhythm.
pub const CHURN_MIN_QUIET_DAYS: u64 = 14;

/// A repeat buyer (two orders or more) who has now been quiet for more than twice their usual
/// interval between orders, and at least [`CHURN_MIN_QUIET_DAYS`].
pub fn churn_risk(p: &Purchases, now: u64) -> bool {
    if p.orders < 2 || p.last_at <= p.first_at || now <= p.last_at {
        return false;
    }
    let usual_gap = (p.last_at - p.first_at) / (p.orders - 1);
    let quiet = now - p.last_at;
    quiet > 2 * usual_gap && quiet >= CHURN_MIN_QUIET_DAYS * 86_400
}

/// Scores every buyer at `now`.
pub fn score_all(buyers: &[Purchases], now: u64) -> Vec<Score> {
    let mut totals: Vec<f64> = buyers.iter().map(|b| b.total).collect();
    totals.sort_by(f64::total_cmp);
    let n = totals.len().max(1);
    buyers
        .iter()
        .map(|b| {
            // Share of buyers who spent strictly less: 0 → 1, top fifth → 5.
            let below = totals.partition_point(|t| *t < b.total);
            let m = 1 + (5 * below / n).min(4) as u8;
            let r = recency_score(now.saturating_sub(b.last_at) / 86_400);
            let f = frequency_score(b.orders);
            Score {
                contact: b.contact.clone(),
                r,
                f,
                m,
                segment: segment(r, f),
                churn_risk: churn_risk(b, now),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_800_000_000;

    fn buyer(
        contact: &str,
        orders: u64,
        total: f64,
        first_days_ago: u64,
        last_days_ago: u64,
    ) -> Purchases {
        Purchases {
            contact: contact.into(),
            orders,
            total,
            first_at: NOW - first_days_ago * DAY,
            last_at: NOW - last_days_ago * DAY,
        }
    }

    #[test]
    fn segments_follow_the_table() {
        let cases = [
            (buyer("ann", 6, 900.0, 60, 1), "champions", 5, 4),
            (buyer("ben", 1, 20.0, 1, 1), "new", 5, 1),
            (buyer("cal", 3, 60.0, 29, 25), "promising", 4, 3),
            (buyer("dan", 5, 300.0, 300, 100), "loyal", 2, 4),
            (buyer("eve", 3, 80.0, 400, 200), "at_risk", 1, 3),
            (buyer("fay", 1, 10.0, 400, 400), "hibernating", 1, 1),
            (buyer("gus", 2, 50.0, 120, 60), "needs_attention", 3, 2),
        ];
        let buyers: Vec<Purchases> = cases.iter().map(|c| c.0.clone()).collect();
        let scores = score_all(&buyers, NOW);
        for ((b, segment, r, f), s) in cases.iter().zip(&scores) {
            assert_eq!((s.segment, s.r, s.f), (*segment, *r, *f), "{}", b.contact);
        }
        // Monetary is relative: ann spent most (top fifth), fay least.
        assert_eq!(scores[0].m, 5);
        assert_eq!(scores[5].m, 1);
        assert!(SEGMENTS
            .iter()
            .all(|s| scores.iter().any(|x| x.segment == *s)));
        assert!(SEGMENT_TABLE.iter().map(|row| row.0).eq(SEGMENTS));
    }

    #[test]
    fn churn_risk_is_a_stopped_rhythm() {
        // Every two days for four days, quiet for 25: at risk.
        assert!(churn_risk(&buyer("a", 3, 1.0, 29, 25), NOW));
        // Every 30 days, quiet for 25: that is their rhythm.
        assert!(!churn_risk(&buyer("b", 4, 1.0, 115, 25), NOW));
        // Every day, quiet for 10: more than twice the rhythm, but under the minimum quiet time.
        assert!(!churn_risk(&buyer("c", 5, 1.0, 14, 10), NOW));
        // One order is no rhythm.
        assert!(!churn_risk(&buyer("d", 1, 1.0, 90, 90), NOW));
    }
}
