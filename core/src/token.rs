//! Signed, purpose-bound `v1` tokens carried in tracking, unsubscribe and confirm URLs.
//!
//! Wire format (before base64url, no padding):
//!
//! ```text
//! 0      version (= 1)
//! 1      key id (which key signed; several may verify, for rotation)
//! 2      purpose (open, click, unsubscribe, …)
//! 3..7   issued_at, unix seconds, big endian
//! 7..11  expires_at, unix seconds, big endian; 0 = never
//! …      campaign, contact, message: each u8 length + ASCII id
//! …      click only: link index u16, destination u16 length + URL
//! …      conversion only: link index u16 (the click that brought the visitor)
//! last16 HMAC-SHA256 over everything before it, truncated to 128 bits
//! ```
//!
//! Everything the edge needs is inside the token, so `/o` and `/c` never read the database. The MAC
//! covers the version, key id and purpose, so a token of one purpose never verifies as another.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::{validate_id, MAX_ID_LEN};
use crate::url::{validate_destination, MAX_URL_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Version byte of the current token format.
pub const TOKEN_VERSION: u8 = 1;
/// Length of the truncated MAC tag in bytes (128 bits).
pub const TAG_LEN: usize = 16;
/// Minimum secret key length in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Longest token text accepted before any decoding is attempted. A click token with a maximal URL
/// fits; anything longer is rejected without allocating.
pub const MAX_TOKEN_CHARS: usize =
    4 * (11 + 3 * (1 + MAX_ID_LEN) + 4 + MAX_URL_LEN + TAG_LEN) / 3 + 4;
const HEADER_LEN: usize = 11;

/// What a token may be used for. Part of the signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Open,
    Click,
    Unsubscribe,
    Preferences,
    Confirm,
    Conversion,
    /// The edge's cron calling the sending worker's tick: internal calls carry proof too, so
    /// nothing that reaches the sending worker some other way can run it.
    InternalTick,
    /// A dashboard session: names the API token it was opened with (never the token itself) in
    /// `campaign`, or the signed-in user in `contact`.
    DashboardSession,
    /// A one-time sign-in link mailed to a workspace user: the link's id in `campaign` (its use is
    /// recorded in D1), the user in `contact`.
    SignIn,
}

impl Purpose {
    /// Every purpose, in wire-code order.
    pub const ALL: [Purpose; 9] = [
        Purpose::Open,
        Purpose::Click,
        Purpose::Unsubscribe,
        Purpose::Preferences,
        Purpose::Confirm,
        Purpose::Conversion,
        Purpose::InternalTick,
        Purpose::DashboardSession,
        Purpose::SignIn,
    ];

    fn code(self) -> u8 {
        match self {
            Purpose::Open => 1,
            Purpose::Click => 2,
            Purpose::Unsubscribe => 3,
            Purpose::Preferences => 4,
            Purpose::Confirm => 5,
            Purpose::Conversion => 6,
            Purpose::InternalTick => 7,
            Purpose::DashboardSession => 8,
            Purpose::SignIn => 9,
        }
    }

    fn from_code(code: u8) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Lower-case name, as used in test vectors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Open => "open",
            Purpose::Click => "click",
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Preferences => "preferences",
            Purpose::Confirm => "confirm",
            Purpose::Conversion => "conversion",
            Purpose::InternalTick => "internal_tick",
            Purpose::DashboardSession => "dashboard_session",
            Purpose::SignIn => "sign_in",
        }
    }

    /// Click tokens carry a link (index + destination), conversion tokens its index.
    pub fn carries_link(self) -> bool {
        matches!(self, Purpose::Click | Purpose::Conversion)
    }

    /// Parses the name produced by [`Purpose::as_str`].
    pub fn parse(name: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tracked link inside a click token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Position of the link in the message (stable per campaign), used for per-link stats.
    pub index: u16,
    /// Absolute http(s) destination the redirect goes to.
    pub url: String,
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub purpose: Purpose,
    /// When the token was issued (the send time), unix seconds.
    pub issued_at: u32,
    /// When it stops verifying, unix seconds; `None` = never (content links).
    pub expires_at: Option<u32>,
    pub campaign: String,
    /// May be empty for aggregate-only (anonymous) tracking.
    pub contact: String,
    /// May be empty when the sender has no message id.
    pub message: String,
    /// Present exactly when `purpose` is [`Purpose::Click`] or [`Purpose::Conversion`]; a
    /// conversion (attribution) token carries the link index only, its `url` is empty.
    pub link: Option<Link>,
}

