//! Conversions: who bought after which letter, for how much.
//!
//! A click on a tracked link lands on the site with a short signed attribution parameter
//! ([`ATTRIBUTION_PARAM`], a [`Purpose::Conversion`](crate::token::Purpose) token naming campaign,
//! contact, message and link). The widget keeps it in the site's own storage for the attribution
//! window and sends it with `epistola('convert', …)` to `POST /v1/convert`. Server-side `purchase`
//! events are attributed to the contact's last human click (or SMS) within the window. Either way a
//! conversion is stored once per order id, so the beacon and the server event never count twice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::track::FieldErrors;

/// Query parameter the click redirect appends to the destination.
pub const ATTRIBUTION_PARAM: &str = "ep";
/// Default attribution window: a purchase this long after the click still counts.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;
/// An SMS counts as the touch that sold if the purchase follows it within this long (SMS links are
/// not tracked, so receipt is the touch).
pub const SMS_WINDOW_SECONDS: u64 = 86_400;
/// Largest body `POST /v1/convert` reads.
pub const MAX_CONVERT_BYTES: usize = 4 * 1024;
/// Largest amount accepted, in minor units (10^13 cents = 100 billion): bounds arithmetic and
/// catches values sent in the wrong unit.
const MAX_MINOR: i64 = 10_000_000_000_000;

/// The body of `POST /v1/convert`, as the widget sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConvertRequest {
    pub site: String,
    /// The attribution token the click brought (the `ep` parameter).
    pub attribution: String,
    /// Order total as a JSON number or decimal string, in major units (`49.90`).
    pub value: Value,
    pub currency: String,
    pub order_id: String,
}

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: String,
}

/// Digits after the decimal point for a currency (ISO 4217); 2 unless listed.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Formats minor units as a decimal string in major units (`4990`, `EUR` → `49.90`).
pub fn format_major(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale_u = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale_u,
        abs % scale_u,
        width = digits as usize
    )
}

/// Parses a currency code: three upper-case ASCII letters.
pub fn parse_currency(code: &str) -> Result<String, &'static str> {
    let code = code.trim();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err("must be a three-letter ISO 4217 code, e.g. EUR")
    }
}

/// Parses an order value (JSON number or decimal string, major units, not negative) into minor
/// units. Exact: `"19.99"` is 1999 cents, never 1998.999….
pub fn parse_amount(value: &Value, currency: &str) -> Result<i64, &'static str> {
    const PROBLEM: &str = "must be a non-negative amount with at most the currency's decimals";
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        // serde_json prints the shortest representation that round-trips, so 19.99 stays "19.99".
        Value::Number(n) => n.to_string(),
        _ => return Err(PROBLEM),
    };
    let digits = minor_digits(currency) as usize;
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || whole.len() > 15 {
        return Err(PROBLEM);
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > digits {
        return Err(PROBLEM);
    }
    let whole: i64 = whole.parse().map_err(|_| PROBLEM)?;
    let fraction_minor: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<digits$}")
            .parse()
            .map_err(|_| PROBLEM)?
    };
    let minor = whole
        .checked_mul(10i64.pow(digits as u32))
        .and_then(|w| w.checked_add(fraction_minor))
        .ok_or(PROBLEM)?;
    if minor > MAX_MINOR {
        return Err("is larger than any order we accept");
    }
    Ok(minor)
}

/// Order ids: 1-128 printable ASCII characters, the shop's own identifier.
pub fn validate_order_id(id: &str) -> Result<(), &'static str> {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("must be 1-128 printable ASCII characters without spaces")
    }
}

/// An order, checked: id, value and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub money: Money,
}

/// Checks the order part of a convert request or of a `purchase` event's data. Field names are
/// the request's (`value`, `currency`, `order_id`).
pub fn validate_order(order_id: &str, value: &Value, currency: &str) -> Result<Order, FieldErrors> {
    let mut errors = FieldErrors::new();
    if let Err(p) = validate_order_id(order_id) {
        errors.insert("order_id".into(), p.into());
    }
    let currency = match parse_currency(currency) {
        Ok(c) => Some(c),
        Err(p) => {
            errors.insert("currency".into(), p.into());
            None
        }
    };
    let minor = match currency.as_deref().map(|c| parse_amount(value, c)) {
        Some(Ok(m)) => Some(m),
        Some(Err(p)) => {
            errors.insert("value".into(), p.into());
            None
        }
        None => None,
    };
    match (currency, minor) {
        (Some(currency), Some(minor)) if errors.is_empty() => Ok(Order {
            order_id: order_id.to_owned(),
            money: Money { minor, currency },
        }),
        _ => Err(errors),
    }
}

/// Default cap on one site-reported order, in major units of its currency (`CONVERSION_VALUE_CAP`):
/// the widget's beacon is only as honest as the visitor, so an order above it is refused rather
/// than counted. Server-side `purchase` events are not capped.
pub const DEFAULT_SITE_VALUE_CAP: u64 = 10_000;

