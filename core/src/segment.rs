//! Segment rules: which contacts a campaign is for. Rules are data (JSON in the campaign), checked
//! when the campaign is saved and evaluated per contact during fan-out against facts the adapter
//! loads in bulk (attributes, tags, engagement).
//!
//! ```json
//! {"all": [{"attribute": {"name": "locale", "in": ["en", "uk"]}},
//!          {"tag": "vip"},
//!          {"not": {"opened": "spring-sale"}},
//!          {"no_open_days": 30},
//!          {"purchased_within_days": 90},
//!          {"rfm": ["champions", "loyal"]}]}
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Nesting and size limits, so a rule cannot be a denial of service.
pub const MAX_DEPTH: usize = 8;
pub const MAX_NODES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Every contact.
    Everyone(bool),
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Attribute(AttributeTest),
    Tag(String),
    /// A human open of this campaign (privacy-proxy and scanner opens do not count).
    Opened(String),
    /// A human click in this campaign.
    Clicked(String),
    /// No human open of anything in the last N days (or never).
    NoOpenDays(u32),
    /// A `purchase` event in the last N days.
    PurchasedWithinDays(u32),
    /// In one of these RFM segments (`core::rfm::SEGMENTS`), as of the last daily scoring.
    Rfm(Vec<String>),
}

/// A test on one attribute; exactly one of `eq`, `in`, `exists` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeTest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<String>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// What the adapter knows about one contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    pub opened: BTreeSet<String>,
    pub clicked: BTreeSet<String>,
    /// Unix seconds of the latest human open of any campaign.
    pub last_open: Option<u64>,
    /// Unix seconds of the latest `purchase` event.
    pub last_purchase: Option<u64>,
    /// RFM segment from the last daily scoring; `None` for contacts who never bought.
    pub rfm: Option<String>,
}

/// Why a rule is refused, with where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct RuleError {
    pub path: String,
    pub problem: &'static str,
}

/// Parses and checks a rule.
pub fn parse(value: &serde_json::Value) -> Result<Rule, RuleError> {
    let rule: Rule = serde_json::from_value(value.clone()).map_err(|_| RuleError {
        path: "segment".into(),
        problem: "not a segment rule (use all, any, not, attribute, tag, opened, clicked, no_open_days, purchased_within_days, rfm, everyone)",
    })?;
    let mut nodes = 0;
    check(&rule, "segment", 0, &mut nodes)?;
    Ok(rule)
}

fn check(rule: &Rule, path: &str, depth: usize, nodes: &mut usize) -> Result<(), RuleError> {
    let fail = |problem| {
        Err(RuleError {
            path: path.to_owned(),
            problem,
        })
    };
    *nodes += 1;
    if depth > MAX_DEPTH {
        return fail("nested too deeply");
    }
    if *nodes > MAX_NODES {
        return fail("too many rules");
    }
    match rule {
        Rule::All(rules) | Rule::Any(rules) => {
            if rules.is_empty() {
                return fail("needs at least one rule");
            }
            for (i, r) in rules.iter().enumerate() {
                check(r, &format!("{path}[{i}]"), depth + 1, nodes)?;
            }
            Ok(())
        }
        Rule::Not(r) => check(r, &format!("{path}.not"), depth + 1, nodes),
        Rule::Everyone(false) => fail("everyone must be true"),
        Rule::Attribute(t) => {
            let given = [t.eq.is_some(), t.one_of.is_some(), t.exists.is_some()];
            if t.name.is_empty() {
                fail("attribute needs a name")
            } else if given.iter().filter(|g| **g).count() != 1 {
                fail("give exactly one of eq, in, exists")
            } else {
                Ok(())
            }
        }
        Rule::Tag(s) | Rule::Opened(s) | Rule::Clicked(s) if s.is_empty() => {
            fail("must not be empty")
        }
        Rule::NoOpenDays(0) | Rule::PurchasedWithinDays(0) => fail("days must be at least 1"),
        Rule::Rfm(names) if names.is_empty() => fail("name at least one RFM segment"),
        Rule::Rfm(names) if names.iter().any(|n| !crate::rfm::SEGMENTS.contains(&n.as_str())) => {
            fail("unknown RFM segment (champions, loyal, new, promising, at_risk, hibernating, needs_attention)")
        }
        _ => Ok(()),
    }
}

/// Whether the contact is in the segment at `now` (unix seconds).
pub fn matches(rule: &Rule, facts: &Facts, now: u64) -> bool {
    match rule {
        Rule::Everyone(all) => *all,
        Rule::All(rules) => rules.iter().all(|r| matches(r, facts, now)),
        Rule::Any(rules) => rules.iter().any(|r| matches(r, facts, now)),
        Rule::Not(r) => !matches(r, facts, now),
        Rule::Attribute(t) => {
            let value = facts.attributes.get(&t.name).filter(|v| !v.is_empty());
            if let Some(wanted) = &t.eq {
                value == Some(wanted)
            } else if let Some(options) = &t.one_of {
                value.is_some_and(|v| options.contains(v))
            } else {
                t.exists == Some(value.is_some())
            }
        }
        Rule::Tag(tag) => facts.tags.contains(tag),
        Rule::Opened(c) => facts.opened.contains(c),
        Rule::Clicked(c) => facts.clicked.contains(c),
        Rule::NoOpenDays(days) => {
            let since = now.saturating_sub(u64::from(*days) * 86_400);
            facts.last_open.is_none_or(|t| t < since)
        }
        Rule::PurchasedWithinDays(days) => {
            let since = now.saturating_sub(u64::from(*days) * 86_400);
            facts.last_purchase.is_some_and(|t| t >= since)
        }
        Rule::Rfm(names) => facts.rfm.as_ref().is_some_and(|s| names.contains(s)),
    }
}