/// Why a token could not be signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty, not base64url, or longer than [`MAX_TOKEN_CHARS`].
    #[error("token is not well-formed")]
    Malformed,
    /// The version byte names a format this build does not know.
    #[error("unsupported token version {0}")]
    UnsupportedVersion(u8),
    /// No verification key with this id is configured (removed after rotation, or forged).
    #[error("unknown signing key id {0}")]
    UnknownKey(u8),
    /// The MAC does not match: the token was altered or signed with another key.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token is genuine but made for another purpose.
    #[error("token is for {found}, not {expected}")]
    WrongPurpose { expected: Purpose, found: Purpose },
    /// The token is genuine but past its expiry.
    #[error("token expired")]
    Expired,
    /// A claim is out of range at signing time, or a signed body does not parse.
    #[error("invalid token field `{0}`")]
    InvalidField(&'static str),
}

/// Errors loading the key ring from configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("no signing keys configured")]
    Empty,
    #[error("key entry {0} is not `id:base64url-secret`")]
    BadEntry(usize),
    #[error("key id {0} is not 1..=255")]
    BadKeyId(usize),
    #[error("key {0} is shorter than {MIN_KEY_LEN} bytes")]
    ShortKey(u8),
    #[error("key id {0} appears twice")]
    DuplicateKeyId(u8),
}

struct VerifyKey {
    id: u8,
    // Keyed MAC state computed once, cloned per use: saves the key schedule on every verify.
    mac: HmacSha256,
}

/// The configured keys: the first signs, all verify. Rotation = prepend a new key, keep the old one
/// until its tokens no longer matter, then remove it.
pub struct Keyring {
    keys: Vec<VerifyKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|k| k.id).collect();
        f.debug_struct("Keyring")
            .field("key_ids", &ids)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Keyring {
    /// Builds a key ring from `(id, secret)` pairs; the first pair is the signing key.
    pub fn new(keys: &[(u8, &[u8])]) -> Result<Keyring, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut out: Vec<VerifyKey> = Vec::with_capacity(keys.len());
        for &(id, secret) in keys {
            if id == 0 {
                return Err(KeyringError::BadKeyId(out.len()));
            }
            if secret.len() < MIN_KEY_LEN {
                return Err(KeyringError::ShortKey(id));
            }
            if out.iter().any(|k| k.id == id) {
                return Err(KeyringError::DuplicateKeyId(id));
            }
            let mac = HmacSha256::new_from_slice(secret).map_err(|_| KeyringError::ShortKey(id))?;
            out.push(VerifyKey { id, mac });
        }
        Ok(Keyring { keys: out })
    }

    /// Parses `id:base64url-secret[,id:base64url-secret…]`, newest (signing) key first — the format of
    /// the `SIGNING_KEYS` secret.
    pub fn parse(config: &str) -> Result<Keyring, KeyringError> {
        let mut pairs: Vec<(u8, Vec<u8>)> = Vec::new();
        for (i, entry) in config
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, secret) = entry.split_once(':').ok_or(KeyringError::BadEntry(i))?;
            let id: u8 = id.trim().parse().map_err(|_| KeyringError::BadKeyId(i))?;
            let secret = URL_SAFE_NO_PAD
                .decode(secret.trim().trim_end_matches('='))
                .map_err(|_| KeyringError::BadEntry(i))?;
            pairs.push((id, secret));
        }
        let borrowed: Vec<(u8, &[u8])> = pairs.iter().map(|(id, s)| (*id, s.as_slice())).collect();
        Keyring::new(&borrowed)
    }

    /// Id of the key that signs new tokens.
    pub fn signing_key_id(&self) -> u8 {
        self.keys[0].id
    }

    /// Signs `claims` with the newest key.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let key = &self.keys[0];
        let mut bytes = encode_body(key.id, claims)?;
        let tag = key.mac.clone().chain_update(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Verifies `token` for `expected` purpose at time `now` (unix seconds) and returns its claims.
    /// Never panics, whatever the input.
    pub fn verify(&self, token: &str, expected: Purpose, now: u64) -> Result<Claims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        if bytes[0] != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion(bytes[0]));
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == bytes[1])
            .ok_or(TokenError::UnknownKey(bytes[1]))?;
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        // `verify_truncated_left` compares in constant time.
        key.mac
            .clone()
            .chain_update(body)
            .verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;
        // Only authenticated bytes are interpreted from here on.
        let claims = decode_body(body)?;
        if claims.purpose != expected {
            return Err(TokenError::WrongPurpose {
                expected,
                found: claims.purpose,
            });
        }
        if let Some(exp) = claims.expires_at {
            if now >= u64::from(exp) {
                return Err(TokenError::Expired);
            }
        }
        Ok(claims)
    }
}

