//! Shared test vectors (`tests/vectors/*.json`), read here and by the end-to-end tests in JS.
//!
//! `UPDATE_VECTORS=1 cargo test -p epistola-core --test vectors` rewrites the token vectors from the
//! cases below; a normal run checks that every stored token still verifies (or fails) exactly as
//! recorded and that signing reproduces it byte for byte.

#![allow(clippy::expect_used)] // test helpers: a bad vector file should fail loudly

use std::net::IpAddr;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use epistola_core::classify::{classify, relabel_clicks, Interaction, Label, Signals, StoredClick};
use epistola_core::token::{Claims, Keyring, Link, Purpose, TokenError};
use epistola_core::track::HONEYPOT_LINK;
use serde_json::{json, Value};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn read(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(text.as_bytes())
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

const NOW: u64 = 1_790_000_000;

fn key(fill: u8) -> String {
    URL_SAFE_NO_PAD.encode([fill; 32])
}

fn claims_json(c: &Claims) -> Value {
    json!({
        "purpose": c.purpose.as_str(),
        "issued_at": c.issued_at,
        "expires_at": c.expires_at,
        "campaign": c.campaign,
        "contact": c.contact,
        "message": c.message,
        "link": c.link.as_ref().map(|l| json!({"index": l.index, "url": l.url})),
    })
}

fn claims_from_json(v: &Value) -> Claims {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Claims {
        purpose: Purpose::parse(v["purpose"].as_str().unwrap_or_default()).expect("purpose"),
        issued_at: v["issued_at"].as_u64().expect("issued_at") as u32,
        expires_at: v["expires_at"].as_u64().map(|e| e as u32),
        campaign: s("campaign"),
        contact: s("contact"),
        message: s("message"),
        link: v["link"].as_object().map(|l| Link {
            index: l["index"].as_u64().expect("index") as u16,
            url: l["url"].as_str().expect("url").to_owned(),
        }),
    }
}

fn error_code(e: &TokenError) -> &'static str {
    match e {
        TokenError::Malformed => "malformed",
        TokenError::UnsupportedVersion(_) => "unsupported_version",
        TokenError::UnknownKey(_) => "unknown_key",
        TokenError::BadSignature => "bad_signature",
        TokenError::WrongPurpose { .. } => "wrong_purpose",
        TokenError::Expired => "expired",
        TokenError::InvalidField(_) => "invalid_field",
    }
}

