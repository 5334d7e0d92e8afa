//! The campaign form: create a draft from a template, a site and purpose, and an audience (every
//! contact with consent, contacts with some tags, or a rule written as JSON), or edit a draft. The
//! form's fields become the API's `CampaignInput` here, so the API's validation decides; its
//! errors come back beside the field they name.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epistola_core::campaign::CampaignInput;
use epistola_core::html::escape;
use serde_json::{json, Value};

use crate::{layout, path_id, Fields};

/// Who a campaign is for, as the form offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every contact with consent for the purpose.
    Everyone,
    /// Contacts with every one of these tags, comma-separated as typed.
    Tags(String),
    /// A segment rule as JSON (`core::segment`).
    Rule(String),
}

/// The form's values (as typed, or read from a stored campaign) and its errors by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignForm {
    /// The campaign being edited; `None` for a new one.
    pub editing: Option<String>,
    pub id: String,
    pub name: String,
    pub template: String,
    pub site: String,
    pub purpose: String,
    pub audience: Audience,
    pub allow_resend: bool,
    pub errors: BTreeMap<String, String>,
}

impl Default for CampaignForm {
    fn default() -> Self {
        CampaignForm {
            editing: None,
            id: String::new(),
            name: String::new(),
            template: String::new(),
            site: String::new(),
            purpose: String::new(),
            audience: Audience::Everyone,
            allow_resend: false,
            errors: BTreeMap::new(),
        }
    }
}

/// What the form lets one choose from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    /// (id, name) of each template.
    pub templates: Vec<(String, String)>,
    /// (site id, site name, purpose) for every e-mail consent a site asks for.
    pub targets: Vec<(String, String, String)>,
}

/// A campaign id from its name: lowercase letters, digits and dashes (`Spring sale!` →
/// `spring-sale`), at most 64 characters.
pub fn id_from_name(name: &str) -> String {
    let mut id = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    let id: String = id.trim_end_matches('-').chars().take(64).collect();
    id.trim_end_matches('-').to_owned()
}

/// The segment rule an audience choice stands for, or the field and why not.
pub fn segment_of(audience: &Audience) -> Result<Value, (&'static str, String)> {
    match audience {
        Audience::Everyone => Ok(json!({ "everyone": true })),
        Audience::Tags(typed) => {
            let tags: Vec<&str> = typed
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect();
            match tags.as_slice() {
                [] => Err(("tags", "type at least one tag".into())),
                [one] => Ok(json!({ "tag": one })),
                many => Ok(
                    json!({ "all": many.iter().map(|t| json!({ "tag": t })).collect::<Vec<_>>() }),
                ),
            }
        }
        Audience::Rule(text) => {
            serde_json::from_slice(text.as_bytes()).map_err(|e| ("rule", format!("not JSON: {e}")))
        }
    }
}

/// How the form shows a stored segment rule: the choice it was made with, if it is one.
pub fn audience_of(segment: &Value) -> Audience {
    if segment == &json!({ "everyone": true }) {
        return Audience::Everyone;
    }
    let tag = |v: &Value| v.get("tag").and_then(Value::as_str).map(str::to_owned);
    if let (Some(t), 1) = (tag(segment), segment.as_object().map_or(0, |o| o.len())) {
        return Audience::Tags(t);
    }
    if let Some(all) = segment.get("all").and_then(Value::as_array) {
        let tags: Option<Vec<String>> = all.iter().map(tag).collect();
        if let Some(tags) = tags.filter(|t| !t.is_empty()) {
            return Audience::Tags(tags.join(", "));
        }
    }
    Audience::Rule(serde_json::to_string_pretty(segment).unwrap_or_default())
}

