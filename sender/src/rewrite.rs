//! Tracking rewrite of an HTML part, streamed through lol_html: every `http(s)` link becomes a
//! signed click URL (except links to our own origin, such as unsubscribe, and links marked
//! `data-epistola-track="off"`), the hidden honeypot link goes at the start of the body, the open
//! pixel at its end, and a visible unsubscribe footer is added when the template has none.
//!
//! Two ways to do it. [`prepare`] rewrites the *template* once, when it is compiled: each static
//! link becomes a placeholder the template engine fills per recipient, so sending a letter runs no
//! HTML parser at all. A template whose links are themselves computed (`href="{{ … }}"`) cannot be
//! prepared; its letters are rewritten one by one after rendering with [`rewrite`].

use epistola_core::html::unescape_attribute;
use epistola_core::track::MAX_LINKS;
use epistola_core::url::validate_destination;
use lol_html::html_content::ContentType;
use lol_html::{element, rewrite_str, RewriteStrSettings};

/// The attribute that opts one link out of click tracking (removed from the output).
pub const NO_TRACK_ATTRIBUTE: &str = "data-epistola-track";

/// What to add and what to leave alone.
#[derive(Debug, Clone, Default)]
pub struct Tracking<'a> {
    /// Links starting with this origin (unsubscribe, preferences) are never rewritten.
    pub own_origin: &'a str,
    /// `<img>` source of the open pixel; `None` adds no pixel.
    pub pixel_url: Option<&'a str>,
    /// HTML appended to the body when the letter does not already link to `unsubscribe_url`.
    pub footer_html: Option<&'a str>,
    pub unsubscribe_url: &'a str,
    /// The hidden honeypot link's markup (`core::track::honeypot_html`), put first in the body.
    pub honeypot_html: Option<&'a str>,
}

/// The rewritten HTML and the destination of every link index it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub html: String,
    pub links: Vec<(u16, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("HTML rewriting failed: {0}")]
pub struct RewriteError(String);

/// Rewrites `html`. `sign(index, destination)` returns the tracked URL for a link, or `None` to
/// leave it as it is.
pub fn rewrite(
    html: &str,
    tracking: &Tracking<'_>,
    sign: &mut dyn FnMut(u16, &str) -> Option<String>,
) -> Result<Rewritten, RewriteError> {
    let mut links: Vec<(u16, String)> = Vec::new();
    let mut has_unsubscribe = false;
    let head = tracking.honeypot_html.unwrap_or_default();
    let mut has_body = false;
    let mut result = rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!("body", |el| {
                    if !has_body {
                        has_body = true;
                        el.prepend(head, ContentType::Html);
                    }
                    Ok(())
                }),
                element!("a[href]", |el| {
                    let Some(raw) = el.get_attribute("href") else {
                        return Ok(());
                    };
                    let href = unescape_attribute(raw.trim()).into_owned();
                    if !tracking.unsubscribe_url.is_empty() && href == tracking.unsubscribe_url {
                        has_unsubscribe = true;
                    }
                    if is_web(&href) {
                        open_in_new_tab(el)?;
                    }
                    let opted_out = el
                        .get_attribute(NO_TRACK_ATTRIBUTE)
                        .is_some_and(|v| v == "off");
                    el.remove_attribute(NO_TRACK_ATTRIBUTE);
                    let own =
                        !tracking.own_origin.is_empty() && href.starts_with(tracking.own_origin);
                    if opted_out
                        || own
                        || links.len() >= MAX_LINKS
                        || validate_destination(&href).is_err()
                    {
                        return Ok(());
                    }
                    // MAX_LINKS < u16::MAX.
                    let index = links.len() as u16;
                    if let Some(tracked) = sign(index, &href) {
                        el.set_attribute("href", &tracked)?;
                        links.push((index, href));
                    }
                    Ok(())
                }),
            ],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| RewriteError(e.to_string()))?;
    if !has_body {
        // A fragment: the honeypot goes first.
        result.insert_str(0, head);
    }
    // Footer and pixel go just before the last `</body>`, or at the end of a fragment.
    let tail = tail_html(tracking, has_unsubscribe);
    let at = rfind_ignore_ascii_case(&result, "</body>").unwrap_or(result.len());
    result.insert_str(at, &tail);
    Ok(Rewritten {
        html: result,
        links,
    })
}