fn generate_token_vectors() -> Value {
    let verify_ring = format!("2:{},1:{}", key(0x22), key(0x11));
    let old_ring = Keyring::parse(&format!("1:{}", key(0x11))).expect("valid");
    let removed_ring = Keyring::parse(&format!("9:{}", key(0x99))).expect("valid");
    let ring = Keyring::parse(&verify_ring).expect("valid");
    let base = Claims {
        purpose: Purpose::Open,
        issued_at: (NOW - 3600) as u32,
        expires_at: None,
        campaign: "vec-campaign".into(),
        contact: "vec-contact".into(),
        message: "vec-message".into(),
        link: None,
    };
    let click = Claims {
        purpose: Purpose::Click,
        link: Some(Link {
            index: 2,
            url: "https://shop.example/p/42?ref=mail&x=1".into(),
        }),
        ..base.clone()
    };
    let unsub = Claims {
        purpose: Purpose::Unsubscribe,
        expires_at: Some((NOW + 86_400) as u32),
        ..base.clone()
    };
    let expired = Claims {
        purpose: Purpose::Confirm,
        expires_at: Some((NOW - 1) as u32),
        ..base.clone()
    };
    let attribution = Claims {
        purpose: Purpose::Conversion,
        expires_at: Some((NOW + 30 * 86_400) as u32),
        link: Some(Link {
            index: 2,
            url: String::new(),
        }),
        ..base.clone()
    };
    // Campaign letters sent before preference links named the site carried the campaign id; the
    // preference centre resolves it to the campaign's site (tests/e2e/consent-trust.test.mjs).
    let legacy_preferences = Claims {
        purpose: Purpose::Preferences,
        expires_at: Some((NOW + 400 * 86_400) as u32),
        ..base.clone()
    };
    let sign = |r: &Keyring, c: &Claims| r.sign(c).expect("signs");

    let mut valid = vec![];
    for (name, r, c) in [
        ("open", &ring, &base),
        ("click", &ring, &click),
        ("unsubscribe", &ring, &unsub),
        ("conversion attribution", &ring, &attribution),
        (
            "preferences link naming its campaign (signed before links named the site)",
            &ring,
            &legacy_preferences,
        ),
        (
            "open signed by the previous key (rotation)",
            &old_ring,
            &base,
        ),
    ] {
        valid.push(json!({"name": name, "token": sign(r, c), "claims": claims_json(c)}));
    }
    let open = sign(&ring, &base);
    let click_token = sign(&ring, &click);
    let mut flipped = open.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let raw = URL_SAFE_NO_PAD.decode(&open).expect("decodes");
    let truncated_bytes = URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 3]);
    let mut v9 = URL_SAFE_NO_PAD.decode(&open).expect("decodes");
    v9[0] = 9;
    // A click token whose link index is changed (to count the click on another link), tag kept.
    let mut swapped = URL_SAFE_NO_PAD.decode(&click_token).expect("decodes");
    let index_at = swapped.len() - 16 - click.link.as_ref().map_or(0, |l| l.url.len()) - 4;
    swapped[index_at + 1] ^= 1;
    // Another campaign's click token with this one's tag: the campaign is inside the MAC.
    let other_campaign = sign(
        &ring,
        &Claims {
            campaign: "vec-campaigX".into(),
            ..click.clone()
        },
    );
    let mut spliced = URL_SAFE_NO_PAD.decode(&other_campaign).expect("decodes");
    let tag = URL_SAFE_NO_PAD.decode(&click_token).expect("decodes");
    let n = spliced.len();
    spliced[n - 16..].copy_from_slice(&tag[tag.len() - 16..]);
    let invalid = vec![
        (
            "tampered",
            String::from_utf8(flipped).expect("ascii"),
            "open",
            "bad_signature",
        ),
        ("truncated bytes", truncated_bytes, "open", "bad_signature"),
        (
            "truncated text",
            open[..open.len() - 5].to_owned(),
            "open",
            "malformed",
        ),
        (
            "truncated to the header",
            open[..10].to_owned(),
            "open",
            "malformed",
        ),
        ("empty", String::new(), "open", "malformed"),
        ("huge (10 KB)", "A".repeat(10_240), "open", "malformed"),
        ("not base64url", "abc$def!".to_owned(), "open", "malformed"),
        (
            "click token used as unsubscribe",
            click_token.clone(),
            "unsubscribe",
            "wrong_purpose",
        ),
        (
            "open token used as click",
            open.clone(),
            "click",
            "wrong_purpose",
        ),
        (
            "removed key",
            sign(&removed_ring, &base),
            "open",
            "unknown_key",
        ),
        (
            "unsupported version",
            URL_SAFE_NO_PAD.encode(&v9),
            "open",
            "unsupported_version",
        ),
        (
            "expired confirm",
            sign(&ring, &expired),
            "confirm",
            "expired",
        ),
        (
            "click with its link index swapped",
            URL_SAFE_NO_PAD.encode(&swapped),
            "click",
            "bad_signature",
        ),
        (
            "another campaign's click with this tag",
            URL_SAFE_NO_PAD.encode(&spliced),
            "click",
            "bad_signature",
        ),
    ];
    json!({
        "comment": "Generated by core/tests/vectors.rs (UPDATE_VECTORS=1). Keys are test-only.",
        "signing_keys": verify_ring,
        "now": NOW,
        "valid": valid,
        "invalid": invalid.into_iter().map(|(name, token, purpose, error)| json!({
            "name": name, "token": token, "purpose": purpose, "error": error
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn token_vectors() {
    let path = vectors_dir().join("tokens.json");
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generate_token_vectors()).expect("serialises");
        std::fs::write(&path, text + "\n").expect("writes vectors");
    }
    let v = read("tokens.json");
    let ring = Keyring::parse(v["signing_keys"].as_str().expect("keys")).expect("valid keys");
    let now = v["now"].as_u64().expect("now");
    let valid = v["valid"].as_array().expect("valid list");
    assert!(valid.len() >= 4);
    for case in valid {
        let token = case["token"].as_str().expect("token");
        let want = claims_from_json(&case["claims"]);
        let got = ring
            .verify(token, want.purpose, now)
            .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(got, want, "{}", case["name"]);
    }
    // Signing is deterministic: the newest key reproduces the stored token exactly.
    let first = &valid[0];
    assert_eq!(
        ring.sign(&claims_from_json(&first["claims"]))
            .expect("signs"),
        first["token"].as_str().expect("token")
    );
    let invalid = v["invalid"].as_array().expect("invalid list");
    assert!(invalid.len() >= 10);
    for case in invalid {
        let token = case["token"].as_str().expect("token");
        let purpose =
            Purpose::parse(case["purpose"].as_str().expect("purpose")).expect("known purpose");
        let err = ring
            .verify(token, purpose, now)
            .expect_err(case["name"].as_str().expect("name"));
        assert_eq!(error_code(&err), case["error"], "{}", case["name"]);
    }
}

#[test]
fn classification_vectors() {
    let v = read("classify.json");
    let cases = v["cases"].as_array().expect("cases");
    assert!(cases.len() >= 15);
    for case in cases {
        let interaction = match case["interaction"].as_str() {
            Some("open") => Interaction::Open,
            Some("click") => Interaction::Click,
            other => panic!("unknown interaction {other:?}"),
        };
        let ip: Option<IpAddr> = case["ip"].as_str().map(|s| s.parse().expect("ip"));
        let signals = Signals {
            is_head: case["method"] == "HEAD",
            user_agent: case["user_agent"].as_str(),
            ip,
            asn: case["asn"].as_u64().map(|a| a as u32),
            has_fetch_metadata: case["fetch_metadata"].as_bool().unwrap_or(false),
            seconds_since_send: case["seconds_since_send"]
                .as_i64()
                .expect("seconds_since_send"),
            // What the edge's crawler patterns say of this user agent (the e2e test checks that
            // the generated matcher agrees).
            known_bot: case["known_bot"].as_bool().expect("known_bot"),
            honeypot: case["honeypot"].as_bool().unwrap_or(false),
        };
        let got = classify(interaction, &signals);
        assert_eq!(got.label.as_str(), case["label"], "{}", case["name"]);
        assert_eq!(got.reason.as_str(), case["reason"], "{}", case["name"]);
    }
}

#[test]
fn relabel_vectors() {
    let v = read("relabel.json");
    let cases = v["cases"].as_array().expect("cases");
    assert!(cases.len() >= 8);
    let (mut bursts, mut honeypots, mut kept) = (0, 0, 0);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let clicks: Vec<StoredClick> = case["clicks"]
            .as_array()
            .expect("clicks")
            .iter()
            .map(|c| StoredClick {
                link: match &c["link"] {
                    Value::String(s) if s == "honeypot" => HONEYPOT_LINK,
                    l => l
                        .as_u64()
                        .and_then(|l| u16::try_from(l).ok())
                        .expect("link"),
                },
                at: c["at"].as_u64().expect("at"),
                label: Label::parse(c["label"].as_str().expect("label")).expect("a label"),
            })
            .collect();
        let links = u32::try_from(case["links"].as_u64().expect("links")).expect("links");
        let got: Vec<Value> = relabel_clicks(&clicks, links)
            .into_iter()
            .map(|r| r.map_or(Value::Null, |r| Value::from(r.as_str())))
            .collect();
        assert_eq!(&Value::from(got.clone()), &case["relabel"], "{name}");
        for r in &got {
            match r.as_str() {
                Some("burst") => bursts += 1,
                Some("honeypot") => honeypots += 1,
                _ => kept += 1,
            }
        }
    }
    // The vectors exercise every outcome.
    assert!(bursts > 0 && honeypots > 0 && kept > 0);
}