/// Whether a site-reported order stays within `cap_major` major units of its currency.
pub fn within_site_cap(money: &Money, cap_major: u64) -> bool {
    let cap_minor = i64::try_from(cap_major)
        .ok()
        .and_then(|c| c.checked_mul(10i64.pow(minor_digits(&money.currency))))
        .unwrap_or(i64::MAX);
    money.minor <= cap_minor
}

/// The rate-limit subject of a site-reported order: the person and the campaign the attribution
/// names (every click mints a new token, so a per-token limit would not hold), or the message
/// for anonymous tracking.
pub fn convert_limit_subject(campaign: &str, contact: &str, message: &str) -> String {
    if contact.is_empty() {
        format!("{campaign}\u{0}message\u{0}{message}")
    } else {
        format!("{campaign}\u{0}contact\u{0}{contact}")
    }
}

/// The order inside a server-side `purchase` event's data (`{order_id, value, currency}`).
/// `None` when the event carries no order id: a purchase without an order is counted for segments
/// but not as revenue.
pub fn order_from_event_data(data: &Value) -> Option<Result<Order, FieldErrors>> {
    let order_id = data.get("order_id")?;
    let order_id = match order_id {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let currency = data.get("currency").and_then(Value::as_str).unwrap_or("");
    let value = data.get("value").cloned().unwrap_or(Value::Null);
    Some(validate_order(&order_id, &value, currency).map_err(|e| {
        e.into_iter()
            .map(|(k, v)| (format!("data.{k}"), v))
            .collect()
    }))
}

/// How a conversion reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The widget's beacon on the site.
    Site,
    /// A `purchase` event through the API.
    Api,
}

impl Source {
    /// The name stored in `conversions.source` (the same as its JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Site => "site",
            Source::Api => "api",
        }
    }
}

/// A message a contact received or clicked, as a candidate for attribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub campaign: String,
    pub message: String,
    /// Link index of a click; -1 for an SMS received.
    pub link: i64,
    pub channel: &'static str,
    pub at: u64,
}

/// Last touch wins: the latest human click within `window_seconds`, or an SMS received within
/// [`SMS_WINDOW_SECONDS`], whichever came later. `None`: the purchase is not ours to claim.
pub fn attribute(
    last_click: Option<Touch>,
    last_sms: Option<Touch>,
    purchase_at: u64,
    window_seconds: u64,
) -> Option<Touch> {
    let within = |t: &Touch, window: u64| t.at <= purchase_at && purchase_at - t.at <= window;
    let click = last_click.filter(|t| within(t, window_seconds));
    let sms = last_sms.filter(|t| within(t, SMS_WINDOW_SECONDS.min(window_seconds)));
    match (click, sms) {
        (Some(c), Some(s)) => Some(if s.at > c.at { s } else { c }),
        (c, s) => c.or(s),
    }
}

/// The sites' own origins, per site: the attribution parameter goes only to these (first party),
/// never to a third party the letter links to.
pub type SiteOrigins = std::collections::BTreeMap<String, Vec<String>>;

/// Is `url` on one of the sites' own origins?
pub fn is_first_party(origins: &SiteOrigins, url: &str) -> bool {
    let Some(origin) = crate::url::origin_of(url) else {
        return false;
    };
    origins
        .values()
        .flatten()
        .any(|o| o.eq_ignore_ascii_case(origin))
}

