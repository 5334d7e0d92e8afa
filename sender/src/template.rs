//! Message templates: subject, HTML, text and SMS parts with personalisation through minijinja.
//! Templates are checked when saved (errors carry the part and line), and rendered per recipient
//! with chainable undefined values (`contact.name` of a contact without one is empty), so `{{ contact.name | default("friend") }}` is the fallback for a
//! missing field and a missing field never fails a send.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::rewrite::{prepare, Prepared};
use serde::Serialize;

/// The parts of a template as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateSource {
    pub subject: String,
    pub html: String,
    /// Plain-text part; made from the HTML when absent (`plain::text_of_html`, once, when the
    /// template is compiled).
    pub text: Option<String>,
    pub sms: Option<String>,
}

/// A template that does not compile or render: which part, which line, what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct TemplateError {
    pub part: &'static str,
    pub line: Option<usize>,
    pub message: String,
}

/// Longest part accepted (the HTML of a rich newsletter is well under this).
pub const MAX_PART_BYTES: usize = 256 * 1024;
/// SMS texts over this many characters are refused at save time (about three segments).
pub const MAX_SMS_CHARS: usize = 459;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Only the HTML part escapes: subject, text and SMS are not HTML.
    env.set_auto_escape_callback(|name| {
        if name == "html" {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // Keep rendering bounded whatever a template does.
    env.set_fuel(Some(200_000));
    env
}

fn error(part: &'static str, e: &minijinja::Error) -> TemplateError {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    TemplateError {
        part,
        line: e.line(),
        message: match e.line() {
            Some(line) => format!("line {line}: {what}"),
            None => what,
        },
    }
}

fn parts(t: &TemplateSource) -> [(&'static str, Option<&str>); 4] {
    [
        ("subject", Some(t.subject.as_str())),
        ("html", Some(t.html.as_str())),
        ("text", t.text.as_deref()),
        ("sms", t.sms.as_deref()),
    ]
}

/// Checks every part: size, syntax, and a trial render with an empty context (which catches
/// unknown filters and tests). Returns every problem found.
pub fn check(t: &TemplateSource) -> Vec<TemplateError> {
    let mut problems = Vec::new();
    if t.subject.trim().is_empty() {
        problems.push(TemplateError {
            part: "subject",
            line: None,
            message: "is required".into(),
        });
    }
    if t.html.trim().is_empty() {
        problems.push(TemplateError {
            part: "html",
            line: None,
            message: "is required".into(),
        });
    }
    let mut env = environment();
    for (part, source) in parts(t) {
        let Some(source) = source else { continue };
        if source.len() > MAX_PART_BYTES {
            problems.push(TemplateError {
                part,
                line: None,
                message: format!("is longer than {MAX_PART_BYTES} bytes"),
            });
            continue;
        }
        if let Err(e) = env.add_template_owned(part, source.to_owned()) {
            problems.push(error(part, &e));
            continue;
        }
        if let Ok(tpl) = env.get_template(part) {
            problems.extend(unknown_variables(part, source, &tpl));
        }
        let rendered = env
            .get_template(part)
            .and_then(|tpl| tpl.render(minijinja::context! {}));
        match rendered {
            Err(e) => problems.push(error(part, &e)),
            Ok(s) if part == "sms" && s.chars().count() > MAX_SMS_CHARS => {
                problems.push(TemplateError {
                    part,
                    line: None,
                    message: format!("is longer than {MAX_SMS_CHARS} characters"),
                })
            }
            Ok(_) => {}
        }
    }
    problems
}

/// The variables a template may use, as `check` names them in its refusal. `contact` has every
/// attribute (standard and custom) directly, and again under `fields` and `attributes`.
pub const KNOWN_VARIABLES: [&str; 9] = [
    "contact.{attribute}",
    "contact.fields.{attribute}",
    "contact.attributes.{attribute}",
    "contact.email",
    "campaign.id",
    "campaign.name",
    "site.name",
    "unsubscribe_url",
    "preferences_url",
];

/// Undefined values render as nothing, so a misspelt variable would send an empty greeting to
/// everyone; it is refused when the template is saved instead. Names under `contact` are custom
/// fields (any name is allowed there); everything else must be known.
fn unknown_variables(
    part: &'static str,
    source: &str,
    tpl: &minijinja::Template<'_, '_>,
) -> Vec<TemplateError> {
    let mut names: Vec<String> = tpl.undeclared_variables(true).into_iter().collect();
    names.sort();
    names
        .into_iter()
        .filter(|name| {
            let root = name.split('.').next().unwrap_or(name);
            let known = match root {
                "contact" | "unsubscribe_url" | "preferences_url" => true,
                "campaign" => matches!(name.as_str(), "campaign" | "campaign.id" | "campaign.name"),
                "site" => matches!(name.as_str(), "site" | "site.name"),
                // minijinja's own global functions.
                "range" | "dict" | "namespace" | "debug" => true,
                _ => false,
            };
            !known
        })
        .map(|name| {
            let root = name.split('.').next().unwrap_or(&name);
            let line = source
                .find(name.as_str())
                .or_else(|| source.find(root))
                .map(|at| source[..at].matches('\n').count() + 1);
            let at = line.map_or_else(String::new, |l| format!("line {l}: "));
            TemplateError {
                part,
                line,
                message: format!(
                    "{at}unknown variable `{name}`; known: {}",
                    KNOWN_VARIABLES.join(", ")
                ),
            }
        })
        .collect()
}

/// Rendered parts for one recipient (HTML not yet rewritten for tracking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedParts {
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    pub sms: Option<String>,
}

/// A compiled template, rendered many times (once per recipient of a chunk).
#[derive(Debug)]
pub struct Compiled {
    env: Environment<'static>,
    has_text: bool,
    has_sms: bool,
    /// The HTML part rewritten for tracking at compile time, when its links are static.
    prepared: Option<Prepared>,
}

impl Compiled {
    pub fn new(t: &TemplateSource) -> Result<Compiled, TemplateError> {
        let mut env = environment();
        let prepared = prepare(&t.html).map_err(|e| TemplateError {
            part: "html",
            line: None,
            message: e.to_string(),
        })?;
        for (part, source) in parts(t) {
            let source = match (part, &prepared) {
                ("html", Some(p)) => Some(p.source.as_str()),
                _ => source,
            };
            if let Some(source) = source {
                env.add_template_owned(part, source.to_owned())
                    .map_err(|e| error(part, &e))?;
            }
        }
        // No text part written: the HTML's text, so text-only readers and spam filters get the
        // letter, not only its unsubscribe lines. A derived source that does not compile (template
        // syntax split by tags) leaves the letter without one.
        let has_text = t.text.is_some()
            || crate::plain::text_of_html(&t.html)
                .is_some_and(|text| env.add_template_owned("text", text).is_ok());
        Ok(Compiled {
            env,
            has_text,
            has_sms: t.sms.is_some(),
            prepared,
        })
    }

    /// The tracking-prepared HTML, if the template's links are static (see [`prepare`]).
    pub fn prepared(&self) -> Option<&Prepared> {
        self.prepared.as_ref()
    }

    fn one<C: Serialize>(&self, part: &'static str, ctx: &C) -> Result<String, TemplateError> {
        self.env
            .get_template(part)
            .and_then(|tpl| tpl.render(ctx))
            .map_err(|e| error(part, &e))
    }

    /// The SMS part alone, `None` when the template has none.
    pub fn render_sms<C: Serialize>(&self, ctx: &C) -> Result<Option<String>, TemplateError> {
        if self.has_sms {
            self.one("sms", ctx).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn render<C: Serialize>(&self, ctx: &C) -> Result<RenderedParts, TemplateError> {
        Ok(RenderedParts {
            // Headers are one line: a template that renders line breaks into the subject does not
            // get to add headers.
            subject: self
                .one("subject", ctx)?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            html: self.one("html", ctx)?,
            text: if self.has_text {
                Some(self.one("text", ctx)?)
            } else {
                None
            },
            sms: if self.has_sms {
                Some(self.one("sms", ctx)?)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(html: &str) -> TemplateSource {
        TemplateSource {
            subject: "Hello {{ contact.name | default('friend') }}".into(),
            html: html.into(),
            text: Some("Hi {{ contact.name }}".into()),
            sms: None,
        }
    }

    #[test]
    fn personalises_with_fallbacks_and_escapes_html_only() {
        let c = Compiled::new(&source("<p>Hi {{ contact.name | default('friend') }}</p>"))
            .expect("compiles");
        let r = c
            .render(&json!({"contact": {"name": "<Ann & Bo>"}}))
            .expect("renders");
        assert_eq!(r.subject, "Hello <Ann & Bo>");
        assert_eq!(r.html, "<p>Hi &lt;Ann &amp; Bo&gt;</p>");
        assert_eq!(r.text.as_deref(), Some("Hi <Ann & Bo>"));
        let r = c
            .render(&json!({"contact": {}}))
            .expect("renders without the field");
        assert_eq!(r.subject, "Hello friend");
        assert_eq!(r.html, "<p>Hi friend</p>");
    }

    #[test]
    fn a_subject_cannot_inject_headers() {
        let mut s = source("<p>x</p>");
        s.subject = "Hi {{ contact.name }}".into();
        let c = Compiled::new(&s).expect("compiles");
        let r = c
            .render(&json!({"contact": {"name": "Ann\r\nBcc: all@example.com"}}))
            .expect("renders");
        assert_eq!(r.subject, "Hi Ann Bcc: all@example.com");
    }

    #[test]
    fn errors_name_the_part_and_line() {
        let problems = check(&TemplateSource {
            subject: "ok".into(),
            html: "<p>one</p>\n<p>two</p>\n<p>{{ contact.name </p>".into(),
            text: Some("{% if x %}never closed".into()),
            sms: Some("{{ contact.x | no_such_filter }}".into()),
        });
        let described: Vec<String> = problems
            .iter()
            .map(|p| format!("{} {:?}", p.part, p.line))
            .collect();
        assert_eq!(
            described,
            ["html Some(3)", "text Some(1)", "sms Some(1)"],
            "{problems:?}"
        );
        assert!(
            problems[0].message.starts_with("line 3: syntax error"),
            "{}",
            problems[0].message
        );
        assert!(
            problems[2].message.contains("filter"),
            "{}",
            problems[2].message
        );
    }

    #[test]
    fn unknown_variables_are_refused_with_the_known_ones() {
        let problems = check(&TemplateSource {
            subject: "Hi {{ contact.fields.first_name }} from {{ site.name }}".into(),
            html:
                "<p>{% set g = contact.first_name | default('friend') %}{{ g }}</p>\n\
{% for i in range(2) %}{{ loop.index }}{% endfor %}\n<p>{{ contcat.name }} {{ campaign.title }}</p>"
                    .into(),
            text: Some(
                "{{ campaign.name }} {{ unsubscribe_url }} {{ contact.attributes.toy }}".into(),
            ),
            sms: None,
        });
        let described: Vec<(&str, Option<usize>, &str)> = problems
            .iter()
            .map(|p| {
                (
                    p.part,
                    p.line,
                    p.message.split(';').next().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                ("html", Some(3), "line 3: unknown variable `campaign.title`"),
                ("html", Some(3), "line 3: unknown variable `contcat.name`"),
            ],
            "{problems:?}"
        );
        assert!(
            problems[0].message.ends_with(&KNOWN_VARIABLES.join(", ")),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn required_parts_and_sms_length() {
        let problems = check(&TemplateSource {
            sms: Some("x".repeat(500)),
            ..Default::default()
        });
        let parts: Vec<&str> = problems.iter().map(|p| p.part).collect();
        assert_eq!(parts, ["subject", "html", "sms"]);
    }

    #[test]
    fn runaway_loops_are_stopped() {
        let problems = check(&TemplateSource {
            subject: "s".into(),
            html: "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"
                .into(),
            ..Default::default()
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].part, "html");
    }
}