/// The form's fields read by `field` (a form body), as typed.
pub fn form_from_fields(
    editing: Option<&str>,
    field: impl Fn(&str) -> Option<String>,
) -> CampaignForm {
    let text = |name: &str| field(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let name = text("name");
    let id = match editing {
        Some(id) => id.to_owned(),
        None => match text("id") {
            id if id.is_empty() => id_from_name(&name),
            id => id,
        },
    };
    let (site, purpose) = match text("target").split_once('/') {
        Some((s, p)) => (s.to_owned(), p.to_owned()),
        None => (String::new(), String::new()),
    };
    let audience = match text("audience").as_str() {
        "tags" => Audience::Tags(text("tags")),
        "rule" => Audience::Rule(field("rule").unwrap_or_default()),
        _ => Audience::Everyone,
    };
    CampaignForm {
        editing: editing.map(str::to_owned),
        id,
        name,
        template: text("template"),
        site,
        purpose,
        audience,
        allow_resend: field("allow_resend").is_some(),
        errors: BTreeMap::new(),
    }
}

/// The API's input for the form, or the form with its errors (the API then checks the rest).
pub fn input_of(form: &mut CampaignForm) -> Option<CampaignInput> {
    if form.id.is_empty() {
        form.errors.insert(
            "id".into(),
            "give the campaign a name (its id is made from it)".into(),
        );
    }
    if form.site.is_empty() {
        form.errors
            .insert("target".into(), "choose a site and purpose".into());
    }
    let segment = match segment_of(&form.audience) {
        Ok(s) => s,
        Err((field, why)) => {
            form.errors.insert(field.into(), why);
            Value::Null
        }
    };
    if !form.errors.is_empty() {
        return None;
    }
    Some(CampaignInput {
        name: form.name.clone(),
        site: form.site.clone(),
        template: form.template.clone(),
        purpose: form.purpose.clone(),
        segment,
        send_window: None,
        anonymous: false,
        sms_fallback_after_seconds: None,
        allow_resend: form.allow_resend,
    })
}

/// The API's field names, as the form names them (`site`/`purpose` are one choice; a rule's
/// problem belongs to the audience the marketer chose).
pub fn form_field(api_field: &str, audience: &Audience) -> &'static str {
    match api_field {
        "name" => "name",
        "template" => "template",
        "site" | "purpose" => "target",
        "campaign" | "id" => "id",
        f if f.starts_with("segment") => match audience {
            Audience::Tags(_) => "tags",
            _ => "rule",
        },
        _ => "form",
    }
}

