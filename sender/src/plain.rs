//! The plain-text part of a template that has none, made once from its HTML source when the
//! template is compiled (so sending runs no extra parse): the visible text with paragraphs, line
//! breaks and list items, each link's destination after its words, and nothing from `<head>`,
//! `<style>`, `<script>` or elements hidden from people (`aria-hidden="true"`). Template syntax
//! (`{{ contact.name }}`, `{% for %}`) is text to the HTML parser, so it stays and is rendered
//! per recipient like any text part.

use std::cell::RefCell;
use std::rc::Rc;

use epistola_core::html::unescape_attribute;
use lol_html::{doc_text, element, rewrite_str, EndTagHandler, RewriteStrSettings};

#[derive(Default)]
struct State {
    out: String,
    /// Inside this many elements whose text people never see.
    hidden: usize,
    /// The current text node, until its last chunk (an entity may straddle chunks).
    pending: String,
}

impl State {
    fn push_text(&mut self, raw: &str) {
        let nbsp = raw.replace("&nbsp;", " ");
        let decoded = unescape_attribute(&nbsp);
        for c in decoded.chars() {
            if c.is_whitespace() {
                if !self.out.ends_with([' ', '\n']) && !self.out.is_empty() {
                    self.out.push(' ');
                }
            } else {
                self.out.push(c);
            }
        }
    }
}

type Shared = Rc<RefCell<State>>;

/// Pushes `text` when the element starts and `after` when it ends (if it can end).
fn around(
    state: &Shared,
    el: &mut lol_html::html_content::Element,
    text: &str,
    after: &'static str,
) {
    state.borrow_mut().out.push_str(text);
    if let Some(handlers) = el.end_tag_handlers() {
        let s = state.clone();
        let end: EndTagHandler<'static> = Box::new(move |_| {
            s.borrow_mut().out.push_str(after);
            Ok(())
        });
        handlers.push(end);
    }
}

/// The text of `html`, or `None` if it cannot be parsed or has no text.
pub fn text_of_html(html: &str) -> Option<String> {
    let state: Shared = Rc::default();
    let (hide, br, block, item, cell, link, text) = (
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
    );
    rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!(
                    "head, style, script, title, template, [aria-hidden=\"true\"]",
                    move |el| {
                        if let Some(handlers) = el.end_tag_handlers() {
                            hide.borrow_mut().hidden += 1;
                            let s = hide.clone();
                            let end: EndTagHandler<'static> = Box::new(move |_| {
                                s.borrow_mut().hidden -= 1;
                                Ok(())
                            });
                            handlers.push(end);
                        }
                        Ok(())
                    }
                ),
                element!("br", move |_| {
                    br.borrow_mut().out.push('\n');
                    Ok(())
                }),
                element!(
                    "p, div, h1, h2, h3, h4, h5, h6, ul, ol, table, tr, blockquote, section, article, header, footer, hr, center",
                    move |el| {
                        around(&block, el, "\n", "\n");
                        Ok(())
                    }
                ),
                element!("li", move |el| {
                    around(&item, el, "\n- ", "");
                    Ok(())
                }),
                element!("td, th", move |el| {
                    around(&cell, el, "", " ");
                    Ok(())
                }),
                element!("a[href]", move |el| {
                    let href = unescape_attribute(&el.get_attribute("href").unwrap_or_default())
                        .trim()
                        .to_owned();
                    let (start, hidden) = {
                        let st = link.borrow();
                        (st.out.len(), st.hidden > 0)
                    };
                    // The hiding handler comes first: a hidden link is already counted hidden.
                    if let (Some(handlers), false) = (el.end_tag_handlers(), hidden) {
                        let s = link.clone();
                        let end: EndTagHandler<'static> = Box::new(move |_| {
                            let mut st = s.borrow_mut();
                            if href.is_empty() || href.starts_with('#') {
                                return Ok(());
                            }
                            let words = st.out.get(start..).unwrap_or_default().trim().to_owned();
                            if words != href {
                                st.out.push_str(&format!(" ({href})"));
                            }
                            Ok(())
                        });
                        handlers.push(end);
                    }
                    Ok(())
                }),
            ],
            document_content_handlers: vec![doc_text!(move |t| {
                let mut st = text.borrow_mut();
                st.pending.push_str(t.as_str());
                if t.last_in_text_node() {
                    let raw = std::mem::take(&mut st.pending);
                    if st.hidden == 0 {
                        st.push_text(&raw);
                    }
                }
                Ok(())
            })],
            ..RewriteStrSettings::new()
        },
    )
    .ok()?;
    let out = std::mem::take(&mut state.borrow_mut().out);
    // Lines trimmed, at most one empty line between blocks.
    let mut text = String::new();
    let mut blank = 0;
    for line in out.lines().map(str::trim) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !text.is_empty() {
            text.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        text.push_str(line);
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_html_as_a_reader_sees_it() {
        let cases = [
            (
                "<html><head><title>T</title><style>p{color:red}</style></head><body>\
<h1>Spring   sale</h1><p>Hello {{ contact.name }},<br>\n  our new toys &amp; games are in.</p>\
<ul><li>Kites</li><li>Yo-yos</li></ul>\
<p><a href=\"https://shop.example/spring?a=1&amp;b=2\">Shop now</a></p></body></html>",
                "Spring sale\n\nHello {{ contact.name }},\nour new toys & games are in.\n\n- Kites\n- Yo-yos\n\nShop now (https://shop.example/spring?a=1&b=2)",
            ),
            (
                "<p>Visit <a href=\"https://x.example\">https://x.example</a> or <a href=\"#top\">top</a></p>",
                "Visit https://x.example or top",
            ),
            (
                "<a href=\"https://trap.example\" aria-hidden=\"true\" style=\"display:none\"></a><p>Hi&nbsp;there</p>\
<table><tr><td>A</td><td>B</td></tr></table>",
                "Hi there\n\nA B",
            ),
            (
                "{% for p in products %}<p>{{ p.name }}: <a href=\"{{ p.url }}\">see it</a></p>{% endfor %}",
                "{% for p in products %}\n{{ p.name }}: see it ({{ p.url }})\n{% endfor %}",
            ),
        ];
        for (html, text) in cases {
            assert_eq!(text_of_html(html).as_deref(), Some(text), "{html}");
        }
        assert_eq!(text_of_html("<img src=\"x.png\">"), None);
    }
}