fn encode_body(key_id: u8, c: &Claims) -> Result<Vec<u8>, TokenError> {
    validate_id(&c.campaign, false).map_err(|_| TokenError::InvalidField("campaign"))?;
    validate_id(&c.contact, true).map_err(|_| TokenError::InvalidField("contact"))?;
    validate_id(&c.message, true).map_err(|_| TokenError::InvalidField("message"))?;
    if c.purpose.carries_link() != c.link.is_some() {
        return Err(TokenError::InvalidField("link"));
    }
    if c.expires_at == Some(0) {
        return Err(TokenError::InvalidField("expires_at"));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + 3 * 16 + TAG_LEN);
    out.extend_from_slice(&[TOKEN_VERSION, key_id, c.purpose.code()]);
    out.extend_from_slice(&c.issued_at.to_be_bytes());
    out.extend_from_slice(&c.expires_at.unwrap_or(0).to_be_bytes());
    for id in [&c.campaign, &c.contact, &c.message] {
        // validate_id bounds the length to MAX_ID_LEN (< 256).
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
    }
    match (&c.link, c.purpose) {
        (Some(link), Purpose::Click) => {
            validate_destination(&link.url).map_err(|_| TokenError::InvalidField("link.url"))?;
            out.extend_from_slice(&link.index.to_be_bytes());
            out.extend_from_slice(&(link.url.len() as u16).to_be_bytes());
            out.extend_from_slice(link.url.as_bytes());
        }
        (Some(link), _) => {
            if !link.url.is_empty() {
                return Err(TokenError::InvalidField("link.url"));
            }
            out.extend_from_slice(&link.index.to_be_bytes());
        }
        (None, _) => {}
    }
    Ok(out)
}

