//! Tracking rewrite of a rendered HTML part, streamed through lol_html: every `http(s)` link
//! becomes a signed click URL (except links to our own origin, such as unsubscribe, and links
//! marked `data-epistola-track="off"`), the open pixel goes at the end of the body, and a visible
//! unsubscribe footer is added when the template has none.

use epistola_core::track::MAX_LINKS;
use epistola_core::url::validate_destination;
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
    let mut result = rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![element!("a[href]", |el| {
                let Some(raw) = el.get_attribute("href") else {
                    return Ok(());
                };
                let href = raw.trim().replace("&amp;", "&");
                if !tracking.unsubscribe_url.is_empty() && href == tracking.unsubscribe_url {
                    has_unsubscribe = true;
                }
                let opted_out = el
                    .get_attribute(NO_TRACK_ATTRIBUTE)
                    .is_some_and(|v| v == "off");
                el.remove_attribute(NO_TRACK_ATTRIBUTE);
                let own = !tracking.own_origin.is_empty() && href.starts_with(tracking.own_origin);
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
            })],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| RewriteError(e.to_string()))?;
    // Footer and pixel go just before the last `</body>`, or at the end of a fragment.
    let mut tail = String::new();
    if !has_unsubscribe {
        tail.push_str(tracking.footer_html.unwrap_or_default());
    }
    if let Some(src) = tracking.pixel_url {
        tail.push_str(&format!(
            r#"<img src="{src}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">"#
        ));
    }
    let at = rfind_ignore_ascii_case(&result, "</body>").unwrap_or(result.len());
    result.insert_str(at, &tail);
    Ok(Rewritten {
        html: result,
        links,
    })
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
        }
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
            out.html
                .contains(r#"<a href="https://t.example/c/0-30">A</a>"#),
            "{}",
            out.html
        );
        assert!(
            out.html
                .contains(r#"<a href="https://t.example/c/1-22">C</a>"#),
            "{}",
            out.html
        );
        assert!(out.html.contains(r#"<a href="mailto:hi@shop.example">"#));
        assert!(
            out.html
                .contains(r#"<a href="https://shop.example/b">B</a>"#),
            "opt-out attribute removed: {}",
            out.html
        );
        assert!(out.html.contains(r#"<a href="javascript:alert(1)">"#));
        assert!(out.html.contains(r#"<a href="https://t.example/p/PREFS">"#));
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
            r#"<html><body><p>Hi</p><p><a href="https://t.example/u/UNSUB">Unsubscribe</a></p><img src="https://t.example/o/PIX.gif" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px"></body></html>"#
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
            out.html
                .starts_with("<p>Hi</p><p><a href=\"https://t.example/u/UNSUB\">"),
            "{}",
            out.html
        );
        assert!(out.html.ends_with("height:1px\">"), "{}", out.html);
    }

    #[test]
    fn anonymous_letters_can_skip_the_pixel() {
        let mut t = tracking();
        t.pixel_url = None;
        let out = rewrite("<body>x</body>", &t, &mut |_, _| None).expect("rewrites");
        assert!(!out.html.contains("<img"));
    }
}
