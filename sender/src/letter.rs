//! The letters of double opt-in: "please confirm" and "here is what we promised". Texts are
//! localised (en, ru, uk); every value from the site or the visitor is escaped in the HTML part.

use epistola_core::site::SiteConfig;

/// A rendered letter, before it is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

struct Texts {
    confirm_subject: &'static str,
    confirm_intro: &'static str,
    confirm_button: &'static str,
    confirm_ignore: &'static str,
    confirm_grants: &'static str,
    delivery_more: &'static str,
    delivery_preferences: &'static str,
}

fn texts(locale: &str) -> Texts {
    match locale {
        "ru" => Texts {
            confirm_subject: "Подтвердите адрес, чтобы получить: ",
            confirm_intro: "Нажмите кнопку, чтобы подтвердить адрес, и мы сразу пришлём обещанное.",
            confirm_button: "Подтвердить адрес",
            confirm_ignore: "Если вы ничего не заказывали, просто проигнорируйте это письмо.",
            confirm_grants: "Подтверждая, вы соглашаетесь:",
            delivery_more: "Хотите получать и другие наши письма? Выберите, что вам интересно:",
            delivery_preferences: "Настроить подписки",
        },
        "uk" => Texts {
            confirm_subject: "Підтвердьте адресу, щоб отримати: ",
            confirm_intro: "Натисніть кнопку, щоб підтвердити адресу, і ми одразу надішлемо обіцяне.",
            confirm_button: "Підтвердити адресу",
            confirm_ignore: "Якщо ви нічого не замовляли, просто проігноруйте цей лист.",
            confirm_grants: "Підтверджуючи, ви погоджуєтеся:",
            delivery_more: "Бажаєте отримувати й інші наші листи? Оберіть, що вам цікаво:",
            delivery_preferences: "Налаштувати підписки",
        },
        _ => Texts {
            confirm_subject: "Confirm your address to get: ",
            confirm_intro: "Press the button to confirm your address and we will send what we promised right away.",
            confirm_button: "Confirm my address",
            confirm_ignore: "If you did not ask for this, just ignore this e-mail.",
            confirm_grants: "By confirming you agree to:",
            delivery_more: "Would you like our other e-mails too? Choose what interests you:",
            delivery_preferences: "Choose my subscriptions",
        },
    }
}

pub use epistola_core::html::escape as escape_html;

fn button(url: &str, label: &str) -> String {
    format!(
        "<p><a href=\"{}\" target=\"_blank\" rel=\"noopener\" style=\"display:inline-block;padding:12px 20px;background:#222;color:#fff;\
text-decoration:none;border-radius:6px\">{}</a></p>",
        escape_html(url),
        escape_html(label)
    )
}

/// "Please confirm": sent right after a capture. `confirm_url` leads to a page whose button
/// confirms; `grants` are the texts of exactly the consents confirming will record (the site's
/// words, never the visitor's: a confirmation letter must not carry text a stranger typed).
pub fn confirmation(site: &SiteConfig, confirm_url: &str, grants: &[&str]) -> Letter {
    let t = texts(&site.locale);
    let subject = format!("{}{}", t.confirm_subject, site.promise.title);
    let grants_text: String = grants.iter().map(|g| format!("- {g}\n")).collect();
    let grants_html: String = grants
        .iter()
        .map(|g| format!("<li>{}</li>", escape_html(g)))
        .collect();
    let text = format!(
        "{}\n\n{}\n\n{}\n{}\n{}: {}\n\n{}\n\n{}\n",
        site.promise.title,
        site.promise.description,
        t.confirm_grants,
        grants_text,
        t.confirm_button,
        confirm_url,
        t.confirm_intro,
        t.confirm_ignore
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h1>{}</h1><p>{}</p><p>{}</p><ul>{grants_html}</ul><p>{}</p>{}<p style=\"color:#666\">{}</p></body></html>",
        escape_html(&site.promise.title),
        escape_html(&site.promise.description),
        escape_html(t.confirm_grants),
        escape_html(t.confirm_intro),
        button(confirm_url, t.confirm_button),
        escape_html(t.confirm_ignore)
    );
    Letter {
        subject,
        text,
        html,
    }
}