/// A bounds-checked reader over the signed body.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TokenError> {
        if self.rest.len() < n {
            return Err(TokenError::InvalidField(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, TokenError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, TokenError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self, len: usize, field: &'static str) -> Result<String, TokenError> {
        let b = self.take(len, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| TokenError::InvalidField(field))
    }
}

fn decode_body(body: &[u8]) -> Result<Claims, TokenError> {
    let mut r = Reader { rest: &body[3..] };
    let purpose = Purpose::from_code(body[2]).ok_or(TokenError::InvalidField("purpose"))?;
    let issued_at = r.u32("issued_at")?;
    let expires_at = match r.u32("expires_at")? {
        0 => None,
        t => Some(t),
    };
    let mut ids = [String::new(), String::new(), String::new()];
    for (slot, field) in ids.iter_mut().zip(["campaign", "contact", "message"]) {
        let len = usize::from(r.take(1, field)?[0]);
        *slot = r.text(len, field)?;
    }
    let [campaign, contact, message] = ids;
    // The same rules as `encode_body`: a token this build could not have signed is refused even
    // when its MAC holds (found by fuzzing: an empty campaign verified).
    validate_id(&campaign, false).map_err(|_| TokenError::InvalidField("campaign"))?;
    validate_id(&contact, true).map_err(|_| TokenError::InvalidField("contact"))?;
    validate_id(&message, true).map_err(|_| TokenError::InvalidField("message"))?;
    let link = match purpose {
        Purpose::Click => {
            let index = r.u16("link.index")?;
            let len = usize::from(r.u16("link.url")?);
            let url = r.text(len, "link.url")?;
            validate_destination(&url).map_err(|_| TokenError::InvalidField("link.url"))?;
            Some(Link { index, url })
        }
        Purpose::Conversion => Some(Link {
            index: r.u16("link.index")?,
            url: String::new(),
        }),
        _ => None,
    };
    if !r.rest.is_empty() {
        return Err(TokenError::InvalidField("trailing"));
    }
    Ok(Claims {
        purpose,
        issued_at,
        expires_at,
        campaign,
        contact,
        message,
        link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(&[(2, &[7u8; 32]), (1, &[9u8; 32])]).expect("test keys are valid")
    }

    fn open_claims() -> Claims {
        Claims {
            purpose: Purpose::Open,
            issued_at: 1_700_000_000,
            expires_at: None,
            campaign: "spring-sale".into(),
            contact: "c-42".into(),
            message: "m-1".into(),
            link: None,
        }
    }

    /// Signs raw body bytes with key id 2 of `ring()`, as only a key holder could.
    fn sign_raw(body: &[u8]) -> String {
        let mut bytes = vec![TOKEN_VERSION, 2];
        bytes.extend_from_slice(body);
        let tag = HmacSha256::new_from_slice(&[7u8; 32])
            .expect("any key length")
            .chain_update(&bytes)
            .finalize()
            .into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn authentic_bytes_that_sign_would_refuse_do_not_verify() {
        // Regression from fuzzing (fuzz/fuzz_targets/token_verify.rs): a conversion token with an
        // empty campaign, correctly MACed, used to verify.
        let empty_campaign = sign_raw(&[6, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 39]);
        assert_eq!(
            ring().verify(&empty_campaign, Purpose::Conversion, 0),
            Err(TokenError::InvalidField("campaign"))
        );
        // A click whose destination is not one we would sign.
        let mut click = vec![2, 0, 0, 0, 1, 0, 0, 0, 0, 1, b'c', 0, 0, 0, 0];
        let url = b"javascript:alert(1)";
        click.extend_from_slice(&(url.len() as u16).to_be_bytes());
        click.extend_from_slice(url);
        assert_eq!(
            ring().verify(&sign_raw(&click), Purpose::Click, 0),
            Err(TokenError::InvalidField("link.url"))
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?}", ring());
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
    }

    #[test]
    fn sign_rejects_click_without_link_and_link_without_click() {
        let mut c = open_claims();
        c.link = Some(Link {
            index: 0,
            url: "https://a.example/".into(),
        });
        assert_eq!(ring().sign(&c), Err(TokenError::InvalidField("link")));
        c.purpose = Purpose::Click;
        c.link = None;
        assert_eq!(ring().sign(&c), Err(TokenError::InvalidField("link")));
    }

    #[test]
    fn expiry_is_exclusive() {
        let mut c = open_claims();
        c.purpose = Purpose::Confirm;
        c.expires_at = Some(1_700_000_100);
        let t = ring().sign(&c).expect("valid claims");
        assert!(ring().verify(&t, Purpose::Confirm, 1_700_000_099).is_ok());
        assert_eq!(
            ring().verify(&t, Purpose::Confirm, 1_700_000_100),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn keyring_parse_errors() {
        let k = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert_eq!(Keyring::parse("").err(), Some(KeyringError::Empty));
        assert_eq!(
            Keyring::parse("nokey").err(),
            Some(KeyringError::BadEntry(0))
        );
        assert_eq!(
            Keyring::parse(&format!("0:{k}")).err(),
            Some(KeyringError::BadKeyId(0))
        );
        assert_eq!(
            Keyring::parse(&format!("x:{k}")).err(),
            Some(KeyringError::BadKeyId(0))
        );
        assert_eq!(
            Keyring::parse("3:c2hvcnQ").err(),
            Some(KeyringError::ShortKey(3))
        );
        assert_eq!(
            Keyring::parse(&format!("3:{k},3:{k}")).err(),
            Some(KeyringError::DuplicateKeyId(3))
        );
        let ok = Keyring::parse(&format!(" 4:{k} , 3:{k}= ")).expect("valid");
        assert_eq!(ok.signing_key_id(), 4);
    }
}
