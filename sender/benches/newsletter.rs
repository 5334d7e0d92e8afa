//! A realistic newsletter for the benchmarks: table layout with inline styles (as e-mail HTML is),
//! 30 links, personalisation in the greeting and in product blocks, about 100 KB.

use epistola_sender::template::TemplateSource;

/// The newsletter as a campaign template.
pub fn newsletter_template() -> TemplateSource {
    TemplateSource {
        subject: "Spring picks for {{ contact.name | default('you') }}".into(),
        html: newsletter_html(),
        text: Some("Hello {{ contact.name }}, see https://shop.example/".into()),
        sms: None,
    }
}

/// One recipient's template context.
pub fn recipient_context() -> serde_json::Value {
    serde_json::json!({"contact": {"name": "Ann", "email": "ann@example.com", "attributes": {"child_age": "3-5"}}})
}

pub fn newsletter_html() -> String {
    let mut html = String::from(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Spring picks</title>
<style>body{margin:0;padding:0;background:#f4f4f4}table{border-collapse:collapse}.btn{display:inline-block;padding:12px 20px;background:#222;color:#fff;text-decoration:none;border-radius:4px}</style>
</head><body><table role="presentation" width="100%" style="background:#f4f4f4"><tr><td align="center">
<table role="presentation" width="600" style="background:#ffffff;font-family:Helvetica,Arial,sans-serif;color:#222">
<tr><td style="padding:24px"><a href="https://shop.example/?utm_source=mail&amp;utm_campaign=spring"><img src="https://cdn.shop.example/logo.png" width="120" alt="Toy shop"></a></td></tr>
<tr><td style="padding:0 24px 24px 24px;font-size:18px;line-height:26px">Hello {{ contact.name | default("friend") }}, spring is here and so are new toys for {{ contact.attributes.child_age | default("every age") }}.</td></tr>
"#,
    );
    let filler = "Crafted from sustainably sourced beech wood, finished with water-based paints that are safe for little hands, and tested to European toy safety standards. ";
    for i in 0..29 {
        html.push_str(&format!(
            r#"<tr><td style="padding:16px 24px;border-top:1px solid #eeeeee">
<table role="presentation" width="100%"><tr>
<td width="160" valign="top"><img src="https://cdn.shop.example/products/{i}.jpg" width="150" height="150" alt="Product {i}" style="display:block;border:0"></td>
<td valign="top" style="padding-left:16px;font-size:15px;line-height:22px">
<h2 style="margin:0 0 8px 0;font-size:20px">Wooden toy number {i}</h2>
<p style="margin:0 0 12px 0">{}</p>
<p style="margin:0 0 12px 0;color:#666666">{}</p>
<a class="btn" href="https://shop.example/products/{i}?utm_source=mail&amp;utm_campaign=spring&amp;utm_content=block-{i}" style="display:inline-block;padding:12px 20px;background:#222222;color:#ffffff;text-decoration:none;border-radius:4px">See toy {i}</a>
</td></tr></table></td></tr>
"#,
            filler.repeat(13),
            filler.repeat(2),
        ));
    }
    html.push_str(
        r#"<tr><td style="padding:24px;font-size:12px;color:#888888">You get this because you subscribed at shop.example.
<a href="https://t.example/p/prefs-placeholder">Preferences</a></td></tr>
</table></td></tr></table></body></html>"#,
    );
    html
}
