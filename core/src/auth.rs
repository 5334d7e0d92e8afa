//! API tokens for marketers: random bearer secrets that are stored only as SHA-256 hashes, each
//! with a set of scopes.

use sha2::{Digest, Sha256};

/// Prefix that makes Epistola API tokens recognisable (e.g. by secret scanners).
pub const API_TOKEN_PREFIX: &str = "ep_";

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Sign tracking links (`POST /v1/track/links`).
    TrackSign,
    /// Read campaign statistics.
    StatsRead,
    /// Manage sites: allowed origins, widget config, consent texts.
    SitesWrite,
    /// Read contacts with their consent ledger and history.
    ContactsRead,
    /// Create, import, update and erase contacts; import suppression lists.
    ContactsWrite,
    /// Manage templates, campaigns and trigger chains (draft, test-send, schedule, cancel).
    CampaignsWrite,
    /// Approve a tested campaign for its real audience.
    CampaignsApprove,
    /// Post server-side events (`purchase`, `cart.abandoned`, …).
    EventsWrite,
    /// Manage outgoing webhook endpoints (a CRM receiving opens, clicks, conversions, …).
    WebhooksWrite,
    /// Create, list and revoke API tokens (`/v1/tokens`): the workspace admin's.
    TokensWrite,
    /// Read the audit log (`GET /v1/audit`, the dashboard's audit page and its CSV).
    AuditRead,
}

impl Scope {
    pub const ALL: [Scope; 11] = [
        Scope::TrackSign,
        Scope::StatsRead,
        Scope::SitesWrite,
        Scope::ContactsRead,
        Scope::ContactsWrite,
        Scope::CampaignsWrite,
        Scope::CampaignsApprove,
        Scope::EventsWrite,
        Scope::WebhooksWrite,
        Scope::TokensWrite,
        Scope::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TrackSign => "track:sign",
            Scope::StatsRead => "stats:read",
            Scope::SitesWrite => "sites:write",
            Scope::ContactsRead => "contacts:read",
            Scope::ContactsWrite => "contacts:write",
            Scope::CampaignsWrite => "campaigns:write",
            Scope::CampaignsApprove => "campaigns:approve",
            Scope::EventsWrite => "events:write",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::TokensWrite => "tokens:write",
            Scope::AuditRead => "audit:read",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Does the space-separated scope list `granted` include `needed`? Unknown names are ignored, so
/// a token minted for a newer version keeps working for what this version knows.
pub fn has_scope(granted: &str, needed: Scope) -> bool {
    granted
        .split_ascii_whitespace()
        .any(|s| Scope::parse(s) == Some(needed))
}

/// The scopes of `wanted` that `granted` lacks: a token may only mint tokens holding no more
/// than it holds itself, so `tokens:write` is not a way to every other scope.
pub fn scopes_beyond(granted: &str, wanted: &[Scope]) -> Vec<Scope> {
    wanted
        .iter()
        .copied()
        .filter(|s| !has_scope(granted, *s))
        .collect()
}

/// A valid request for a new API token: its name and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl TokenRequest {
    /// The space-separated list `api_tokens.scopes` stores.
    pub fn scope_list(&self) -> String {
        let names: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        names.join(" ")
    }
}

/// Why a token request is refused: bad fields (`400`), or scopes beyond the minting token's
/// own (`403`), each naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    Invalid(crate::track::FieldErrors),
    Beyond(Vec<Scope>),
}

/// Checks a token request made by someone holding `granted`: a name of 1-64 characters without
/// control characters, at least one known scope (repeats folded), none beyond `granted`.
pub fn validate_token_request(
    name: &str,
    scopes: &[String],
    granted: &str,
) -> Result<TokenRequest, TokenRefusal> {
    let mut errors = crate::track::FieldErrors::new();
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        errors.insert(
            "name".into(),
            "say what the token is for, in 1-64 characters".into(),
        );
    }
    let unknown: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|s| Scope::parse(s).is_none())
        .collect();
    let mut wanted: Vec<Scope> = Vec::new();
    for s in scopes.iter().filter_map(|s| Scope::parse(s)) {
        if !wanted.contains(&s) {
            wanted.push(s);
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        errors.insert(
            "scopes".into(),
            format!(
                "unknown: {} (known: {})",
                unknown.join(", "),
                known.join(", ")
            ),
        );
    } else if wanted.is_empty() {
        errors.insert("scopes".into(), "choose at least one scope".into());
    }
    if !errors.is_empty() {
        return Err(TokenRefusal::Invalid(errors));
    }
    let beyond = scopes_beyond(granted, &wanted);
    if !beyond.is_empty() {
        return Err(TokenRefusal::Beyond(beyond));
    }
    Ok(TokenRequest {
        name: name.to_owned(),
        scopes: wanted,
    })
}

