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
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::TrackSign,
        Scope::StatsRead,
        Scope::SitesWrite,
        Scope::ContactsRead,
        Scope::ContactsWrite,
        Scope::CampaignsWrite,
        Scope::CampaignsApprove,
        Scope::EventsWrite,
        Scope::WebhooksWrite,
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