/// The new-campaign or edit page.
pub fn campaign_form(form: &CampaignForm, choices: &Choices) -> String {
    let fields = Fields(&form.errors);
    let (error, invalid) = (|f: &str| fields.error(f), |f: &str| fields.invalid(f));
    let action = match &form.editing {
        Some(id) => format!("/dashboard/campaigns/{}/edit", path_id(id)),
        None => "/dashboard/campaigns".into(),
    };
    let mut body = format!("<form method=\"post\" action=\"{action}\">");
    body.push_str(&error("form"));
    body.push_str(&fields.name_and_id(
        &form.name,
        form.editing.is_none().then_some(form.id.as_str()),
    ));
    let _ = write!(
        body,
        "<p><label for=\"template\">Template</label><br><select id=\"template\" name=\"template\" required{}>",
        invalid("template")
    );
    if choices.templates.is_empty() {
        body.push_str("<option value=\"\">No templates yet</option>");
    }
    for (id, name) in &choices.templates {
        let _ = write!(
            body,
            "<option value=\"{}\"{}>{} ({})</option>",
            escape(id),
            if *id == form.template {
                " selected"
            } else {
                ""
            },
            escape(name),
            escape(id)
        );
    }
    let _ = write!(body, "</select>{}</p>", error("template"));
    let _ = write!(
        body,
        "<p><label for=\"target\">Site and purpose (recipients must have consented to it)</label><br>\
<select id=\"target\" name=\"target\" required{}>",
        invalid("target")
    );
    if choices.targets.is_empty() {
        body.push_str("<option value=\"\">No site with an e-mail consent yet</option>");
    }
    for (site, site_name, purpose) in &choices.targets {
        let chosen = *site == form.site && *purpose == form.purpose;
        let _ = write!(
            body,
            "<option value=\"{}/{}\"{}>{} — {}</option>",
            escape(site),
            escape(purpose),
            if chosen { " selected" } else { "" },
            escape(site_name),
            escape(purpose)
        );
    }
    let _ = write!(body, "</select>{}</p>", error("target"));
    let checked = |on: bool| if on { " checked" } else { "" };
    let (tags, rule) = match &form.audience {
        Audience::Tags(t) => (t.as_str(), ""),
        Audience::Rule(r) => ("", r.as_str()),
        Audience::Everyone => ("", ""),
    };
    let _ = write!(
        body,
        "<fieldset><legend>Audience</legend>\
<p><label><input type=\"radio\" name=\"audience\" value=\"everyone\"{}> Everyone with consent</label></p>\
<p><label><input type=\"radio\" name=\"audience\" value=\"tags\" id=\"audience-tags\"{}> Contacts tagged</label> \
<input id=\"tags\" name=\"tags\" aria-label=\"Tags, comma-separated: a contact needs every one\" placeholder=\"vip, winter\" size=\"30\" value=\"{}\"{}>{}</p>\
<p><label><input type=\"radio\" name=\"audience\" value=\"rule\" id=\"audience-rule\"{}> A rule (JSON: all, any, not, tag, attribute, opened, clicked, no_open_days, purchased_within_days, rfm)</label><br>\
<textarea id=\"rule\" name=\"rule\" rows=\"6\" cols=\"60\" aria-label=\"Segment rule as JSON\" spellcheck=\"false\"{}>{}</textarea>{}</p>\
</fieldset>",
        checked(form.audience == Audience::Everyone),
        checked(matches!(form.audience, Audience::Tags(_))),
        escape(tags),
        invalid("tags"),
        error("tags"),
        checked(matches!(form.audience, Audience::Rule(_))),
        invalid("rule"),
        escape(rule),
        error("rule"),
    );
    let _ = write!(
        body,
        "<p><label><input type=\"checkbox\" name=\"allow_resend\" value=\"1\"{}> Send also to contacts who got the same content recently</label></p>\
<p class=\"muted\">Saved as a draft. A draft is tested, then approved by someone who holds approval, then scheduled.</p>\
<button>{}</button></form>",
        checked(form.allow_resend),
        if form.editing.is_some() { "Save the draft" } else { "Create the draft" }
    );
    let title = match &form.editing {
        Some(_) => format!("Edit {}", form.name),
        None => "New campaign".into(),
    };
    layout(&title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_names() {
        for (name, id) in [
            ("Spring sale!", "spring-sale"),
            ("  Winter -- drop 2027 ", "winter-drop-2027"),
            ("Ünïcode only", "n-code-only"),
            ("!!!", ""),
            (&"x".repeat(80), &"x".repeat(64)),
        ] {
            assert_eq!(id_from_name(name), id, "{name}");
        }
    }

    #[test]
    fn audiences_become_rules_and_back() {
        let cases = [
            (Audience::Everyone, json!({"everyone": true})),
            (Audience::Tags("vip".into()), json!({"tag": "vip"})),
            (
                Audience::Tags("vip, winter".into()),
                json!({"all": [{"tag": "vip"}, {"tag": "winter"}]}),
            ),
        ];
        for (audience, rule) in cases {
            assert_eq!(segment_of(&audience).as_ref(), Ok(&rule));
            assert_eq!(audience_of(&rule), audience);
        }
        let rule = json!({"any": [{"tag": "a"}, {"no_open_days": 30}]});
        assert!(matches!(audience_of(&rule), Audience::Rule(_)));
        assert_eq!(
            segment_of(&Audience::Tags(" , ".into())).unwrap_err().0,
            "tags"
        );
        assert_eq!(
            segment_of(&Audience::Rule("{all".into())).unwrap_err().0,
            "rule"
        );
    }

    #[test]
    fn a_form_body_becomes_the_api_input_or_its_errors() {
        let body = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(f, _)| *f == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let mut form = form_from_fields(
            None,
            body(&[
                ("name", "Spring sale"),
                ("template", "spring-letter"),
                ("target", "demo/newsletter"),
                ("audience", "tags"),
                ("tags", "spring"),
            ]),
        );
        let input = input_of(&mut form).expect("valid");
        assert_eq!(form.id, "spring-sale");
        assert_eq!(
            (input.site.as_str(), input.purpose.as_str()),
            ("demo", "newsletter")
        );
        assert_eq!(input.segment, json!({"tag": "spring"}));
        assert!(!input.allow_resend);

        let mut bad = form_from_fields(None, body(&[("name", "?!"), ("audience", "tags")]));
        assert!(input_of(&mut bad).is_none());
        let fields: Vec<&str> = bad.errors.keys().map(String::as_str).collect();
        assert_eq!(fields, ["id", "tags", "target"]);
        let page = campaign_form(&bad, &Choices::default());
        assert!(page.contains("id=\"tags-error\""));
        assert!(page.contains("aria-invalid=\"true\""));
    }

    #[test]
    fn api_errors_land_beside_the_field_the_marketer_used() {
        let tags = Audience::Tags("x".into());
        assert_eq!(form_field("segment", &tags), "tags");
        assert_eq!(
            form_field("segment.all[0]", &Audience::Rule(String::new())),
            "rule"
        );
        assert_eq!(form_field("purpose", &tags), "target");
        assert_eq!(form_field("send_window", &tags), "form");
    }

    #[test]
    fn the_edit_form_keeps_its_choices() {
        let form = CampaignForm {
            editing: Some("spring sale".into()),
            id: "spring sale".into(),
            name: "Spring <sale>".into(),
            template: "b".into(),
            site: "demo".into(),
            purpose: "news".into(),
            audience: Audience::Tags("vip".into()),
            allow_resend: true,
            errors: BTreeMap::new(),
        };
        let choices = Choices {
            templates: vec![("a".into(), "A".into()), ("b".into(), "B".into())],
            targets: vec![("demo".into(), "Demo shop".into(), "news".into())],
        };
        let page = campaign_form(&form, &choices);
        assert!(page.contains("action=\"/dashboard/campaigns/spring%20sale/edit\""));
        assert!(page.contains("<option value=\"b\" selected>"));
        assert!(page.contains("<option value=\"demo/news\" selected>"));
        assert!(page.contains("value=\"vip\""));
        assert!(page.contains("Edit Spring &lt;sale&gt;"));
        assert!(
            !page.contains("name=\"id\""),
            "an edited campaign keeps its id"
        );
    }
}