/// Context variable holding the tracked URL of each prepared link, in order.
pub const LINKS_VAR: &str = "__epistola_links";
/// Context variable holding the footer and pixel HTML of a prepared template.
pub const TAIL_VAR: &str = "__epistola_tail";
/// Context variable holding what goes first in the body of a prepared template (the honeypot).
pub const HEAD_VAR: &str = "__epistola_head";

/// A template's HTML rewritten once for tracking, see [`prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The template source with placeholders.
    pub source: String,
    /// The destination of each placeholder, by index.
    pub links: Vec<String>,
    /// Whether the template links to `{{ unsubscribe_url }}` itself (then no footer is added).
    pub has_unsubscribe: bool,
}

/// Links to web pages open in a new tab. Webmail (and maildev's viewer) shows a letter inside a
/// frame, and Epistola's own pages refuse to be framed (clickjacking): followed inside the frame,
/// "Unsubscribe" would show a browser error. A template's own `target` or `rel` is kept.
fn open_in_new_tab(
    el: &mut lol_html::html_content::Element<'_, '_>,
) -> Result<(), lol_html::errors::AttributeNameError> {
    if el.get_attribute("target").is_none() {
        el.set_attribute("target", "_blank")?;
    }
    if el.get_attribute("rel").is_none() {
        el.set_attribute("rel", "noopener")?;
    }
    Ok(())
}

fn is_web(href: &str) -> bool {
    let head = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    head.starts_with("https://") || head.starts_with("http://")
}

fn is_expression(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

fn is_variable(href: &str, name: &str) -> bool {
    href.strip_prefix("{{")
        .and_then(|h| h.strip_suffix("}}"))
        .is_some_and(|inner| inner.trim() == name)
}

/// Prepares a template's HTML source: static links become `{{ __epistola_links[i] | safe }}`,
/// and `{{ __epistola_tail | safe }}` goes before `</body>`. `None` when a link's destination is
/// computed by the template (or template code sits inside an `<a>` tag): such a template is
/// rewritten per letter instead.
pub fn prepare(source: &str) -> Result<Option<Prepared>, RewriteError> {
    let mut links: Vec<String> = Vec::new();
    let mut dynamic = false;
    let mut has_unsubscribe = false;
    let head = format!("{{{{ {HEAD_VAR} | safe }}}}");
    let mut has_body = false;
    let mut out = rewrite_str(
        source,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!("body", |el| {
                    if !has_body {
                        has_body = true;
                        el.prepend(&head, ContentType::Html);
                    }
                    Ok(())
                }),
                element!("a", |el| {
                    if el.attributes().iter().any(|a| {
                        is_expression(&a.name())
                            || (a.name() != "href" && is_expression(&a.value()))
                    }) {
                        dynamic = true;
                        return Ok(());
                    }
                    let Some(raw) = el.get_attribute("href") else {
                        return Ok(());
                    };
                    let href = unescape_attribute(raw.trim()).into_owned();
                    let opted_out = el
                        .get_attribute(NO_TRACK_ATTRIBUTE)
                        .is_some_and(|v| v == "off");
                    el.remove_attribute(NO_TRACK_ATTRIBUTE);
                    if is_web(&href)
                        || is_variable(&href, "unsubscribe_url")
                        || is_variable(&href, "preferences_url")
                    {
                        open_in_new_tab(el)?;
                    }
                    if is_variable(&href, "unsubscribe_url") {
                        has_unsubscribe = true;
                        return Ok(());
                    }
                    if is_variable(&href, "preferences_url") || opted_out {
                        return Ok(());
                    }
                    if is_expression(&href) {
                        dynamic = true;
                        return Ok(());
                    }
                    if links.len() >= MAX_LINKS || validate_destination(&href).is_err() {
                        return Ok(());
                    }
                    el.set_attribute(
                        "href",
                        &format!("{{{{ {LINKS_VAR}[{}] | safe }}}}", links.len()),
                    )?;
                    links.push(href);
                    Ok(())
                }),
            ],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| RewriteError(e.to_string()))?;
    if dynamic {
        return Ok(None);
    }
    if !has_body {
        out.insert_str(0, &head);
    }
    let at = rfind_ignore_ascii_case(&out, "</body>").unwrap_or(out.len());
    out.insert_str(at, &format!("{{{{ {TAIL_VAR} | safe }}}}"));
    Ok(Some(Prepared {
        source: soft_wrap(&out, SOFT_WRAP_AT),
        links,
        has_unsubscribe,
    }))
}

