//! Trigger chains: an event (`cart.abandoned`, `purchase`, `lead.confirmed`, `birthday`, or any
//! custom type sent to `POST /v1/events`) enrols a contact; each step waits its delay, checks its
//! condition, and sends its message. A contact who no longer meets a step's condition leaves the
//! chain (e.g. "no purchase since the cart was abandoned").

use serde::{Deserialize, Serialize};

use crate::ids::validate_id;
use crate::segment::{self, Facts, Rule};
use crate::track::FieldErrors;

/// Most steps in one chain.
pub const MAX_STEPS: usize = 20;
/// Longest delay of one step (a year).
pub const MAX_DELAY_SECONDS: u64 = 366 * 86_400;

/// `PUT /v1/chains/{id}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainInput {
    pub name: String,
    pub site: String,
    /// Consent purpose its messages need.
    pub purpose: String,
    /// The event type that enrols a contact.
    pub trigger: String,
    pub steps: Vec<StepInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    /// Wait after the previous step (after enrolment for the first).
    pub delay_seconds: u64,
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// What must still hold when a step is due; otherwise the contact leaves the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// No event of this type since the contact entered the chain (e.g. `purchase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_event_since_entry: Option<String>,
    /// A segment rule over attributes and tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<serde_json::Value>,
}

/// Event types: lower-case words separated by dots, dashes or underscores.
pub fn validate_event_type(t: &str) -> Result<(), &'static str> {
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err("must be 1-64 of a-z 0-9 . _ -, starting with a letter, e.g. cart.abandoned")
    }
}

pub fn validate_chain(input: &ChainInput) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errors.insert("name".into(), "must be 1-200 characters".into());
    }
    for (field, value) in [("site", &input.site), ("purpose", &input.purpose)] {
        if let Err(e) = validate_id(value, false) {
            errors.insert(field.into(), e.to_string());
        }
    }
    if let Err(e) = validate_event_type(&input.trigger) {
        errors.insert("trigger".into(), e.into());
    }
    if input.steps.is_empty() || input.steps.len() > MAX_STEPS {
        errors.insert("steps".into(), format!("must have 1-{MAX_STEPS} steps"));
    }
    for (i, step) in input.steps.iter().enumerate() {
        if step.delay_seconds > MAX_DELAY_SECONDS {
            errors.insert(
                format!("steps[{i}].delay_seconds"),
                "must be at most a year".into(),
            );
        }
        if let Err(e) = validate_id(&step.template, false) {
            errors.insert(format!("steps[{i}].template"), e.to_string());
        }
        if let Some(c) = &step.condition {
            if let Some(t) = &c.no_event_since_entry {
                if let Err(e) = validate_event_type(t) {
                    errors.insert(
                        format!("steps[{i}].condition.no_event_since_entry"),
                        e.into(),
                    );
                }
            }
            if let Some(rule) = &c.segment {
                if let Err(e) = segment::parse(rule) {
                    errors.insert(format!("steps[{i}].condition.{}", e.path), e.problem.into());
                }
            }
        }
    }
    errors
}

/// Chains triggered by inactivity use the trigger `inactive.{N}d`: no human open or click for N
/// days (churn risk). Returns N.
pub fn inactivity_days(trigger: &str) -> Option<u32> {
    let n: u32 = trigger
        .strip_prefix("inactive.")?
        .strip_suffix('d')?
        .parse()
        .ok()?;
    (1..=3650).contains(&n).then_some(n)
}

/// The id a chain step's outcomes, opens and clicks count under in the stats: `{chain}.{n}`,
/// 1-based, so `GET /v1/stats/campaigns/{chain}.1` reports the first step.
pub fn step_stats_id(chain: &str, step: usize) -> String {
    format!("{chain}.{}", step + 1)
}

/// Why a run leaves its chain, if it does.
pub fn leaves(
    condition: Option<&Condition>,
    had_event_since_entry: bool,
    facts: &Facts,
    now: u64,
) -> Option<&'static str> {
    let c = condition?;
    if c.no_event_since_entry.is_some() && had_event_since_entry {
        return Some("event_since_entry");
    }
    let rule: Option<Rule> = c.segment.as_ref().and_then(|r| segment::parse(r).ok());
    match rule {
        Some(rule) if !segment::matches(&rule, facts, now) => Some("condition_not_met"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_types() {
        for ok in ["purchase", "cart.abandoned", "lead.confirmed", "app_open-2"] {
            assert!(validate_event_type(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Cart", "2x", "cart abandoned", &"x".repeat(65)] {
            assert!(validate_event_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chains_are_checked_field_by_field() {
        let input: ChainInput = serde_json::from_value(json!({
            "name": "Cart", "site": "demo", "purpose": "newsletter", "trigger": "Cart!",
            "steps": [{"delay_seconds": 3600, "template": "cart-1", "condition": {"no_event_since_entry": "purchase"}},
                      {"delay_seconds": 99999999999u64, "template": "bad id", "condition": {"segment": {"all": []}}}]
        }))
        .expect("shape");
        let errors = validate_chain(&input);
        let names: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "steps[1].condition.segment",
                "steps[1].delay_seconds",
                "steps[1].template",
                "trigger"
            ]
        );
    }

    #[test]
    fn inactivity_triggers() {
        assert_eq!(inactivity_days("inactive.30d"), Some(30));
        assert_eq!(inactivity_days("inactive.0d"), None);
        assert_eq!(inactivity_days("inactive.30"), None);
        assert_eq!(inactivity_days("cart.abandoned"), None);
        assert!(validate_event_type("inactive.30d").is_ok());
    }

    #[test]
    fn leaving_a_chain() {
        let purchase = Condition {
            no_event_since_entry: Some("purchase".into()),
            segment: None,
        };
        let vip = Condition {
            no_event_since_entry: None,
            segment: Some(json!({"tag": "vip"})),
        };
        let mut facts = Facts::default();
        assert_eq!(leaves(None, true, &facts, 0), None);
        assert_eq!(leaves(Some(&purchase), false, &facts, 0), None);
        assert_eq!(
            leaves(Some(&purchase), true, &facts, 0),
            Some("event_since_entry")
        );
        assert_eq!(
            leaves(Some(&vip), false, &facts, 0),
            Some("condition_not_met")
        );
        facts.tags.insert("vip".into());
        assert_eq!(leaves(Some(&vip), false, &facts, 0), None);
        assert_eq!(step_stats_id("cart", 0), "cart.1");
    }
}
