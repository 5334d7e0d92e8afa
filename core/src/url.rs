//! Click destinations: only absolute `http(s)` URLs to a real host are ever signed, so a click
//! token can never become an open redirect to `javascript:`, `data:` or a protocol-relative URL.

/// Longest destination accepted, in bytes (what every browser and mail client handles).
pub const MAX_URL_LEN: usize = 2048;

/// Why a destination was refused at signing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("must be an absolute http:// or https:// URL")]
    Scheme,
    #[error("must name a host")]
    Host,
    #[error("must not contain credentials (user@host)")]
    Credentials,
    #[error("must not contain spaces, control characters or backslashes; percent-encode them")]
    Character,
}

/// Checks that `url` is a safe redirect target.
pub fn validate_destination(url: &str) -> Result<(), UrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    // Browsers strip or reinterpret these, which is how `https:\\evil` or `java\tscript:` tricks work.
    if url.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\') {
        return Err(UrlError::Character);
    }
    let rest = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))
        .ok_or(UrlError::Scheme)?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let (host, port) = match authority.strip_prefix('[') {
        // IPv6 literal: [hex:…] with an optional :port after the bracket.
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or(UrlError::Host)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError::Host)?),
            };
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UrlError::Host);
            }
            (host, port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let name_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
        && host.bytes().any(|b| b.is_ascii_alphanumeric())
        && !host.starts_with(['.', '-']);
    if !name_ok {
        return Err(UrlError::Host);
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UrlError::Host);
        }
    }
    Ok(())
}

/// `scheme://host[:port]` of an absolute URL as the runtime hands it to us (already normalised).
/// Parsed by hand because the `url` crate's IDNA tables cost ~100 KB of wasm.
pub fn origin_of(url: &str) -> Option<&str> {
    let host_start = url.find("://")? + 3;
    let end = url[host_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| host_start + i);
    (end > host_start).then(|| &url[..end])
}

/// The raw (not percent-decoded) value of the first `key=value` query parameter, if present.
pub fn query_value<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    let without_fragment = url.split_once('#').map_or(url, |(u, _)| u);
    let query = without_fragment.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// A query parameter decoded as a browser's form sends it (`+` is a space, then `%XX`); `Err`
/// names the problem of a broken escape.
pub fn query_text(url: &str, key: &str) -> Result<Option<String>, &'static str> {
    match query_value(url, key) {
        None => Ok(None),
        Some(raw) => percent_decode(&raw.replace('+', " "))
            .map(Some)
            .ok_or("has a broken %-escape or is not UTF-8"),
    }
}

/// Decodes `%XX` escapes in a path segment (`ann%40example.com` → `ann@example.com`); `None` for
/// a broken escape or bytes that are not UTF-8. `+` stays a plus: in a path it is one.
pub fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        let table = [
            ("ann%40example.com", Some("ann@example.com")),
            ("ann@example.com", Some("ann@example.com")),
            ("a%2Bb%40x.co", Some("a+b@x.co")),
            ("a+b%40x.co", Some("a+b@x.co")),
            ("%C3%A9", Some("é")),
            ("%4", None),
            ("%zz", None),
            ("%FF", None),
        ];
        for (input, want) in table {
            assert_eq!(percent_decode(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn origins_and_queries() {
        assert_eq!(
            origin_of("https://t.example:8443/o/x?y"),
            Some("https://t.example:8443")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8787"),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(origin_of("no-scheme/path"), None);
        assert_eq!(origin_of("https:///path"), None);
        let u = "https://a.example/v1/stats/x?format=csv&view=&flag#format=json";
        assert_eq!(query_value(u, "format"), Some("csv"));
        assert_eq!(query_value(u, "view"), Some(""));
        assert_eq!(query_value(u, "flag"), Some(""));
        let form = "https://e.example/v1/contacts?query=olena+tag%3Avip&bad=%E2%28";
        assert_eq!(
            query_text(form, "query"),
            Ok(Some("olena tag:vip".to_owned()))
        );
        assert_eq!(query_text(form, "none"), Ok(None));
        assert!(query_text(form, "bad").is_err());
        assert_eq!(query_value(u, "missing"), None);
        assert_eq!(
            query_value("https://a.example/#x?format=csv", "format"),
            None
        );
    }

    #[test]
    fn table() {
        let long = format!("https://a.example/{}", "x".repeat(MAX_URL_LEN));
        let cases: &[(&str, Result<(), UrlError>)] = &[
            ("https://shop.example/p/1?utm=x#top", Ok(())),
            ("http://shop.example", Ok(())),
            ("HTTPS://SHOP.EXAMPLE/", Ok(())),
            ("https://shop.example:8443/x", Ok(())),
            ("https://[2001:db8::1]:8080/x", Ok(())),
            ("https://[2001:db8::1]/x", Ok(())),
            ("https://xn--80ak6aa92e.example/", Ok(())),
            ("https://127.0.0.1:8787/", Ok(())),
            ("//evil.example/", Err(UrlError::Scheme)),
            ("javascript:alert(1)", Err(UrlError::Scheme)),
            (
                "data:text/html,<script>alert(1)</script>",
                Err(UrlError::Scheme),
            ),
            ("ftp://files.example/", Err(UrlError::Scheme)),
            ("/relative/path", Err(UrlError::Scheme)),
            ("https:/evil.example", Err(UrlError::Scheme)),
            ("https:\\\\evil.example", Err(UrlError::Character)),
            (
                "https://evil.example\\@good.example",
                Err(UrlError::Character),
            ),
            (
                "https://good.example@evil.example/",
                Err(UrlError::Credentials),
            ),
            ("https://user:pw@evil.example/", Err(UrlError::Credentials)),
            (" https://a.example/", Err(UrlError::Character)),
            ("https://a.example/\n", Err(UrlError::Character)),
            ("https://a.example/a b", Err(UrlError::Character)),
            ("https:///path", Err(UrlError::Host)),
            ("https://", Err(UrlError::Host)),
            ("https://./", Err(UrlError::Host)),
            ("https://-a.example/", Err(UrlError::Host)),
            ("https://a.example:/", Err(UrlError::Host)),
            ("https://a.example:99999999/", Err(UrlError::Host)),
            ("https://a.example:80x/", Err(UrlError::Host)),
            ("https://a_b.example/", Err(UrlError::Host)),
            ("https://ü.example/", Err(UrlError::Host)),
            ("https://[2001:db8::1/", Err(UrlError::Host)),
            (&long, Err(UrlError::TooLong)),
        ];
        for (url, want) in cases {
            assert_eq!(validate_destination(url), *want, "url {url:?}");
        }
    }
}