/// Whether a rule needs engagement facts (so the adapter can skip loading them).
pub fn needs_engagement(rule: &Rule) -> bool {
    match rule {
        Rule::All(rules) | Rule::Any(rules) => rules.iter().any(needs_engagement),
        Rule::Not(r) => needs_engagement(r),
        Rule::Opened(_)
        | Rule::Clicked(_)
        | Rule::NoOpenDays(_)
        | Rule::PurchasedWithinDays(_)
        | Rule::Rfm(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Facts {
        let mut f = Facts::default();
        f.attributes.insert("gender".into(), "female".into());
        f.attributes.insert("locale".into(), "uk".into());
        f.tags.insert("vip".into());
        f.opened.insert("spring".into());
        f.last_open = Some(1_000_000);
        // 20 days before `now` in the test below.
        f.last_purchase = Some(1_000_000 + 10 * 86_400 - 20 * 86_400);
        f.rfm = Some("loyal".into());
        f
    }

    #[test]
    fn rules_match_as_written() {
        let now = 1_000_000 + 10 * 86_400;
        let cases = [
            (json!({"everyone": true}), true),
            (
                json!({"attribute": {"name": "gender", "eq": "female"}}),
                true,
            ),
            (
                json!({"attribute": {"name": "gender", "eq": "male"}}),
                false,
            ),
            (
                json!({"attribute": {"name": "locale", "in": ["en", "uk"]}}),
                true,
            ),
            (
                json!({"attribute": {"name": "birthday", "exists": true}}),
                false,
            ),
            (
                json!({"attribute": {"name": "birthday", "exists": false}}),
                true,
            ),
            (json!({"tag": "vip"}), true),
            (json!({"not": {"tag": "vip"}}), false),
            (json!({"opened": "spring"}), true),
            (json!({"clicked": "spring"}), false),
            (json!({"no_open_days": 30}), false),
            (json!({"no_open_days": 7}), true),
            (json!({"purchased_within_days": 30}), true),
            (json!({"purchased_within_days": 10}), false),
            (json!({"not": {"purchased_within_days": 10}}), true),
            (json!({"rfm": ["champions", "loyal"]}), true),
            (json!({"rfm": ["at_risk"]}), false),
            (json!({"all": [{"tag": "vip"}, {"opened": "spring"}]}), true),
            (
                json!({"all": [{"tag": "vip"}, {"clicked": "spring"}]}),
                false,
            ),
            (json!({"any": [{"tag": "new"}, {"opened": "spring"}]}), true),
        ];
        for (rule, expected) in cases {
            let parsed = parse(&rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(matches(&parsed, &facts(), now), expected, "{rule}");
        }
    }

    #[test]
    fn never_opened_counts_as_inactive() {
        let rule = parse(&json!({"no_open_days": 30})).expect("valid");
        assert!(matches(&rule, &Facts::default(), 100));
        let never_bought = parse(&json!({"rfm": ["hibernating"]})).expect("valid");
        assert!(!matches(&never_bought, &Facts::default(), 100));
    }

    #[test]
    fn bad_rules_name_where() {
        let cases = [
            (json!({"all": []}), "segment: needs at least one rule"),
            (
                json!({"all": [{"attribute": {"name": "x"}}]}),
                "segment[0]: give exactly one of eq, in, exists",
            ),
            (
                json!({"attribute": {"name": "x", "eq": "a", "exists": true}}),
                "segment: give exactly one of eq, in, exists",
            ),
            (json!({"everyone": false}), "segment: everyone must be true"),
            (json!({"rfm": []}), "segment: name at least one RFM segment"),
            (
                json!({"any": [{"rfm": ["vips"]}]}),
                "segment[0]: unknown RFM segment (champions, loyal, new, promising, at_risk, hibernating, needs_attention)",
            ),
            (
                json!({"no_open_days": 0}),
                "segment: days must be at least 1",
            ),
        ];
        for (rule, expected) in cases {
            assert_eq!(parse(&rule).expect_err("refused").to_string(), expected);
        }
        assert!(parse(&json!({"bogus": 1})).is_err());
        let mut deep = json!({"tag": "x"});
        for _ in 0..10 {
            deep = json!({"not": deep});
        }
        assert_eq!(
            parse(&deep).expect_err("refused").problem,
            "nested too deeply"
        );
        let wide = json!({"any": vec![json!({"tag": "x"}); 200]});
        assert_eq!(parse(&wide).expect_err("refused").problem, "too many rules");
    }

    #[test]
    fn engagement_is_loaded_only_when_needed() {
        assert!(!needs_engagement(
            &parse(&json!({"tag": "a"})).expect("valid")
        ));
        assert!(needs_engagement(
            &parse(&json!({"any": [{"tag": "a"}, {"not": {"opened": "x"}}]})).expect("valid")
        ));
    }
}