/// Lines of a prepared template are broken near this length, so letters fit SMTP's line limit and
/// can go without transfer encoding.
pub const SOFT_WRAP_AT: usize = 800;

/// Breaks long lines at a space in text content: not inside a tag, a template expression or
/// statement, or a `<pre>`/`<textarea>`/`<script>`/`<style>` element, where a space is not just any
/// whitespace. In text, a line break renders exactly like the space it replaces.
pub fn soft_wrap(html: &str, at: usize) -> String {
    let bytes = html.as_bytes();
    let mut out = String::with_capacity(html.len());
    let (mut in_tag, mut in_template, mut raw_until): (bool, bool, Option<&str>) =
        (false, false, None);
    let mut line_len = 0;
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rest = &bytes[i..];
        if let Some(end) = raw_until {
            if rest.len() >= end.len() && rest[..end.len()].eq_ignore_ascii_case(end.as_bytes()) {
                raw_until = None;
            }
        } else if in_template {
            if (b == b'}' || b == b'%' || b == b'#') && rest.get(1) == Some(&b'}') {
                in_template = false;
            }
        } else if b == b'{' && matches!(rest.get(1), Some(b'{' | b'%' | b'#')) {
            in_template = true;
        } else if in_tag {
            if b == b'>' {
                in_tag = false;
            }
        } else if b == b'<' {
            in_tag = true;
            for (open, close) in [
                ("<pre", "</pre"),
                ("<textarea", "</textarea"),
                ("<script", "</script"),
                ("<style", "</style"),
            ] {
                if rest.len() >= open.len()
                    && rest[..open.len()].eq_ignore_ascii_case(open.as_bytes())
                {
                    raw_until = Some(close);
                }
            }
        }
        if b == b'\n' {
            line_len = 0;
        } else {
            line_len += 1;
        }
        if b == b' ' && line_len > at && !in_tag && !in_template && raw_until.is_none() {
            out.push_str(&html[last..i]);
            out.push('\n');
            last = i + 1;
            line_len = 0;
        }
    }
    out.push_str(&html[last..]);
    out
}

/// The footer and pixel HTML that go before `</body>`.
pub fn tail_html(tracking: &Tracking<'_>, has_unsubscribe: bool) -> String {
    let mut tail = String::new();
    if !has_unsubscribe {
        tail.push_str(tracking.footer_html.unwrap_or_default());
    }
    if let Some(src) = tracking.pixel_url {
        tail.push_str(&format!(
            r#"<img src="{src}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">"#
        ));
    }
    tail
}