/// Appends `name=value` to a URL's query, before any fragment. `value` must be URL-safe already
/// (tokens are base64url).
pub fn append_query_param(url: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let separator = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{separator}{name}={value}{fragment}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_reported_orders_are_capped_per_currency() {
        let m = |minor, currency: &str| Money {
            minor,
            currency: currency.into(),
        };
        // (order, cap in major units, within)
        let table = [
            (m(1_000_000, "EUR"), 10_000, true),
            (m(1_000_001, "EUR"), 10_000, false),
            (m(10_000, "JPY"), 10_000, true),
            (m(10_001, "JPY"), 10_000, false),
            (m(10_000_000, "KWD"), 10_000, true),
            (m(i64::MAX, "EUR"), u64::MAX, true),
        ];
        for (order, cap, within) in table {
            assert_eq!(within_site_cap(&order, cap), within, "{order:?} cap {cap}");
        }
    }

    #[test]
    fn conversions_are_limited_per_person_and_campaign() {
        let a = convert_limit_subject("spring", "c1", "m1");
        assert_eq!(
            a,
            convert_limit_subject("spring", "c1", "m2"),
            "a new click, the same person"
        );
        assert_ne!(a, convert_limit_subject("summer", "c1", "m1"));
        assert_ne!(
            convert_limit_subject("spring", "", "m1"),
            convert_limit_subject("spring", "", "m2")
        );
    }
    use serde_json::json;

    #[test]
    fn amounts_are_exact_minor_units() {
        let table = [
            (json!(49.9), "EUR", Ok(4990)),
            (json!("19.99"), "EUR", Ok(1999)),
            (json!(19.99), "USD", Ok(1999)),
            (json!(0.1), "EUR", Ok(10)),
            (json!("1200"), "JPY", Ok(1200)),
            (json!("12.5"), "JPY", Err(())),
            (json!("1.234"), "KWD", Ok(1234)),
            (json!("1.230"), "EUR", Ok(123)),
            (json!(-5), "EUR", Err(())),
            (json!("1e3"), "EUR", Err(())),
            (json!("12.345"), "EUR", Err(())),
            (json!(""), "EUR", Err(())),
            (json!(".5"), "EUR", Err(())),
            (json!(null), "EUR", Err(())),
            (json!("999999999999999"), "EUR", Err(())),
        ];
        for (value, currency, want) in table {
            let got = parse_amount(&value, currency).map_err(|_| ());
            assert_eq!(got, want, "{value} {currency}");
        }
    }

    #[test]
    fn major_units_format_back() {
        assert_eq!(format_major(4990, "EUR"), "49.90");
        assert_eq!(format_major(5, "EUR"), "0.05");
        assert_eq!(format_major(1200, "JPY"), "1200");
        assert_eq!(format_major(1234, "KWD"), "1.234");
        assert_eq!(format_major(-150, "USD"), "-1.50");
    }

    #[test]
    fn orders_name_each_bad_field() {
        let ok = validate_order("A-1001", &json!("10.00"), "eur").expect("valid");
        assert_eq!(
            ok.money,
            Money {
                minor: 1000,
                currency: "EUR".into()
            }
        );
        let errors = validate_order("", &json!("x"), "EURO").expect_err("invalid");
        assert!(errors.contains_key("order_id") && errors.contains_key("currency"));
        let errors = validate_order("A 1", &json!("x"), "EUR").expect_err("invalid");
        assert_eq!(errors.keys().collect::<Vec<_>>(), vec!["order_id", "value"]);
    }

    #[test]
    fn purchase_events_carry_orders_in_data() {
        assert_eq!(order_from_event_data(&json!({"sku": "x"})), None);
        let order = order_from_event_data(&json!({"order_id": 77, "value": 12, "currency": "USD"}))
            .expect("has an order")
            .expect("valid");
        assert_eq!(order.order_id, "77");
        assert_eq!(order.money.minor, 1200);
        let bad = order_from_event_data(&json!({"order_id": "x"}))
            .expect("has an order")
            .expect_err("no value");
        assert!(bad.contains_key("data.currency"), "{bad:?}");
    }

    fn touch(channel: &'static str, at: u64) -> Touch {
        Touch {
            campaign: format!("{channel}-{at}"),
            message: "m".into(),
            link: if channel == "sms" { -1 } else { 0 },
            channel,
            at,
        }
    }

    #[test]
    fn last_touch_within_its_window_wins() {
        let day = 86_400;
        let window = 30 * day;
        let now = 100 * day;
        let cases = [
            (Some(touch("email", now - day)), None, Some("email")),
            (Some(touch("email", now - 31 * day)), None, None),
            (None, Some(touch("sms", now - 3600)), Some("sms")),
            (None, Some(touch("sms", now - 2 * day)), None),
            (
                Some(touch("email", now - day)),
                Some(touch("sms", now - 3600)),
                Some("sms"),
            ),
            (
                Some(touch("email", now - 60)),
                Some(touch("sms", now - 3600)),
                Some("email"),
            ),
            (Some(touch("email", now + 60)), None, None),
        ];
        for (click, sms, want) in cases {
            let got = attribute(click.clone(), sms.clone(), now, window);
            assert_eq!(got.map(|t| t.channel), want, "{click:?} {sms:?}");
        }
    }

    #[test]
    fn only_the_sites_own_origins_are_first_party() {
        let origins = SiteOrigins::from([
            ("shop".into(), vec!["https://shop.example".into()]),
            ("blog".into(), vec!["https://blog.example:8443".into()]),
        ]);
        for (url, want) in [
            ("https://shop.example/p?id=1", true),
            ("https://SHOP.example/", true),
            ("https://blog.example:8443/x", true),
            ("https://blog.example/x", false),
            ("https://shop.example.evil.example/", false),
            ("https://youtube.example/watch", false),
            ("not a url", false),
        ] {
            assert_eq!(is_first_party(&origins, url), want, "{url}");
        }
    }

    #[test]
    fn sources_are_stored_as_serialised() {
        for s in [Source::Site, Source::Api] {
            assert_eq!(
                serde_json::to_string(&s).ok(),
                Some(format!("\"{}\"", s.as_str()))
            );
        }
    }

    #[test]
    fn attribution_parameter_goes_into_the_query() {
        let table = [
            ("https://s.example/p", "https://s.example/p?ep=T"),
            ("https://s.example/p?a=1", "https://s.example/p?a=1&ep=T"),
            ("https://s.example/p?", "https://s.example/p?ep=T"),
            (
                "https://s.example/p?a=1#top",
                "https://s.example/p?a=1&ep=T#top",
            ),
            ("https://s.example/#x?y", "https://s.example/?ep=T#x?y"),
        ];
        for (url, want) in table {
            assert_eq!(append_query_param(url, "ep", "T"), want);
        }
    }
}
