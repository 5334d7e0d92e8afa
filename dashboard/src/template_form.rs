//! Templates in the browser: the list, and the editor (subject, HTML, plain text, SMS) with a
//! preview as one chosen contact exactly as `compose` makes the letter — at desktop and phone
//! widths, with the plain-text part and the links that will be tracked. Saving and previewing are
//! the API's functions; a template error names its part and line beside that part.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epistola_core::html::escape;

use crate::{layout, path_id, table, Fields};

/// One template as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLine {
    pub id: String,
    pub name: String,
    pub subject: String,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub updated: String,
}

/// The letter as one contact gets it (`POST /v1/templates/{id}/preview`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub sms: Option<String>,
    /// Destinations of the tracked links, in order.
    pub links: Vec<String>,
}

/// The editor's values (as typed or stored), errors by field, and a preview if one was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateForm {
    /// The template being edited; `None` for a new one.
    pub editing: Option<String>,
    pub id: String,
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub sms: String,
    /// Preview as this contact (id or address) of this site.
    pub contact: String,
    pub site: String,
    pub errors: BTreeMap<String, String>,
    pub preview: Option<Preview>,
}

/// The templates list; `can_edit`: the viewer may create and edit.
pub fn templates(rows: &[TemplateLine], can_edit: bool) -> String {
    let mut body = String::new();
    if can_edit {
        body.push_str("<p><a href=\"/dashboard/templates/new\">New template</a></p>");
    }
    if rows.is_empty() {
        body.push_str("<p class=\"notice\">No templates yet.</p>");
        return layout("Templates", &body);
    }
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|t| {
            let name = if can_edit {
                format!(
                    "<a href=\"/dashboard/templates/{}/edit\">{}</a>",
                    path_id(&t.id),
                    escape(&t.name)
                )
            } else {
                escape(&t.name)
            };
            vec![
                name,
                format!("<code>{}</code>", escape(&t.id)),
                escape(&t.subject),
                escape(&t.updated),
            ]
        })
        .collect();
    body.push_str(&table(
        &["Name", "Id", "Subject", "Updated (UTC)"],
        &lines,
        None,
    ));
    layout("Templates", &body)
}

/// The editor page: the parts, the preview controls, and the preview if there is one.
pub fn template_form(form: &TemplateForm, sites: &[(String, String)]) -> String {
    let fields = Fields(&form.errors);
    let (error, invalid) = (|f: &str| fields.error(f), |f: &str| fields.invalid(f));
    let action = match &form.editing {
        Some(id) => format!("/dashboard/templates/{}/edit", path_id(id)),
        None => "/dashboard/templates".into(),
    };
    let mut body = format!(
        "<form method=\"post\" action=\"{action}\">{}",
        error("form")
    );
    body.push_str(&fields.name_and_id(
        &form.name,
        form.editing.is_none().then_some(form.id.as_str()),
    ));
    let _ = write!(
        body,
        "<p><label for=\"subject\">Subject</label><br><input id=\"subject\" name=\"subject\" required size=\"60\" value=\"{}\"{}>{}</p>",
        escape(&form.subject),
        invalid("subject"),
        error("subject")
    );
    for (field, label, rows) in [
        (
            "html",
            "HTML (minijinja: {{ contact.name }}, {{ contact.fields.x }}, {{ site.name }})",
            14,
        ),
        (
            "text",
            "Plain text (optional: made from the words of the HTML if empty)",
            6,
        ),
        ("sms", "SMS (optional: for SMS fallback)", 3),
    ] {
        let value = match field {
            "html" => &form.html,
            "text" => &form.text,
            _ => &form.sms,
        };
        let _ = write!(
            body,
            "<p><label for=\"{field}\">{}</label><br><textarea id=\"{field}\" name=\"{field}\" rows=\"{rows}\" cols=\"80\" spellcheck=\"false\"{}>{}</textarea>{}</p>",
            escape(label),
            invalid(field),
            escape(value),
            error(field)
        );
    }
    let _ = write!(
        body,
        "<fieldset><legend>Preview as one contact (nothing is saved or sent)</legend>\
<label for=\"contact\">Contact (id or address)</label> <input id=\"contact\" name=\"contact\" size=\"30\" value=\"{}\"{}> \
<label for=\"site\">Site</label> <select id=\"site\" name=\"site\">",
        escape(&form.contact),
        invalid("contact"),
    );
    for (id, name) in sites {
        let _ = write!(
            body,
            "<option value=\"{}\"{}>{}</option>",
            escape(id),
            if *id == form.site { " selected" } else { "" },
            escape(name)
        );
    }
    let _ = write!(
        body,
        "</select> <button name=\"do\" value=\"preview\">Preview</button>{}{}</fieldset>\
<p><button name=\"do\" value=\"save\">Save the template</button></p></form>",
        error("contact"),
        error("site")
    );
    if let Some(p) = &form.preview {
        body.push_str(&preview(p));
    }
    let title = match &form.editing {
        Some(_) => format!("Edit {}", form.name),
        None => "New template".into(),
    };
    layout(&title, &body)
}