fn rfind_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?)
        .rev()
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracking<'a>() -> Tracking<'a> {
        Tracking {
            own_origin: "https://t.example",
            pixel_url: Some("https://t.example/o/PIX.gif"),
            footer_html: Some(r#"<p><a href="https://t.example/u/UNSUB">Unsubscribe</a></p>"#),
            unsubscribe_url: "https://t.example/u/UNSUB",
            honeypot_html: Some(HONEYPOT),
        }
    }

    const HONEYPOT: &str = r#"<a href="https://t.example/c/HP" aria-hidden="true"></a>"#;

    #[test]
    fn the_honeypot_goes_first_in_the_body_or_first_in_a_fragment() {
        let page = r#"<html><head><title>t</title></head><body class="x"><p><a href="https://shop.example/a">A</a></p></body></html>"#;
        let out = rewrite(page, &tracking(), &mut signer).expect("rewrites");
        assert!(
            out.html
                .contains(&format!(r#"<body class="x">{HONEYPOT}<p>"#)),
            "{}",
            out.html
        );
        assert_eq!(out.html.matches("/c/HP").count(), 1);
        assert_eq!(out.links.len(), 1, "the honeypot is no link of the letter");
        let fragment = rewrite("<p>Hi</p>", &tracking(), &mut signer).expect("rewrites");
        assert!(fragment.html.starts_with(HONEYPOT), "{}", fragment.html);
        // A prepared template gets a placeholder in the same place.
        let prepared = prepare(page).expect("prepares").expect("static links");
        assert!(
            prepared.source.contains(&format!(
                r#"<body class="x">{{{{ {HEAD_VAR} | safe }}}}<p>"#
            )),
            "{}",
            prepared.source
        );
        let prepared = prepare("<p>Hi</p>").expect("prepares").expect("static");
        assert!(prepared.source.starts_with("{{ __epistola_head | safe }}"));
    }

    fn signer(index: u16, url: &str) -> Option<String> {
        Some(format!("https://t.example/c/{index}-{}", url.len()))
    }

    #[test]
    fn links_are_signed_in_order_and_others_left_alone() {
        let html = r#"<html><body>
<a href="https://shop.example/a?x=1&amp;y=2">A</a>
<a href="mailto:hi@shop.example">mail</a>
<a href="https://shop.example/b" data-epistola-track="off">B</a>
<a href="javascript:alert(1)">bad</a>
<a href="https://t.example/p/PREFS">prefs</a>
<a href="https://shop.example/c">C</a>
</body></html>"#;
        let out = rewrite(html, &tracking(), &mut signer).expect("rewrites");
        assert_eq!(
            out.links,
            [
                (0, "https://shop.example/a?x=1&y=2".to_owned()),
                (1, "https://shop.example/c".to_owned())
            ]
        );
        assert!(
            out.html.contains(
                r#"<a href="https://t.example/c/0-30" target="_blank" rel="noopener">A</a>"#
            ),
            "{}",
            out.html
        );
        assert!(
            out.html.contains(
                r#"<a href="https://t.example/c/1-22" target="_blank" rel="noopener">C</a>"#
            ),
            "{}",
            out.html
        );
        assert!(out.html.contains(r#"<a href="mailto:hi@shop.example">"#));
        assert!(
            out.html.contains(
                r#"<a href="https://shop.example/b" target="_blank" rel="noopener">B</a>"#
            ),
            "opt-out attribute removed: {}",
            out.html
        );
        assert!(out.html.contains(r#"<a href="javascript:alert(1)">"#));
        assert!(out
            .html
            .contains(r#"<a href="https://t.example/p/PREFS" target="_blank" rel="noopener">"#));
    }

    #[test]
    fn web_links_open_in_a_new_tab_and_a_templates_own_target_is_kept() {
        let html = r##"<body><a href="HTTPS://shop.example/x">X</a><a href="https://shop.example/y" target="_self" rel="external">Y</a><a href="mailto:a@b.c">M</a><a href="tel:+1">T</a><a href="#top">top</a></body>"##;
        let out = rewrite(html, &tracking(), &mut signer).expect("rewrites");
        assert!(
            out.html.contains(
                r#"<a href="https://t.example/c/0-22" target="_blank" rel="noopener">X</a>"#
            ),
            "{}",
            out.html
        );
        assert!(
            out.html.contains(r#"target="_self" rel="external">Y</a>"#),
            "{}",
            out.html
        );
        for other in [
            r#"<a href="mailto:a@b.c">M</a>"#,
            r#"<a href="tel:+1">T</a>"#,
            r##"<a href="#top">top</a>"##,
        ] {
            assert!(out.html.contains(other), "{other} in {}", out.html);
        }
        let p = prepare(
            r#"<body><a href="{{ unsubscribe_url }}">Leave</a><a href="mailto:a@b.c">M</a></body>"#,
        )
        .expect("parses")
        .expect("static");
        assert!(
            p.source.contains(
                r#"<a href="{{ unsubscribe_url }}" target="_blank" rel="noopener">Leave</a>"#
            ),
            "{}",
            p.source
        );
        assert!(
            p.source.contains(r#"<a href="mailto:a@b.c">M</a>"#),
            "{}",
            p.source
        );
    }

    #[test]
    fn pixel_and_footer_go_at_the_end_of_the_body() {
        let out = rewrite(
            "<html><body><p>Hi</p></body></html>",
            &tracking(),
            &mut signer,
        )
        .expect("rewrites");
        assert_eq!(
            out.html,
            r#"<html><body><a href="https://t.example/c/HP" aria-hidden="true"></a><p>Hi</p><p><a href="https://t.example/u/UNSUB">Unsubscribe</a></p><img src="https://t.example/o/PIX.gif" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px"></body></html>"#
        );
    }

    #[test]
    fn no_second_footer_when_the_template_links_to_unsubscribe() {
        let html = r#"<body><a href="https://t.example/u/UNSUB">Leave</a></body>"#;
        let out = rewrite(html, &tracking(), &mut signer).expect("rewrites");
        assert_eq!(out.html.matches("/u/UNSUB").count(), 1, "{}", out.html);
        assert!(out.html.contains("/o/PIX.gif"));
    }

    #[test]
    fn a_fragment_without_body_still_gets_pixel_and_footer() {
        let out = rewrite("<p>Hi</p>", &tracking(), &mut signer).expect("rewrites");
        assert!(
            out.html.starts_with(&format!(
                "{HONEYPOT}<p>Hi</p><p><a href=\"https://t.example/u/UNSUB\">"
            )),
            "{}",
            out.html
        );
        assert!(out.html.ends_with("height:1px\">"), "{}", out.html);
    }

    #[test]
    fn prepared_templates_carry_placeholders_for_static_links_only() {
        let source = r#"<body><a href="https://shop.example/a?x=1&amp;y=2">A</a>
<a href="{{ unsubscribe_url }}">Leave</a> <a href="{{preferences_url}}">Prefs</a>
<a href="https://shop.example/b" data-epistola-track="off">B</a> <a href="mailto:x@y.z">m</a></body>"#;
        let p = prepare(source).expect("parses").expect("static");
        assert_eq!(p.links, ["https://shop.example/a?x=1&y=2"]);
        assert!(p.has_unsubscribe);
        assert!(
            p.source
                .starts_with(r#"<body>{{ __epistola_head | safe }}<a href="{{ __epistola_links[0] | safe }}" target="_blank" rel="noopener">A</a>"#),
            "{}",
            p.source
        );
        assert!(
            p.source.contains(
                r#"<a href="https://shop.example/b" target="_blank" rel="noopener">B</a>"#
            ),
            "{}",
            p.source
        );
        assert!(
            p.source.ends_with("{{ __epistola_tail | safe }}</body>"),
            "{}",
            p.source
        );
    }

    #[test]
    fn long_lines_break_only_at_spaces_in_text() {
        let text = "word ".repeat(40);
        let html =
            format!("<p title=\"{text}\">{text}{{{{ \"a b\" }}}}{text}<pre>{text}</pre></p>");
        let wrapped = soft_wrap(&html, 50);
        assert_eq!(
            wrapped.replace('\n', " "),
            html,
            "only spaces became line breaks"
        );
        assert!(wrapped.lines().count() > 2, "{wrapped}");
        let attr_end = html.find("\">").expect("tag end");
        assert!(!wrapped[..attr_end].contains('\n'), "not inside a tag");
        assert!(
            wrapped.contains("{{ \"a b\" }}"),
            "not inside a template expression"
        );
        let pre = wrapped.find("<pre>").expect("pre");
        assert!(!wrapped[pre..].contains('\n'), "not inside <pre>");
    }

    #[test]
    fn computed_links_cannot_be_prepared() {
        for source in [
            r#"<a href="https://shop.example/?u={{ contact.id }}">x</a>"#,
            r#"{% for p in products %}<a href="{{ p.url }}">x</a>{% endfor %}"#,
            r#"<a {% if vip %}class="v"{% endif %} href="https://shop.example/">x</a>"#,
        ] {
            assert_eq!(prepare(source).expect("parses"), None, "{source}");
        }
    }

    #[test]
    fn anonymous_letters_can_skip_the_pixel() {
        let mut t = tracking();
        t.pixel_url = None;
        let out = rewrite("<body>x</body>", &t, &mut |_, _| None).expect("rewrites");
        assert!(!out.html.contains("<img"));
    }
}
