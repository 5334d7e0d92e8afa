//! Identifiers that travel inside tokens and URLs (campaign, contact, message ids).
//!
//! They are the sender's own ids, so they are opaque to us, but restricted to a URL-safe ASCII set
//! and a short length: tokens stay compact, and no e-mail address (PII) can be smuggled into a URL.

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why an id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("may contain only letters, digits and - _ . :")]
    BadCharacter,
}

/// A short, stable message id for a send key (which can be longer than an id may be): `m` and 24 hex
/// characters of its SHA-256. Tokens and the Message-ID carry this; the send key stays in D1.
pub fn message_id_for(send_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(send_key.as_bytes());
    format!("m{}", &crate::hex::encode(&digest)[..24])
}

/// Checks an id; `allow_empty` for the optional ones (anonymous contact, no message id).
pub fn validate_id(id: &str, allow_empty: bool) -> Result<(), IdError> {
    if id.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err(IdError::Empty)
        };
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_short_valid_and_stable() {
        let long = format!("chain.win-back.1.{}.win-back", "x".repeat(64));
        let id = message_id_for(&long);
        assert_eq!(id.len(), 25);
        assert_eq!(validate_id(&id, false), Ok(()));
        assert_eq!(id, message_id_for(&long));
        assert_ne!(id, message_id_for("campaign.a.b"));
    }

    #[test]
    fn table() {
        let long = "a".repeat(MAX_ID_LEN + 1);
        let max = "a".repeat(MAX_ID_LEN);
        let cases: &[(&str, bool, Result<(), IdError>)] = &[
            ("spring-2026", false, Ok(())),
            ("c:42_x.y", false, Ok(())),
            ("", false, Err(IdError::Empty)),
            ("", true, Ok(())),
            (&max, false, Ok(())),
            (&long, false, Err(IdError::TooLong)),
            ("ann@example.com", false, Err(IdError::BadCharacter)),
            ("a b", false, Err(IdError::BadCharacter)),
            ("ü", false, Err(IdError::BadCharacter)),
            ("a/b", false, Err(IdError::BadCharacter)),
        ];
        for (id, allow_empty, want) in cases {
            assert_eq!(validate_id(id, *allow_empty), *want, "id {id:?}");
        }
    }
}