/// The preview: headers, the letter at two widths (sandboxed: no script, no form, no
/// navigation), the plain text, the SMS and the tracked links.
fn preview(p: &Preview) -> String {
    let mut out = format!(
        "<section aria-labelledby=\"preview\"><h2 id=\"preview\">Preview</h2>\
<p>To <strong id=\"preview-to\">{}</strong> from {} · Subject: <strong id=\"preview-subject\">{}</strong></p><div class=\"two\">",
        escape(&p.to),
        escape(&p.from),
        escape(&p.subject)
    );
    for (id, label, width) in [("desktop", "Desktop", 640), ("phone", "Phone", 375)] {
        let _ = write!(
            out,
            "<figure><figcaption>{label} ({width} px)</figcaption><iframe id=\"preview-{id}\" title=\"The letter at {label} width\" \
sandbox srcdoc=\"{}\" width=\"{width}\" height=\"480\" style=\"max-width:100%;border:1px solid #ddd;background:#fff\"></iframe></figure>",
            escape(&p.html)
        );
    }
    let _ = write!(
        out,
        "</div><h3>Plain text</h3><pre id=\"preview-text\" style=\"white-space:pre-wrap\">{}</pre>",
        escape(&p.text)
    );
    if let Some(sms) = &p.sms {
        let _ = write!(
            out,
            "<h3>SMS</h3><pre id=\"preview-sms\">{}</pre>",
            escape(sms)
        );
    }
    out.push_str("<h3>Tracked links</h3>");
    if p.links.is_empty() {
        out.push_str("<p class=\"muted\">No links.</p>");
    } else {
        out.push_str("<ol id=\"preview-links\">");
        for l in &p.links {
            let _ = write!(out, "<li>{}</li>", escape(l));
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_shows_errors_beside_their_part_and_escapes_what_was_typed() {
        let mut form = TemplateForm {
            name: "Spring".into(),
            subject: "Hi {{ contact.name".into(),
            html: "<p>Hello</p></textarea><script>".into(),
            ..TemplateForm::default()
        };
        form.errors
            .insert("subject".into(), "line 1: unexpected end".into());
        let page = template_form(&form, &[("demo".into(), "Demo".into())]);
        assert!(page.contains("id=\"subject-error\""));
        assert!(page.contains("&lt;/textarea&gt;&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>"));
        assert!(page.contains("action=\"/dashboard/templates\""));
        assert!(page.contains("name=\"id\""));
        assert!(!page.contains("id=\"preview\""), "no preview until asked");
    }

    #[test]
    fn the_preview_is_sandboxed_at_two_widths_with_text_and_links() {
        let form = TemplateForm {
            editing: Some("spring letter".into()),
            name: "Spring".into(),
            preview: Some(Preview {
                to: "tess@example.net".into(),
                subject: "Hi Tess".into(),
                html: "<p class=\"x\">Hello & welcome</p>".into(),
                text: "Hello".into(),
                links: vec!["https://shop.example/a?b=1&c=2".into()],
                ..Preview::default()
            }),
            ..TemplateForm::default()
        };
        let page = template_form(&form, &[]);
        assert!(page.contains("action=\"/dashboard/templates/spring%20letter/edit\""));
        assert_eq!(page.matches("<iframe").count(), 2);
        assert!(
            page.contains(
                "sandbox srcdoc=\"&lt;p class=&quot;x&quot;&gt;Hello &amp; welcome&lt;/p&gt;\""
            ),
            "{page}"
        );
        assert!(page.contains("<li>https://shop.example/a?b=1&amp;c=2</li>"));
        assert!(!page.contains("preview-sms"));
    }

    #[test]
    fn the_list_links_editors_only() {
        let rows = [TemplateLine {
            id: "a".into(),
            name: "A <b>".into(),
            subject: "S".into(),
            updated: "2026-12-04 10:00".into(),
        }];
        assert!(
            templates(&rows, true).contains("href=\"/dashboard/templates/a/edit\">A &lt;b&gt;</a>")
        );
        assert!(!templates(&rows, false).contains("/edit"));
        assert!(templates(&[], true).contains("No templates yet"));
    }
}