/// "Here is what we promised", after confirmation, with the offer of the other purposes.
pub fn delivery(site: &SiteConfig, preferences_url: &str) -> Letter {
    let t = texts(&site.locale);
    let d = &site.promise.delivery;
    let text = format!(
        "{}\n\n{}\n\n{}\n{}: {}\n",
        d.text, d.url, t.delivery_more, t.delivery_preferences, preferences_url
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h1>{}</h1><p>{}</p>{}<p>{}</p>{}</body></html>",
        escape_html(&d.subject),
        escape_html(&d.text),
        button(&d.url, &site.promise.title),
        escape_html(t.delivery_more),
        button(preferences_url, t.delivery_preferences)
    );
    Letter {
        subject: d.subject.clone(),
        text,
        html,
    }
}

/// The workspace's one-time sign-in link for a user (`minutes`: how long it works).
pub fn sign_in(sign_in_url: &str, minutes: u32) -> Letter {
    let text = format!(
        "Sign in to the Epistola workspace:\n\n{sign_in_url}\n\nThe link works once, for {minutes} minutes. \
         If you did not ask for it, ignore this letter: nobody can sign in without it.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h1>Sign in to Epistola</h1>{}\
         <p>The link works once, for {minutes} minutes.</p><p style=\"color:#666\">If you did not ask for it, \
         ignore this letter: nobody can sign in without it.</p></body></html>",
        button(sign_in_url, "Sign in")
    );
    Letter {
        subject: "Your Epistola sign-in link".into(),
        text,
        html,
    }
}

/// The settings page's test letter: proof that the configured transport delivers, sent at an
/// admin's request (`asked_by`: who, as the workspace names them).
pub fn transport_test(workspace_url: &str, asked_by: &str) -> Letter {
    let text = format!(
        "This is a test letter from the Epistola workspace at {workspace_url}, sent at the request of {asked_by}.\n\n\
         It reached you, so the mail transport works. Nothing needs doing.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h1>The mail transport works</h1>\
         <p>This is a test letter from the Epistola workspace at {}, sent at the request of {}.</p>\
         <p style=\"color:#666\">Nothing needs doing.</p></body></html>",
        escape_html(workspace_url),
        escape_html(asked_by)
    );
    Letter {
        subject: "Epistola test letter: the mail transport works".into(),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(locale: &str) -> SiteConfig {
        let mut s: SiteConfig =
            serde_json::from_slice(include_bytes!("../../tests/vectors/site.json"))
                .expect("demo site parses");
        s.locale = locale.into();
        s
    }

    #[test]
    fn confirmation_carries_the_link_in_both_parts() {
        let l = confirmation(
            &site("en"),
            "https://t.example/confirm/TOKEN?a=1&b=2",
            &["Send me the <birthday> coupon."],
        );
        assert!(l.subject.ends_with("A birthday gift from us"));
        // Exactly what confirming grants, in both parts, escaped in HTML.
        assert!(l
            .text
            .contains("By confirming you agree to:\n- Send me the <birthday> coupon.\n"));
        assert!(l
            .html
            .contains("<ul><li>Send me the &lt;birthday&gt; coupon.</li></ul>"));
        assert!(l.text.contains("https://t.example/confirm/TOKEN?a=1&b=2"));
        assert!(l
            .html
            .contains("href=\"https://t.example/confirm/TOKEN?a=1&amp;b=2\""));
    }

    #[test]
    fn localised_and_escaped() {
        let mut s = site("uk");
        s.promise.title = "<script>alert(1)</script>".into();
        let l = confirmation(&s, "https://t.example/c", &[]);
        assert!(l.subject.starts_with("Підтвердьте"));
        assert!(!l.html.contains("<script>"));
        assert!(confirmation(&site("ru"), "x", &[])
            .html
            .contains("Подтвердить адрес"));
    }

    #[test]
    fn delivery_offers_the_other_purposes() {
        let l = delivery(&site("en"), "https://t.example/p/TOKEN");
        assert_eq!(l.subject, "Your birthday coupon");
        assert!(l.text.contains("https://shop.example/coupons/BIRTHDAY15"));
        assert!(l.html.contains("https://t.example/p/TOKEN"));
    }
}