/// Hex SHA-256 of a presented token: what `api_tokens.token_hash` stores.
pub fn hash_api_token(token: &str) -> String {
    crate::hex::encode(&Sha256::digest(token.as_bytes()))
}

/// Extracts the token from an `Authorization: Bearer …` header value, if it is shaped like one.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && token.starts_with(API_TOKEN_PREFIX)
        && (20..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    well_formed.then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
    }

    #[test]
    fn scopes() {
        assert!(has_scope("stats:read track:sign", Scope::TrackSign));
        assert!(has_scope("future:thing  stats:read", Scope::StatsRead));
        assert!(!has_scope("stats:read", Scope::TrackSign));
        assert!(!has_scope("track:signs", Scope::TrackSign));
        assert!(!has_scope("", Scope::StatsRead));
    }

    #[test]
    fn no_token_mints_more_than_it_holds() {
        use Scope::*;
        let granted = "stats:read tokens:write contacts:read";
        let cases: &[(&[Scope], &[Scope])] = &[
            (&[StatsRead], &[]),
            (&[StatsRead, ContactsRead, TokensWrite], &[]),
            (&[StatsRead, ContactsWrite], &[ContactsWrite]),
            (
                &[CampaignsApprove, AuditRead],
                &[CampaignsApprove, AuditRead],
            ),
            (&[], &[]),
        ];
        for (wanted, beyond) in cases {
            assert_eq!(scopes_beyond(granted, wanted), *beyond, "{wanted:?}");
        }
    }

    #[test]
    fn token_requests() {
        let granted = "stats:read tokens:write";
        let ok = |name: &str, scopes: &[&str]| {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            validate_token_request(name, &scopes, granted)
        };
        let want = TokenRequest {
            name: "Looker export".into(),
            scopes: vec![Scope::StatsRead],
        };
        assert_eq!(
            ok("  Looker export ", &["stats:read", "stats:read"]),
            Ok(want)
        );
        let field = |r: Result<TokenRequest, TokenRefusal>, f: &str| match r {
            Err(TokenRefusal::Invalid(e)) => e.contains_key(f),
            _ => false,
        };
        assert!(field(ok("", &["stats:read"]), "name"));
        assert!(field(ok(&"x".repeat(65), &["stats:read"]), "name"));
        assert!(field(ok("a\u{7}b", &["stats:read"]), "name"));
        assert!(field(ok("n", &[]), "scopes"));
        assert!(field(ok("n", &["stats:read", "root"]), "scopes"));
        assert_eq!(
            ok("n", &["stats:read", "campaigns:approve"]),
            Err(TokenRefusal::Beyond(vec![Scope::CampaignsApprove]))
        );
        assert_eq!(
            ok("n", &["tokens:write"]).map(|t| t.scope_list()),
            Ok("tokens:write".to_owned())
        );
    }

    #[test]
    fn bearer_parsing() {
        let t = "ep_0123456789abcdefghij";
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("Bearer ep_0123456789abcdefghij"), Some(t)),
            (Some("bearer  ep_0123456789abcdefghij "), Some(t)),
            (Some("Basic ep_0123456789abcdefghij"), None),
            (Some("Bearer xx_0123456789abcdefghij"), None),
            (Some("Bearer ep_short"), None),
            (Some("Bearer ep_0123456789abcdefghij;drop"), None),
            (Some("Bearer"), None),
            (None, None),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_token(*header), *want, "header {header:?}");
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_api_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
